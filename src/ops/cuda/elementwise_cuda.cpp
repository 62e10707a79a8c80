#include "core/compare.h"
#include "kernels/elementwise.h"
#include "kernels/norm.h"
#include "ops/cuda/launch.h"
#include "ops/cuda_dispatch.h"

namespace sanastream::ops::cuda {

namespace {
kernels::RmsNormParams rms_params(const at::Tensor& x, const at::Tensor& weight, double eps) {
  kernels::RmsNormParams p;
  p.x = x.data_ptr();
  p.weight = weight.data_ptr();
  p.cols = x.size(-1);
  p.rows = x.numel() / p.cols;
  p.x_stride = x.dim() >= 2 ? x.stride(-2) : p.cols;
  p.eps = static_cast<float>(eps);
  p.x_type = elem_type(x);
  p.weight_type = elem_type(weight);
  return p;
}
}  // namespace

at::Tensor rms_norm(const at::Tensor& x_in, const at::Tensor& weight_in, double eps, bool relu, double post_scale) {
  at::Tensor x = evenly_strided_rows(x_in) ? x_in : x_in.contiguous(), weight = weight_in.contiguous();
  at::Tensor out = at::empty(x.sizes(), x.options());
  kernels::RmsNormParams p = rms_params(x, weight, eps);
  p.out = out.data_ptr();
  p.tokens = p.rows;
  p.head_dim = p.cols;
  p.out_stride = p.cols;
  p.relu = relu;
  p.post_scale = static_cast<float>(post_scale);
  check_cuda(kernels::rms_norm(p, stream_of(x)), "rms_norm");
  return out;
}

bool rms_norm_rope_into(const at::Tensor& x_in, const at::Tensor& weight_in, double eps, const at::Tensor& cos,
                        const at::Tensor& sin, const at::Tensor& out) {
  if (!evenly_strided_rows(x_in) || x_in.dim() != 3 || cos.scalar_type() != at::kFloat || !cos.is_contiguous() ||
      !sin.is_contiguous() || out.stride(3) != 1)
    return false;
  at::Tensor weight = weight_in.to(x_in.scalar_type()).contiguous();
  kernels::RmsNormParams p = rms_params(x_in, weight, eps);
  p.out = out.data_ptr();
  p.tokens = out.size(1);
  p.head_dim = out.size(3);
  p.out_batch_stride = out.stride(0);
  p.out_stride = out.stride(1);
  p.out_head_stride = out.stride(2);
  p.rope_cos = cos.data_ptr<float>();
  p.rope_sin = sin.data_ptr<float>();
  if (!kernels::rms_norm_vectorized(p)) return false;  // the rotation needs the kernel's 4-element pieces
  check_cuda(kernels::rms_norm(p, stream_of(x_in)), "rms_norm (RoPE)");
  return true;
}

namespace {
// The E4M3 rows [rows, cols] and scales a row kernel writes beside its output (Params: its fp8 and
// fp8_scales fields); a build without float8 types leaves them undefined (the consumer quantizes).
template <typename Params>
void attach_fp8_rows(QuantRows& fp8, int64_t rows, int64_t cols, const at::Tensor& like, Params& p) {
#if SS_HAS_FLOAT8
  fp8.q = at::empty({rows, cols}, like.options().dtype(at::kFloat8_e4m3fn));
  fp8.scale = at::empty({rows, 1}, like.options().dtype(at::kFloat));
  p.fp8 = fp8.q.data_ptr();
  p.fp8_scales = fp8.scale.data_ptr<float>();
#else
  (void)fp8, (void)rows, (void)cols, (void)like, (void)p;
#endif
}

// out = LN(x)·(1 + scale) + shift, after x += gate·branch when branch is defined (x then the
// contiguous fp32 residual, updated in place; gate undefined: x += branch).
at::Tensor launch_layer_norm_modulate(const at::Tensor& x, const at::Tensor& branch_in, const at::Tensor& gate_in,
                                      const at::Tensor& shift_in, const at::Tensor& scale_in, double eps,
                                      at::ScalarType out_dtype, QuantRows* fp8) {
  const int64_t B = x.size(0), N = x.size(1), C = x.size(2);
  SS_CHECK(C <= 16384, "layer_norm_modulate: at most 16384 channels on CUDA, got {}", C);
  at::Tensor shift = shift_in.to(at::kFloat).reshape({B, C}).contiguous();
  at::Tensor scale = scale_in.to(at::kFloat).reshape({B, C}).contiguous();
  at::Tensor branch = branch_in.defined() ? branch_in.contiguous() : at::Tensor();
  at::Tensor gate = gate_in.defined() ? gate_in.to(at::kFloat).reshape({B, C}).contiguous() : at::Tensor();
  at::Tensor out = at::empty({B, N, C}, x.options().dtype(out_dtype));
  kernels::LayerNormModulateParams p;
  p.x = x.data_ptr<float>();
  p.add = branch.defined() ? branch.data_ptr() : nullptr;
  p.add_type = branch.defined() ? elem_type(branch) : kernels::ElemType::kF32;
  p.gate = gate.defined() ? gate.data_ptr<float>() : nullptr;
  p.shift = shift.data_ptr<float>();
  p.scale = scale.data_ptr<float>();
  p.out = out.data_ptr();
  p.batch = B;
  p.tokens = N;
  p.channels = C;
  p.mod_stride = C;
  p.eps = static_cast<float>(eps);
  p.out_type = elem_type(out);
  if (fp8) attach_fp8_rows(*fp8, B * N, C, x, p);
  check_cuda(kernels::layer_norm_modulate(p, stream_of(x)), "layer_norm_modulate");
  return out;
}

void check_residual(const at::Tensor& x, const char* op) {
  SS_CHECK(x.scalar_type() == at::kFloat && x.is_contiguous(), "{}: the residual must be contiguous fp32", op);
}
}  // namespace

at::Tensor layer_norm_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, double eps,
                               at::ScalarType out_dtype, QuantRows* fp8) {
  return launch_layer_norm_modulate(x.to(at::kFloat).contiguous(), {}, {}, shift, scale, eps, out_dtype, fp8);
}

