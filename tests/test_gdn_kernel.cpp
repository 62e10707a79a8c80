// The fused GDN kernels (kernels/gdn.cu) against the float64 frame-matrix reference (ops/ref),
// beside the ATen path at the same dtype (CONVENTIONS: kernel error ≤ 2× the ATen path's).
#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/compare.h"
#include "core/runtime.h"
#include "ops/gdn.h"
#include "ops/ref/ref.h"
#include "ops/rope.h"
#include "support/test_env.h"
#ifdef SANASTREAM_HAS_CUDA
#include <cuda_runtime.h>

#include "kernels/gdn.h"
#include "ops/cuda/gdn_cuda.h"
#endif

using namespace sanastream;

#define REQUIRE_CUDA() \
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device"

namespace {

struct GdnCase {
  ops::GdnProjections p;
  ops::GdnFeatureMaps fm;
  ops::RopeTable rope;  // float64
  ops::GdnState init;   // undefined: bidirectional (zeros)
};

// Random projections of one GDN block: B × H heads of D, T frames of S tokens (a 1 × S grid),
// RoPE at frames [2, 2 + T).
GdnCase random_case(int64_t B, int64_t H, int64_t D, int64_t T, int64_t S, bool with_init, uint64_t seed) {
  at::manual_seed(seed);
  const int64_t C = H * D, N = T * S;
  GdnCase c;
  c.p.q = at::randn({B, N, C});
  c.p.k = at::randn({B, N, C});
  c.p.v = at::randn({B, N, C});
  c.p.beta_logits = at::randn({B, N, H});
  c.p.decay = at::exp(-at::rand({B, T, H}));
  c.p.gate = at::randn({B, N, C});
  c.fm.q_norm = 1 + 0.2 * at::randn({C});
  c.fm.k_norm = 1 + 0.2 * at::randn({C});
  c.fm.k_scale = 1.0 / std::sqrt(static_cast<double>(D * S));
  c.fm.heads = H;
  c.fm.frames = T;
  std::vector<int64_t> frames;
  for (int64_t f = 0; f < T; ++f) frames.push_back(2 + f);
  c.rope = ops::make_rope_table({D - 2 * (D / 3 / 2 * 2), D / 3 / 2 * 2, D / 3 / 2 * 2, 10000.0}, frames, 1, S, 1024,
                                at::kCPU);
  if (with_init) c.init = {0.1 * at::randn({B, H, D, D}), at::rand({B, H, D, 1})};
  return c;
}

// The case's inputs in `dtype` on `device` (decay fp32; the RoPE table in the precision the model
// uses with that dtype: float64 for fp32, float32 for bf16).
GdnCase cast(const GdnCase& c, at::ScalarType dtype, at::Device device) {
  GdnCase o = c;
  for (at::Tensor* t : {&o.p.q, &o.p.k, &o.p.v, &o.p.beta_logits, &o.p.gate, &o.fm.q_norm, &o.fm.k_norm})
    *t = t->to(device, dtype);
  o.p.decay = c.p.decay.to(device);
  const at::ScalarType table = dtype == at::kFloat ? at::kDouble : at::kFloat;
  o.rope = {c.rope.cos.to(device, table), c.rope.sin.to(device, table)};
  if (c.init.defined()) o.init = {c.init.kv.to(device), c.init.z.to(device)};
  return o;
}

double rel(const at::Tensor& got, const at::Tensor& want) {
  at::Tensor g = got.to(at::kCPU, at::kDouble), w = want.to(at::kCPU, at::kDouble);
  EXPECT_TRUE(at::isfinite(g).all().item<bool>()) << "NaN/Inf (or an unwritten element)";
  return (g - w).norm().item<double>() / w.norm().item<double>();
}

// Fills the CUDA caching allocator's free blocks with NaN, so an output element the kernels never
// write shows up.
void poison_device_memory() {
  at::full({64 << 20}, std::nanf(""), at::TensorOptions().device(at::kCUDA).dtype(at::kFloat));
}

}  // namespace

// The ATen path (CPU, fp32) against the float64 reference: checks the reference itself.
TEST(GdnGated, AtenPathMatchesTheFp64Reference) {
  for (bool with_init : {false, true}) {
    GdnCase c = random_case(2, 2, 112, 3, 35, with_init, 7 + with_init);
    ops::GdnState want_state, got_state;
    at::Tensor want = ops::ref::gdn_gated(cast(c, at::kFloat, at::kCPU).p, c.fm, c.rope, c.init, &want_state, 1e-8);
    GdnCase f = cast(c, at::kFloat, at::kCPU);
    at::Tensor got = ops::gdn_gated(f.p, f.fm, f.rope, f.init, &got_state, 1e-8);
    EXPECT_LT(rel(got, want), 1e-5) << "init " << with_init;
    EXPECT_LT(rel(got_state.kv, want_state.kv), 1e-5);
    EXPECT_LT(rel(got_state.z, want_state.z), 1e-5);
  }
}

