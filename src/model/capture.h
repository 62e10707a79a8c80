// Activation capture under the golden names (x_embedder, block03.attn, final_layer, ...): the model
// calls put() at each named point; a null Capture costs nothing.
#pragma once

#include <string>

#include "io/safetensors.h"

namespace sanastream::model {

struct Capture {
  io::TensorMap* out = nullptr;
  std::string prefix;  // e.g. "call15." (every name is prefix + name)

  bool on() const { return out != nullptr; }
  void put(const std::string& name, const at::Tensor& t) const {
    if (out) (*out)[prefix + name] = t.detach().to(at::kCPU, at::kFloat, /*non_blocking=*/false, /*copy=*/true);
  }
};

}  // namespace sanastream::model
