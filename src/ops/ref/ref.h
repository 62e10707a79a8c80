// Reference implementations of every op in plain ATen (fp32/fp64 where it matters). They are the
// ground truth for kernel tests, the path on machines without a kernel, and — with
// SANASTREAM_REFERENCE=1 in the environment — the path for the whole model, to bisect bugs.
#pragma once

#include <initializer_list>

#include <ATen/ATen.h>

#include "ops/gdn.h"
#include "ops/vae.h"

namespace sanastream::ops::ref {

// True when SANASTREAM_REFERENCE=1 (read once).
bool reference_mode();

// True when autograd records through one of these tensors (grad mode on and one requires grad). The
// CUDA kernels have no backward, so the op front ends take these references then (training).
bool records_grad(std::initializer_list<at::Tensor> tensors);

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps, bool relu, double post_scale);
void gate_residual_(at::Tensor& x, const at::Tensor& gate, const at::Tensor& branch);
at::Tensor layer_norm_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, double eps,
                               at::ScalarType out_dtype);
// x: [..., N, H, D]; cos, sin: [N or 1, D/2] float64
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
GdnOutput gdn_bidirectional(const GdnInputs& in, const GdnState& init, double eps);
// ops::gdn_gated in float64 through the frame-matrix form of SPEC §2 (the fused kernels' ground
// truth): returns [B, N, H·D] float64; final_state (nullable) receives the float64 forward state.
at::Tensor gdn_gated(const GdnProjections& p, const GdnFeatureMaps& fm, const RopeTable& rope, const GdnState& init,
                     GdnState* final_state, double eps);
at::Tensor gdn_decay(const at::Tensor& logits, int64_t frames, const at::Tensor& neg_a, const at::Tensor& dt_bias);
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias);
at::Tensor silu_glu(const at::Tensor& x);
at::Tensor silu_gate(const at::Tensor& x, const at::Tensor& gate);
at::Tensor depthwise_glu(const at::Tensor& x, const at::Tensor& weight_taps, const at::Tensor& bias);
at::Tensor vae_conv_input(const at::Tensor& x, const at::Tensor& history, const ConvInputSpec& spec);

}  // namespace sanastream::ops::ref
