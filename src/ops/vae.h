// The VAE convolutions' padded input sequence (model/ltx2_vae_blocks.h): optionally the resnet
// prologue SiLU(pixel-norm(x)), then each frame padded spatially and the sequence padded in time
// with history frames or repeats of its edge frames, in one pass on CUDA (channels-last frames).
#pragma once

#include <ATen/ATen.h>

#include "ops/quant.h"

namespace sanastream::ops {

enum class PadMode { kReflect, kReplicate, kCircular };

struct ConvInputSpec {
  int64_t pad = 0;        // spatial padding on each side (0 or 1): the convolution zero-pads the rest
  PadMode mode = PadMode::kReflect;
  bool norm_silu = false;  // SiLU(x / sqrt(mean_c(x²) + eps)), the norm in fp32, rounded to x's type before SiLU
  double eps = 1e-8;
  int64_t lead = 0;        // without history: this many repeats of the first frame in front
  int64_t trail = 0;       // this many repeats of the last frame behind
  // > 0 (CUDA, with norm_silu): the output in FP8 E4M3, each value as rounded to x's type divided by
  // this scale (saturating, to nearest, ties to even); history then holds E4M3 frames of the same scale.
  double fp8_scale = 0;
};

// x: [B, C, T, H, W]; history (or undefined): [B, C, n, H + 2·pad, W + 2·pad], already padded, in front
// → cat(history | first×lead, f(x), last×trail) along T, f(x) padded: [B, C, T', H + 2·pad, W + 2·pad],
// in x's memory format. T may be 0 when history is given (and then lead and trail are 0).
at::Tensor vae_conv_input(const at::Tensor& x, const at::Tensor& history, const ConvInputSpec& spec);

// FP8 convolutions of the VAE's resnets (issue 15, docs/QUANT.md). Their input SiLU(pixel-norm(x))
// is bounded: a pixel's C channels have mean square 1 after the norm, so no channel exceeds √C, and
// SiLU(v) ≤ v. One static scale per tensor, √C / 448, therefore never saturates E4M3 and needs no
// pass over the activations: the conv-input kernel writes E4M3 directly (ConvInputSpec::fp8_scale).
double vae_fp8_input_scale(int64_t channels);
// A convolution weight [K, C, kt, kh, kw] in E4M3 with one fp32 scale per output channel ([K]), in
// w's memory format (the CUDA path: channels-last).
struct Fp8ConvWeight {
  at::Tensor q, scale;
};
Fp8ConvWeight quantize_conv_weight_fp8(const at::Tensor& w);
// The simulation (any device): w rounded onto E4M3 per output channel and scaled back, w's dtype;
// a convolution input rounded onto E4M3 with the static scale and scaled back, x's dtype and layout.
at::Tensor fake_quant_conv_weight(const at::Tensor& w);
at::Tensor fake_quant_conv_input(const at::Tensor& x, double scale);
// Whether conv3d_fp8 runs on `device` for `dtype` activations: cuDNN 9 on a GPU with FP8 tensor cores, bf16.
bool conv3d_fp8_available(const at::Device& device, at::ScalarType dtype);
// y = conv3d(xq, w.q) · out_scale[k] + bias[k] in bf16, one cuDNN graph (convolution with fp32
// accumulation, the scale and the bias applied to the fp32 sums). xq: E4M3 [B, C, T, H, W] with
// unit channel stride (vae_conv_input's fp8 output, or frames of it); w from quantize_conv_weight_fp8,
// channels-last;
// out_scale: fp32 [K] (the input's scale times the weight's); bias: fp32 [K]. Stride s along
// every axis, zero padding `pad` along H and W.
at::Tensor conv3d_fp8(const at::Tensor& xq, const at::Tensor& wq, const at::Tensor& out_scale, const at::Tensor& bias,
                      int64_t stride, int64_t pad);

}  // namespace sanastream::ops
