#include "ops/quant.h"

#include <optional>
#include <tuple>

#include "core/compare.h"
#include "core/error.h"
#include "core/torch_compat.h"
#ifdef SANASTREAM_HAS_CUDA
#include <ATen/cuda/CUDAContext.h>

#include "ops/cuda_dispatch.h"
#endif

namespace sanastream::ops {

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::kBF16:
      return "bf16";
    case Precision::kFP8:
      return "fp8";
    case Precision::kINT8:
      return "int8";
  }
  return "?";
}

Precision parse_precision(const std::string& name) {
  for (Precision p : {Precision::kBF16, Precision::kFP8, Precision::kINT8})
    if (name == precision_name(p)) return p;
  SS_FAIL("precision: expected bf16, fp8 or int8, got '{}'", name);
}

double format_max(Precision p) {
  switch (p) {
    case Precision::kFP8:
      return 448.0;
    case Precision::kINT8:
      return 127.0;
    case Precision::kBF16:
      break;
  }
  SS_FAIL("precision: bf16 has no quantization grid");
}

at::Tensor round_to_grid(const at::Tensor& y, Precision p) {
  SS_CHECK(y.scalar_type() == at::kFloat, "round_to_grid: expected fp32, got {}", c10::toString(y.scalar_type()));
  if (p == Precision::kBF16) return y;
  const double top = format_max(p);
  if (p == Precision::kINT8) return at::clamp(at::round(y), -top, top);  // at::round: ties to even
  // E4M3: a = m·2^e with m ∈ [0.5, 1), so a's binade is [2^(e−1), 2^e) and its step 2^(e−1−3);
  // below the smallest normal (2⁻⁶) the step stays 2⁻⁹. Dividing by a power of two, rounding and
  // multiplying back are exact in fp32.
  const at::Tensor a = at::abs(y);
  at::Tensor exponent;
  std::tie(std::ignore, exponent) = at::frexp(a);
  const at::Tensor step = at::pow(2.0, at::clamp_min(exponent.to(at::kFloat) - 4, -9));
  const at::Tensor q = at::clamp_max(at::round(a / step) * step, top);
  return at::copysign(q, y);
}

namespace {
// One scale per slice of fp32 xf along dim (kept): absmax / format_max, 1 for an all-zero slice.
at::Tensor slice_scales(const at::Tensor& xf, Precision p, int64_t dim) {
  const at::Tensor absmax = at::amax(at::abs(xf), {dim}, /*keepdim=*/true);
  return at::where(absmax > 0, absmax / format_max(p), at::ones_like(absmax));
}
}  // namespace

at::Tensor fake_quant(const at::Tensor& x, Precision p, int64_t dim) {
  if (p == Precision::kBF16) return x;
  const at::Tensor xf = x.to(at::kFloat), scale = slice_scales(xf, p, dim);
  return (round_to_grid(xf / scale, p) * scale).to(x.scalar_type());
}

namespace {
// A capable GPU: compute capability `major`.`minor` or newer.
bool gemm_device(const at::Device& device, at::ScalarType dtype, int major, int minor) {
#if SS_HAS_FLOAT8 && defined(SANASTREAM_HAS_CUDA)
  if (!device.is_cuda() || dtype != at::kBFloat16) return false;
  const cudaDeviceProp* prop = at::cuda::getDeviceProperties(device.index() < 0 ? 0 : device.index());
  return prop->major > major || (prop->major == major && prop->minor >= minor);
#else
  (void)device, (void)dtype, (void)major, (void)minor;
  return false;
#endif
}

QuantRows quantize_rows(const at::Tensor& x, Precision p) {
#if SS_HAS_FLOAT8
  SS_CHECK(x.dim() == 2, "quantize rows: expected [rows, cols], got {} dims", x.dim());
#ifdef SANASTREAM_HAS_CUDA
  if (x.is_cuda() && x.size(1) <= 16384) {  // the kernel holds a row of up to 16,384 in registers
    auto [q, scale] = cuda::quantize_rows(x, p);
    return {q, scale};
  }
#endif
  const at::Tensor xf = x.to(at::kFloat), scale = slice_scales(xf, p, 1);
  return {round_to_grid(xf / scale, p).to(p == Precision::kFP8 ? at::kFloat8_e4m3fn : at::kChar), scale};
#else
  (void)x, (void)p;
  SS_FAIL("quantized rows need PyTorch 2.1 or newer (this build has {}.{})", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR);
#endif
}
}  // namespace

