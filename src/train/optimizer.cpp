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

// The updates run as multi-tensor (_foreach) ops: a handful of launches per step on a GPU rather than
// several per weight, and one host synchronisation (the norm).
namespace {
std::vector<at::Tensor> gradients(const io::TensorMap& params) {
  std::vector<at::Tensor> g;
  for (const auto& [k, p] : params)
    if (p.grad().defined()) g.push_back(p.grad());
  return g;
}
}  // namespace

double clip_grad_norm(const io::TensorMap& params, double max_norm) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads = gradients(params);
  if (grads.empty()) return 0.0;
  const double norm = at::stack(at::_foreach_norm(grads)).to(at::kDouble).pow(2).sum().sqrt().item<double>();
  SS_CHECK(std::isfinite(norm), "gradient norm is {}: the loss diverged", norm);
  if (max_norm > 0 && norm > max_norm) at::_foreach_mul_(grads, max_norm / (norm + 1e-6));
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
  std::vector<at::Tensor> p, g, m, v;
  for (auto& [k, w] : params_) {
    if (!w.grad().defined()) continue;
    p.push_back(w);
    g.push_back(w.grad());
    m.push_back(m_.at(k));
    v.push_back(v_.at(k));
  }
  if (p.empty()) return;
  if (cfg_.weight_decay != 0) at::_foreach_mul_(p, 1.0 - lr * cfg_.weight_decay);
  at::_foreach_mul_(m, cfg_.beta1);
  at::_foreach_add_(m, g, 1.0 - cfg_.beta1);
  at::_foreach_mul_(v, cfg_.beta2);
  at::_foreach_addcmul_(v, g, g, 1.0 - cfg_.beta2);
  std::vector<at::Tensor> denom = at::_foreach_sqrt(v);
  at::_foreach_div_(denom, std::sqrt(bc2));
  at::_foreach_add_(denom, cfg_.eps);
  at::_foreach_addcdiv_(p, m, denom, -lr / bc1);
  for (auto& [k, w] : params_) w.mutable_grad() = at::Tensor();
}

double ema_decay(double decay, int64_t step) {
  return std::min(decay, (1.0 + static_cast<double>(step)) / (10.0 + static_cast<double>(step)));
}

void update_ema(io::TensorMap& ema, const io::TensorMap& params, double decay) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> e, p;
  for (auto& [k, t] : ema) {
    e.push_back(t);
    p.push_back(params.at(k).detach());
  }
  if (e.empty()) return;
  at::_foreach_mul_(e, decay);
  at::_foreach_add_(e, p, 1.0 - decay);
}

}  // namespace sanastream::train
