#include "ops/norm.h"

#include "ops/ref/ref.h"

namespace sanastream::ops {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  return ref::rms_norm(x, weight, eps);
}

at::Tensor layer_norm_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, double eps,
                               at::ScalarType out_dtype) {
  return ref::layer_norm_modulate(x, shift, scale, eps, out_dtype);
}

}  // namespace sanastream::ops
