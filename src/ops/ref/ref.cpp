#include "ops/ref/ref.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <ATen/core/grad_mode.h>

namespace sanastream::ops::ref {

bool reference_mode() {
  static const bool on = [] {
    const char* v = std::getenv("SANASTREAM_REFERENCE");
    return v && std::strcmp(v, "0") != 0 && *v != '\0';
  }();
  return on;
}

bool records_grad(std::initializer_list<at::Tensor> tensors) {
  if (!at::GradMode::is_enabled()) return false;
  for (const at::Tensor& t : tensors)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps, bool relu, double post_scale) {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor normed = xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  at::Tensor out = (weight * normed).to(x.scalar_type());
  if (relu) out = at::relu(out);
  return post_scale == 1.0 ? out : out * post_scale;
}

void gate_residual_(at::Tensor& x, const at::Tensor& gate, const at::Tensor& branch) {
  at::Tensor update = gate.defined() ? gate.to(at::kFloat) * branch.to(at::kFloat) : branch.to(at::kFloat);
  // Under autograd x is saved by the LayerNorm that read it: a new tensor instead of an in-place add.
  if (records_grad({x, update})) {
    x = x + update;
  } else {
    x.add_(update);
  }
}

at::Tensor layer_norm_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, double eps,
                               at::ScalarType out_dtype) {
  at::Tensor n = at::layer_norm(x.to(at::kFloat), {x.size(-1)}, {}, {}, eps);
  return (n * (1 + scale.to(at::kFloat)) + shift.to(at::kFloat)).to(out_dtype);
}

at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  // Pairs (x0, x1) → (x0·c − x1·s, x0·s + x1·c), the complex product the official code forms in
  // complex128, in the precision of the table. cos/sin [N, P] broadcast over the head dim at -2.
  at::Tensor xd = x.to(cos.scalar_type());
  auto sizes = x.sizes().vec();
  sizes.back() /= 2;
  sizes.push_back(2);
  at::Tensor pairs = xd.reshape(sizes);
  at::Tensor x0 = pairs.select(-1, 0), x1 = pairs.select(-1, 1);
  at::Tensor c = cos.unsqueeze(-2), s = sin.unsqueeze(-2);  // [N, 1, P]
  at::Tensor out = at::stack({x0 * c - x1 * s, x0 * s + x1 * c}, -1).reshape(x.sizes());
  return out.to(x.scalar_type());
}

GdnOutput gdn_bidirectional(const GdnInputs& in, const GdnState& init, double eps) {
  // The official recurrence (torch_recurrent_sana_gdn) on [D, S] views of the token-major inputs.
  const int64_t B = in.q.size(0), H = in.q.size(1), T = in.q.size(2), D = in.q.size(4);
  const auto f32 = in.q.options().dtype(at::kFloat);
  auto frame = [](const at::Tensor& t, int64_t f) { return t.select(2, f).transpose(-1, -2).to(at::kFloat); };  // [B, H, D, S]
  // One delta-rule step on state (M, z) with frame f, in the official operation order.
  auto update = [&](at::Tensor& M, at::Tensor& z, int64_t f) {
    at::Tensor g = in.decay.select(2, f).view({B, H, 1, 1});
    M = M * g;
    z = z * g;
    at::Tensor kr = frame(in.k_rot, f), k = frame(in.k, f), v = frame(in.v, f);
    at::Tensor b = in.beta.select(2, f).unsqueeze(2);  // [B, H, 1, S]
    at::Tensor dv = (v - at::matmul(M, kr)) * b;
    M = M + at::matmul(dv, kr.transpose(-1, -2));
    at::Tensor dz = (1.0 - at::matmul(z.transpose(-1, -2), k)) * b;
    z = z + at::matmul(k, dz.transpose(-1, -2));
  };
  std::vector<at::Tensor> num(T), den(T);
  at::Tensor M = init.defined() ? init.kv.to(at::kFloat).clone() : at::zeros({B, H, D, D}, f32);
  at::Tensor z = init.defined() ? init.z.to(at::kFloat).clone() : at::zeros({B, H, D, 1}, f32);
  for (int64_t f = 0; f < T; ++f) {
    update(M, z, f);
    num[f] = at::matmul(M, frame(in.q_rot, f));                // [B, H, D, S]
    den[f] = at::matmul(z.transpose(-1, -2), frame(in.q, f));  // [B, H, 1, S]
  }
  GdnOutput out;
  out.final_state = {M, z};
  // Reverse: frame f reads the state of frames f+1 … T−1 (zero for the last frame).
  at::Tensor R = at::zeros({B, H, D, D}, f32), zr = at::zeros({B, H, D, 1}, f32);
  std::vector<at::Tensor> merged(T);
  for (int64_t f = T - 1; f >= 0; --f) {
    at::Tensor nb = at::matmul(R, frame(in.q_rot, f));
    at::Tensor db = at::matmul(zr.transpose(-1, -2), frame(in.q, f));
    merged[f] = ((num[f] + nb) / (den[f] + db + eps)).transpose(-1, -2);  // [B, H, S, D]
    if (f > 0) update(R, zr, f);
  }
  out.out = at::stack(merged, 2);
  return out;
}

