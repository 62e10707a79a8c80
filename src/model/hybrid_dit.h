// The hybrid Gated-DeltaNet / softmax diffusion transformer of SANA-Streaming (SPEC §2): one code
// path for CPU and CUDA, fp32 and bf16, streaming (cached chunks) and bidirectional (whole clip).
// Module tree and weight names follow the official checkpoints.
#pragma once

#include <memory>
#include <vector>

#include "core/runtime.h"
#include "model/capture.h"
#include "model/cross_attention.h"
#include "model/dit_cache.h"
#include "model/dit_config.h"
#include "model/gdn_attention.h"
#include "model/mix_ffn.h"
#include "model/softmax_attention.h"
#include "ops/rope.h"

namespace sanastream::model {

// The caption side of every call for one prompt, computed once: the embedded and normalised
// caption's tokens, the mask bias and each block's cross-attention keys/values. K keys: each row's
// tokens first, K its longest row rounded up to 128 (at most L; L when no row has a token).
struct CaptionState {
  at::Tensor y;                                 // [B, K, C] model dtype
  at::Tensor bias;                              // [B, 1, 1, K] (1 − mask)·(−10000); undefined: no padding
  std::vector<CrossAttention::CaptionKV> kv;    // per block, [B, H, K, D]
};

// `c` with its keys padded to `keys` (≥ its own; zeros, masked by the bias).
CaptionState pad_caption_keys(const CaptionState& c, int64_t keys);
// c.bias, or zeros of its shape where c has no padding.
at::Tensor caption_bias(const CaptionState& c);

// A timestep's conditioning: the t_embedder output [B, C], the t_block output [B, 6C] and what the
// layers take of them, the modulation rows of every block and of the final layer (each table + t0 or
// t in the model dtype, then fp32). The streaming sampler computes those of its fixed schedule once
// (embed_timestep) and passes them in.
struct TimestepState {
  at::Tensor t;
  at::Tensor t0;
  at::Tensor block_mod;  // [depth, B, 6, C] fp32: shift, scale, gate (attention), shift, scale, gate (FFN)
  at::Tensor final_mod;  // [B, 2, C] fp32: shift, scale
};

struct DitCallOptions {
  int64_t frame_offset = 0;                // absolute latent index of the call's first frame (RoPE)
  const TimestepState* timestep = nullptr; // precomputed for the call's timestep (null: computed)
  const ops::RopeTable* rope = nullptr;    // precomputed rows for this call (null: built from frame_offset)
  StreamCache* cache = nullptr;            // streaming caches, read and written in place (null: none)
  Capture capture;                         // activations under golden names
};

class HybridDit {
 public:
  // Converts the weights to rt's device and dtype; cfg from detect_dit_config(). `plan` (empty: the
  // model's dtype throughout) sets the precision of each block's quantizable projections.
  HybridDit(const io::TensorMap& weights, DitConfig cfg, const Runtime& rt, const QuantPlan& plan = {});

  const DitConfig& config() const { return cfg_; }
  const Runtime& runtime() const { return rt_; }

  // embeds: [B, 1, L, Cc] or [B, L, Cc]; mask: [B, L] (1 = token). Captures y_embedder and
  // attention_y_norm.
  CaptionState encode_caption(const at::Tensor& embeds, const at::Tensor& mask, const Capture& capture = {}) const;

  // timestep: [B] → its conditioning (captures t_embedder and t_block).
  TimestepState embed_timestep(const at::Tensor& timestep, const Capture& capture = {}) const;

  // The token grid of a call on T latent frames of H × W (throws unless the patch divides H and W).
  DitGrid token_grid(int64_t frames, int64_t height, int64_t width) const;
  // The RoPE rows of a call: frames [first_frame, first_frame + T) of an H × W latent grid, one row per
  // token.
  ops::RopeTable rope_table(int64_t first_frame, int64_t frames, int64_t height, int64_t width) const;
  // The temporal-only rotation by `frame_delta` positions (one row, float64, on the model's device):
  // rebases cached keys (StreamCache::rotate_keys).
  ops::RopeTable rope_shift(int64_t frame_delta) const;

  // x: [B, Cl, T, H, W] noisy latent; src: [B, Cs, T, H, W] source latent; timestep: [B] (truncated
  // to an integer as the official model does). Returns the velocity [B, Cl, T, H, W] in fp32.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& src, const at::Tensor& timestep, const CaptionState& caption,
                     const DitCallOptions& opt = {}) const;

 private:
  struct Block {
    at::Tensor scale_shift;  // [6, C]
    std::unique_ptr<GdnAttention> gdn;
    std::unique_ptr<SoftmaxAttention> softmax;
    std::unique_ptr<CrossAttention> cross;
    std::unique_ptr<MixFfn> ffn;
  };
  at::Tensor timestep_embedding(const at::Tensor& timestep) const;

  DitConfig cfg_;
  Runtime rt_;
  io::TensorMap w_;
  std::vector<Block> blocks_;
  ops::RopeCache rope_;
};

// Loads weights (any supported form), detects the configuration (with optional overrides) and
// builds the model (quantized as `plan` says).
std::unique_ptr<HybridDit> load_hybrid_dit(const io::TensorMap& weights, const nlohmann::json& overrides,
                                           const Runtime& rt, const QuantPlan& plan = {});

}  // namespace sanastream::model
