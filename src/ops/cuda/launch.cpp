#include "ops/cuda/launch.h"

#include <cstdlib>
#include <cstring>

#include <c10/cuda/CUDAStream.h>

namespace sanastream::ops::cuda {

cudaStream_t stream_of(const at::Tensor& t) { return c10::cuda::getCurrentCUDAStream(t.device().index()).stream(); }

void check_cuda(cudaError_t err, const char* what) {
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

}  // namespace sanastream::ops::cuda
