// GPU tests: skipped cleanly on machines without a CUDA device, run on the H200.
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/cuda.h>

#include "core/compare.h"
#include "core/runtime.h"
#include "model/dit_random.h"
#include "model/hybrid_dit.h"
#include "pipeline/samplers.h"
#include "ops/gdn.h"
#include "core/error.h"
#include "ops/glu.h"
#include "ops/norm.h"
#include "ops/rope.h"
#include "ops/vae.h"
#include "ops/ref/ref.h"
#include "support/test_env.h"
#include "train/objectives.h"

using namespace sanastream;

#define REQUIRE_CUDA() \
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device"

// The chain: one kernel of our own and one ATen CUDA op, each against the CPU.
TEST(GpuSmoke, OwnKernelAndAtenOpMatchTheCpu) {
  REQUIRE_CUDA();
  for (auto dtype : {at::kFloat, at::kBFloat16}) {
    at::Tensor x = at::randn({6, 2 * 37, 5, 7}).to(dtype);
    at::Tensor cpu = ops::ref::silu_glu(x.to(at::kFloat));
    at::Tensor gpu = ops::silu_glu(x.to(at::kCUDA)).to(at::kCPU, at::kFloat);
    const double tol = dtype == at::kFloat ? 1e-5 : 1.6e-2;
    EXPECT_TRUE(at::allclose(gpu, cpu, tol, tol)) << c10::toString(dtype);
  }
  make_runtime("cuda", "fp32");  // TF32 off
  at::Tensor a = at::randn({257, 129}, at::kDouble), b = at::randn({129, 65}, at::kDouble);
  at::Tensor want = at::matmul(a, b);
  at::Tensor got = at::matmul(a.to(at::kFloat).cuda(), b.to(at::kFloat).cuda()).cpu().to(at::kDouble);
  EXPECT_LT((got - want).norm().item<double>() / want.norm().item<double>(), 1e-6);
}

class GoldenCuda : public ::testing::TestWithParam<const char*> {};

