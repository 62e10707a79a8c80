#include "kernels/vae.h"
#include "ops/cuda/launch.h"
#include "ops/cuda_dispatch.h"

namespace sanastream::ops::cuda {

namespace {
kernels::PadMode pad_mode(PadMode m) {
  switch (m) {
    case PadMode::kReflect: return kernels::PadMode::kReflect;
    case PadMode::kReplicate: return kernels::PadMode::kReplicate;
    case PadMode::kCircular: return kernels::PadMode::kCircular;
  }
  return kernels::PadMode::kReflect;
}
}  // namespace

at::Tensor vae_conv_input(const at::Tensor& x, const at::Tensor& history, const ConvInputSpec& s) {
  const int64_t B = x.size(0), C = x.size(1), T = x.size(2), H = x.size(3), W = x.size(4);
  const int64_t hist = history.defined() ? history.size(2) : 0;
#if SS_HAS_FLOAT8
  const at::ScalarType out_type = s.fp8_scale > 0 ? at::kFloat8_e4m3fn : x.scalar_type();
#else
  SS_CHECK(s.fp8_scale == 0, "vae_conv_input: FP8 output needs PyTorch 2.1 or newer");
  const at::ScalarType out_type = x.scalar_type();
#endif
  const bool fp8 = s.fp8_scale > 0;
  if ((x.stride(1) != 1 && C > 1) || (hist > 0 && history.stride(1) != 1 && C > 1) ||
      (hist > 0 && history.scalar_type() != out_type)) {
    SS_CHECK(!fp8, "vae_conv_input: FP8 output needs channels-last frames and E4M3 history, got {} history",
             hist > 0 ? c10::toString(history.scalar_type()) : "no");
    return {};
  }
  const int64_t front = hist + s.lead, frames = front + T + s.trail;
  at::Tensor out = at::empty({B, C, frames, H + 2 * s.pad, W + 2 * s.pad}, x.options().dtype(out_type),
                             at::MemoryFormat::ChannelsLast3d);
  kernels::VaeConvInputParams p;
  p.x = x.data_ptr();
  p.out = out.data_ptr();
  for (int i = 0; i < 4; ++i) {
    p.x_strides[i] = x.stride(i == 0 ? 0 : i + 1);
    p.out_strides[i] = out.stride(i == 0 ? 0 : i + 1);
  }
  p.batch = B;
  p.frames = T;
  p.height = H;
  p.width = W;
  p.channels = C;
  p.out_frames = frames;
  p.out_begin = hist;
  p.front = front;
  p.pad = static_cast<int>(s.pad);
  p.mode = pad_mode(s.mode);
  p.norm_silu = s.norm_silu;
  p.eps = static_cast<float>(s.eps);
  p.type = elem_type(x);
  p.fp8_scale = static_cast<float>(s.fp8_scale);
  const cudaError_t err = kernels::vae_conv_input(p, stream_of(x));
  SS_CHECK(!(fp8 && err == cudaErrorInvalidValue), "vae_conv_input: {} channels are more than the FP8 path holds", C);
  if (err == cudaErrorInvalidValue) return {};  // refused before any launch
  check_cuda(err, "vae_conv_input");
  if (hist > 0) out.narrow(2, 0, hist).copy_(history);
  return out;
}

}  // namespace sanastream::ops::cuda
