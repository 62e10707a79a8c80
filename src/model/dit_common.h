// Small pieces shared by the DiT's component files.
#pragma once

#include <string>

#include <ATen/ATen.h>

#include "io/safetensors.h"

namespace sanastream::model {

// The token grid of one model call: T frames of H × W tokens, in (t, h, w) raster order (a token
// covers patch × patch latent pixels).
struct DitGrid {
  int64_t T = 0, H = 0, W = 0;
  int64_t S() const { return H * W; }  // tokens per latent frame
  int64_t N() const { return T * H * W; }
};

// Weight lookup with a clear error; every tensor was validated at load time.
const at::Tensor& weight(const io::TensorMap& w, const std::string& key);

// Dense layer on the last dim; bias may be undefined. x: [..., in]; w: [out, in].
at::Tensor dense(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b = {});

// x · SiLU(gate(h)) with the gate computed in fp32 and cast back, as the official blocks do.
at::Tensor gated(const at::Tensor& x, const at::Tensor& gate_pre);

}  // namespace sanastream::model
