#include "ops/cuda/gdn_cuda.h"

#include "core/compare.h"
#include "kernels/gdn.h"
#include "ops/cuda/launch.h"

namespace sanastream::ops::cuda {

namespace {
// Rows the kernels read with 16-byte vectors: unit stride in the channels, row stride and start
// 16-byte aligned.
bool rows_ok(const at::Tensor& t) {
  const int64_t e = static_cast<int64_t>(t.element_size());
  return t.dim() == 3 && t.stride(2) == 1 && (t.stride(1) * e) % 16 == 0 && t.stride(0) == t.stride(1) * t.size(1) &&
         reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
}
}  // namespace

at::Tensor gdn_decay(const at::Tensor& logits, int64_t frames, const at::Tensor& neg_a, const at::Tensor& dt_bias) {
  const int64_t B = logits.size(0), N = logits.size(1), H = logits.size(2);
  if ((logits.scalar_type() != at::kBFloat16 && logits.scalar_type() != at::kFloat) || logits.stride(2) != 1 ||
      logits.stride(0) != logits.stride(1) * N || !neg_a.is_contiguous() || !dt_bias.is_contiguous() ||
      !neg_a.is_cuda() || !dt_bias.is_cuda())
    return {};
  at::Tensor decay = at::empty({B, frames, H}, logits.options().dtype(at::kFloat));
  kernels::GdnDecayParams k;
  k.logits = logits.data_ptr();
  k.neg_a = neg_a.data_ptr<float>();
  k.dt_bias = dt_bias.data_ptr<float>();
  k.decay = decay.data_ptr<float>();
  k.batch = B;
  k.frames = frames;
  k.tokens = N / frames;
  k.heads = H;
  k.stride = logits.stride(1);
  k.type = elem_type(logits);
  check_cuda(kernels::gdn_decay(k, stream_of(logits)), "gdn_decay");
  return decay;
}

bool gdn_fused_applies(const GdnProjections& p, const GdnFeatureMaps& fm, const RopeTable& rope) {
  if (!p.q.is_cuda() || p.q.dim() != 3 || fm.heads <= 0 || fm.frames <= 0) return false;
  const int64_t C = p.q.size(2), N = p.q.size(1);
  if (C % fm.heads != 0 || N % fm.frames != 0) return false;
  if (p.q.scalar_type() != at::kBFloat16 && p.q.scalar_type() != at::kFloat) return false;
  if (!kernels::gdn_supported(C / fm.heads, fm.frames, elem_type(p.q))) return false;
  for (const at::Tensor* t : {&p.q, &p.k, &p.v, &p.gate})
    if (t->scalar_type() != p.q.scalar_type() || t->sizes() != p.q.sizes() || !rows_ok(*t)) return false;
  const at::Tensor& beta = p.beta_logits;
  return beta.scalar_type() == p.q.scalar_type() && beta.dim() == 3 && beta.stride(2) == 1 &&
         beta.stride(0) == beta.stride(1) * N && rope.cos.size(0) == N && rope.cos.size(1) == C / fm.heads / 2;
}

at::Tensor gdn_gated(const GdnProjections& p, const GdnFeatureMaps& fm, const RopeTable& rope, const GdnState& init,
                     GdnState* final_state, double eps, bool portable_scans) {
  const int64_t B = p.q.size(0), N = p.q.size(1), C = p.q.size(2), H = fm.heads, D = C / H, T = fm.frames;
  const auto f32 = p.q.options().dtype(at::kFloat);
  SS_CHECK(p.decay.sizes() == at::IntArrayRef({B, T, H}), "GDN: decay expected [{}, {}, {}], got {}", B, T, H,
           shape_str(p.decay.sizes()));
  at::Tensor decay = p.decay.to(at::kFloat).contiguous();                                  // [B, T, H]
  at::Tensor q_norm = fm.q_norm.to(p.q.scalar_type()).contiguous();                       // [C]
  at::Tensor k_norm = fm.k_norm.to(p.q.scalar_type()).contiguous();                       // [C]
  at::Tensor cos = rope.cos.to(at::kFloat).contiguous(), sin = rope.sin.to(at::kFloat).contiguous();  // [N, D/2]
  at::Tensor init_kv, init_z;                                                              // [B, H, D, D], [B, H, D]
  if (init.defined()) {
    SS_CHECK(init.kv.sizes() == at::IntArrayRef({B, H, D, D}) && init.z.sizes() == at::IntArrayRef({B, H, D, 1}),
             "GDN: initial state expected [B, H, D, D] and [B, H, D, 1], got {} and {}", shape_str(init.kv.sizes()),
             shape_str(init.z.sizes()));
    init_kv = init.kv.to(at::kFloat).contiguous();
    init_z = init.z.to(at::kFloat).contiguous();
  }
  // The final state goes straight into the caller's tensors when they are contiguous fp32 (the
  // streaming cache, possibly the same tensors as init: each block reads its rows before writing).
  GdnState fin;
  if (final_state) {
    const bool in_place = final_state->kv.defined() && final_state->kv.scalar_type() == at::kFloat &&
                          final_state->kv.is_contiguous() && final_state->z.scalar_type() == at::kFloat &&
                          final_state->z.is_contiguous() && final_state->kv.sizes() == at::IntArrayRef({B, H, D, D}) &&
                          final_state->z.numel() == B * H * D;
    fin = in_place ? *final_state : GdnState{at::empty({B, H, D, D}, f32), at::empty({B, H, D, 1}, f32)};
  }
  at::Tensor out = at::empty({B, N, C}, p.q.options());  // [B, N, H·D]
  kernels::GdnParams k;
  k.q = p.q.data_ptr();
  k.k = p.k.data_ptr();
  k.v = p.v.data_ptr();
  k.gate = p.gate.data_ptr();
  k.beta = p.beta_logits.data_ptr();
  k.decay = decay.data_ptr<float>();
  k.q_norm = q_norm.data_ptr();
  k.k_norm = k_norm.data_ptr();
  k.rope_cos = cos.data_ptr<float>();
  k.rope_sin = sin.data_ptr<float>();
  k.init_kv = init_kv.defined() ? init_kv.data_ptr<float>() : nullptr;
  k.init_z = init_z.defined() ? init_z.data_ptr<float>() : nullptr;
  k.final_kv = fin.kv.defined() ? fin.kv.data_ptr<float>() : nullptr;
  k.final_z = fin.z.defined() ? fin.z.data_ptr<float>() : nullptr;
  k.out = out.data_ptr();
  k.batch = B;
  k.frames = T;
  k.tokens = N / T;
  k.heads = H;
  k.head_dim = D;
  k.portable_scans = portable_scans;
  k.q_stride = p.q.stride(1);
  k.k_stride = p.k.stride(1);
  k.v_stride = p.v.stride(1);
  k.gate_stride = p.gate.stride(1);
  k.beta_stride = p.beta_logits.stride(1);
  k.out_stride = C;
  k.norm_eps = static_cast<float>(fm.norm_eps);
  k.k_scale = static_cast<float>(fm.k_scale);
  k.eps = static_cast<float>(eps);
  k.type = elem_type(p.q);
  k.norm_type = k.type;
  const int64_t workspace_bytes = static_cast<int64_t>(kernels::gdn_workspace_bytes(k));
  at::Tensor workspace = at::empty({workspace_bytes}, p.q.options().dtype(at::kByte));
  k.workspace = workspace.data_ptr();
  check_cuda(kernels::gdn_forward(k, stream_of(p.q)), "gdn");
  if (final_state && !final_state->kv.defined()) *final_state = fin;
  else if (final_state && fin.kv.data_ptr() != final_state->kv.data_ptr()) {
    final_state->kv.copy_(fin.kv);
    final_state->z.copy_(fin.z.view_as(final_state->z));
  }
  return out;
}

}  // namespace sanastream::ops::cuda