at::Tensor gdn_gated(const GdnProjections& p, const GdnFeatureMaps& fm, const RopeTable& rope, const GdnState& init,
                     GdnState* final_state, double eps) {
  const int64_t B = p.q.size(0), N = p.q.size(1), C = p.q.size(2), H = fm.heads, D = C / H, T = fm.frames, S = N / T;
  auto f64 = [](const at::Tensor& t) { return t.to(at::kDouble); };
  // Feature maps: ReLU(w · x / rms(x)) · scale over all C channels, then [B, N, H, D].
  auto feature = [&](const at::Tensor& x, const at::Tensor& w, double scale) {
    at::Tensor xd = f64(x);
    at::Tensor inv = at::rsqrt(xd.pow(2).mean(-1, /*keepdim=*/true) + fm.norm_eps);
    return (at::relu(f64(w) * xd * inv) * scale).view({B, N, H, D});
  };
  at::Tensor q = feature(p.q, fm.q_norm, 1.0), k = feature(p.k, fm.k_norm, fm.k_scale);
  at::Tensor q_rot = apply_rope(q, f64(rope.cos), f64(rope.sin)), k_rot = apply_rope(k, f64(rope.cos), f64(rope.sin));
  // [B, N, H, D] → [B, H, T, S, D]
  auto frames = [&](const at::Tensor& t) { return t.reshape({B, T, S, H, D}).permute({0, 3, 1, 2, 4}); };
  at::Tensor Q = frames(q), K = frames(k), Qr = frames(q_rot), Kr = frames(k_rot), V = frames(f64(p.v).view({B, N, H, D}));
  at::Tensor beta = at::sigmoid(f64(p.beta_logits)).view({B, T, S, H}).permute({0, 3, 1, 2}).unsqueeze(-1);  // [B, H, T, S, 1]
  at::Tensor g = f64(p.decay).permute({0, 2, 1}).view({B, H, T, 1, 1});
  // Per-frame summaries [B, H, T, D, D]: P = I − K̂ᵀ diag(β) K̂, A = Vᵀ diag(β) K̂, Pz = I − Kᵀ diag(β) K, b = Kᵀ β.
  at::Tensor eye = at::eye(D, p.q.options().dtype(at::kDouble));
  at::Tensor P = eye - at::matmul(Kr.transpose(-1, -2), beta * Kr);
  at::Tensor A = at::matmul(V.transpose(-1, -2), beta * Kr);
  at::Tensor Pz = eye - at::matmul(K.transpose(-1, -2), beta * K);
  at::Tensor bz = at::matmul(K.transpose(-1, -2), beta);  // [B, H, T, D, 1]
  auto opts = eye.options();
  at::Tensor M = init.defined() ? f64(init.kv) : at::zeros({B, H, D, D}, opts);
  at::Tensor z = init.defined() ? f64(init.z) : at::zeros({B, H, D, 1}, opts);
  std::vector<at::Tensor> Ms(T), zs(T), Rs(T), zrs(T);
  for (int64_t f = 0; f < T; ++f) {
    M = g.select(2, f) * at::matmul(M, P.select(2, f)) + A.select(2, f);
    z = g.select(2, f) * at::matmul(Pz.select(2, f), z) + bz.select(2, f);
    Ms[f] = M;
    zs[f] = z;
  }
  if (final_state) *final_state = {M, z};
  at::Tensor R = at::zeros({B, H, D, D}, opts), zr = at::zeros({B, H, D, 1}, opts);
  for (int64_t f = T - 1; f >= 0; --f) {
    Rs[f] = R;
    zrs[f] = zr;
    R = g.select(2, f) * at::matmul(R, P.select(2, f)) + A.select(2, f);
    zr = g.select(2, f) * at::matmul(Pz.select(2, f), zr) + bz.select(2, f);
  }
  at::Tensor states = at::stack(Ms, 2) + at::stack(Rs, 2);  // [B, H, T, D, D] [v, k]
  at::Tensor zsum = at::stack(zs, 2) + at::stack(zrs, 2);   // [B, H, T, D, 1]
  at::Tensor o = at::matmul(Qr, states.transpose(-1, -2)) / (at::matmul(Q, zsum) + eps);  // [B, H, T, S, D]
  o = o.permute({0, 2, 3, 1, 4}).reshape({B, N, C});
  return o * at::silu(f64(p.gate));
}