// Frame counts 1–7 and 16, token counts off every tile (35, 120, 17, 880, 40), with and without an initial
// state, fp32 (IEEE FMA) and bf16 (tensor cores): the kernel's error against float64 is at most 2×
// the ATen path's on the same inputs, and within an absolute bound.
TEST(GpuGdnKernel, MatchesTheFp64Reference) {
  REQUIRE_CUDA();
  make_runtime("cuda", "fp32");  // TF32 off for the ATen path's fp32 products
  struct Shape {
    int64_t B, H, T, S;
  };
  const std::vector<Shape> shapes = {{1, 2, 1, 35}, {2, 2, 2, 120}, {1, 3, 3, 880}, {2, 1, 4, 17},
                                     {1, 2, 5, 120}, {1, 2, 6, 35},  {1, 1, 7, 35},  {1, 2, 16, 40}};
  uint64_t seed = 100;
  for (const Shape& s : shapes) {
    for (bool with_init : {false, true}) {
      GdnCase c = random_case(s.B, s.H, 112, s.T, s.S, with_init, ++seed);
      for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
        const std::string what = fmt::format("B={} H={} T={} S={} init={} {}", s.B, s.H, s.T, s.S, with_init,
                                              c10::toString(dt));
        GdnCase cpu = cast(c, dt, at::kCPU), dev = cast(c, dt, at::kCUDA);
        ops::GdnState want_state, kern_state, aten_state;
        at::Tensor want = ops::ref::gdn_gated(cpu.p, cpu.fm, cpu.rope, cpu.init, &want_state, 1e-8);
        poison_device_memory();
        at::Tensor kern = ops::gdn_gated(dev.p, dev.fm, dev.rope, dev.init, &kern_state, 1e-8, /*fused=*/true);
        at::Tensor aten = ops::gdn_gated(dev.p, dev.fm, dev.rope, dev.init, &aten_state, 1e-8, /*fused=*/false);
        ASSERT_EQ(kern.scalar_type(), dt) << what;
        const double e_kern = rel(kern, want), e_aten = rel(aten, want);
        const double floor = dt == at::kFloat ? 2e-6 : 2e-3, bound = dt == at::kFloat ? 1e-4 : 1e-2;
        EXPECT_LE(e_kern, std::max(2 * e_aten, floor)) << what << ": ATen path " << e_aten;
        EXPECT_LT(e_kern, bound) << what;
        // The states are fp32 in both dtypes; bf16 rounds the keys and values of the summaries.
        const double s_kern = rel(kern_state.kv, want_state.kv), s_aten = rel(aten_state.kv, want_state.kv);
        EXPECT_LE(s_kern, std::max(2 * s_aten, floor)) << what << " (state): ATen path " << s_aten;
        const double z_kern = rel(kern_state.z, want_state.z), z_aten = rel(aten_state.z, want_state.z);
        EXPECT_LE(z_kern, std::max(2 * z_aten, floor)) << what << " (z): ATen path " << z_aten;
      }
    }
  }
}

#ifdef SANASTREAM_HAS_CUDA
// bf16 on Hopper runs the wgmma scans; the portable mma.sync scans (every other device, and fp32)
// are held to the same float64 reference on the same inputs here, frame counts 1–16.
TEST(GpuGdnKernel, PortableScansMatchTheFp64ReferenceInBf16) {
  REQUIRE_CUDA();
  make_runtime("cuda", "fp32");
  int device = 0, major = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  // The GPU build targets sm_90a: on Hopper bf16 takes the wgmma scans, so the two paths differ.
  EXPECT_EQ(kernels::gdn_wgmma_scans(kernels::ElemType::kBF16), major == 9);
  EXPECT_FALSE(kernels::gdn_wgmma_scans(kernels::ElemType::kF32));
  struct Shape {
    int64_t B, H, T, S;
  };
  const std::vector<Shape> shapes = {{1, 2, 1, 35}, {2, 2, 2, 120}, {1, 3, 3, 880}, {1, 2, 5, 120}, {1, 2, 16, 40}};
  uint64_t seed = 300;
  for (const Shape& s : shapes) {
    for (bool with_init : {false, true}) {
      const std::string what = fmt::format("B={} H={} T={} S={} init={}", s.B, s.H, s.T, s.S, with_init);
      GdnCase c = random_case(s.B, s.H, 112, s.T, s.S, with_init, ++seed);
      GdnCase cpu = cast(c, at::kBFloat16, at::kCPU), dev = cast(c, at::kBFloat16, at::kCUDA);
      ASSERT_TRUE(ops::cuda::gdn_fused_applies(dev.p, dev.fm, dev.rope)) << what;
      ops::GdnState want_state, fast_state, portable_state;
      at::Tensor want = ops::ref::gdn_gated(cpu.p, cpu.fm, cpu.rope, cpu.init, &want_state, 1e-8);
      poison_device_memory();
      at::Tensor fast = ops::cuda::gdn_gated(dev.p, dev.fm, dev.rope, dev.init, &fast_state, 1e-8);
      at::Tensor portable = ops::cuda::gdn_gated(dev.p, dev.fm, dev.rope, dev.init, &portable_state, 1e-8, true);
      auto check = [&](const char* name, const at::Tensor& out, const ops::GdnState& state) {
        EXPECT_LT(rel(out, want), 1e-2) << what << " " << name;
        EXPECT_LT(rel(state.kv, want_state.kv), 1e-2) << what << " " << name << " (state)";
        EXPECT_LT(rel(state.z, want_state.z), 1e-2) << what << " " << name << " (z)";
      };
      check("default", fast, fast_state);
      check("portable", portable, portable_state);
      // Both scans carry fp32 states with TF32 products: their final states agree far below bf16.
      EXPECT_LT(rel(fast_state.kv, portable_state.kv), 1e-4) << what;
    }
  }
}
#endif

