#include "ops/vae.h"

#include <cmath>

#include "core/compare.h"
#include "core/error.h"
#include "core/torch_compat.h"
#include "ops/ref/ref.h"
#ifdef SANASTREAM_HAS_CUDA
#include "ops/cuda_dispatch.h"
#endif

namespace sanastream::ops {

at::Tensor vae_conv_input(const at::Tensor& x, const at::Tensor& history, const ConvInputSpec& s) {
  SS_CHECK(x.dim() == 5, "vae_conv_input: expected frames [B, C, T, H, W], got {}", shape_str(x.sizes()));
  SS_CHECK(s.pad == 0 || s.pad == 1, "vae_conv_input: expected padding 0 or 1, got {}", s.pad);
  SS_CHECK(s.lead >= 0 && s.trail >= 0 && (!history.defined() || s.lead == 0),
           "vae_conv_input: lead {} and trail {} (lead only without history)", s.lead, s.trail);
  const int64_t H = x.size(3), W = x.size(4);
  if (s.pad > 0 && s.mode == PadMode::kReflect)
    SS_CHECK(H > s.pad && W > s.pad, "VAE: reflect padding needs at least {} pixels along each axis at every level, "
             "got {}x{} (frames or spatial tiles are too small)", s.pad + 1, H, W);
  SS_CHECK(x.size(2) > 0 || (history.defined() && s.trail == 0),
           "vae_conv_input: no frames and no history to pad from");
  if (history.defined())
    SS_CHECK(history.dim() == 5 && history.size(0) == x.size(0) && history.size(1) == x.size(1) &&
                 history.size(3) == H + 2 * s.pad && history.size(4) == W + 2 * s.pad,
             "vae_conv_input: history {} does not match frames {} padded by {}", shape_str(history.sizes()),
             shape_str(x.sizes()), s.pad);
  SS_CHECK(s.fp8_scale == 0 || s.norm_silu, "vae_conv_input: FP8 output is for the resnets' SiLU(norm) inputs");
#ifdef SANASTREAM_HAS_CUDA
  if (x.is_cuda() && !ref::reference_mode() && !ref::records_grad({x, history})) {
    at::Tensor out = cuda::vae_conv_input(x, history, s);
    if (out.defined()) return out;
  }
#endif
  SS_CHECK(s.fp8_scale == 0, "vae_conv_input: FP8 output runs on CUDA only (the simulation quantizes the "
           "model-dtype output instead)");
  return ref::vae_conv_input(x, history, s);
}

double vae_fp8_input_scale(int64_t channels) {
  return std::sqrt(static_cast<double>(channels)) / format_max(Precision::kFP8);
}

// The weight's output channels are rows of [K, C·kt·kh·kw]: per-row quantization is per-channel.
at::Tensor fake_quant_conv_weight(const at::Tensor& w) {
  return fake_quant(w.reshape({w.size(0), -1}), Precision::kFP8, 1)
      .view(w.sizes())
      .contiguous(w.suggest_memory_format());
}

at::Tensor fake_quant_conv_input(const at::Tensor& x, double scale) {
  return (round_to_grid(x.to(at::kFloat) / scale, Precision::kFP8) * scale).to(x.scalar_type());
}

Fp8ConvWeight quantize_conv_weight_fp8(const at::Tensor& w) {
  const QuantRows rows = quantize_fp8_rows(w.reshape({w.size(0), -1}));
  return {rows.q.view(w.sizes()).contiguous(w.suggest_memory_format()), rows.scale.view({-1})};
}

bool conv3d_fp8_available(const at::Device& device, at::ScalarType dtype) {
#if defined(SANASTREAM_HAS_CUDNN_FP8) && SS_HAS_FLOAT8
  return fp8_gemm_available(device, dtype) && cuda::cudnn_fp8_conv_supported();
#else
  (void)device, (void)dtype;
  return false;
#endif
}

at::Tensor conv3d_fp8(const at::Tensor& xq, const at::Tensor& wq, const at::Tensor& out_scale, const at::Tensor& bias,
                      int64_t stride, int64_t pad) {
  SS_CHECK(xq.dim() == 5 && wq.dim() == 5 && xq.size(1) == wq.size(1) && out_scale.numel() == wq.size(0) &&
               bias.numel() == wq.size(0),
           "conv3d_fp8: expected x [B, C, T, H, W], w [K, C, kt, kh, kw], K scales and biases; got {}, {}, {}, {}",
           shape_str(xq.sizes()), shape_str(wq.sizes()), out_scale.numel(), bias.numel());
#if defined(SANASTREAM_HAS_CUDNN_FP8) && SS_HAS_FLOAT8
  return cuda::conv3d_fp8(xq, wq, out_scale, bias, stride, pad);
#else
  (void)stride, (void)pad;
  SS_FAIL("conv3d_fp8: FP8 convolutions need the CUDA build with cuDNN 9 (conv3d_fp8_available)");
#endif
}

}  // namespace sanastream::ops
