#include "train/optimizer.h"

#include <algorithm>
#include <cmath>

#include <ATen/core/grad_mode.h>  // at::NoGradGuard (not in ATen.h of PyTorch 2.x)

#include "core/error.h"

namespace sanastream::train {

double learning_rate(const OptimConfig& cfg, int64_t step) {
  if (cfg.warmup_steps <= 0) return cfg.lr;
  return cfg.lr * std::min(1.0, static_cast<double>(step) / static_cast<double>(cfg.warmup_steps));
}

double clip_grad_norm(const io::TensorMap& params, double max_norm) {
  at::NoGradGuard no_grad;
  double sq = 0.0;
  for (const auto& [k, p] : params)
    if (p.grad().defined()) sq += p.grad().to(at::kDouble).pow(2).sum().item<double>();
  const double norm = std::sqrt(sq);
  SS_CHECK(std::isfinite(norm), "gradient norm is {}: the loss diverged", norm);
  if (max_norm > 0 && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    for (const auto& [k, p] : params)
      if (p.grad().defined()) p.grad().mul_(scale);
  }
  return norm;
}

AdamW::AdamW(const io::TensorMap& params, OptimConfig cfg) : params_(params), cfg_(cfg) {
  for (const auto& [k, p] : params_) {
    SS_CHECK(p.scalar_type() == at::kFloat && p.requires_grad(),
             "optimiser: expected fp32 trainable weights, got {} ({}requires grad) for '{}'",
             c10::toString(p.scalar_type()), p.requires_grad() ? "" : "no ", k);
    m_[k] = at::zeros_like(p);
    v_[k] = at::zeros_like(p);
  }
}

void AdamW::step(int64_t step, double lr) {
  at::NoGradGuard no_grad;
  const double bc1 = 1.0 - std::pow(cfg_.beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(cfg_.beta2, static_cast<double>(step));
  for (auto& [k, p] : params_) {
    const at::Tensor g = p.grad();
    if (!g.defined()) continue;
    at::Tensor& m = m_.at(k);
    at::Tensor& v = v_.at(k);
    p.mul_(1.0 - lr * cfg_.weight_decay);
    m.lerp_(g, 1.0 - cfg_.beta1);
    v.mul_(cfg_.beta2).addcmul_(g, g, 1.0 - cfg_.beta2);
    const at::Tensor denom = (v.sqrt() / std::sqrt(bc2)).add_(cfg_.eps);
    p.addcdiv_(m, denom, -lr / bc1);
    p.mutable_grad() = at::Tensor();
  }
}

void update_ema(io::TensorMap& ema, const io::TensorMap& params, double decay) {
  at::NoGradGuard no_grad;
  for (auto& [k, e] : ema) e.lerp_(params.at(k).detach(), 1.0 - decay);
}

}  // namespace sanastream::train
