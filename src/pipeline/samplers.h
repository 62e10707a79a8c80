// The two samplers of SPEC §3: the streaming chunked Euler sampler with sink + window caches, and
// the bidirectional DPM-Solver++(2M) with CFG. Both record, on request, every model call and the
// caches under the golden names so `latent-edit --dump` and `golden-check` can compare them.
#pragma once

#include <functional>
#include <set>
#include <vector>

#include "io/safetensors.h"
#include "model/hybrid_dit.h"

namespace sanastream::pipeline {

// Chunk boundaries in latent frames. first_chunk = 0: the official rule for a clip of known length
// (3 + T mod 3, then 3; one chunk when T ≤ 3); else first_chunk frames (3, 4 or 5), then 3, and a
// shorter last chunk if T does not fill it.
std::vector<int64_t> chunk_boundaries(int64_t frames, int first_chunk);

// What to record while sampling (names as in the golden sets).
struct DumpSpec {
  io::TensorMap* out = nullptr;       // null: record nothing
  std::set<int> activation_calls;     // calls whose internals are captured as call{NN}.<name>
  std::string prefix;                 // prepended to every name (e.g. "effcache.", "dpm.")
  bool caches = true;                 // cache_after_chunk{K}.* and cache_view_chunk{K}.*
};

struct StreamingOptions {
  int steps = 4;
  int first_chunk = 0;
  bool efficient_cache = false;
  bool cuda_graphs = true;  // replay each chunk shape's calls as a CUDA graph (CUDA, no activation dump)
};

// Called after each chunk with its index and latent-frame boundaries [begin, end) (benchmarks,
// progress reporting).
using ChunkCallback = std::function<void(int64_t chunk, int64_t begin, int64_t end)>;

// noise: [B, Cl, T, H, W] fp32; src: [B, Cs, T, H, W]. Returns the final latents (fp32; rounded to
// the model dtype after every Euler step, as the official scheduler does).
at::Tensor sample_streaming(const model::HybridDit& dit, const at::Tensor& noise, const at::Tensor& src,
                            const model::CaptionState& caption, const StreamingOptions& opt, const DumpSpec& dump = {},
                            const ChunkCallback& on_chunk = {});

struct DpmOptions {
  int steps = 50;
  double cfg = 6.0;
  double flow_shift = 8.0;
};

// cond/uncond: caption states of batch 1 (uncond may be null when cfg == 1). Returns fp32 latents.
at::Tensor sample_dpm(const model::HybridDit& dit, const at::Tensor& noise, const at::Tensor& src,
                      const model::CaptionState& cond, const model::CaptionState* uncond, const DpmOptions& opt,
                      const DumpSpec& dump = {});

// Concatenates two caption states along the batch ([uncond, cond]).
model::CaptionState concat_captions(const model::CaptionState& a, const model::CaptionState& b);

}  // namespace sanastream::pipeline
