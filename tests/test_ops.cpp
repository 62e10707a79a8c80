// Op references against independent formulations (CONVENTIONS numerics policy).
#include <cmath>

#include "core/error.h"
#include "ops/attention.h"
#include "ops/gdn.h"
#include "ops/glu.h"
#include "ops/norm.h"
#include "ops/ref/ref.h"
#include "ops/rope.h"
#include "support/test_env.h"

using namespace sanastream;

namespace {
ops::GdnInputs random_gdn(int64_t B, int64_t H, int64_t T, int64_t D, int64_t S, uint64_t seed) {
  at::manual_seed(seed);
  ops::GdnInputs in;
  auto feat = [&] { return at::relu(at::randn({B, H, T, S, D})) / std::sqrt(double(D * S)); };
  in.q = at::relu(at::randn({B, H, T, S, D}));
  in.k = feat();
  in.q_rot = in.q + 0.1 * at::randn_like(in.q);
  in.k_rot = in.k + 0.01 * at::randn_like(in.k);
  in.v = at::randn({B, H, T, S, D});
  in.beta = at::sigmoid(at::randn({B, H, T, S}));
  in.decay = at::exp(-at::rand({B, H, T}));
  return in;
}

// SPEC §2 in matrix form, fp64: M_f = g_f·M_{f−1}(I − K̂BK̂ᵀ) + VBK̂ᵀ, z_f = g_f(I − KBKᵀ)z_{f−1} + Kβ
// (z as a column), reverse over strictly later frames.
at::Tensor gdn_matrix_form(const ops::GdnInputs& in, const ops::GdnState& init, at::Tensor* final_kv) {
  auto d = [](const at::Tensor& t) { return t.to(at::kDouble); };
  auto frame = [&](const at::Tensor& t, int64_t f) { return d(t.select(2, f).transpose(-1, -2)); };  // [B, H, D, S]
  const int64_t B = in.q.size(0), H = in.q.size(1), T = in.q.size(2), D = in.q.size(4);
  at::Tensor I = at::eye(D, at::kDouble);
  auto step = [&](at::Tensor& M, at::Tensor& z, int64_t f) {
    at::Tensor kr = frame(in.k_rot, f), k = frame(in.k, f), v = frame(in.v, f);
    at::Tensor b = d(in.beta.select(2, f)).unsqueeze(2);
    at::Tensor g = d(in.decay.select(2, f)).view({B, H, 1, 1});
    M = g * at::matmul(M, I - at::matmul(kr * b, kr.transpose(-1, -2))) + at::matmul(v * b, kr.transpose(-1, -2));
    z = g * at::matmul(I - at::matmul(k * b, k.transpose(-1, -2)), z) + (k * b).sum(-1, true);
  };
  at::Tensor M = init.defined() ? d(init.kv) : at::zeros({B, H, D, D}, at::kDouble);
  at::Tensor z = init.defined() ? d(init.z) : at::zeros({B, H, D, 1}, at::kDouble);
  std::vector<at::Tensor> num(T), den(T), out(T);
  for (int64_t f = 0; f < T; ++f) {
    step(M, z, f);
    num[f] = at::matmul(M, frame(in.q_rot, f));
    den[f] = at::matmul(z.transpose(-1, -2), frame(in.q, f));
  }
  *final_kv = M;
  at::Tensor R = at::zeros({B, H, D, D}, at::kDouble), zr = at::zeros({B, H, D, 1}, at::kDouble);
  for (int64_t f = T - 1; f >= 0; --f) {
    out[f] = ((num[f] + at::matmul(R, frame(in.q_rot, f))) /
              (den[f] + at::matmul(zr.transpose(-1, -2), frame(in.q, f)) + 1e-8))
                 .transpose(-1, -2);
    step(R, zr, f);
  }
  return at::stack(out, 2);
}
}  // namespace

