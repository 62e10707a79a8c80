#include "ops/norm.h"

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

at::Tensor layer_norm_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, double eps,
                               at::ScalarType out_dtype) {
#ifdef SANASTREAM_HAS_CUDA
  if (use_cuda({x, shift, scale})) return cuda::layer_norm_modulate(x, shift, scale, eps, out_dtype);
#endif
  return ref::layer_norm_modulate(x, shift, scale, eps, out_dtype);
}

at::Tensor add_layer_norm_modulate_(at::Tensor& x, const at::Tensor& branch, const at::Tensor& shift,
                                    const at::Tensor& scale, double eps, at::ScalarType out_dtype) {
#ifdef SANASTREAM_HAS_CUDA
  if (use_cuda({x, branch, shift, scale})) return cuda::add_layer_norm_modulate_(x, branch, shift, scale, eps, out_dtype);
#endif
  ref::gate_residual_(x, {}, branch);
  return ref::layer_norm_modulate(x, shift, scale, eps, out_dtype);
}

at::Tensor gate_residual_(at::Tensor& x, const at::Tensor& gate, const at::Tensor& branch, at::ScalarType copy_dtype) {
#ifdef SANASTREAM_HAS_CUDA
  if (use_cuda({x, gate, branch})) return cuda::gate_residual_(x, gate, branch, copy_dtype);
#endif
  ref::gate_residual_(x, gate, branch);
  return copy_dtype == at::ScalarType::Undefined ? at::Tensor() : x.to(copy_dtype, /*non_blocking=*/false, /*copy=*/true);
}

}  // namespace sanastream::ops
