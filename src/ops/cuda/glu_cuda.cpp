#include "core/error.h"
#include "kernels/ffn.h"
#include "kernels/glu.h"
#include "ops/cuda/launch.h"
#include "ops/cuda_dispatch.h"

namespace sanastream::ops::cuda {

at::Tensor silu_glu(const at::Tensor& x_in) {
  at::Tensor x = x_in.contiguous();
  const int64_t rows = x.size(0);
  const int64_t F = x.size(1) / 2;
  const int64_t inner = x.numel() / (rows * x.size(1));  // trailing dims (spatial)
  auto out_sizes = x.sizes().vec();
  out_sizes[1] = F;
  at::Tensor out = at::empty(out_sizes, x.options());
  kernels::SiluGluParams p;
  p.x = x.data_ptr();
  p.out = out.data_ptr();
  p.rows = rows;
  p.cols = F * inner;
  p.x_row_stride = 2 * F * inner;
  p.out_row_stride = F * inner;
  p.type = elem_type(x);
  check_cuda(kernels::silu_glu(p, stream_of(x)), "silu_glu");
  return out;
}

at::Tensor silu_gate(const at::Tensor& x_in, const at::Tensor& gate_in) {
  const int64_t C = x_in.size(-1), rows = x_in.numel() / std::max<int64_t>(C, 1);
  auto rows_of = [](const at::Tensor& t) { return evenly_strided_rows(t) ? t : t.contiguous(); };
  const at::Tensor x = rows_of(x_in), gate = rows_of(gate_in);
  at::Tensor out = at::empty(x.sizes(), x.options());
  kernels::SiluGluParams p;
  p.x = x.data_ptr();
  p.gate = gate.data_ptr();
  p.out = out.data_ptr();
  p.rows = rows;
  p.cols = C;
  p.x_row_stride = x.dim() > 1 ? x.stride(-2) : C;
  p.gate_row_stride = gate.dim() > 1 ? gate.stride(-2) : C;
  p.out_row_stride = C;
  p.type = elem_type(x);
  check_cuda(kernels::silu_glu(p, stream_of(x)), "silu_gate");
  return out;
}

at::Tensor depthwise_glu(const at::Tensor& x_in, const at::Tensor& weight_taps, const at::Tensor& bias_in) {
  const at::Tensor x = x_in.contiguous();  // the kernel applies the SiLU, once per element
  at::Tensor w = weight_taps.contiguous(), bias = bias_in.to(w.scalar_type()).contiguous();
  const int64_t F = x.size(3) / 2;
  at::Tensor out = at::empty({x.size(0), x.size(1), x.size(2), F}, x.options());
  kernels::DepthwiseGluParams p;
  p.x = x.data_ptr();
  p.weight = w.data_ptr();
  p.bias = bias.data_ptr();
  p.out = out.data_ptr();
  p.frames = x.size(0);
  p.height = x.size(1);
  p.width = x.size(2);
  p.channels = F;
  p.type = elem_type(x);
  p.weight_type = elem_type(w);
  check_cuda(kernels::depthwise_glu(p, stream_of(x)), "depthwise_glu");
  return out;
}

}  // namespace sanastream::ops::cuda
