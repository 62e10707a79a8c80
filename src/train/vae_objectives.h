// The VAE trainer mode of `sanastream train` (docs/TRAIN.md, "VAE mode"): the LTX-2 VAE's encoder and
// causal decoder (the streaming edit's decode path) trained to reconstruct whole clips, through the
// same model code as inference. Losses on frames in [−1, 1], computed per frame:
//   Charbonnier  mean sqrt((x − y)² + ε²)
//   SSIM         1 − mean SSIM: 11×11 Gaussian window (σ 1.5, no padding), per channel, on (x + 1)/2,
//                C1 = 0.01², C2 = 0.03²
//   Haar         one-level 2-D Haar transform of each frame; mean |·| of the LH, HL, HH differences
//   teacher      (optional distillation) mean |student − teacher| of the frames that a frozen teacher's
//                causal decoder makes of the student's latents
#pragma once

#include <memory>

#include <ATen/ATen.h>

#include "core/runtime.h"
#include "io/safetensors.h"
#include "model/ltx2_vae.h"
#include "train/train_config.h"

namespace sanastream::train {

// The VAE's master weights (diffusers keys, fp32 unless a test asks for fp64; trainable ones require
// grad) and how to build the model on them.
struct VaeWeights {
  io::TensorMap params;
  model::Ltx2VaeConfig cfg;
  Runtime rt;  // compute device and dtype (bf16: casts of the master weights, inside the graph)
  std::unique_ptr<model::Ltx2Vae> build() const;
};

// x, y: frames [N, C, H, W] in [−1, 1]; each returns a scalar of x's dtype.
at::Tensor charbonnier_loss(const at::Tensor& x, const at::Tensor& y, double eps);
at::Tensor mean_ssim(const at::Tensor& x, const at::Tensor& y);  // H, W >= 11
at::Tensor haar_loss(const at::Tensor& x, const at::Tensor& y);  // H, W even
// The three bands LH, HL, HH of each 2×2 block (a b / c d): (a + b − c − d)/2, (a − b + c − d)/2,
// (a − b − c + d)/2, as [N, 3·C, H/2, W/2].
at::Tensor haar_high_bands(const at::Tensor& x);

struct VaeLosses {
  at::Tensor total;  // the weighted sum (with grad)
  double charbonnier = 0, ssim = 0, haar = 0, teacher = 0;  // unweighted values (ssim: 1 − mean SSIM)
};

// The losses between a reconstruction and its clip, both [B, C, F, H, W].
VaeLosses reconstruction_losses(const at::Tensor& out, const at::Tensor& clip, const VaeLossConfig& cfg);

// Encodes clip [B, 3, F, H, W] (F = 1 + k·temporal ratio, in [−1, 1]) to the posterior mode and decodes
// it with the causal decoder; the losses of the result against the clip, and with a teacher (the same
// latent space) the distillation loss against its causal decode of the same (detached) latents.
VaeLosses vae_reconstruction(const model::Ltx2Vae& vae, const at::Tensor& clip, const VaeLossConfig& cfg,
                             const model::Ltx2Vae* teacher = nullptr);

// One sample of the VAE mode: the reconstruction on the current weights, backward of total·scale into
// the trainable masters' gradients; returns the values.
VaeLosses vae_step(const VaeWeights& w, const at::Tensor& clip, const VaeLossConfig& cfg, double scale,
                   const model::Ltx2Vae* teacher = nullptr);

}  // namespace sanastream::train
