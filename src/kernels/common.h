// Shared by the CUDA kernels: element types and launch checking. No torch headers here.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace sanastream::kernels {

enum class ElemType : uint8_t { kF32, kBF16, kF16 };

// Throws sanastream::Error (via a non-CUDA translation unit) when a launch failed; with
// SANASTREAM_CUDA_SYNC=1 it also synchronises to surface asynchronous faults at their launch.
void check_launch(const char* what);

}  // namespace sanastream::kernels