// Streaming: three calls, each seeded by the previous call's final state written in place into
// the same cache tensors it reads (as the DiT cache does), against the float64 chain.
TEST(GpuGdnKernel, StreamingCallsCarryTheStateInPlace) {
  REQUIRE_CUDA();
  make_runtime("cuda", "fp32");
  for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
    ops::GdnState want_state;  // float64 chain
    ops::GdnState cache{at::zeros({1, 2, 112, 112}, at::kCUDA), at::zeros({1, 2, 112, 1}, at::kCUDA)};
    for (int call = 0; call < 3; ++call) {
      const int64_t T = call == 0 ? 5 : 3;
      GdnCase c = random_case(1, 2, 112, T, 120, false, 500 + call);
      GdnCase cpu = cast(c, dt, at::kCPU), dev = cast(c, dt, at::kCUDA);
      at::Tensor want = ops::ref::gdn_gated(cpu.p, cpu.fm, cpu.rope, want_state, &want_state, 1e-8);
      ops::GdnState init = call == 0 ? ops::GdnState{} : cache;
      at::Tensor got = ops::gdn_gated(dev.p, dev.fm, dev.rope, init, &cache, 1e-8);
      const double bound = dt == at::kFloat ? 1e-4 : 1e-2;
      EXPECT_LT(rel(got, want), bound) << "call " << call << " " << c10::toString(dt);
      EXPECT_LT(rel(cache.kv, want_state.kv), bound) << "call " << call << " " << c10::toString(dt);
      EXPECT_LT(rel(cache.z, want_state.z), bound) << "call " << call << " " << c10::toString(dt);
    }
  }
}

// Head dims the kernels are not built for take the ATen path on CUDA, with the same results.
// The decay kernel against its reference on strided rows (the block's fused projection output), bf16
// and fp32, more heads than warps and a frame not a multiple of 32 tokens.
TEST(GpuGdnKernel, DecayMatchesItsReference) {
  REQUIRE_CUDA();
  at::manual_seed(6);
  const int64_t B = 2, T = 5, S = 880 + 7, H = 20;
  const at::Tensor neg_a = -at::exp(at::randn({H})), dt_bias = 8 * at::randn({H}) + 4;
  for (auto dt : {at::kBFloat16, at::kFloat}) {
    const at::Tensor rows = at::randn({B, T * S, 3 * H + 8}).to(dt), logits = rows.narrow(2, 2 * H + 8, H);
    const at::Tensor want = ops::ref::gdn_decay(logits, T, neg_a, dt_bias);
    const at::Tensor got = ops::gdn_decay(logits.cuda(), T, neg_a.cuda(), dt_bias.cuda()).cpu();
    EXPECT_TRUE(at::allclose(got, want, 1e-5, 1e-7))
        << c10::toString(dt) << " " << (got - want).abs().max().item<float>();
  }
}

TEST(GpuGdnKernel, OtherHeadDimsTakeTheAtenPath) {
  REQUIRE_CUDA();
  make_runtime("cuda", "fp32");
  GdnCase c = random_case(1, 2, 64, 3, 35, true, 900);
  GdnCase cpu = cast(c, at::kFloat, at::kCPU), dev = cast(c, at::kFloat, at::kCUDA);
  at::Tensor want = ops::ref::gdn_gated(cpu.p, cpu.fm, cpu.rope, cpu.init, nullptr, 1e-8);
  at::Tensor got = ops::gdn_gated(dev.p, dev.fm, dev.rope, dev.init, nullptr, 1e-8);
  EXPECT_LT(rel(got, want), 1e-5);
}
