// Element types of stored tensors (safetensors / torch.save), independent of ATen.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace sanastream {

enum class DType : uint8_t { F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U8, BOOL };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // safetensors spelling: "F32", "BF16", ...
// Parses the safetensors spelling; returns false for an unknown name.
bool parse_dtype(const std::string& name, DType* out);

// Decodes one FP8 value to float (used where the ATen build has no float8 dtype).
float fp8_e4m3_to_float(uint8_t v);
float fp8_e5m2_to_float(uint8_t v);

}  // namespace sanastream
