#include "ops/vae.h"

#include "core/compare.h"
#include "core/error.h"
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
#ifdef SANASTREAM_HAS_CUDA
  if (x.is_cuda() && !ref::reference_mode() && !ref::records_grad({x, history})) {
    at::Tensor out = cuda::vae_conv_input(x, history, s);
    if (out.defined()) return out;
  }
#endif
  return ref::vae_conv_input(x, history, s);
}

}  // namespace sanastream::ops