at::Tensor add_layer_norm_modulate_(at::Tensor& x, const at::Tensor& branch, const at::Tensor& shift,
                                    const at::Tensor& scale, double eps, at::ScalarType out_dtype,
                                    const at::Tensor& gate, QuantRows* fp8) {
  check_residual(x, "add_layer_norm_modulate_");
  return launch_layer_norm_modulate(x, branch, gate, shift, scale, eps, out_dtype, fp8);
}

at::Tensor apply_rope(const at::Tensor& x_in, const at::Tensor& cos_in, const at::Tensor& sin_in) {
  at::Tensor x = x_in.contiguous();
  at::Tensor cos = cos_in.contiguous(), sin = sin_in.contiguous();
  SS_CHECK(cos.scalar_type() == at::kFloat || cos.scalar_type() == at::kDouble,
           "RoPE tables: expected float32 or float64, got {}", c10::toString(cos.scalar_type()));
  at::Tensor out = at::empty_like(x);
  kernels::RopeParams p;
  p.x = x.data_ptr();
  p.out = out.data_ptr();
  p.cos = cos.data_ptr();
  p.sin = sin.data_ptr();
  p.head_dim = x.size(-1);
  p.heads = x.size(-2);
  p.tokens = x.size(-3);
  p.batch = x.numel() / (p.head_dim * p.heads * p.tokens);
  p.table_per_token = cos.size(0) != 1;
  p.table_f64 = cos.scalar_type() == at::kDouble;
  p.type = elem_type(x);
  check_cuda(kernels::rope(p, stream_of(x)), "rope");
  return out;
}

at::Tensor gate_residual_(at::Tensor& x, const at::Tensor& gate_in, const at::Tensor& branch_in,
                          at::ScalarType copy_dtype, QuantRows* fp8) {
  check_residual(x, "gate_residual_");
  at::Tensor branch = branch_in.contiguous();
  const int64_t B = x.size(0), N = x.size(1), C = x.size(2);
  at::Tensor gate = gate_in.defined() ? gate_in.to(at::kFloat).reshape({B, C}).contiguous() : at::Tensor();
  at::Tensor copy =
      copy_dtype == at::ScalarType::Undefined ? at::Tensor() : at::empty_like(x, x.options().dtype(copy_dtype));
  kernels::GateResidualParams p;
  p.x = x.data_ptr<float>();
  p.gate = gate.defined() ? gate.data_ptr<float>() : nullptr;
  p.gate_stride = C;
  p.branch = branch.data_ptr();
  p.copy = copy.defined() ? copy.data_ptr() : nullptr;
  p.batch = B;
  p.tokens = N;
  p.channels = C;
  p.branch_type = elem_type(branch);
  p.copy_type = copy.defined() ? elem_type(copy) : kernels::ElemType::kF32;
  if (fp8 && copy.defined() && C <= 16384) attach_fp8_rows(*fp8, B * N, C, x, p);
  check_cuda(kernels::gate_residual(p, stream_of(x)), "gate_residual");
  return copy;
}

}  // namespace sanastream::ops::cuda
