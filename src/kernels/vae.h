// The VAE's convolution inputs in one pass (channels-last frames): the resnet prologue
// SiLU(x / sqrt(mean_c(x²) + eps)) (or a plain copy), the spatial padding of the 3×3×3 convolutions
// and the temporal edge frames, written straight into the padded sequence the convolution reads.
#pragma once

#include "kernels/common.h"

namespace sanastream::kernels {

enum class PadMode : uint8_t { kReflect, kReplicate, kCircular };

// Frames of x [B, T, H, W, C] (channel stride 1, other strides free) go to out [B, To, H + 2·pad,
// W + 2·pad, C] (channel stride 1): output frame t ∈ [out_begin, To) is x's frame
// clamp(t − front, 0, T − 1), so frames before `front` repeat x's first and frames after
// front + T − 1 its last; frames before out_begin are left alone (history the caller wrote). Pixels
// within `pad` of the edge follow `mode`.
struct VaeConvInputParams {
  const void* x = nullptr;
  void* out = nullptr;
  int64_t x_strides[4] = {};    // elements between neighbours along B, T, H, W
  int64_t out_strides[4] = {};  // the same for out
  int64_t batch = 0, frames = 0, height = 0, width = 0, channels = 0;
  int64_t out_frames = 0, out_begin = 0, front = 0;
  int pad = 0;  // 0 or 1
  PadMode mode = PadMode::kReflect;
  // SiLU of the per-pixel RMS norm, the normalised value rounded to the element type first (as the
  // reference's two ops; x times the reciprocal RMS, SiLU through __expf and __fdividef: a few fp32
  // ulps from the reference's division and expf); else a copy.
  bool norm_silu = false;
  float eps = 1e-8f;
  ElemType type = ElemType::kBF16;
  // > 0: out holds FP8 E4M3 bytes, each value (as rounded to `type`) divided by this scale, saturating,
  // to nearest, ties to even (quantize_rows's conversion with one static scale).
  float fp8_scale = 0.f;
};
// cudaErrorInvalidValue (nothing launched) when a row is longer than the kernel holds (2,048
// channels in 4-element pieces, 512 otherwise).
cudaError_t vae_conv_input(const VaeConvInputParams& p, cudaStream_t stream);

}  // namespace sanastream::kernels
