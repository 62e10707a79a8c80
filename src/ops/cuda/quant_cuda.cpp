#include "core/compare.h"
#include "kernels/quant.h"
#include "ops/cuda/launch.h"
#include "ops/cuda_dispatch.h"

namespace sanastream::ops::cuda {

#if SS_HAS_FLOAT8
std::pair<at::Tensor, at::Tensor> quantize_fp8_rows(const at::Tensor& x_in) {
  SS_CHECK(x_in.dim() == 2 && x_in.size(1) <= 16384, "quantize_fp8_rows: expected [rows, ≤ 16384 cols], got {}",
           shape_str(x_in.sizes()));
  const at::Tensor x = x_in.stride(1) == 1 ? x_in : x_in.contiguous();
  at::Tensor q = at::empty(x.sizes(), x.options().dtype(at::kFloat8_e4m3fn));
  at::Tensor scale = at::empty({x.size(0), 1}, x.options().dtype(at::kFloat));
  kernels::QuantizeRowsParams p;
  p.x = x.data_ptr();
  p.q = q.data_ptr();
  p.scales = scale.data_ptr<float>();
  p.rows = x.size(0);
  p.cols = x.size(1);
  p.x_stride = x.stride(0);
  p.x_type = elem_type(x);
  check_cuda(kernels::quantize_rows_fp8(p, stream_of(x)),
             "quantize_fp8_rows");
  return {q, scale};
}
#endif

}  // namespace sanastream::ops::cuda
