#include "core/dtype.h"

#include <cmath>
#include <cstring>

namespace sanastream {

namespace {
struct Info {
  DType type;
  const char* name;
  size_t size;
};
constexpr Info kInfos[] = {
    {DType::F64, "F64", 8},   {DType::F32, "F32", 4},         {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1},
    {DType::I64, "I64", 8},   {DType::I32, "I32", 4},         {DType::I16, "I16", 2},
    {DType::I8, "I8", 1},     {DType::U8, "U8", 1},           {DType::BOOL, "BOOL", 1},
};
}  // namespace

size_t dtype_size(DType t) { return kInfos[static_cast<int>(t)].size; }
const char* dtype_name(DType t) { return kInfos[static_cast<int>(t)].name; }

bool parse_dtype(const std::string& name, DType* out) {
  for (const auto& info : kInfos) {
    if (name == info.name) {
      *out = info.type;
      return true;
    }
  }
  return false;
}

float fp8_e4m3_to_float(uint8_t v) {
  // E4M3 "fn": bias 7, no infinities, 0x7f/0xff are NaN.
  const int sign = v >> 7, exp = (v >> 3) & 0xf, man = v & 0x7;
  if (exp == 0xf && man == 0x7) return std::nanf("");
  float mag = exp == 0 ? std::ldexp(static_cast<float>(man) / 8.0f, -6)
                       : std::ldexp(1.0f + static_cast<float>(man) / 8.0f, exp - 7);
  return sign ? -mag : mag;
}

float fp8_e5m2_to_float(uint8_t v) {
  // E5M2 is the top byte of an IEEE half.
  const int sign = v >> 7, exp = (v >> 2) & 0x1f, man = v & 0x3;
  float mag;
  if (exp == 0x1f) {
    mag = man == 0 ? INFINITY : NAN;
  } else if (exp == 0) {
    mag = std::ldexp(static_cast<float>(man) / 4.0f, -14);
  } else {
    mag = std::ldexp(1.0f + static_cast<float>(man) / 4.0f, exp - 15);
  }
  return sign ? -mag : mag;
}

}  // namespace sanastream
