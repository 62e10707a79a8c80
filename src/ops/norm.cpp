#include "ops/norm.h"

#include "core/compare.h"
#include "core/error.h"
#include "ops/ref/ref.h"
#ifdef SANASTREAM_HAS_CUDA
#include "ops/cuda_dispatch.h"
#endif

namespace sanastream::ops {

#ifdef SANASTREAM_HAS_CUDA
namespace {
// The kernels have no backward: under autograd the references run.
bool use_cuda(std::initializer_list<at::Tensor> ts) {
  return ts.begin()->is_cuda() && !ref::reference_mode() && !ref::records_grad(ts);
}
}  // namespace
#endif

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps, bool relu, double post_scale) {
#ifdef SANASTREAM_HAS_CUDA
  if (use_cuda({x, weight})) return cuda::rms_norm(x, weight, eps, relu, post_scale);
#endif
  return ref::rms_norm(x, weight, eps, relu, post_scale);
}

void rms_norm_rope_into(const at::Tensor& x, const at::Tensor& weight, double eps, const RopeTable& table,
                        const at::Tensor& out) {
  SS_CHECK(x.dim() == 3 && out.dim() == 4 && out.size(0) == x.size(0) && out.size(1) == x.size(1) &&
               out.size(2) * out.size(3) == x.size(2) && out.scalar_type() == x.scalar_type(),
           "rms_norm_rope_into: expected x [B, N, C] and out [B, N, H, D] with H·D = C of x's dtype, got {} and {}",
           shape_str(x.sizes()), shape_str(out.sizes()));
#ifdef SANASTREAM_HAS_CUDA
  if (use_cuda({x, weight}) && cuda::rms_norm_rope_into(x, weight, eps, table.cos, table.sin, out)) return;
#endif
  out.copy_(apply_rope(rms_norm(x, weight, eps).view(out.sizes()), table));
}

at::Tensor layer_norm_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, double eps,
                               at::ScalarType out_dtype, QuantRows* fp8) {
#ifdef SANASTREAM_HAS_CUDA
  if (use_cuda({x, shift, scale})) return cuda::layer_norm_modulate(x, shift, scale, eps, out_dtype, fp8);
#else
  (void)fp8;
#endif
  return ref::layer_norm_modulate(x, shift, scale, eps, out_dtype);
}

at::Tensor add_layer_norm_modulate_(at::Tensor& x, const at::Tensor& branch, const at::Tensor& shift,
                                    const at::Tensor& scale, double eps, at::ScalarType out_dtype,
                                    const at::Tensor& gate, QuantRows* fp8) {
#ifdef SANASTREAM_HAS_CUDA
  if (use_cuda({x, branch, shift, scale, gate}))
    return cuda::add_layer_norm_modulate_(x, branch, shift, scale, eps, out_dtype, gate, fp8);
#else
  (void)fp8;
#endif
  ref::gate_residual_(x, gate, branch);
  return ref::layer_norm_modulate(x, shift, scale, eps, out_dtype);
}

at::Tensor gate_residual_(at::Tensor& x, const at::Tensor& gate, const at::Tensor& branch, at::ScalarType copy_dtype,
                          QuantRows* fp8) {
#ifdef SANASTREAM_HAS_CUDA
  if (use_cuda({x, gate, branch})) return cuda::gate_residual_(x, gate, branch, copy_dtype, fp8);
#else
  (void)fp8;
#endif
  ref::gate_residual_(x, gate, branch);
  return copy_dtype == at::ScalarType::Undefined ? at::Tensor() : x.to(copy_dtype, /*non_blocking=*/false, /*copy=*/true);
}

}  // namespace sanastream::ops