TEST_P(GoldenCuda, DitSetsPass) {
  REQUIRE_CUDA();
  REQUIRE_GOLDEN(test::golden_root() + "/dit_stream_small/config.json");
  auto r = test::run_cli({"golden-check", test::golden_root(), "--device", "cuda", "--dtype", GetParam(), "--require", "dit"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

INSTANTIATE_TEST_SUITE_P(Dtypes, GoldenCuda, ::testing::Values("fp32", "bf16"));

// The CUDA-graph replay of the streaming calls computes what the eager calls compute.
TEST(GpuStreaming, GraphReplayMatchesEagerCalls) {
  REQUIRE_CUDA();
  model::DitShape shape;
  shape.depth = 8;
  shape.hidden = 224;
  shape.heads = 2;
  shape.ffn_hidden = 96;
  shape.latent_channels = 16;
  shape.source_channels = 16;
  shape.caption_channels = 64;
  shape.caption_length = 12;
  for (const char* dtype : {"fp32", "bf16"}) {
    Runtime rt = make_runtime("cuda", dtype);
    auto dit = model::load_hybrid_dit(model::random_dit_weights(shape, 21), nlohmann::json::object(), rt);
    at::manual_seed(5);
    at::Tensor noise = at::randn({1, 16, 17, 3, 4}), src = at::randn({1, 16, 17, 3, 4});
    at::Tensor mask = at::ones({1, 12}, at::kLong);
    auto caption = dit->encode_caption(at::randn({1, 1, 12, 64}), mask);
    for (bool eff : {false, true}) {
      pipeline::StreamingOptions o;
      o.first_chunk = 5;
      o.efficient_cache = eff;
      o.cuda_graphs = false;
      at::Tensor eager = pipeline::sample_streaming(*dit, noise, src, caption, o).cpu();
      o.cuda_graphs = true;
      at::Tensor graphs = pipeline::sample_streaming(*dit, noise, src, caption, o).cpu();
      const double rel = (graphs - eager).norm().item<double>() / eager.norm().item<double>();
      EXPECT_LT(rel, 1e-6) << dtype << (eff ? " efficient cache" : "");
    }
  }
}

// The softmax blocks' output gate x · SiLU(gate) against its reference: the gate a view of a wider
// GEMM output (16-byte rows: 8 elements a thread) and, at 225 columns, single elements; within a
// rounding of the dtype.
TEST(GpuKernels, SiluGateMatchesItsReference) {
  REQUIRE_CUDA();
  at::manual_seed(12);
  for (auto dt : {at::kBFloat16, at::kFloat}) {
    for (int64_t C : {224, 225}) {
      const at::Tensor wide = (3 * at::randn({2, 37, 4 * C})).to(dt), x = at::randn({2, 37, C}).to(dt);
      const at::Tensor gate = wide.narrow(2, 3 * C, C);
      const at::Tensor got = ops::silu_gate(x.cuda(), wide.cuda().narrow(2, 3 * C, C)).cpu();
      const at::Tensor want = ops::ref::silu_gate(x, gate);
      EXPECT_TRUE(at::allclose(got.to(at::kFloat), want.to(at::kFloat), dt == at::kFloat ? 1e-6 : 8e-3, 1e-6))
          << c10::toString(dt) << " " << C;
    }
  }
  EXPECT_THROW(ops::silu_gate(at::randn({2, 3}).cuda(), at::randn({2, 4}).cuda()), Error);
}

// Every CUDA kernel against its reference (CONVENTIONS numerics policy): elementwise/norm kernels at
// PyTorch's per-dtype tolerances, at sizes that are not multiples of the block size.
TEST(GpuKernels, NormsRopeResidualMatchTheirReferences) {
  REQUIRE_CUDA();
  auto close = [](const at::Tensor& got, const at::Tensor& want, at::ScalarType dt) {
    const double rtol = dt == at::kFloat ? 1.3e-6 : 1.6e-2, atol = dt == at::kFloat ? 1e-5 : 1e-5;
    return at::allclose(got.cpu().to(at::kFloat), want.to(at::kFloat), rtol, atol + 1e-2 * (dt != at::kFloat));
  };
  for (auto dt : {at::kFloat, at::kBFloat16}) {
    for (int64_t C : {2240, 225}) {  // 4-element pieces, single elements
      at::Tensor x = at::randn({3, 37, C}).to(dt), w = (1 + 0.1 * at::randn({C})).to(dt);
      EXPECT_TRUE(close(ops::rms_norm(x.cuda(), w.cuda(), 1e-5), ops::ref::rms_norm(x, w, 1e-5, false, 1.0), dt)) << C;
      EXPECT_TRUE(close(ops::rms_norm(x.cuda(), w.cuda(), 1e-5, true, 0.0125),
                        ops::ref::rms_norm(x, w, 1e-5, true, 0.0125), dt)) << C;
    }
    for (int64_t C : {224, 225, 2240}) {  // 4-element pieces, single elements, several pieces a thread
      at::Tensor r = at::randn({2, 37, C}), shift = at::randn({2, 1, C}), scale = at::randn({2, 1, C});
      EXPECT_TRUE(close(ops::layer_norm_modulate(r.cuda(), shift.cuda(), scale.cuda(), 1e-6, dt),
                        ops::ref::layer_norm_modulate(r, shift, scale, 1e-6, dt), dt)) << C;
    }
    at::Tensor r = at::randn({2, 37, 224});
    at::Tensor branch = at::randn({2, 37, 224}).to(dt), gate = at::randn({2, 1, 224});
    at::Tensor got = r.cuda(), want = r.clone();
    ops::gate_residual_(got, gate.cuda(), branch.cuda());
    ops::ref::gate_residual_(want, gate, branch);
    EXPECT_TRUE(at::allclose(got.cpu(), want, 1.3e-6, 1e-5));
    ops::gate_residual_(got, {}, branch.cuda());
    ops::ref::gate_residual_(want, {}, branch);
    EXPECT_TRUE(at::allclose(got.cpu(), want, 1.3e-6, 1e-5));
    // The fused forms, on 224 channels (4 per step) and 225 (one): the updated residual's copy in
    // the model dtype, and x += branch before the LayerNorm.
    for (int64_t C : {224, 225}) {
      at::Tensor x0 = at::randn({2, 37, C}), br = at::randn({2, 37, C}).to(dt), g = at::randn({2, 1, C});
      at::Tensor gx = x0.cuda(), wx = x0.clone();
      const at::Tensor copy = ops::gate_residual_(gx, g.cuda(), br.cuda(), dt);
      ops::ref::gate_residual_(wx, g, br);
      EXPECT_TRUE(at::allclose(gx.cpu(), wx, 1.3e-6, 1e-5)) << C;
      ASSERT_EQ(copy.scalar_type(), dt);
      EXPECT_TRUE(at::equal(copy.cpu(), gx.cpu().to(dt))) << "the copy is the updated residual, rounded once";
      EXPECT_FALSE(ops::gate_residual_(gx, g.cuda(), br.cuda()).defined());
      gx = x0.cuda(), wx = x0.clone();
      at::Tensor sh = at::randn({2, 1, C}), sc = at::randn({2, 1, C});
      const at::Tensor h = ops::add_layer_norm_modulate_(gx, br.cuda(), sh.cuda(), sc.cuda(), 1e-6, dt);
      ops::ref::gate_residual_(wx, {}, br);
      EXPECT_TRUE(at::allclose(gx.cpu(), wx, 1.3e-6, 1e-5)) << C;
      EXPECT_TRUE(close(h, ops::ref::layer_norm_modulate(wx, sh, sc, 1e-6, dt), dt)) << C;
      // x += gate·branch before the LayerNorm (the FFN's residual update in the next block's pass),
      // the gate a view of the modulation rows, and the final layer's fp32 output.
      const at::Tensor mod = at::randn({2, 6, C});
      for (auto out_dtype : {dt, at::kFloat}) {
        gx = x0.cuda(), wx = x0.clone();
        const at::Tensor hg = ops::add_layer_norm_modulate_(gx, br.cuda(), sh.cuda(), sc.cuda(), 1e-6, out_dtype,
                                                            mod.cuda().narrow(1, 5, 1));
        ops::ref::gate_residual_(wx, mod.narrow(1, 5, 1), br);
        EXPECT_TRUE(at::allclose(gx.cpu(), wx, 1.3e-6, 1e-5)) << C;
        EXPECT_TRUE(close(hg, ops::ref::layer_norm_modulate(wx, sh, sc, 1e-6, out_dtype), out_dtype)) << C;
      }
    }
    ops::RopeDims dims{40, 36, 36, 10000.0};
    for (auto precision : {at::kFloat, at::kDouble}) {
      ops::RopeCache cache(dims, 1024, at::kCUDA, precision);
      ops::RopeTable t = cache.table(5, 3, 3, 7);
      at::Tensor q = at::randn({2, 63, 2, 112}).to(dt);
      EXPECT_TRUE(close(ops::apply_rope(q.cuda(), t), ops::ref::apply_rope(q, t.cos.cpu(), t.sin.cpu()), dt));
      // RMSNorm + RoPE in one pass (fp32 tables; float64 ones take the composition), from the rows
      // of a wider projection output into a transposed view of key-cache rows [B, H, M, D] at 5…67.
      at::Tensor wide = at::randn({2, 63, 240}).to(dt), nw = (1 + 0.1 * at::randn({224})).to(dt);
      at::Tensor rows = wide.cuda().narrow(2, 8, 224), kc = at::zeros({2, 2, 80, 112}, wide.options().device(at::kCUDA));
      ops::rms_norm_rope_into(rows, nw.cuda(), 1e-5, t, kc.narrow(2, 5, 63).transpose(1, 2));
      const at::Tensor want = ops::ref::apply_rope(ops::ref::rms_norm(wide.narrow(2, 8, 224), nw, 1e-5, false, 1.0).view({2, 63, 2, 112}),
                                                   t.cos.cpu(), t.sin.cpu());
      EXPECT_TRUE(close(kc.narrow(2, 5, 63).transpose(1, 2), want, dt)) << c10::toString(precision);
      EXPECT_EQ(kc.narrow(2, 0, 5).count_nonzero().item<int64_t>() + kc.narrow(2, 68, 12).count_nonzero().item<int64_t>(), 0)
          << "cache rows outside the call untouched";
    }
  }
  // The CUDA tables equal the float64 reference table.
  ops::RopeTable ref = ops::make_rope_table({40, 36, 36, 10000.0}, {5, 6, 7}, 3, 7, 1024, at::kCPU);
  ops::RopeTable dev = ops::RopeCache({40, 36, 36, 10000.0}, 1024, at::kCUDA, at::kDouble).table(5, 3, 3, 7);
  EXPECT_TRUE(at::equal(dev.cos.cpu(), ref.cos));
  EXPECT_TRUE(at::equal(dev.sin.cpu(), ref.sin));
}

// The GDN frame-matrix form (the CUDA path) against the official recurrence, 2B head shapes.
TEST(GpuKernels, GdnFramesMatchTheRecurrence) {
  REQUIRE_CUDA();
  for (auto [T, S] : std::vector<std::pair<int64_t, int64_t>>{{1, 35}, {3, 120}, {5, 880}, {7, 35}}) {
    at::manual_seed(T * 1000 + S);
    ops::GdnInputs in;
    in.q = at::relu(at::randn({1, 4, T, S, 112}));
    in.k = at::relu(at::randn({1, 4, T, S, 112})) / std::sqrt(112.0 * S);
    in.q_rot = in.q + 0.1 * at::randn_like(in.q);
    in.k_rot = in.k + 0.01 * at::randn_like(in.k);
    in.v = at::randn({1, 4, T, S, 112});
    in.beta = at::sigmoid(at::randn({1, 4, T, S}));
    in.decay = at::exp(-at::rand({1, 4, T}));
    ops::GdnState init{0.1 * at::randn({1, 4, 112, 112}), at::rand({1, 4, 112, 1})};
    auto want = ops::ref::gdn_bidirectional(in, init, 1e-8);
    ops::GdnInputs dev{in.q.cuda(), in.k.cuda(), in.q_rot.cuda(), in.k_rot.cuda(), in.v.cuda(), in.beta.cuda(),
                       in.decay.cuda()};
    auto got = ops::gdn_bidirectional_frames(dev, {init.kv.cuda(), init.z.cuda()}, 1e-8);
    const double rel = (got.out.cpu() - want.out).norm().item<double>() / want.out.norm().item<double>();
    EXPECT_LT(rel, 2e-5) << "T=" << T << " S=" << S;
    const double rel_s = (got.final_state.kv.cpu() - want.final_state.kv).norm().item<double>() /
                         want.final_state.kv.norm().item<double>();
    EXPECT_LT(rel_s, 2e-5) << "T=" << T << " S=" << S;
  }
}

TEST(GpuKernels, DepthwiseGluMatchesItsReference) {
  REQUIRE_CUDA();
  struct Case {
    int64_t frames, height, width, F;  // F 24: vectorised loads; 13: scalar, a partial channel group
  };
  // 7 wide: one row tile per frame; 300 wide: one output row per tile, the halo rows from its neighbours.
  const std::vector<Case> cases = {{3, 5, 7, 24}, {3, 5, 7, 13}, {2, 6, 300, 24}, {2, 6, 300, 13}};
  for (const Case& c : cases) {
    for (auto dt : {at::kFloat, at::kBFloat16}) {
      at::Tensor x = at::randn({c.frames, c.height, c.width, 2 * c.F}).to(dt), taps = at::randn({9, 2 * c.F}).to(dt);
      at::Tensor b = at::randn({2 * c.F}).to(dt);
      at::Tensor want = ops::ref::depthwise_glu(x.to(at::kFloat), taps.to(at::kFloat), b.to(at::kFloat));
      at::Tensor got = ops::depthwise_glu(x.cuda(), taps.cuda(), b.cuda()).cpu().to(at::kFloat);
      // bf16: the input's SiLU is rounded to bf16 before the taps (as the official module), the
      // reference keeps it in fp32; relative L2 as SPEC §9 measures.
      const double limit = dt == at::kFloat ? 1e-6 : 1e-2;
      EXPECT_LE(compare_tensors(got, want).rel_l2, limit)
          << c10::toString(dt) << " F=" << c.F << " " << c.height << "x" << c.width;
    }
  }
}

// The VAE convolutions' input (ops/vae.h) against its reference on the CPU in the same dtype: every
// padding mode, prologue on and off, history or edge repeats in front, repeats behind, 4-element and
// single-element pieces, a strided tile of a larger frame, and the widths and layouts the kernel
// leaves to the reference (2,052 channels; NCDHW).
TEST(GpuKernels, VaeConvInputMatchesItsReference) {
  REQUIRE_CUDA();
  struct Case {
    int64_t C, pad;
    ops::PadMode mode;
    bool norm, history, tile, channels_last;
    int64_t lead, trail;
  };
  const std::vector<Case> cases = {
      {128, 1, ops::PadMode::kReflect, true, false, false, true, 2, 0},
      {128, 1, ops::PadMode::kReplicate, false, true, false, true, 0, 0},
      {6, 1, ops::PadMode::kCircular, true, false, false, true, 1, 1},
      {2048, 0, ops::PadMode::kReflect, true, true, false, true, 0, 0},
      {256, 1, ops::PadMode::kReflect, true, false, true, true, 2, 0},
      {2052, 1, ops::PadMode::kReflect, true, false, false, true, 2, 0},
      {64, 1, ops::PadMode::kReflect, true, false, false, false, 2, 0},
  };
  const int64_t B = 2, T = 3, H = 5, W = 7;
  for (const Case& c : cases) {
    for (auto dt : {at::kFloat, at::kBFloat16}) {
      const std::string what = fmt::format("C={} pad={} norm={} history={} tile={} cl={} {}", c.C, c.pad, c.norm,
                                           c.history, c.tile, c.channels_last, c10::toString(dt));
      at::Tensor x = (at::randn({B, c.C, T, H + 3, W + 4}) * 3 + 0.5).to(dt);
      x = c.tile ? x.narrow(3, 1, H).narrow(4, 2, W) : x.narrow(3, 0, H).narrow(4, 0, W).contiguous();
      const at::Tensor hist = c.history ? at::randn({B, c.C, 2, H + 2 * c.pad, W + 2 * c.pad}).to(dt) : at::Tensor();
      ops::ConvInputSpec spec;
      spec.pad = c.pad;
      spec.mode = c.mode;
      spec.norm_silu = c.norm;
      spec.lead = c.lead;
      spec.trail = c.trail;
      const at::Tensor want = ops::ref::vae_conv_input(x, hist, spec).to(at::kFloat);
      const auto fmt = c.channels_last ? at::MemoryFormat::ChannelsLast3d : at::MemoryFormat::Contiguous;
      at::Tensor xg = c.tile ? x.cuda() : x.contiguous(fmt).cuda();
      if (c.tile) {  // the tile as a view of a channels-last frame
        at::Tensor big = at::zeros({B, c.C, T, H + 3, W + 4}, x.options()).contiguous(fmt).cuda();
        big.narrow(3, 1, H).narrow(4, 2, W).copy_(xg);
        xg = big.narrow(3, 1, H).narrow(4, 2, W);
      }
      const at::Tensor got =
          ops::vae_conv_input(xg, c.history ? hist.contiguous(fmt).cuda() : at::Tensor(), spec).cpu().to(at::kFloat);
      ASSERT_EQ(got.sizes(), want.sizes()) << what;
      EXPECT_LE(compare_tensors(got, want).rel_l2, dt == at::kFloat ? 1e-6 : 4e-3) << what;
    }
  }
}

// Training noise on the GPU: drawn there by the device generator reseeded from the run's generator,
// so the same run state gives the same noise; standard normal.
TEST(GpuTrain, NoiseIsDrawnOnTheDeviceFromTheRunsGenerator) {
  REQUIRE_CUDA();
  const at::Tensor like = at::zeros({4, 32, 11, 32, 32}, at::TensorOptions().device(at::kCUDA));
  at::Generator g1 = at::detail::createCPUGenerator(7), g2 = at::detail::createCPUGenerator(7);
  const at::Tensor a = train::randn_like_on(like, g1), b = train::randn_like_on(like, g2);
  EXPECT_TRUE(a.is_cuda());
  EXPECT_EQ(a.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_FALSE(at::equal(a, train::randn_like_on(like, g1)));
  EXPECT_NEAR(a.mean().item<double>(), 0.0, 0.01);
  EXPECT_NEAR(a.std().item<double>(), 1.0, 0.01);
}

// Two GPUs (docs/MULTI_GPU.md): the VAE on cuda:1 and the DiT on cuda:0, pipelined, give the one-GPU
// frames bit for bit, and two streams at once each give them too.
TEST(GpuMulti, SplitEngineAndTwoStreamsGiveTheOneGpuFrames) {
  REQUIRE_CUDA();
  if (torch::cuda::device_count() < 2) GTEST_SKIP() << "fewer than 2 CUDA devices";
  const std::string dir = test::temp_dir("gpu_multi");
  auto pkg = test::run_cli({"make-package", "--random-weights", "--preset", "tiny", dir + "/pkg"});
  ASSERT_EQ(pkg.exit_code, 0) << pkg.err;
  for (const std::string flag : {"--gpus", "--streams"}) {
    const std::string out = dir + "/bench" + flag + ".json";
    auto r = test::run_cli({"bench", "--part", "e2e", "--model", dir + "/pkg", "--size", "256x256", "--latent-frames",
                            "14", flag, "2", "--json", out});
    ASSERT_EQ(r.exit_code, 0) << flag << ": " << r.err;
    const nlohmann::json j = nlohmann::json::parse(test::read_file(out));
    if (flag == "--gpus") {
      EXPECT_TRUE(j["gpus"]["frames_identical"].get<bool>()) << j["gpus"].dump();
      EXPECT_EQ(j["gpus"]["vae_device"], "cuda:1");
    } else {
      for (const auto& s : j["streams"]["per_stream"]) EXPECT_TRUE(s["frames_identical"].get<bool>()) << s.dump();
      EXPECT_EQ(j["streams"]["per_stream"][1]["device"], "cuda:1");
    }
  }
}