bool fp8_gemm_available(const at::Device& device, at::ScalarType dtype) { return gemm_device(device, dtype, 8, 9); }
bool int8_gemm_available(const at::Device& device, at::ScalarType dtype) { return gemm_device(device, dtype, 8, 0); }

QuantRows quantize_fp8_rows(const at::Tensor& x) { return quantize_rows(x, Precision::kFP8); }
QuantRows quantize_int8_rows(const at::Tensor& x) { return quantize_rows(x, Precision::kINT8); }

#if SS_HAS_FLOAT8 && defined(SANASTREAM_HAS_CUDA)
namespace {
void check_operands(const QuantRows& x, const QuantRows& w, at::ScalarType type, const char* what) {
  SS_CHECK(x.q.dim() == 2 && w.q.dim() == 2 && x.q.size(1) == w.q.size(1) && x.q.size(1) % 16 == 0 &&
               w.q.size(0) % 16 == 0,
           "{}: expected [M, K]·[N, K]ᵀ with K and N multiples of 16, got {} and {}", what, shape_str(x.q.sizes()),
           shape_str(w.q.sizes()));
  SS_CHECK(x.q.scalar_type() == type && w.q.scalar_type() == type, "{}: expected {} operands, got {} and {}", what,
           c10::toString(type), c10::toString(x.q.scalar_type()), c10::toString(w.q.scalar_type()));
  SS_CHECK(x.q.is_cuda(), "{}: quantized GEMMs run on a CUDA device", what);
}
using Gemm = void (*)(const QuantRows&, const QuantRows&, const at::Tensor&, const at::Tensor&, at::Tensor&);
at::Tensor linear(const QuantRows& x, const QuantRows& w, const at::Tensor& bias, const at::Tensor& residual,
                  at::ScalarType type, const char* what, Gemm gemm) {
  check_operands(x, w, type, what);
  at::Tensor out = at::empty({x.q.size(0), w.q.size(0)}, x.scale.options().dtype(at::kBFloat16));
  gemm(x, w, bias, residual, out);
  return out;
}
}  // namespace

at::Tensor fp8_linear(const QuantRows& x, const QuantRows& w, const at::Tensor& bias, const at::Tensor& residual) {
  return linear(x, w, bias, residual, at::kFloat8_e4m3fn, "fp8_linear", cuda::fp8_gemm);
}
at::Tensor int8_linear(const QuantRows& x, const QuantRows& w, const at::Tensor& bias, const at::Tensor& residual) {
  return linear(x, w, bias, residual, at::kChar, "int8_linear", cuda::int8_gemm);
}

void fp8_linear_add_(at::Tensor& out, const QuantRows& x, const QuantRows& w, const at::Tensor& bias) {
  check_operands(x, w, at::kFloat8_e4m3fn, "fp8_linear_add_");
  cuda::fp8_gemm(x, w, bias, out, out);
}
void int8_linear_add_(at::Tensor& out, const QuantRows& x, const QuantRows& w, const at::Tensor& bias) {
  check_operands(x, w, at::kChar, "int8_linear_add_");
  cuda::int8_gemm(x, w, bias, out, out);
}
#else
namespace {
[[noreturn]] void no_gemms() {
  SS_FAIL("quantized GEMMs need the CUDA build with PyTorch 2.1 or newer (fp8_gemm_available, int8_gemm_available)");
}
}  // namespace
at::Tensor fp8_linear(const QuantRows&, const QuantRows&, const at::Tensor&, const at::Tensor&) { no_gemms(); }
at::Tensor int8_linear(const QuantRows&, const QuantRows&, const at::Tensor&, const at::Tensor&) { no_gemms(); }
void fp8_linear_add_(at::Tensor&, const QuantRows&, const QuantRows&, const at::Tensor&) { no_gemms(); }
void int8_linear_add_(at::Tensor&, const QuantRows&, const QuantRows&, const at::Tensor&) { no_gemms(); }
#endif

}  // namespace sanastream::ops
