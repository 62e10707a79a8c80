// Device and precision choices shared by every command (--device, --dtype), and the numerics
// switches that go with them: TF32 is never a default (SPEC §9).
#pragma once

#include <string>

#include <ATen/ATen.h>

namespace sanastream {

struct Runtime {
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;  // compute dtype of the model (fp32 or bf16)
  bool is_cuda() const { return device.is_cuda(); }
  at::TensorOptions options() const { return at::TensorOptions().device(device).dtype(dtype); }
  at::TensorOptions f32() const { return at::TensorOptions().device(device).dtype(at::kFloat); }
};

// Parses "cpu" | "cuda" | "cuda:N" and "fp32" | "bf16"; errors name the accepted values. A CUDA
// device on a build or machine without CUDA is an error. Turns TF32 off in cuBLAS and cuDNN.
Runtime make_runtime(const std::string& device, const std::string& dtype);
at::ScalarType parse_dtype_name(const std::string& dtype);
const char* dtype_label(at::ScalarType t);  // "fp32", "bf16", ...

bool cuda_available();

}  // namespace sanastream