// Both implementations (the official recurrence and the frame-matrix form) against SPEC §2's
// matrix form in fp64, at frame and token counts that are not multiples of any tile.
TEST(Gdn, BothFormsMatchTheMatrixFormInFp64) {
  for (auto [T, S, seeded] : std::vector<std::tuple<int64_t, int64_t, bool>>{{1, 35, false}, {3, 24, true}, {5, 7, true}, {7, 120, false}}) {
    auto in = random_gdn(2, 2, T, 16, S, 100 + T);
    ops::GdnState init;
    if (seeded) init = {0.1 * at::randn({2, 2, 16, 16}), at::rand({2, 2, 16, 1})};
    at::Tensor ref_kv;
    at::Tensor want = gdn_matrix_form(in, init, &ref_kv);
    for (bool frames : {false, true}) {
      auto got = frames ? ops::gdn_bidirectional_frames(in, init, 1e-8) : ops::ref::gdn_bidirectional(in, init, 1e-8);
      const double rel = (got.out.to(at::kDouble) - want).norm().item<double>() / want.norm().item<double>();
      EXPECT_LT(rel, 1e-5) << "T=" << T << " S=" << S << (frames ? " frames" : " recurrence");
      const double rel_s =
          (got.final_state.kv.to(at::kDouble) - ref_kv).norm().item<double>() / ref_kv.norm().item<double>();
      EXPECT_LT(rel_s, 1e-5) << "T=" << T << " S=" << S << (frames ? " frames" : " recurrence");
    }
  }
}

// Training runs the frame form under autograd on CUDA: its gradients are the recurrence's (fp32, the
// form's compute type, so up to rounding).
TEST(Gdn, FramesFormHasTheRecurrencesGradients) {
  const ops::GdnInputs base = random_gdn(2, 2, 4, 8, 6, 11);
  const at::Tensor w_out = at::randn({2, 2, 4, 6, 8}), w_kv = at::randn({2, 2, 8, 8});
  const ops::GdnState init0{0.1 * at::randn({2, 2, 8, 8}), at::rand({2, 2, 8, 1})};
  auto grads = [&](bool frames) {
    ops::GdnInputs in;
    std::vector<at::Tensor> leaves;
    for (auto [dst, src] : std::vector<std::pair<at::Tensor*, const at::Tensor*>>{
             {&in.q, &base.q}, {&in.k, &base.k}, {&in.q_rot, &base.q_rot}, {&in.k_rot, &base.k_rot},
             {&in.v, &base.v}, {&in.beta, &base.beta}, {&in.decay, &base.decay}}) {
      *dst = src->detach().clone().requires_grad_(true);
      leaves.push_back(*dst);
    }
    ops::GdnState init{init0.kv.clone().requires_grad_(true), init0.z.clone().requires_grad_(true)};
    leaves.push_back(init.kv);
    leaves.push_back(init.z);
    const ops::GdnOutput r =
        frames ? ops::gdn_bidirectional_frames(in, init, 1e-8) : ops::ref::gdn_bidirectional(in, init, 1e-8);
    ((r.out * w_out).sum() + (r.final_state.kv * w_kv).sum()).backward();
    std::vector<at::Tensor> g;
    for (const at::Tensor& t : leaves) g.push_back(t.grad());
    return g;
  };
  const std::vector<at::Tensor> want = grads(false), got = grads(true);
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_TRUE(got[i].defined()) << "input " << i;
    EXPECT_LT((got[i] - want[i]).norm().item<double>() / want[i].norm().item<double>(), 1e-5) << "input " << i;
  }
}

