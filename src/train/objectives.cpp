#include "train/objectives.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include <ATen/core/grad_mode.h>  // at::NoGradGuard (not in ATen.h of PyTorch 2.x)

#include "core/error.h"
#include "model/dit_cache.h"
#include "pipeline/samplers.h"
#include "pipeline/schedule.h"

namespace sanastream::train {

namespace {

double uniform(at::Generator& gen) { return at::rand({1}, gen, at::TensorOptions().dtype(at::kFloat)).item<double>(); }

int64_t uniform_index(int64_t n, at::Generator& gen) {
  return std::min<int64_t>(n - 1, static_cast<int64_t>(uniform(gen) * static_cast<double>(n)));
}

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

}  // namespace

std::unique_ptr<model::HybridDit> DitWeights::build(bool grad) const {
  std::optional<at::NoGradGuard> no_grad;
  if (!grad) no_grad.emplace();
  return std::make_unique<model::HybridDit>(params, cfg, rt);
}

model::CaptionState grad_caption(const model::HybridDit& dit, const TrainSample& s, PromptKind kind) {
  if (s.encode) {
    const std::pair<at::Tensor, at::Tensor> p = s.encode(kind);
    return dit.encode_caption(p.first, p.second);
  }
  switch (kind) {
    case PromptKind::kPrompt: return dit.encode_caption(s.prompt_embeds, s.prompt_mask);
    case PromptKind::kReverse: return dit.encode_caption(s.reverse_embeds, s.reverse_mask);
    case PromptKind::kNull: break;
  }
  return dit.encode_caption(s.null_embeds, s.null_mask);
}

at::Tensor randn_like_on(const at::Tensor& like, at::Generator& gen) {
  return at::randn(like.sizes(), gen, at::TensorOptions().dtype(at::kFloat)).to(like.device());
}

FlowLoss flow_loss(const model::HybridDit& dit, const model::CaptionState& caption, const at::Tensor& x0,
                   const at::Tensor& cond, double sigma, const at::Tensor& noise, const model::DitCallOptions& opt) {
  SS_CHECK(sigma >= 0 && sigma <= 1, "flow loss: expected sigma in [0, 1], got {}", sigma);
  FlowLoss r;
  r.x_t = (1.0 - sigma) * x0 + sigma * noise;
  at::Tensor t = timestep_of(sigma * 1000.0, dit.runtime()).expand({x0.size(0)});
  r.v = dit.forward(r.x_t, cond, t, caption, opt);  // [B, Cl, T, h, w] fp32
  r.loss = (r.v - (noise - x0)).pow(2).mean();
  return r;
}

double sample_logit_normal_sigma(const FlowMatchingConfig& cfg, at::Generator& gen) {
  const double u = at::randn({1}, gen, at::kFloat).item<double>();
  const double s = 1.0 / (1.0 + std::exp(-(cfg.logit_mean + cfg.logit_std * u)));
  return cfg.flow_shift * s / (1.0 + (cfg.flow_shift - 1.0) * s);
}

double flow_matching_step(const DitWeights& w, const TrainSample& s, const FlowMatchingConfig& cfg, at::Generator& gen,
                          double scale) {
  if (!s.target.defined()) return 0.0;
  const double sigma = sample_logit_normal_sigma(cfg, gen);
  const bool drop = uniform(gen) < cfg.text_dropout;
  at::Tensor noise = randn_like_on(s.target, gen);
  auto dit = w.build(true);
  const model::CaptionState caption = grad_caption(*dit, s, drop ? PromptKind::kNull : PromptKind::kPrompt);
  FlowLoss r = flow_loss(*dit, caption, s.target, s.source, sigma, noise);
  (r.loss * (cfg.weight * scale)).backward();
  return r.loss.item<double>();
}

RolloutLosses rollout_step(const DitWeights& w, const TrainSample& s, const RolloutConfig& rollout,
                           const CrrConfig& crr, at::Generator& gen, double scale) {
  RolloutLosses out;
  const bool train_rollout = rollout.enabled && s.target.defined();
  if (!train_rollout && !crr.enabled) return out;
  const int64_t T = s.source.size(2), H = s.source.size(3), W = s.source.size(4);
  const std::vector<int64_t> bounds = pipeline::chunk_boundaries(T, rollout.first_chunk);
  const int64_t n_chunks = static_cast<int64_t>(bounds.size()) - 1;
  int64_t longest_later = 1;
  for (int64_t c = 1; c < n_chunks; ++c) longest_later = std::max(longest_later, bounds[c + 1] - bounds[c]);
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
  model::StreamCache cache(w.cfg, 1, H, W, bounds[1], longest_later, rt.dtype, rt.device);
  model::StreamCache crr_cache(w.cfg, 1, H, W, bounds[1], longest_later, rt.dtype, rt.device);

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
