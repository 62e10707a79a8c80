// Shared by the CUDA kernels: element types. No torch headers here; launchers return the
// cudaError_t of their launch and the ops front ends turn it into the library's error.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace sanastream::kernels {

enum class ElemType : uint8_t { kF32, kBF16, kF16 };

}  // namespace sanastream::kernels
