#include "ops/quant.h"

#include <tuple>

#include "core/error.h"

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

at::Tensor fake_quant(const at::Tensor& x, Precision p, int64_t dim) {
  if (p == Precision::kBF16) return x;
  const at::Tensor xf = x.to(at::kFloat);
  at::Tensor absmax = at::amax(at::abs(xf), {dim}, /*keepdim=*/true);
  const at::Tensor scale = at::where(absmax > 0, absmax / format_max(p), at::ones_like(absmax));
  return (round_to_grid(xf / scale, p) * scale).to(x.scalar_type());
}

}  // namespace sanastream::ops
