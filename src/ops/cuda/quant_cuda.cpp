#include "core/compare.h"
#include "kernels/quant.h"
#include "ops/cuda/launch.h"
#include "ops/cuda_dispatch.h"

namespace sanastream::ops::cuda {

#if SS_HAS_FLOAT8
std::pair<at::Tensor, at::Tensor> quantize_rows(const at::Tensor& x_in, Precision format) {
  SS_CHECK(x_in.dim() == 2 && x_in.size(1) <= 16384, "quantize rows: expected [rows, ≤ 16384 cols], got {}",
           shape_str(x_in.sizes()));
  SS_CHECK(format == Precision::kFP8 || format == Precision::kINT8, "quantize rows: expected fp8 or int8");
  const bool fp8 = format == Precision::kFP8;
  const at::Tensor x = x_in.stride(1) == 1 ? x_in : x_in.contiguous();
  at::Tensor q = at::empty(x.sizes(), x.options().dtype(fp8 ? at::kFloat8_e4m3fn : at::kChar));
  at::Tensor scale = at::empty({x.size(0), 1}, x.options().dtype(at::kFloat));
  kernels::QuantizeRowsParams p;
  p.x = x.data_ptr();
  p.q = q.data_ptr();
  p.scales = scale.data_ptr<float>();
  p.rows = x.size(0);
  p.cols = x.size(1);
  p.x_stride = x.stride(0);
  p.x_type = elem_type(x);
  p.format = fp8 ? kernels::QuantFormat::kE4M3 : kernels::QuantFormat::kInt8;
  check_cuda(kernels::quantize_rows(p, stream_of(x)), "quantize rows");
  return {q, scale};
}

void int8_gemm(const QuantRows& x, const QuantRows& w, const at::Tensor& bias, const at::Tensor& c, at::Tensor& d) {
  const int64_t M = x.q.size(0), N = w.q.size(0);
  SS_CHECK(x.q.scalar_type() == at::kChar && w.q.scalar_type() == at::kChar && x.q.stride(1) == 1 &&
               w.q.is_contiguous() && x.scale.is_contiguous() && w.scale.is_contiguous(),
           "INT8 GEMM: expected int8 rows with unit column stride and contiguous scales");
  SS_CHECK(d.scalar_type() == at::kBFloat16 && d.dim() == 2 && d.size(0) == M && d.size(1) == N && d.stride(1) == 1,
           "INT8 GEMM: expected a bf16 output [{}, {}] with unit column stride", M, N);
  SS_CHECK(!c.defined() || (c.scalar_type() == at::kBFloat16 && c.sizes() == d.sizes() && c.stride(1) == 1),
           "INT8 GEMM: expected a bf16 residual [{}, {}] with unit column stride", M, N);
  SS_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == N && bias.is_contiguous()),
           "INT8 GEMM: expected a contiguous bias [{}]", N);
  // at::_int_mm takes more than 16 rows: fewer are padded with zero rows, whose products are dropped.
  constexpr int64_t kMinRows = 17;
  const at::Tensor a = M >= kMinRows ? x.q.contiguous()
                                     : at::cat({x.q, at::zeros({kMinRows - M, x.q.size(1)}, x.q.options())});
  const at::Tensor acc = at::_int_mm(a, w.q.t());
  kernels::DequantizeParams p;
  p.acc = acc.data_ptr<int32_t>();
  p.row_scales = x.scale.data_ptr<float>();
  p.col_scales = w.scale.data_ptr<float>();
  if (bias.defined()) {
    p.bias = bias.data_ptr();
    p.bias_type = elem_type(bias);
  }
  if (c.defined()) {
    p.c = c.data_ptr();
    p.c_stride = c.stride(0);
  }
  p.d = d.data_ptr();
  p.d_stride = d.stride(0);
  p.rows = M;
  p.cols = N;
  check_cuda(kernels::dequantize_int32(p, stream_of(d)), "INT8 GEMM: dequantize");
}
#endif

}  // namespace sanastream::ops::cuda
