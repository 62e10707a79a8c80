#include "core/runtime.h"

#include <ATen/Context.h>
#include <torch/cuda.h>

#include "core/error.h"

namespace sanastream {

bool cuda_available() { return torch::cuda::is_available(); }

at::ScalarType parse_dtype_name(const std::string& dtype) {
  if (dtype == "fp32" || dtype == "float32") return at::kFloat;
  if (dtype == "bf16" || dtype == "bfloat16") return at::kBFloat16;
  SS_FAIL("--dtype: expected fp32 or bf16, got '{}'", dtype);
}

const char* dtype_label(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "fp32";
    case at::kBFloat16: return "bf16";
    case at::kHalf: return "fp16";
    case at::kDouble: return "fp64";
    default: return "other";
  }
}

Runtime make_runtime(const std::string& device, const std::string& dtype) {
  Runtime rt;
  rt.dtype = parse_dtype_name(dtype);
  if (device == "cpu") {
    rt.device = at::kCPU;
  } else if (device.rfind("cuda", 0) == 0) {
    SS_CHECK(cuda_available(), "--device {}: this build or machine has no CUDA device (expected --device cpu)", device);
    int index = 0;
    if (device.size() > 4) {
      SS_CHECK(device[4] == ':' && device.size() > 5, "--device: expected cpu, cuda or cuda:N, got '{}'", device);
      index = std::stoi(device.substr(5));
    }
    const int count = static_cast<int>(torch::cuda::device_count());
    SS_CHECK(index >= 0 && index < count, "--device {}: only {} CUDA device(s)", device, count);
    rt.device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
  } else {
    SS_FAIL("--device: expected cpu, cuda or cuda:N, got '{}'", device);
  }
  at::globalContext().setAllowTF32CuBLAS(false);
  at::globalContext().setAllowTF32CuDNN(false);
  return rt;
}

}  // namespace sanastream
