// kernels::check_launch lives on the C++ side so it can throw the library's error type.
#include <cstdlib>
#include <cstring>

#include <cuda_runtime.h>

#include "core/error.h"
#include "kernels/common.h"

namespace sanastream::kernels {

void check_launch(const char* what) {
  cudaError_t err = cudaGetLastError();
  SS_CHECK(err == cudaSuccess, "CUDA kernel '{}' failed to launch: {}", what, cudaGetErrorString(err));
  static const bool sync = [] {
    const char* v = std::getenv("SANASTREAM_CUDA_SYNC");
    return v && std::strcmp(v, "1") == 0;
  }();
  if (sync) {
    err = cudaDeviceSynchronize();
    SS_CHECK(err == cudaSuccess, "CUDA kernel '{}' failed: {}", what, cudaGetErrorString(err));
  }
}

}  // namespace sanastream::kernels