at::Tensor gdn_decay(const at::Tensor& logits, int64_t frames, const at::Tensor& neg_a, const at::Tensor& dt_bias) {
  const int64_t B = logits.size(0), N = logits.size(1), H = logits.size(2);
  const at::Tensor mean = logits.reshape({B, frames, N / frames, H}).to(at::kFloat).mean(2);
  return at::exp(neg_a * at::softplus(mean + dt_bias));
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& bias) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  at::Tensor scores = at::matmul(q.to(at::kFloat), k.to(at::kFloat).transpose(-1, -2)) * scale;
  if (bias.defined()) scores = scores + bias.to(at::kFloat);
  return at::matmul(at::softmax(scores, -1), v.to(at::kFloat)).to(q.scalar_type());
}

at::Tensor silu_glu(const at::Tensor& x) {
  auto halves = x.chunk(2, 1);
  return halves[0] * at::silu(halves[1]);
}

at::Tensor silu_gate(const at::Tensor& x, const at::Tensor& gate) {
  return x * at::silu(gate.to(at::kFloat)).to(x.scalar_type());
}

at::Tensor depthwise_glu(const at::Tensor& x, const at::Tensor& weight_taps, const at::Tensor& bias) {
  // As the official GLUMBConv: SiLU, conv2d(groups = 2F, padding 1) on NCHW, chunk, value·SiLU(gate).
  const int64_t F2 = x.size(3);
  at::Tensor nchw = at::silu(x).permute({0, 3, 1, 2}).contiguous();
  at::Tensor w = weight_taps.t().reshape({F2, 1, 3, 3}).to(x.scalar_type());
  at::Tensor y = at::conv2d(nchw, w, bias.to(x.scalar_type()), /*stride=*/1, /*padding=*/1, /*dilation=*/1, F2);
  return silu_glu(y).permute({0, 2, 3, 1}).contiguous();
}

namespace {
// Pads dim d of x by p on both sides with `mode`.
at::Tensor pad_dim(const at::Tensor& x, int64_t d, int64_t p, PadMode mode) {
  const int64_t n = x.size(d);
  at::Tensor lo, hi;
  switch (mode) {
    case PadMode::kReflect:
      lo = x.narrow(d, 1, p).flip({d});
      hi = x.narrow(d, n - 1 - p, p).flip({d});
      break;
    case PadMode::kReplicate: {
      std::vector<int64_t> sizes = x.sizes().vec();
      sizes[d] = p;
      lo = x.narrow(d, 0, 1).expand(sizes);
      hi = x.narrow(d, n - 1, 1).expand(sizes);
      break;
    }
    case PadMode::kCircular:
      lo = x.narrow(d, n - p, p);
      hi = x.narrow(d, 0, p);
      break;
  }
  return at::cat({lo, x, hi}, d);
}

// The frame f of x repeated n times along T.
at::Tensor repeat_frame(const at::Tensor& x, int64_t f, int64_t n) {
  return x.narrow(2, f, 1).expand({x.size(0), x.size(1), n, x.size(3), x.size(4)});
}
}  // namespace

at::Tensor vae_conv_input(const at::Tensor& x, const at::Tensor& history, const ConvInputSpec& s) {
  at::Tensor y = x;
  if (s.norm_silu) {
    const at::Tensor xf = x.to(at::kFloat);
    y = at::silu((xf / at::sqrt(at::mean(xf * xf, {1}, /*keepdim=*/true) + s.eps)).to(x.scalar_type()));
  }
  if (s.pad > 0 && x.size(2) > 0) y = pad_dim(pad_dim(y, 3, s.pad, s.mode), 4, s.pad, s.mode);
  std::vector<at::Tensor> parts;
  if (history.defined()) parts.push_back(history);
  if (s.lead > 0) parts.push_back(repeat_frame(y, 0, s.lead));
  if (y.size(2) > 0) parts.push_back(y);
  if (s.trail > 0) parts.push_back(repeat_frame(y, y.size(2) - 1, s.trail));
  return at::cat(parts, 2).contiguous((history.defined() ? history : x).suggest_memory_format());
}

}  // namespace sanastream::ops::ref
