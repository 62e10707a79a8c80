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

// A projection x·Wᵀ + b that may run quantized (SPEC §6). FP8 on a GPU that has FP8 GEMMs
// (ops::fp8_gemm_available; bf16 weights, both dims multiples of 16): the weight stored in E4M3 with
// one scale per output channel, the input quantized per token at every call, cuBLASLt. Else
// simulated by ops::fake_quant: the weight rounded once per output channel, the input per token at
// every call. kBF16 (the default) keeps both in the model's dtype: a plain dense layer sharing the
// given weight.
class Projection {
 public:
  Projection() = default;
  Projection(const at::Tensor& w, const at::Tensor& b, ops::Precision p = ops::Precision::kBF16);  // w: [out, in]
  // xq: x's rows already quantized by the kernel that produced x (ops::layer_norm_modulate's fp8),
  // read by a quantized GEMM of its format instead of quantizing x again; undefined: quantized here.
  at::Tensor operator()(const at::Tensor& x, const ops::QuantRows& xq = {}) const;
  // residual + x·Wᵀ + b with the residual added inside the GEMM (one rounding). residual: [..., out]
  // with x's leading dims; returns [rows, out]. xq as operator()'s.
  at::Tensor plus(const at::Tensor& residual, const at::Tensor& x, const ops::QuantRows& xq = {}) const;
  // out += x·Wᵀ + b in place, inside the GEMM. out: [rows, out], x: [rows, in]; xq as operator()'s.
  void add_to_(at::Tensor& out, const at::Tensor& x, const ops::QuantRows& xq = {}) const;
  int64_t out_features() const { return out_; }
  // Whether a quantized GEMM runs (ops::fp8_linear or ops::int8_linear; else, for a quantized
  // precision, the simulation), and whether it is the FP8 one (whose input a producer may write).
  bool quantized_gemm() const { return wq_.q.defined(); }
  bool fp8_gemm() const { return quantized_gemm() && precision_ == ops::Precision::kFP8; }
  // x [..., in] as rows in the quantized GEMM's format (per-row scales).
  ops::QuantRows quantize(const at::Tensor& x) const;

 private:
  // xq when it is in the GEMM's format, else x quantized here.
  ops::QuantRows rows(const at::Tensor& x, const ops::QuantRows& xq) const;
  at::Tensor w_, b_;   // w_: the model-dtype or simulated weight (undefined with a quantized GEMM)
  ops::QuantRows wq_;  // the E4M3 or int8 weight and its per-channel scales (quantized GEMM only)
  ops::Precision precision_ = ops::Precision::kBF16;
  int64_t out_ = 0;
};

// One layer of a FusedProjection: weight [out, in], bias [out] or undefined, its precision.
struct ProjectionPart {
  at::Tensor w, b;
  ops::Precision precision = ops::Precision::kBF16;
};

// Dense layers on the same input, one GEMM per precision among them (issue 13: fewer launches,
// fuller waves; issue 15: one activation quantization per precision): the parts of a precision
// stacked in their order, then zero rows up to a multiple of 8 outputs (16 when quantized), and
// the results split into views whose rows start 16-byte aligned where the widths before them are
// multiples of 8.
class FusedProjection {
 public:
  FusedProjection() = default;
  explicit FusedProjection(const std::vector<ProjectionPart>& parts);
  // x: [..., in] → one [..., out_i] per part, in the parts' order (views of their GEMM's output).
  // xq: as Projection's, read by the parts' FP8 GEMM.
  std::vector<at::Tensor> operator()(const at::Tensor& x, const ops::QuantRows& xq = {}) const;
  // Whether a part runs an FP8 GEMM (its input's producer may quantize the rows for it).
  bool fp8_gemm() const;

 private:
  struct Slot {
    size_t part;
    int64_t width;
  };
  std::vector<Projection> projections_;  // one per precision
  std::vector<std::vector<Slot>> slots_;  // each projection's parts, in output order
  size_t parts_ = 0;
};

}  // namespace sanastream::model
