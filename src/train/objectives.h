// The training objectives of `sanastream train` (SPEC §5, docs/TRAIN.md). Each one calls backward()
// itself (the self-rollout once per chunk, so the caches of a chunk are detached before the next),
// accumulating into the gradients of the trainable master weights, and returns its loss value.
//   (a) flow matching on (source, target) pairs over the whole clip, without caches, or (chunked)
//       chunk by chunk against the caches of the target's earlier chunks, as the streaming sampler runs;
//   (b) streaming self-rollout: the model edits chunk after chunk with its own caches exactly as at
//       inference; a grad call on the target's chunk noised at a step of the schedule trains it;
//   (c) Cycle-Reverse Regularization on those edits: the detached edit conditions the reverse
//       prompt, the real source chunk is noised at a step of the schedule, v is trained to
//       (ε − source); a separate cache is refreshed by a t = 0 pass on the model's own x0.
#pragma once

#include <functional>
#include <memory>
#include <utility>

#include <ATen/ATen.h>

#include "core/runtime.h"
#include "io/safetensors.h"
#include "model/hybrid_dit.h"
#include "train/train_config.h"

namespace sanastream::train {

// The DiT's fp32 master weights (trainable ones require grad) and how to build the model on them.
struct DitWeights {
  io::TensorMap params;  // official keys, fp32, on the device
  model::DitConfig cfg;
  Runtime rt;  // compute device and dtype (bf16: casts of the master weights)
  // A model on the current weights. With grad, the casts and derived layouts are part of the graph,
  // so gradients reach the master weights; without, nothing is recorded.
  std::unique_ptr<model::HybridDit> build(bool grad) const;
};

enum class PromptKind { kPrompt, kReverse, kNull };

// B clips on the model's device, normalised latents fp32 (B = 1 but for data.edits' batches, which
// only flow matching takes; the rollout and CRR take B = 1).
struct TrainSample {
  at::Tensor source, target;              // [B, Cl, T, h, w]; target undefined = none
  at::Tensor prompt_embeds, prompt_mask;  // [B, L, Cc], [B, L]
  at::Tensor reverse_embeds, reverse_mask;
  at::Tensor null_embeds, null_mask;  // the empty prompt (CFG dropout)
  // A trainable text encoder (docs/TRAIN.md): every grad call re-encodes its prompt through this, with
  // autograd (a fresh graph per call, [B, L, Cc] fp32 and [B, L]); the tensors above are then the
  // current encoder's embeddings without a graph (the rollout's no-grad passes). Unset: the cache's.
  std::function<std::pair<at::Tensor, at::Tensor>(PromptKind)> encode;
};

// Draws of the run's one CPU generator: uniform in [0, 1), and an index in [0, n).
double uniform(at::Generator& gen);
int64_t uniform_index(int64_t n, at::Generator& gen);

// The caption of a grad call: through s.encode when set, else the sample's embeddings.
model::CaptionState grad_caption(const model::HybridDit& dit, const TrainSample& s, PromptKind kind);

// The flow-matching loss of one call: x_t = (1 − σ)·x0 + σ·ε, v = dit(x_t, cond, 1000σ),
// MSE(v, ε − x0) over every row. x0, cond, noise: [B, Cl, T, h, w] fp32; σ: one per row ([B] fp32), or
// one for all. `x_t` and `v` are returned for the CRR cache refresh (x0 estimate x_t − σ·v).
struct FlowLoss {
  at::Tensor loss;  // [] fp32
  at::Tensor x_t, v;
};
FlowLoss flow_loss(const model::HybridDit& dit, const model::CaptionState& caption, const at::Tensor& x0,
                   const at::Tensor& cond, const at::Tensor& sigma, const at::Tensor& noise,
                   const model::DitCallOptions& opt = {});
FlowLoss flow_loss(const model::HybridDit& dit, const model::CaptionState& caption, const at::Tensor& x0,
                   const at::Tensor& cond, double sigma, const at::Tensor& noise,
                   const model::DitCallOptions& opt = {});

// σ of objective (a): sigmoid(mean + std·N(0, 1)) shifted by flow_shift.
double sample_logit_normal_sigma(const FlowMatchingConfig& cfg, at::Generator& gen);

// Objective (a) on one sample (no target: 0, nothing computed). The loss is scaled by `scale` before
// backward (gradient accumulation); the unscaled value is returned. With cfg.chunked, the streaming
// regime: the window in chunks (rollout.first_chunk frames, then 3), each chunk's loss against the
// caches that t = 0 passes on the target's earlier chunks wrote (one backward per chunk); the value is
// the mean over chunks. cfg.sink_gap > 0: the chunks after the first start a random 0 … sink_gap
// positions later (one draw per call, after the noise).
// `rows` (data-parallel training): the sample holds rows [offset, offset + count) of a batch of
// `total`; σ, the caption drops and the noise are drawn for the whole batch and this share taken, so N
// ranks together compute the one-process step. total 0: the sample is the whole batch.
struct RowSlice {
  int64_t offset = 0, count = 0, total = 0;
};
double flow_matching_step(const DitWeights& w, const TrainSample& s, const FlowMatchingConfig& cfg,
                          const RolloutConfig& rollout, at::Generator& gen, double scale, const RowSlice& rows = {});

struct RolloutLosses {
  double rollout = 0, crr = 0;  // mean over the chunks that had the objective
  int64_t chunks = 0;
};

// Objectives (b) and (c) on one sample (either may be disabled; (b) needs a target). Gradients flow
// through the current chunk's grad calls only; every cache is detached.
RolloutLosses rollout_step(const DitWeights& w, const TrainSample& s, const RolloutConfig& rollout,
                           const CrrConfig& crr, at::Generator& gen, double scale);

// Standard normal noise shaped like `like`, fp32 on its device. CPU tensors: drawn from gen. GPU
// tensors: drawn on the GPU by its generator, reseeded with one draw of gen (drawing on the host cost
// ~0.2 s a step at the demo's batch of 32 × 360 k latents); a run reproduces on the same device type.
at::Tensor randn_like_on(const at::Tensor& like, at::Generator& gen);
// One draw of gen: the seed of a derived generator (randn_on's device generator, a sample's fork).
uint64_t draw_seed(at::Generator& gen);
at::Tensor randn_on(at::IntArrayRef sizes, at::Device device, at::Generator& gen);

}  // namespace sanastream::train