TEST(Gdn, ForwardStateCarriesAcrossCalls) {
  auto in = random_gdn(1, 2, 6, 16, 20, 7);
  auto whole = ops::gdn_bidirectional(in, {}, 1e-8);
  auto part = [&](int64_t s, int64_t n) {
    ops::GdnInputs p;
    p.q = in.q.narrow(2, s, n);
    p.k = in.k.narrow(2, s, n);
    p.q_rot = in.q_rot.narrow(2, s, n);
    p.k_rot = in.k_rot.narrow(2, s, n);
    p.v = in.v.narrow(2, s, n);
    p.beta = in.beta.narrow(2, s, n);
    p.decay = in.decay.narrow(2, s, n);
    return p;
  };
  auto first = ops::gdn_bidirectional(part(0, 4), {}, 1e-8);
  auto second = ops::gdn_bidirectional(part(4, 2), first.final_state, 1e-8);
  EXPECT_TRUE(at::allclose(second.final_state.kv, whole.final_state.kv, 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(second.final_state.z, whole.final_state.z, 1e-5, 1e-6));
  // The last frame sees no later frame, so its output is the forward scan's alone in both cases.
  EXPECT_TRUE(at::allclose(second.out.select(2, 1), whole.out.select(2, 5), 1e-5, 1e-6));
}

// The decay from the tokens' gate projections equals the official order, the projection of the frame's
// mean token, including softplus's linear branch above 20.
TEST(Gdn, DecayFromTokenProjectionsIsTheOfficialFrameMeanGate) {
  at::manual_seed(4);
  const int64_t B = 2, T = 3, S = 35, C = 48, H = 5;
  const at::Tensor h = at::randn({B, T * S, C}), w = at::randn({H, C}) / std::sqrt(double(C)), b = at::randn({H});
  const at::Tensor neg_a = -at::exp(at::randn({H})), dt_bias = at::tensor({0.5f, -3.f, 19.f, 25.f, 1.f});
  const at::Tensor official =
      at::exp(neg_a * at::softplus(at::linear(h.view({B, T, S, C}).mean(2), w, b) + dt_bias));
  const at::Tensor logits = at::cat({at::randn({B, T * S, 3}), at::linear(h, w, b)}, 2).narrow(2, 3, H);
  const at::Tensor g = ops::gdn_decay(logits, T, neg_a, dt_bias);
  ASSERT_EQ(g.sizes(), (at::IntArrayRef{B, T, H}));
  EXPECT_TRUE(at::allclose(g, official, 1e-5, 1e-7));
  EXPECT_THROW(ops::gdn_decay(logits, 4, neg_a, dt_bias), Error);
}

TEST(Rope, RotatesInterleavedPairsAndComposesInTime) {
  ops::RopeDims dims{40, 36, 36, 10000.0};
  at::Tensor x = at::randn({1, 2 * 3 * 4, 2, 112});
  auto table = ops::make_rope_table(dims, {5, 6}, 3, 4, 1024, at::kCPU);
  at::Tensor y = ops::apply_rope(x, table);
  // Token 0 is frame 5, h 0, w 0: only the temporal pairs rotate, by 5·θ^(−2i/40).
  for (int64_t i = 0; i < 20; ++i) {
    const double a = 5.0 * std::pow(10000.0, -2.0 * i / 40.0);
    const double x0 = x[0][0][1][2 * i].item<double>(), x1 = x[0][0][1][2 * i + 1].item<double>();
    EXPECT_NEAR(y[0][0][1][2 * i].item<double>(), x0 * std::cos(a) - x1 * std::sin(a), 1e-5);
    EXPECT_NEAR(y[0][0][1][2 * i + 1].item<double>(), x0 * std::sin(a) + x1 * std::cos(a), 1e-5);
  }
  for (int64_t i = 40; i < 112; ++i) EXPECT_FLOAT_EQ(y[0][0][1][i].item<float>(), x[0][0][1][i].item<float>());
  // Rotating frame 5 by a temporal shift of +7 equals rotating it at frame 12.
  auto shifted = ops::apply_rope(y.narrow(1, 0, 12), ops::make_temporal_shift(dims, 7, at::kCPU));
  auto direct = ops::apply_rope(x.narrow(1, 0, 12), ops::make_rope_table(dims, {12}, 3, 4, 1024, at::kCPU));
  EXPECT_TRUE(at::allclose(shifted, direct, 1e-5, 1e-5));
  EXPECT_ANY_THROW(ops::make_rope_table(dims, {1024}, 3, 4, 1024, at::kCPU));
}

TEST(Attention, MatchesExplicitSoftmaxWithBias) {
  at::Tensor q = at::randn({2, 3, 10, 16}), k = at::randn({2, 3, 14, 16}), v = at::randn({2, 3, 14, 16});
  at::Tensor bias = (at::rand({2, 1, 1, 14}) > 0.5).to(at::kFloat) * -10000.0;
  at::Tensor want = at::matmul(at::softmax(at::matmul(q, k.transpose(-1, -2)) / 4.0 + bias, -1), v);
  EXPECT_TRUE(at::allclose(ops::attention(q, k, v, bias), want, 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(ops::attention(q, k, v), at::matmul(at::softmax(at::matmul(q, k.transpose(-1, -2)) / 4.0, -1), v), 1e-5, 1e-5));
}

// More queries than one block of the CPU path (600 = 2 × 256 + 88), with a per-query bias and a
// broadcast one: the blocks give the whole softmax's rows.
TEST(Attention, QueryBlocksMatchTheWholeSoftmax) {
  at::Tensor q = at::randn({1, 2, 600, 16}), k = at::randn({1, 2, 300, 16}), v = at::randn({1, 2, 300, 16});
  at::Tensor per_query = (at::rand({1, 2, 600, 300}) > 0.7).to(at::kFloat) * -10000.0;
  at::Tensor broadcast = (at::rand({1, 1, 1, 300}) > 0.5).to(at::kFloat) * -10000.0;
  for (const at::Tensor& bias : {per_query, broadcast, at::Tensor()}) {
    at::Tensor scores = at::matmul(q, k.transpose(-1, -2)) / 4.0;
    if (bias.defined()) scores = scores + bias;
    EXPECT_TRUE(at::allclose(ops::attention(q, k, v, bias), at::matmul(at::softmax(scores, -1), v), 1e-5, 1e-5));
  }
}

TEST(Norms, RmsNormAndModulatedLayerNorm) {
  at::Tensor x = at::randn({2, 5, 32}), w = at::randn({32});
  at::Tensor want = w * x / at::sqrt(x.pow(2).mean(-1, true) + 1e-5);
  EXPECT_TRUE(at::allclose(ops::rms_norm(x, w, 1e-5), want, 1.3e-6, 1e-5));
  at::Tensor shift = at::randn({2, 1, 32}), scale = at::randn({2, 1, 32});
  at::Tensor mu = x.mean(-1, true), var = (x - mu).pow(2).mean(-1, true);
  at::Tensor ln = (x - mu) / at::sqrt(var + 1e-6) * (1 + scale) + shift;
  EXPECT_TRUE(at::allclose(ops::layer_norm_modulate(x, shift, scale, 1e-6, at::kFloat), ln, 1.3e-6, 1e-5));
  EXPECT_EQ(ops::layer_norm_modulate(x, shift, scale, 1e-6, at::kBFloat16).scalar_type(), at::kBFloat16);
}

TEST(Glu, SiluGate) {
  at::Tensor x = at::randn({3, 8, 4, 5});
  at::Tensor want = x.narrow(1, 0, 4) * at::sigmoid(x.narrow(1, 4, 4)) * x.narrow(1, 4, 4);
  EXPECT_TRUE(at::allclose(ops::silu_glu(x), want, 1.3e-6, 1e-5));
}

// The fused FFN middle against a per-pixel loop of the same formula.
TEST(Glu, DepthwiseGluMatchesANaiveLoop) {
  const int64_t BT = 2, H = 3, W = 4, F = 5;
  at::Tensor x = at::randn({BT, H, W, 2 * F}), w = at::randn({2 * F, 1, 3, 3}), b = at::randn({2 * F});
  at::Tensor taps = w.reshape({2 * F, 9}).t().contiguous();
  at::Tensor got = ops::depthwise_glu(x, taps, b);
  at::Tensor s = at::silu(x);
  at::Tensor want = at::empty({BT, H, W, F});
  for (int64_t f = 0; f < BT; ++f)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t xx = 0; xx < W; ++xx)
        for (int64_t c = 0; c < F; ++c) {
          double v = b[c].item<double>(), g = b[F + c].item<double>();
          for (int dy = -1; dy <= 1; ++dy)
            for (int dx = -1; dx <= 1; ++dx) {
              if (y + dy < 0 || y + dy >= H || xx + dx < 0 || xx + dx >= W) continue;
              v += w[c][0][dy + 1][dx + 1].item<double>() * s[f][y + dy][xx + dx][c].item<double>();
              g += w[F + c][0][dy + 1][dx + 1].item<double>() * s[f][y + dy][xx + dx][F + c].item<double>();
            }
          want[f][y][xx][c] = v * g / (1 + std::exp(-g));
        }
  EXPECT_TRUE(at::allclose(got, want, 1e-5, 1e-5));
}
