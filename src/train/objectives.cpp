#include "train/objectives.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <optional>

#include <ATen/core/grad_mode.h>  // at::NoGradGuard (not in ATen.h of PyTorch 2.x)
#include <ATen/record_function.h>

#include "core/compare.h"
#include "core/error.h"
#include "model/dit_cache.h"
#include "pipeline/samplers.h"
#include "pipeline/schedule.h"

namespace sanastream::train {

double uniform(at::Generator& gen) { return at::rand({1}, gen, at::TensorOptions().dtype(at::kFloat)).item<double>(); }

int64_t uniform_index(int64_t n, at::Generator& gen) {
  return std::min<int64_t>(n - 1, static_cast<int64_t>(uniform(gen) * static_cast<double>(n)));
}

namespace {

// After a grad call the caches hold tensors of its graph: cut them loose (same storage).
void detach_cache(model::StreamCache& c) {
  for (size_t b = 0; b < c.ffn_in.size(); ++b) {
    c.ffn_in[b] = c.ffn_in[b].detach();
    c.ffn_out[b] = c.ffn_out[b].detach();
    for (ops::GdnState* s : {&c.gdn_in[b], &c.gdn_out[b]}) {
      if (!s->defined()) continue;
      s->kv = s->kv.detach();
      s->z = s->z.detach();
    }
    if (c.k[b].defined()) {
      c.k[b] = c.k[b].detach();
      c.v[b] = c.v[b].detach();
    }
  }
}

at::Tensor timestep_of(double t, const Runtime& rt) {
  return at::full({1}, t, at::TensorOptions().dtype(at::kFloat).device(rt.device));
}

// A prompt's embeddings and mask: with `grad` and a trainable encoder, through s.encode with autograd;
// else the sample's embeddings (no graph).
std::pair<at::Tensor, at::Tensor> prompt_embeddings(const TrainSample& s, PromptKind kind, bool grad) {
  if (grad && s.encode) return s.encode(kind);
  switch (kind) {
    case PromptKind::kPrompt: return {s.prompt_embeds, s.prompt_mask};
    case PromptKind::kReverse: return {s.reverse_embeds, s.reverse_mask};
    case PromptKind::kNull: break;
  }
  return {s.null_embeds, s.null_mask};
}

// The caches of a streaming pass over B clips of an H × W latent grid in chunks `bounds`.
model::StreamCache chunk_cache(const DitWeights& w, int64_t B, int64_t H, int64_t W,
                               const std::vector<int64_t>& bounds) {
  return model::StreamCache(w.cfg, B, H, W, bounds[1], pipeline::longest_later_chunk(bounds), w.rt.dtype,
                            w.rt.device);
}

}  // namespace

std::unique_ptr<model::HybridDit> DitWeights::build(bool grad) const {
  std::optional<at::NoGradGuard> no_grad;
  if (!grad) no_grad.emplace();
  return std::make_unique<model::HybridDit>(params, cfg, rt);
}

model::CaptionState grad_caption(const model::HybridDit& dit, const TrainSample& s, PromptKind kind) {
  const std::pair<at::Tensor, at::Tensor> p = prompt_embeddings(s, kind, true);
  return dit.encode_caption(p.first, p.second);
}

uint64_t draw_seed(at::Generator& gen) {
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  return static_cast<uint64_t>(at::randint(std::numeric_limits<int64_t>::max(), {1}, gen, i64).item<int64_t>());
}

at::Tensor randn_like_on(const at::Tensor& like, at::Generator& gen) { return randn_on(like.sizes(), like.device(), gen); }

at::Tensor randn_on(at::IntArrayRef sizes, at::Device device, at::Generator& gen) {
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  if (device.is_cpu()) return at::randn(sizes, gen, f32);
  const uint64_t seed = draw_seed(gen);
  at::Generator device_gen = at::globalContext().defaultGenerator(device);
  {
    std::lock_guard<std::mutex> lock(device_gen.mutex());
    device_gen.set_current_seed(seed);
  }
  return at::randn(sizes, device_gen, f32.device(device));
}

FlowLoss flow_loss(const model::HybridDit& dit, const model::CaptionState& caption, const at::Tensor& x0,
                   const at::Tensor& cond, const at::Tensor& sigma, const at::Tensor& noise,
                   const model::DitCallOptions& opt) {
  SS_CHECK(sigma.dim() == 1 && sigma.size(0) == x0.size(0) && sigma.min().item<double>() >= 0 &&
               sigma.max().item<double>() <= 1,
           "flow loss: expected one sigma in [0, 1] per row, got {}", shape_str(sigma.sizes()));
  FlowLoss r;
  const at::Tensor s = sigma.to(x0.device(), at::kFloat).view({-1, 1, 1, 1, 1});
  r.x_t = (1 - s) * x0 + s * noise;
  r.v = dit.forward(r.x_t, cond, sigma.to(x0.device(), at::kFloat) * 1000, caption, opt);  // [B, Cl, T, h, w] fp32
  r.loss = (r.v - (noise - x0)).pow(2).mean();
  return r;
}

FlowLoss flow_loss(const model::HybridDit& dit, const model::CaptionState& caption, const at::Tensor& x0,
                   const at::Tensor& cond, double sigma, const at::Tensor& noise, const model::DitCallOptions& opt) {
  return flow_loss(dit, caption, x0, cond, at::full({x0.size(0)}, sigma, at::kFloat), noise, opt);
}

double sample_logit_normal_sigma(const FlowMatchingConfig& cfg, at::Generator& gen) {
  const double u = at::randn({1}, gen, at::kFloat).item<double>();
  const double s = 1.0 / (1.0 + std::exp(-(cfg.logit_mean + cfg.logit_std * u)));
  return cfg.flow_shift * s / (1.0 + (cfg.flow_shift - 1.0) * s);
}

double flow_matching_step(const DitWeights& w, const TrainSample& s, const FlowMatchingConfig& cfg,
                          const RolloutConfig& rollout, at::Generator& gen, double scale, const RowSlice& rows) {
  RECORD_USER_SCOPE("train::flow_matching");
  if (!s.target.defined()) return 0.0;
  // Per row of the whole batch: σ, then whether its caption is dropped (CFG); then the noise. This
  // sample's rows are [offset, offset + B) of them.
  const int64_t B = s.target.size(0), total = rows.total > 0 ? rows.total : B;
  SS_CHECK(rows.total == 0 || (rows.count == B && rows.offset >= 0 && rows.offset + B <= total),
           "flow matching: expected a sample of rows {}..{} of a batch of {}, got {} rows", rows.offset,
           rows.offset + rows.count, rows.total, B);
  std::vector<float> sigmas;
  std::vector<uint8_t> drops;
  for (int64_t b = 0; b < total; ++b) {
    sigmas.push_back(static_cast<float>(sample_logit_normal_sigma(cfg, gen)));
    drops.push_back(uniform(gen) < cfg.text_dropout);
  }
  sigmas = std::vector<float>(sigmas.begin() + rows.offset, sigmas.begin() + rows.offset + B);
  drops = std::vector<uint8_t>(drops.begin() + rows.offset, drops.begin() + rows.offset + B);
  std::vector<int64_t> noise_shape = s.target.sizes().vec();
  noise_shape[0] = total;
  const at::Tensor noise = randn_on(noise_shape, s.target.device(), gen).narrow(0, rows.offset, B),
                   sigma = at::tensor(sigmas, at::kFloat);
  const int64_t dropped = std::count(drops.begin(), drops.end(), uint8_t{1});
  // The rows' captions: the prompt's, the null caption's where dropped. `grad`: through s.encode with
  // autograd; else the sample's embeddings without a graph (the cache-writing passes).
  auto caption_rows = [&](const model::HybridDit& dit, bool grad) {
    if (dropped == 0 || dropped == B) {
      const auto e = prompt_embeddings(s, dropped ? PromptKind::kNull : PromptKind::kPrompt, grad);
      return dit.encode_caption(e.first, e.second);
    }
    const auto prompt = prompt_embeddings(s, PromptKind::kPrompt, grad),
               null = prompt_embeddings(s, PromptKind::kNull, grad);
    const at::Tensor drop = at::tensor(std::vector<int64_t>(drops.begin(), drops.end()), at::kLong)
                                .to(prompt.first.device())
                                .to(at::kBool);
    return dit.encode_caption(at::where(drop.view({B, 1, 1}), null.first.expand_as(prompt.first), prompt.first),
                              at::where(drop.view({B, 1}), null.second.expand_as(prompt.second), prompt.second));
  };
  if (!cfg.chunked) {
    auto dit = w.build(true);
    FlowLoss r = flow_loss(*dit, caption_rows(*dit, true), s.target, s.source, sigma, noise);
    (r.loss * (cfg.weight * scale)).backward();
    return r.loss.item<double>();
  }
  // The streaming regime: chunk by chunk against caches that a t = 0 pass on the target's earlier
  // chunks wrote (teacher forcing), as the streaming sampler's t = 0 pass on its edits writes them.
  // With sink_gap, the chunks after the first start `gap` positions later: the first chunk (the sink of
  // the softmax caches) as far behind as in a long stream.
  const int64_t gap = cfg.sink_gap > 0 ? uniform_index(cfg.sink_gap + 1, gen) : 0;
  const int64_t T = s.target.size(2), H = s.target.size(3), W = s.target.size(4);
  const std::vector<int64_t> bounds = pipeline::chunk_boundaries(T, rollout.first_chunk);
  const int64_t n_chunks = static_cast<int64_t>(bounds.size()) - 1;
  model::StreamCache cache = chunk_cache(w, B, H, W, bounds);
  auto frozen = w.build(false);
  model::CaptionState frozen_caption;
  {
    at::NoGradGuard no_grad;
    frozen_caption = caption_rows(*frozen, false);
  }
  const at::Tensor zero_t = at::zeros({B}, at::TensorOptions().dtype(at::kFloat).device(w.rt.device));
  double loss = 0;
  for (int64_t c = 0; c < n_chunks; ++c) {
    const int64_t begin = bounds[c], n = bounds[c + 1] - begin;
    const at::Tensor tgt = s.target.narrow(2, begin, n), src = s.source.narrow(2, begin, n);
    model::DitCallOptions opt;
    opt.frame_offset = begin + (c > 0 ? gap : 0);
    opt.cache = &cache;
    auto dit = w.build(true);
    FlowLoss r = flow_loss(*dit, caption_rows(*dit, true), tgt, src, sigma, noise.narrow(2, begin, n), opt);
    (r.loss * (cfg.weight * scale / static_cast<double>(n_chunks))).backward();
    detach_cache(cache);
    loss += r.loss.item<double>() / static_cast<double>(n_chunks);
    if (c + 1 < n_chunks) {
      at::NoGradGuard no_grad;
      frozen->forward(tgt, src, zero_t, frozen_caption, opt);
      cache.commit_chunk(n);
    }
  }
  return loss;
}

RolloutLosses rollout_step(const DitWeights& w, const TrainSample& s, const RolloutConfig& rollout,
                           const CrrConfig& crr, at::Generator& gen, double scale) {
  RECORD_USER_SCOPE("train::rollout");
  RolloutLosses out;
  const bool train_rollout = rollout.enabled && s.target.defined();
  if (!train_rollout && !crr.enabled) return out;
  SS_CHECK(s.source.size(0) == 1, "the rollout and CRR take one clip at a time, got {}", s.source.size(0));
  const int64_t T = s.source.size(2), H = s.source.size(3), W = s.source.size(4);
  const std::vector<int64_t> bounds = pipeline::chunk_boundaries(T, rollout.first_chunk);
  const int64_t n_chunks = static_cast<int64_t>(bounds.size()) - 1;
  const std::vector<float> schedule = pipeline::streaming_timesteps(rollout.steps);
  const Runtime& rt = w.rt;

  // The model without a graph for the rollout and the cache passes; captions encoded once.
  auto frozen = w.build(false);
  model::CaptionState fwd_caption, rev_caption;
  {
    at::NoGradGuard no_grad;
    fwd_caption = frozen->encode_caption(s.prompt_embeds, s.prompt_mask);
    rev_caption = frozen->encode_caption(s.reverse_embeds, s.reverse_mask);
  }
  model::StreamCache cache = chunk_cache(w, 1, H, W, bounds), crr_cache = chunk_cache(w, 1, H, W, bounds);

  for (int64_t c = 0; c < n_chunks; ++c) {
    const int64_t begin = bounds[c], n = bounds[c + 1] - begin;
    const bool last = c + 1 == n_chunks;
    const at::Tensor src = s.source.narrow(2, begin, n);  // [1, Cl, n, h, w]
    model::DitCallOptions opt;
    opt.frame_offset = begin;

    // The model's own edit of this chunk, exactly as the streaming sampler computes it.
    at::Tensor edit = randn_like_on(src, gen);
    {
      at::NoGradGuard no_grad;
      opt.cache = &cache;
      for (size_t i = 0; i < schedule.size(); ++i) {
        const double sigma = schedule[i] / 1000.0,
                     sigma_next = i + 1 < schedule.size() ? schedule[i + 1] / 1000.0 : 0.0;
        at::Tensor v = frozen->forward(edit, src, timestep_of(schedule[i], rt), fwd_caption, opt);
        edit = (edit + (sigma_next - sigma) * v).to(rt.dtype).to(at::kFloat);
      }
    }

    // (b): the target's chunk noised at a step of the schedule, against the rollout's caches.
    if (train_rollout) {
      const double sigma = schedule[uniform_index(static_cast<int64_t>(schedule.size()), gen)] / 1000.0;
      const at::Tensor tgt = s.target.narrow(2, begin, n);
      const at::Tensor noise = randn_like_on(tgt, gen);
      auto dit = w.build(true);
      opt.cache = &cache;
      FlowLoss r = flow_loss(*dit, grad_caption(*dit, s, PromptKind::kPrompt), tgt, src, sigma, noise, opt);
      (r.loss * (rollout.weight * scale / static_cast<double>(n_chunks))).backward();
      detach_cache(cache);
      out.rollout += r.loss.item<double>() / static_cast<double>(n_chunks);
    }

    // (c): reverse edit of the detached edit back to the real source, with its own cache.
    if (crr.enabled) {
      const double sigma = schedule[uniform_index(static_cast<int64_t>(schedule.size()), gen)] / 1000.0;
      const at::Tensor noise = randn_like_on(src, gen);
      auto dit = w.build(true);
      opt.cache = &crr_cache;
      FlowLoss r = flow_loss(*dit, grad_caption(*dit, s, PromptKind::kReverse), src, edit, sigma, noise, opt);
      (r.loss * (crr.weight * scale / static_cast<double>(n_chunks))).backward();
      detach_cache(crr_cache);
      out.crr += r.loss.item<double>() / static_cast<double>(n_chunks);
      if (!last) {
        at::NoGradGuard no_grad;
        const at::Tensor x0 = (r.x_t - sigma * r.v.detach()).to(rt.dtype).to(at::kFloat);  // the model's own x0
        frozen->forward(x0, edit, timestep_of(0.0, rt), rev_caption, opt);
        crr_cache.commit_chunk(n);
      }
    }

    // The t = 0 pass on the model's own edit writes the caches of the next chunk, as at inference.
    if (!last) {
      at::NoGradGuard no_grad;
      opt.cache = &cache;
      frozen->forward(edit, src, timestep_of(0.0, rt), fwd_caption, opt);
      cache.commit_chunk(n);
    }
  }
  out.chunks = n_chunks;
  return out;
}

}  // namespace sanastream::train
