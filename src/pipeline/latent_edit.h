// latent-edit: the DiT samplers on latents in the golden tensor names (inputs.noise,
// inputs.src_latents, inputs.prompt_embeds, inputs.prompt_mask[, inputs.neg_prompt_*]) →
// output.latents, with optional dumps of every call and cache.
#pragma once

#include <set>
#include <string>

#include "io/safetensors.h"
#include "model/hybrid_dit.h"

namespace sanastream::pipeline {

enum class SamplerMode { kStreaming, kBidirectional };
SamplerMode parse_mode(const std::string& mode);

struct LatentEditOptions {
  SamplerMode mode = SamplerMode::kStreaming;
  int steps = 0;          // 0: 4 (streaming) / 50 (bidirectional)
  double cfg = -1;        // < 0: 1 (streaming) / 6 (bidirectional)
  int first_chunk = 0;    // 0: the official rule
  bool efficient_cache = false;
  int64_t rope_limit = 0;  // streaming: temporal RoPE positions before rebasing (0: the model's table)
  bool dump = false;
  std::set<int> dump_calls;  // activation capture
  std::string dump_prefix;
};

struct LatentEditResult {
  at::Tensor latents;     // [B, Cl, T, H, W] fp32
  io::TensorMap dump;     // when requested
  double seconds = 0;
  int64_t model_calls = 0;
};

LatentEditResult latent_edit(const model::HybridDit& dit, const io::TensorMap& inputs, const LatentEditOptions& opt);

// Number of model calls the streaming sampler makes for T latent frames.
int64_t streaming_call_count(int64_t frames, int first_chunk, int steps, bool efficient_cache);

}  // namespace sanastream::pipeline
