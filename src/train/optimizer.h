// AdamW (torch.optim.AdamW's update, decoupled weight decay), linear warm-up, global gradient
// clipping and an EMA of the weights, over named fp32 master weights. The states are named like
// the weights, so a checkpoint stores them under the official keys.
#pragma once

#include <string>

#include "io/safetensors.h"
#include "train/train_config.h"

namespace sanastream::train {

// The learning rate of step `step` (1-based): lr · min(1, step / warmup_steps).
double learning_rate(const OptimConfig& cfg, int64_t step);

// Scales every gradient so that their global L2 norm is at most max_norm (0 = no clipping), as
// torch.nn.utils.clip_grad_norm_. Returns the norm before clipping.
double clip_grad_norm(const io::TensorMap& params, double max_norm);

class AdamW {
 public:
  // params: the trainable fp32 leaves (requires_grad); moments start at zero.
  AdamW(const io::TensorMap& params, OptimConfig cfg);
  // One update with the gradients in params[k].grad() at `lr` (a weight without a gradient is left
  // alone, as torch.optim does); then the gradients are cleared. `step` is the 1-based step count (bias correction).
  void step(int64_t step, double lr);
  // The moments, named and shaped as the weights (fp32); written in place by a resume.
  io::TensorMap& exp_avg() { return m_; }
  io::TensorMap& exp_avg_sq() { return v_; }
  const io::TensorMap& exp_avg() const { return m_; }
  const io::TensorMap& exp_avg_sq() const { return v_; }

 private:
  io::TensorMap params_, m_, v_;
  OptimConfig cfg_;
};

// The EMA's decay at step `step` (1-based): min(decay, (1 + step) / (10 + step)), diffusers'
// EMAModel warm-up. A constant decay d keeps d^t of the initial weights in the average after t steps
// (0.999: 45 % after 800 steps); with the warm-up, less than 1e-19.
double ema_decay(double decay, int64_t step);

// ema ← decay·ema + (1 − decay)·params for every tensor of `ema` (fp32).
void update_ema(io::TensorMap& ema, const io::TensorMap& params, double decay);

}  // namespace sanastream::train
