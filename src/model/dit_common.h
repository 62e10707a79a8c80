// Small pieces shared by the DiT's component files.
#pragma once

#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "io/safetensors.h"
#include "model/quant_plan.h"
#include "ops/quant.h"

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

// A projection x·Wᵀ + b that may run quantized (SPEC §6), simulated by ops::fake_quant: the weight
// rounded once per output channel, the input per token at every call. kBF16 (the default) keeps both
// in the model's dtype: a plain dense layer sharing the given weight.
class Projection {
 public:
  Projection() = default;
  Projection(const at::Tensor& w, const at::Tensor& b, ops::Precision p = ops::Precision::kBF16);  // w: [out, in]
  at::Tensor operator()(const at::Tensor& x) const;
  // residual + x·Wᵀ + b with the residual added inside the GEMM (one rounding). residual: [..., out]
  // with x's leading dims; returns [rows, out].
  at::Tensor plus(const at::Tensor& residual, const at::Tensor& x) const;
  int64_t out_features() const { return w_.size(0); }

 private:
  at::Tensor w_, b_;
  ops::Precision precision_ = ops::Precision::kBF16;
};

// One layer of a FusedProjection: weight [out, in], bias [out] or undefined, its precision.
struct ProjectionPart {
  at::Tensor w, b;
  ops::Precision precision = ops::Precision::kBF16;
};

// Dense layers on the same input. When every part runs in the model dtype they are one GEMM (issue
// 13: one launch, fuller waves): the weights stacked, then zero rows up to a multiple of 8 outputs,
// and the result split into views whose rows start 16-byte aligned where the widths before them are
// multiples of 8. When any part is quantized, each part is its own Projection.
class FusedProjection {
 public:
  FusedProjection() = default;
  explicit FusedProjection(const std::vector<ProjectionPart>& parts);
  // x: [..., in] → one [..., out_i] per part (views of one output when fused).
  std::vector<at::Tensor> operator()(const at::Tensor& x) const;

 private:
  std::vector<Projection> projections_;  // the stacked one, or one per part
  std::vector<int64_t> widths_;          // the parts' widths in the stacked output (empty: one per part)
};

// x · SiLU(gate(h)) with the gate computed in fp32 and cast back, as the official blocks do.
at::Tensor gated(const at::Tensor& x, const at::Tensor& gate_pre);

}  // namespace sanastream::model
