#include "train/vae_objectives.h"

#include <cmath>

#include <ATen/core/grad_mode.h>  // at::NoGradGuard (not in ATen.h of PyTorch 2.x)

#include "core/compare.h"
#include "core/error.h"

namespace sanastream::train {

namespace {

constexpr int64_t kSsimWindow = 11;
constexpr double kSsimSigma = 1.5, kSsimC1 = 0.01 * 0.01, kSsimC2 = 0.03 * 0.03;

// [N, C, F, H, W] → [N·F, C, H, W] (the losses are per frame).
at::Tensor frames_of(const at::Tensor& clip) {
  return clip.permute({0, 2, 1, 3, 4}).reshape({-1, clip.size(1), clip.size(3), clip.size(4)});
}

}  // namespace

std::unique_ptr<model::Ltx2Vae> VaeWeights::build() const { return std::make_unique<model::Ltx2Vae>(params, cfg, rt); }

at::Tensor charbonnier_loss(const at::Tensor& x, const at::Tensor& y, double eps) {
  return at::sqrt((x - y).square() + eps * eps).mean();
}

at::Tensor mean_ssim(const at::Tensor& x, const at::Tensor& y) {
  SS_CHECK(x.dim() == 4 && x.sizes() == y.sizes() && x.size(2) >= kSsimWindow && x.size(3) >= kSsimWindow,
           "SSIM: expected two frames [N, C, H, W] of the same shape, H and W >= {}, got {} and {}", kSsimWindow,
           shape_str(x.sizes()), shape_str(y.sizes()));
  const int64_t C = x.size(1);
  const at::Tensor r = at::arange(kSsimWindow, x.options()) - (kSsimWindow - 1) / 2;
  at::Tensor g = at::exp(-r.square() / (2 * kSsimSigma * kSsimSigma));
  g = g / g.sum();
  const at::Tensor window = at::outer(g, g).expand({C, 1, kSsimWindow, kSsimWindow}).contiguous();
  const std::vector<int64_t> ones{1, 1}, zeros{0, 0};
  auto blur = [&](const at::Tensor& t) {  // per channel, no padding
    return at::conv2d(t, window, at::Tensor(), at::IntArrayRef(ones), at::IntArrayRef(zeros), at::IntArrayRef(ones), C);
  };
  const at::Tensor a = (x + 1) * 0.5, b = (y + 1) * 0.5;
  const at::Tensor mu_a = blur(a), mu_b = blur(b);
  const at::Tensor var_a = blur(a * a) - mu_a.square(), var_b = blur(b * b) - mu_b.square();
  const at::Tensor cov = blur(a * b) - mu_a * mu_b;
  const at::Tensor map = (2 * mu_a * mu_b + kSsimC1) * (2 * cov + kSsimC2) /
                         ((mu_a.square() + mu_b.square() + kSsimC1) * (var_a + var_b + kSsimC2));
  return map.mean();
}

at::Tensor haar_high_bands(const at::Tensor& x) {
  SS_CHECK(x.dim() == 4 && x.size(2) % 2 == 0 && x.size(3) % 2 == 0,
           "Haar: expected frames [N, C, H, W] with even H and W, got {}", shape_str(x.sizes()));
  const at::Tensor top = x.slice(2, 0, x.size(2), 2), bottom = x.slice(2, 1, x.size(2), 2);
  const at::Tensor a = top.slice(3, 0, x.size(3), 2), b = top.slice(3, 1, x.size(3), 2);
  const at::Tensor c = bottom.slice(3, 0, x.size(3), 2), d = bottom.slice(3, 1, x.size(3), 2);
  return at::cat({(a + b - c - d) * 0.5, (a - b + c - d) * 0.5, (a - b - c + d) * 0.5}, 1);
}

at::Tensor haar_loss(const at::Tensor& x, const at::Tensor& y) {
  return (haar_high_bands(x) - haar_high_bands(y)).abs().mean();
}

VaeLosses reconstruction_losses(const at::Tensor& out, const at::Tensor& clip, const VaeLossConfig& cfg) {
  SS_CHECK(out.sizes() == clip.sizes(), "VAE reconstruction: expected the clip's shape {}, got {}",
           shape_str(clip.sizes()), shape_str(out.sizes()));
  const at::Tensor x = frames_of(out), y = frames_of(clip);
  const at::Tensor charb = charbonnier_loss(x, y, cfg.charbonnier_eps);
  const at::Tensor ssim = 1 - mean_ssim(x, y);
  const at::Tensor haar = haar_loss(x, y);
  VaeLosses l;
  l.total = cfg.charbonnier * charb + cfg.ssim * ssim + cfg.haar * haar;
  l.charbonnier = charb.item<double>();
  l.ssim = ssim.item<double>();
  l.haar = haar.item<double>();
  return l;
}

VaeLosses vae_reconstruction(const model::Ltx2Vae& vae, const at::Tensor& clip, const VaeLossConfig& cfg,
                             const model::Ltx2Vae* teacher) {
  const at::Tensor z = vae.encode(clip);
  const at::ScalarType dtype = vae.runtime().dtype == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor out = vae.decode(z, model::VaeDecoderKind::kCausal).to(dtype);
  VaeLosses l = reconstruction_losses(out, clip.to(out.device(), dtype), cfg);
  if (teacher) {
    at::Tensor target;
    {
      at::NoGradGuard no_grad;
      target = teacher->decode(z.detach(), model::VaeDecoderKind::kCausal).to(dtype);
    }
    const at::Tensor distill = (out - target).abs().mean();
    l.total = l.total + cfg.teacher * distill;
    l.teacher = distill.item<double>();
  }
  return l;
}

VaeLosses vae_step(const VaeWeights& w, const at::Tensor& clip, const VaeLossConfig& cfg, double scale,
                   const model::Ltx2Vae* teacher) {
  const std::unique_ptr<model::Ltx2Vae> vae = w.build();
  VaeLosses l = vae_reconstruction(*vae, clip, cfg, teacher);
  (l.total * scale).backward();
  l.total = l.total.detach();
  return l;
}

}  // namespace sanastream::train
