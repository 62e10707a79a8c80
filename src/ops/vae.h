// The VAE convolutions' padded input sequence (model/ltx2_vae_blocks.h): optionally the resnet
// prologue SiLU(pixel-norm(x)), then each frame padded spatially and the sequence padded in time
// with history frames or repeats of its edge frames, in one pass on CUDA (channels-last frames).
#pragma once

#include <ATen/ATen.h>

namespace sanastream::ops {

enum class PadMode { kReflect, kReplicate, kCircular };

struct ConvInputSpec {
  int64_t pad = 0;        // spatial padding on each side (0 or 1): the convolution zero-pads the rest
  PadMode mode = PadMode::kReflect;
  bool norm_silu = false;  // SiLU(x / sqrt(mean_c(x²) + eps)), the norm in fp32, rounded to x's type before SiLU
  double eps = 1e-8;
  int64_t lead = 0;        // without history: this many repeats of the first frame in front
  int64_t trail = 0;       // this many repeats of the last frame behind
};

// x: [B, C, T, H, W]; history (or undefined): [B, C, n, H + 2·pad, W + 2·pad], already padded, in front
// → cat(history | first×lead, f(x), last×trail) along T, f(x) padded: [B, C, T', H + 2·pad, W + 2·pad],
// in x's memory format. T may be 0 when history is given (and then lead and trail are 0).
at::Tensor vae_conv_input(const at::Tensor& x, const at::Tensor& history, const ConvInputSpec& spec);

}  // namespace sanastream::ops
