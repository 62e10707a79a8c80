// Mixed-precision quantization (issue 15): the simulated formats (ops/quant), the plan file
// (model/quant_plan) and the DiT running under a plan.
#include <cmath>
#include <limits>
#include <vector>

#include "core/runtime.h"
#include "model/dit_common.h"
#include "model/dit_random.h"
#include "model/hybrid_dit.h"
#include "model/mix_ffn.h"
#include "model/quant_plan.h"
#include "ops/norm.h"
#include "ops/quant.h"
#include "pipeline/quant_search.h"
#include "support/test_env.h"
#include "support/tiny_configs.h"

using namespace sanastream;
using ops::Precision;

namespace {

// Every finite FP8 E4M3 value, from its bit patterns (sign, 4 exponent bits with bias 7, 3 mantissa
// bits; exponent 0 is subnormal; S.1111.111 is NaN).
std::vector<float> e4m3_values() {
  std::vector<float> v;
  for (int code = 0; code < 256; ++code) {
    const int s = code >> 7, e = (code >> 3) & 15, m = code & 7;
    if (e == 15 && m == 7) continue;
    const float mag = e == 0 ? std::ldexp(static_cast<float>(m), -9) : std::ldexp(1.f + m / 8.f, e - 7);
    v.push_back(s ? -mag : mag);
  }
  return v;
}

at::Tensor grid(std::vector<float> v) { return at::tensor(v); }

double rel_rmse(const at::Tensor& got, const at::Tensor& want) {
  return ((got.to(at::kDouble) - want.to(at::kDouble)).norm() / want.to(at::kDouble).norm()).item<double>();
}

}  // namespace

TEST(QuantFormats, E4M3ValuesAreFixedPointsAndTheLargestIs448) {
  const at::Tensor v = grid(e4m3_values());
  EXPECT_TRUE(at::equal(ops::round_to_grid(v, Precision::kFP8), v));
  EXPECT_EQ(v.abs().max().item<float>(), 448.f);
  EXPECT_EQ(ops::format_max(Precision::kFP8), 448.0);
}

TEST(QuantFormats, E4M3RoundsToTheNearestValueTiesToEvenAndSaturates) {
  const float s9 = std::ldexp(1.f, -9);
  const at::Tensor x = grid({460.f, 470.f, 1e6f, -1e6f, s9 / 2, 3 * s9 / 2, 1.0625f, 1.1875f, 239.f, -239.f, 0.f});
  const at::Tensor want = grid({448.f, 448.f, 448.f, -448.f, 0.f, 2 * s9, 1.f, 1.25f, 240.f, -240.f, 0.f});
  EXPECT_TRUE(at::equal(ops::round_to_grid(x, Precision::kFP8), want)) << ops::round_to_grid(x, Precision::kFP8);
  EXPECT_TRUE(std::isnan(ops::round_to_grid(grid({NAN}), Precision::kFP8).item<float>()));
  // A sweep over ±[2⁻¹², 2⁹]: every result is the grid value nearest its input.
  at::manual_seed(1);
  const at::Tensor sweep = at::exp2(at::rand({4000}) * 21 - 12) * (at::randint(0, 2, {4000}) * 2 - 1);
  const at::Tensor q = ops::round_to_grid(sweep, Precision::kFP8);
  const at::Tensor values = grid(e4m3_values());
  const at::Tensor nearest = (sweep.clamp(-448, 448).unsqueeze(1) - values.unsqueeze(0)).abs().amin(1);
  EXPECT_TRUE(at::equal((q.clamp(-448, 448) - sweep.clamp(-448, 448)).abs(), nearest));
  EXPECT_TRUE(at::isin(q, values).all().item<bool>());
}

TEST(QuantFormats, Int8RoundsHalfToEvenAndClamps) {
  const at::Tensor x = grid({0.5f, 1.5f, 2.5f, -0.5f, 126.6f, 200.f, -300.f});
  EXPECT_TRUE(at::equal(ops::round_to_grid(x, Precision::kINT8), grid({0.f, 2.f, 2.f, -0.f, 127.f, 127.f, -127.f})));
}

TEST(QuantFormats, FakeQuantScalesEachSliceAndKeepsItsDtype) {
  at::manual_seed(2);
  at::Tensor w = at::randn({16, 64});
  w[3].zero_();
  for (Precision p : {Precision::kFP8, Precision::kINT8}) {
    const at::Tensor q = ops::fake_quant(w, p, 1);
    EXPECT_TRUE(at::isfinite(q).all().item<bool>()) << ops::precision_name(p);
    EXPECT_TRUE(at::equal(q[3], w[3]));  // an all-zero channel stays zero
    // Each channel's largest magnitude lands on the format's largest value: kept (to fp32 rounding).
    EXPECT_TRUE(at::allclose(q.abs().amax(1), w.abs().amax(1), 1e-6, 0)) << ops::precision_name(p);
    const double e = rel_rmse(q, w);
    if (p == Precision::kFP8) {
      EXPECT_GT(e, 0.005);  // 3 mantissa bits: ≈ 2–3 %
      EXPECT_LT(e, 0.05);
    } else {
      EXPECT_GT(e, 0.001);  // 127 steps per channel: ≈ 0.5 %
      EXPECT_LT(e, 0.02);
    }
  }
  // Per token on an activation [B, N, C]: dim −1; bf16 in, bf16 out; kBF16 leaves x as it is.
  const at::Tensor x = at::randn({2, 5, 64}).to(at::kBFloat16);
  EXPECT_EQ(ops::fake_quant(x, Precision::kFP8, -1).scalar_type(), at::kBFloat16);
  EXPECT_TRUE(ops::fake_quant(x, Precision::kBF16, -1).is_same(x));
  EXPECT_NE(test::error_of([] { ops::parse_precision("fp4"); }).find("expected bf16, fp8 or int8"), std::string::npos);
}

namespace {
nlohmann::json plan_json() {
  return {{"format", "sanastream-quant-plan"},
          {"version", 1},
          {"groups",
           {{{"layers", {"attn.q", "attn.k", "attn.v"}}, {"blocks", {0, 1}}, {"precision", "fp8"}},
            {{"layers", {"mlp.point_conv"}}, {"blocks", {2, 3}}, {"precision", "int8"}}}},
          {"measurements", {{"bf16_fps", 160.0}}}};
}
}  // namespace

TEST(QuantPlan, AHandMadePlanGivesEachLayerItsPrecision) {
  const model::QuantPlan plan = model::QuantPlan::from_json(plan_json());
  EXPECT_EQ(plan.block(0)("attn.q"), Precision::kFP8);
  EXPECT_EQ(plan.block(1)("attn.v"), Precision::kFP8);
  EXPECT_EQ(plan.block(2)("attn.q"), Precision::kBF16);
  EXPECT_EQ(plan.block(1)("attn.proj"), Precision::kBF16);
  EXPECT_EQ(plan.block(3)("mlp.point_conv"), Precision::kINT8);
  EXPECT_EQ(plan.block(0)("mlp.point_conv"), Precision::kBF16);
  EXPECT_EQ(plan.block(7)("attn.q"), Precision::kBF16);
  EXPECT_NE(test::error_of([&] { plan.check_depth(3); }).find("blocks 2–3, the model has 3"), std::string::npos);
  plan.check_depth(4);
}

TEST(QuantPlan, TheFileRoundTrips) {
  const model::QuantPlan plan = model::QuantPlan::from_json(plan_json());
  EXPECT_EQ(model::QuantPlan::from_json(plan.to_json()).to_json(), plan.to_json());
  EXPECT_EQ(plan.to_json()["measurements"]["bf16_fps"], 160.0);
  const std::string path = test::temp_dir("quant_plan") + "/plan.json";
  model::save_quant_plan(path, plan);
  EXPECT_FALSE(test::file_exists(path + ".part"));
  EXPECT_EQ(model::load_quant_plan(path).to_json(), plan.to_json());
  EXPECT_FALSE(plan.to_json().contains("vae")) << "bf16, the default, is not written";
  nlohmann::json with_vae = plan_json();
  with_vae["vae"] = "fp8";
  const model::QuantPlan vae_plan = model::QuantPlan::from_json(with_vae);
  EXPECT_EQ(vae_plan.vae, Precision::kFP8);
  EXPECT_EQ(model::QuantPlan::from_json(vae_plan.to_json()).to_json(), vae_plan.to_json());
  nlohmann::json vae_only = {{"format", "sanastream-quant-plan"}, {"version", 1}, {"groups", nlohmann::json::array()},
                             {"vae", "fp8"}};
  EXPECT_FALSE(model::QuantPlan::from_json(vae_only).empty()) << "a plan with only the VAE in FP8 is a plan";
}

TEST(QuantPlan, BadPlansAreOneClearError) {
  auto error = [](const nlohmann::json& j) { return test::error_of([&] { model::QuantPlan::from_json(j); }); };
  nlohmann::json j = plan_json();
  j["groups"][0]["layers"][1] = "attn.output_gate";
  EXPECT_NE(error(j).find("'attn.output_gate' stays BF16"), std::string::npos);
  j = plan_json();
  j["groups"][1]["layers"][0] = "mlp.pointconv";
  EXPECT_NE(error(j).find("unknown layer 'mlp.pointconv'"), std::string::npos);
  j = plan_json();
  j["groups"][1]["layers"][0] = "attn.q";
  j["groups"][1]["blocks"] = {1, 2};
  EXPECT_NE(error(j).find("block 1 'attn.q' is already in an earlier group"), std::string::npos);
  j = plan_json();
  j["groups"][0]["blocks"] = {3, 1};
  EXPECT_NE(error(j).find("is not a range"), std::string::npos);
  j = plan_json();
  j["groups"][0]["precision"] = "fp16";
  EXPECT_NE(error(j).find("expected bf16, fp8 or int8"), std::string::npos);
  j = plan_json();
  j["vae"] = "int8";
  EXPECT_NE(error(j).find("\"vae\": the VAE's convolutions take bf16 or fp8"), std::string::npos);
  j["vae"] = 8;
  EXPECT_NE(error(j).find("\"vae\" must be"), std::string::npos);
  j = plan_json();
  j["version"] = 2;
  EXPECT_NE(error(j).find("version 2 is not supported"), std::string::npos);
  EXPECT_NE(error(nlohmann::json::array()).find("\"format\""), std::string::npos);
  EXPECT_NE(test::error_of([] { model::load_quant_plan("/nonexistent/plan.json"); }).find("no file"), std::string::npos);
  EXPECT_TRUE(model::load_quant_plan("").empty());  // no --plan
}

// The committed plans (configs/quant/) load and fit the depth of the model each is named for.
TEST(QuantPlan, TheCommittedPlansFitTheirModels) {
  const std::string dir = std::string(SANASTREAM_SOURCE_DIR) + "/configs/quant/";
  const model::QuantPlan two_b = model::load_quant_plan(dir + "fp8-all-2b.json");
  two_b.check_depth(20);
  const model::QuantPlan demo = model::load_quant_plan(dir + "fp8-all-demo.json");
  demo.check_depth(8);  // models/demo: 8 blocks
  for (const std::string& layer : model::quantizable_layers()) {
    EXPECT_EQ(two_b.block(19)(layer), Precision::kFP8) << layer;
    EXPECT_EQ(demo.block(7)(layer), Precision::kFP8) << layer;
  }
  EXPECT_NE(test::error_of([&] { demo.check_depth(7); }).find("the model has 7"), std::string::npos);
  // The plan quantize --profile chose on the H200 (docs/QUANT.md): all FP8 but cross_attn.proj in
  // blocks 0–5 and 14–19.
  const model::QuantPlan searched = model::load_quant_plan(dir + "searched-2b-h200.json");
  searched.check_depth(20);
  EXPECT_EQ(searched.block(0)("cross_attn.proj"), Precision::kBF16);
  EXPECT_EQ(searched.block(6)("cross_attn.proj"), Precision::kFP8);
  EXPECT_EQ(searched.block(19)("cross_attn.proj"), Precision::kBF16);
  EXPECT_EQ(searched.block(19)("mlp.t_conv"), Precision::kFP8);
  EXPECT_EQ(searched.vae, Precision::kBF16);
  const model::QuantPlan with_vae = model::load_quant_plan(dir + "fp8-all-vae-2b.json");
  with_vae.check_depth(20);
  EXPECT_EQ(with_vae.vae, Precision::kFP8);
  EXPECT_EQ(with_vae.block(0)("attn.q"), Precision::kFP8);
  const model::QuantPlan demo_vae = model::load_quant_plan(dir + "fp8-all-vae-demo.json");
  demo_vae.check_depth(8);
  EXPECT_EQ(demo_vae.vae, Precision::kFP8);
  EXPECT_EQ(demo_vae.block(7)("mlp.t_conv"), Precision::kFP8);
  // The demo model's search on the H200 with real prompts and clips: its DiT plan ran slower than
  // BF16 and was dropped; the VAE takes FP8.
  const model::QuantPlan demo_searched = model::load_quant_plan(dir + "searched-demo-h200.json");
  EXPECT_TRUE(demo_searched.groups.empty());
  EXPECT_EQ(demo_searched.vae, Precision::kFP8);
  EXPECT_EQ(demo_searched.measurements["dropped"], true);
  EXPECT_EQ(demo_searched.measurements["search"]["config"]["inputs"], "--data build-harness/demo-cache");
}

// The DiT under a plan (CPU, fp32): the quantized projections change the output by the formats'
// error, more layers more; an empty plan is the model itself.
TEST(QuantDit, APlanQuantizesTheNamedProjectionsOnly) {
  const io::TensorMap w = model::random_dit_weights(test::small_dit_shape(4), 21);
  const Runtime rt = make_runtime("cpu", "fp32");
  const model::DitConfig cfg = model::detect_dit_config(w);
  at::manual_seed(3);
  const at::Tensor x = at::randn({1, 16, 2, 3, 5}), src = at::randn({1, 16, 2, 3, 5});
  const at::Tensor embeds = at::randn({1, 12, 64}), mask = at::ones({1, 12}, at::kLong);
  auto run = [&](const model::QuantPlan& plan) {
    model::HybridDit dit(w, cfg, rt, plan);
    return dit.forward(x, src, at::full({1}, 500.f), dit.encode_caption(embeds, mask));
  };
  auto plan_of = [](std::vector<std::string> layers, int64_t last, const char* precision) {
    nlohmann::json j = {{"format", "sanastream-quant-plan"},
                        {"version", 1},
                        {"groups", {{{"layers", layers}, {"blocks", {0, last}}, {"precision", precision}}}}};
    return model::QuantPlan::from_json(j);
  };
  const at::Tensor base = run({});
  const double one = rel_rmse(run(plan_of({"attn.q"}, 0, "fp8")), base);
  const double all_fp8 = rel_rmse(run(plan_of(model::quantizable_layers(), 3, "fp8")), base);
  const double all_int8 = rel_rmse(run(plan_of(model::quantizable_layers(), 3, "int8")), base);
  EXPECT_GT(one, 0);
  EXPECT_LT(one, all_fp8);
  for (double e : {all_fp8, all_int8}) {
    EXPECT_GT(e, 1e-4);
    EXPECT_LT(e, 0.2);
  }
  EXPECT_NE(test::error_of([&] { run(plan_of({"attn.q"}, 4, "fp8")); }).find("the model has 4"), std::string::npos);
}

// The real FP8 path on a GPU that has it (skipped elsewhere): the row quantization kernel gives
// the ATen composition's E4M3 values and scales bit for bit, and the FP8 GEMM (cuBLASLt)
// equals the float64 product of the same quantized operands up to accumulation order and the bf16
// output's rounding, and the BF16 layer within the format's error.
TEST(GpuQuant, Fp8RowsAndGemmMatchTheirSimulation) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  if (!ops::fp8_gemm_available(at::Device(at::kCUDA, 0), at::kBFloat16)) GTEST_SKIP() << "no FP8 GEMMs on this GPU";
  at::manual_seed(9);
  auto same_rows = [](const ops::QuantRows& got, const ops::QuantRows& want) {
    return at::equal(got.q.cpu().to(at::kFloat), want.q.to(at::kFloat)) && at::equal(got.scale.cpu(), want.scale);
  };
  for (int64_t cols : {224, 225}) {  // 4-element pieces, single elements
    at::Tensor x = at::randn({37, cols + 16}) * at::exp(at::randn({37, 1}));
    x[3].zero_();         // an all-zero row: scale 1, zeros
    x[5][7] = 1e4;        // one large element: the rest of its row near zero
    const at::Tensor rows = x.to(at::kBFloat16).narrow(1, 8, cols);  // rows of a wider tensor
    EXPECT_TRUE(same_rows(ops::quantize_fp8_rows(rows.cuda()), ops::quantize_fp8_rows(rows))) << cols;
  }
  // The LayerNorm (+ modulation, with and without the gated residual add) writing its output's FP8 rows
  // in the same pass: the rows quantize_fp8_rows makes of that output, bit for bit.
  for (int64_t C : {224, 225}) {
    const at::Tensor x0 = at::randn({2, 37, C}) * 3, br = at::randn({2, 37, C}).to(at::kBFloat16);
    const at::Tensor sh = at::randn({2, 1, C}), sc = at::randn({2, 1, C}), g = at::randn({2, 1, C});
    for (bool add : {false, true}) {
      at::Tensor x = x0.cuda();
      ops::QuantRows fused;
      const at::Tensor h = add ? ops::add_layer_norm_modulate_(x, br.cuda(), sh.cuda(), sc.cuda(), 1e-6, at::kBFloat16,
                                                               g.cuda(), &fused)
                               : ops::layer_norm_modulate(x, sh.cuda(), sc.cuda(), 1e-6, at::kBFloat16, &fused);
      ASSERT_TRUE(fused.q.defined()) << C;
      const at::Tensor plain = add ? [&] {
        at::Tensor x2 = x0.cuda();
        return ops::add_layer_norm_modulate_(x2, br.cuda(), sh.cuda(), sc.cuda(), 1e-6, at::kBFloat16, g.cuda());
      }()
                                   : ops::layer_norm_modulate(x0.cuda(), sh.cuda(), sc.cuda(), 1e-6, at::kBFloat16);
      EXPECT_TRUE(at::equal(h, plain)) << C << " the bf16 output is unchanged";
      const ops::QuantRows want = ops::quantize_fp8_rows(h.reshape({-1, C}));
      EXPECT_TRUE(same_rows(fused, {want.q.cpu(), want.scale.cpu()})) << C << (add ? " with the add" : "");
    }
  }
  const int64_t M = 64, K = 224, N = 112;
  const at::Tensor x = at::randn({2, M / 2, K}).to(at::kBFloat16), w = (at::randn({N, K}) / 15).to(at::kBFloat16);
  const at::Tensor b = at::randn({N}).to(at::kBFloat16);
  const model::Projection fp8(w.cuda(), b.cuda(), Precision::kFP8);
  ASSERT_TRUE(fp8.fp8_gemm());
  const at::Tensor got = fp8(x.cuda()).cpu().to(at::kDouble);
  ASSERT_EQ(got.sizes(), at::IntArrayRef({2, M / 2, N}));
  const ops::QuantRows xq = ops::quantize_fp8_rows(x.reshape({M, K})), wq = ops::quantize_fp8_rows(w);
  const at::Tensor want = (at::matmul(xq.q.to(at::kDouble) * xq.scale.to(at::kDouble),
                                      (wq.q.to(at::kDouble) * wq.scale.to(at::kDouble)).t()) +
                           b.to(at::kDouble))
                              .view({2, M / 2, N});
  EXPECT_LT(rel_rmse(got, want), 4e-3) << "the same quantized operands";
  const at::Tensor bf16 = model::dense(x.to(at::kDouble), w.to(at::kDouble), b.to(at::kDouble));
  const double err = rel_rmse(got, bf16);
  EXPECT_GT(err, 1e-3) << "FP8 operands, not BF16 ones";
  EXPECT_LT(err, 0.06) << "E4M3's error";
  const model::Projection plus_layer(w.cuda(), b.cuda(), Precision::kFP8);
  const at::Tensor r = at::randn({2, M / 2, N}).to(at::kBFloat16);
  EXPECT_LT(rel_rmse(plus_layer.plus(r.cuda(), x.cuda()).cpu().to(at::kDouble).view({2, M / 2, N}),
                     want + r.to(at::kDouble)),
            4e-3)
      << "plus: the residual added inside the GEMM";
}

namespace {
// The float64 product of quantized rows (their values times their scales) with weight rows, transposed.
at::Tensor quant_product(const ops::QuantRows& x, const ops::QuantRows& w) {
  auto value = [](const ops::QuantRows& r) { return r.q.cpu().to(at::kDouble) * r.scale.cpu().to(at::kDouble); };
  return at::matmul(value(x), value(w).t());
}
// The quantized formats with real GEMMs on CUDA device 0 (none without a GPU).
std::vector<Precision> gemm_formats() {
  std::vector<Precision> out;
  if (!cuda_available()) return out;
  const at::Device gpu(at::kCUDA, 0);
  if (ops::fp8_gemm_available(gpu, at::kBFloat16)) out.push_back(Precision::kFP8);
  if (ops::int8_gemm_available(gpu, at::kBFloat16)) out.push_back(Precision::kINT8);
  return out;
}
ops::QuantRows quantize_rows(Precision p, const at::Tensor& x) {
  return p == Precision::kFP8 ? ops::quantize_fp8_rows(x) : ops::quantize_int8_rows(x);
}
at::Tensor quant_linear(Precision p, const ops::QuantRows& x, const ops::QuantRows& w, const at::Tensor& b,
                        const at::Tensor& r = {}) {
  return p == Precision::kFP8 ? ops::fp8_linear(x, w, b, r) : ops::int8_linear(x, w, b, r);
}
void quant_linear_add_(Precision p, at::Tensor& out, const ops::QuantRows& x, const ops::QuantRows& w,
                       const at::Tensor& b) {
  p == Precision::kFP8 ? ops::fp8_linear_add_(out, x, w, b) : ops::int8_linear_add_(out, x, w, b);
}
}  // namespace

// Both quantized GEMMs add their bias and a bf16 matrix (a residual, or the output itself: an
// accumulation) — FP8 in cuBLASLt's epilogue, INT8 in its dequantizing pass — at row counts that are
// not multiples of 16 (INT8 pads fewer than 17 rows for at::_int_mm) and on rows that start anywhere
// in a larger quantized tensor (pointers of any alignment the format allows).
TEST(GpuQuant, QuantizedGemmsAddInsideAtAnyRowCount) {
  if (gemm_formats().empty()) GTEST_SKIP() << "no quantized GEMMs here";
  for (Precision p : gemm_formats()) {
    const char* name = ops::precision_name(p);
    at::manual_seed(12);
    const int64_t K = 224, N = 112;
    const ops::QuantRows w = quantize_rows(p, (at::randn({N, K}) / 15).to(at::kBFloat16).cuda());
    const at::Tensor b = at::randn({N}).to(at::kBFloat16).cuda();
    const ops::QuantRows all = quantize_rows(p, at::randn({64, K}).to(at::kBFloat16).cuda());
    for (int64_t first : {0, 3, 16})
      for (int64_t M : {1, 5, 17, 32}) {
        const ops::QuantRows x = all.rows(first, M);
        const at::Tensor want = quant_product(x, w) + b.cpu().to(at::kDouble);
        const at::Tensor r = at::randn({M, N}).to(at::kBFloat16).cuda();
        EXPECT_LT(rel_rmse(quant_linear(p, x, w, b).cpu(), want), 4e-3) << name << " " << M << " rows from " << first;
        const at::Tensor with_r = quant_linear(p, x, w, b, r).cpu();
        EXPECT_LT(rel_rmse(with_r, want + r.cpu().to(at::kDouble)), 4e-3) << name << " " << M << " rows from " << first;
        at::Tensor acc = r.clone();
        quant_linear_add_(p, acc, x, w, {});
        EXPECT_LT(rel_rmse(acc.cpu(), quant_product(x, w) + r.cpu().to(at::kDouble)), 4e-3)
            << name << " " << M << " rows from " << first;
      }
    at::Tensor wide = at::zeros({5, 2 * N}, at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA));
    at::Tensor half = wide.narrow(1, N, N);  // an output whose rows are strided
    quant_linear_add_(p, half, all.rows(0, 5), w, b);
    EXPECT_LT(rel_rmse(half.cpu(), quant_product(all.rows(0, 5), w) + b.cpu().to(at::kDouble)), 4e-3) << name;
    EXPECT_EQ(wide.narrow(1, 0, N).abs().sum().item<float>(), 0.f) << name << ": nothing written outside the output";
    const std::string err = test::error_of(
        [&] { quant_linear(p, all.rows(0, 5), quantize_rows(p, at::randn({16, 240}).cuda()), {}); });
    EXPECT_NE(err.find(std::string(name) + "_linear: expected"), std::string::npos) << err;
  }
  const std::string err = test::error_of([] {
    ops::int8_linear(ops::quantize_fp8_rows(at::randn({32, 224}).cuda()), ops::quantize_fp8_rows(at::randn({16, 224}).cuda()), {});
  });
  EXPECT_NE(err.find("int8_linear: expected Char operands"), std::string::npos) << err;
}

// The INT8 path (W8A8) on the GPU: the row kernel gives the ATen composition's int8 values and
// scales bit for bit (fake_quant's grid: the integers −127 … 127, ties to even); an INT8 projection
// runs the INT8 GEMM, equal to the float64 product of the same operands within the bf16 output's
// rounding and to the BF16 layer within the format's error.
TEST(GpuQuant, Int8RowsAndGemmMatchTheirSimulation) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  if (!ops::int8_gemm_available(at::Device(at::kCUDA, 0), at::kBFloat16)) GTEST_SKIP() << "no INT8 GEMMs here";
  at::manual_seed(10);
  for (int64_t cols : {224, 225}) {  // 4-element pieces, single elements
    at::Tensor x = at::randn({37, cols + 16}) * at::exp(at::randn({37, 1}));
    x[3].zero_();
    x[5][7] = 1e4;
    x[6].copy_(at::arange(cols + 16).remainder(120) - 59.5);  // ties: scale 1 (absmax 127), values k + 0.5
    x[6][8] = 127;
    const at::Tensor rows = x.to(at::kBFloat16).narrow(1, 8, cols);
    const ops::QuantRows got = ops::quantize_int8_rows(rows.cuda()), want = ops::quantize_int8_rows(rows);
    ASSERT_EQ(got.q.scalar_type(), at::kChar);
    EXPECT_TRUE(at::equal(got.q.cpu(), want.q)) << cols;
    EXPECT_TRUE(at::equal(got.scale.cpu(), want.scale)) << cols;
    EXPECT_TRUE(at::equal(want.q.to(at::kFloat) * want.scale, ops::fake_quant(rows.to(at::kFloat), Precision::kINT8, -1)))
        << cols << " the simulation's values";
  }
  const int64_t M = 64, K = 224, N = 112;
  const at::Tensor x = at::randn({2, M / 2, K}).to(at::kBFloat16), w = (at::randn({N, K}) / 15).to(at::kBFloat16);
  const at::Tensor b = at::randn({N}).to(at::kBFloat16);
  const model::Projection int8(w.cuda(), b.cuda(), Precision::kINT8);
  ASSERT_TRUE(int8.quantized_gemm());
  EXPECT_FALSE(int8.fp8_gemm()) << "producers write FP8 rows for FP8 GEMMs only";
  const at::Tensor got = int8(x.cuda()).cpu().to(at::kDouble);
  ASSERT_EQ(got.sizes(), at::IntArrayRef({2, M / 2, N}));
  const at::Tensor want =
      (quant_product(ops::quantize_int8_rows(x.reshape({M, K})), ops::quantize_int8_rows(w)) + b.to(at::kDouble))
          .view({2, M / 2, N});
  EXPECT_LT(rel_rmse(got, want), 4e-3) << "the same quantized operands";
  const double err = rel_rmse(got, model::dense(x.to(at::kDouble), w.to(at::kDouble), b.to(at::kDouble)));
  EXPECT_GT(err, 1e-3) << "INT8 operands, not BF16 ones";
  EXPECT_LT(err, 0.03) << "INT8's error";
  const at::Tensor r = at::randn({2, M / 2, N}).to(at::kBFloat16);
  EXPECT_LT(rel_rmse(int8.plus(r.cuda(), x.cuda()).cpu().to(at::kDouble).view({2, M / 2, N}), want + r.to(at::kDouble)),
            4e-3)
      << "plus: the residual added in the dequantizing pass";
  // An FP8 copy of the rows (a producer's) is not INT8's: the projection quantizes its own.
  EXPECT_TRUE(at::equal(int8(x.cuda(), ops::quantize_fp8_rows(x.reshape({M, K}).cuda())).cpu(), int8(x.cuda()).cpu()));
}

// The attention's residual add writing the cross-attention's input also writes that input's FP8 rows
// from the same registers: quantize_fp8_rows of the copy bit for bit, the copy and the residual stream
// as without them.
TEST(GpuQuant, ResidualAddWritesItsCopysFp8Rows) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  if (!ops::fp8_gemm_available(at::Device(at::kCUDA, 0), at::kBFloat16)) GTEST_SKIP() << "no FP8 GEMMs on this GPU";
  at::manual_seed(13);
  for (int64_t C : {224, 225})
    for (bool gated : {true, false}) {
      const at::Tensor x0 = (at::randn({2, 37, C}) * 3).cuda(), br = at::randn({2, 37, C}).to(at::kBFloat16).cuda();
      const at::Tensor g = gated ? at::randn({2, 1, C}).cuda() : at::Tensor();
      at::Tensor x = x0.clone(), x_plain = x0.clone();
      ops::QuantRows rows;
      const at::Tensor copy = ops::gate_residual_(x, g, br, at::kBFloat16, &rows);
      const at::Tensor copy_plain = ops::gate_residual_(x_plain, g, br, at::kBFloat16);
      ASSERT_TRUE(rows.q.defined()) << C;
      EXPECT_TRUE(at::equal(x, x_plain)) << C;
      EXPECT_TRUE(at::equal(copy, copy_plain)) << C;
      const ops::QuantRows want = ops::quantize_fp8_rows(copy.reshape({-1, C}));
      EXPECT_TRUE(at::equal(rows.q.view(at::kByte), want.q.view(at::kByte)) && at::equal(rows.scale, want.scale))
          << C << (gated ? " gated" : "");
    }
}

// The temporal conv's FP8 taps (one quantization of the frames and one of the context, rows sliced
// per tap; the residual and each side tap added inside their GEMMs) against the float64 conv of the
// same quantized operands, at 5 tokens a frame (GEMMs of 5 and 10 rows), two batch rows.
TEST(GpuQuant, QuantizedTemporalTapsMatchTheirSimulation) {
  if (gemm_formats().empty()) GTEST_SKIP() << "no quantized GEMMs here";
  for (Precision p : gemm_formats()) {
    at::manual_seed(14);
    const int64_t B = 2, T = 3, S = 5, C = 224, K = 3;
    const at::Tensor pc = at::randn({B, T, S, C}).to(at::kBFloat16), ctx = at::randn({B, 1, S, C}).to(at::kBFloat16);
    std::vector<model::Projection> taps;
    std::vector<ops::QuantRows> wq;
    for (int64_t k = 0; k < K; ++k) {
      const at::Tensor w = (at::randn({C, C}) / 15).to(at::kBFloat16);
      taps.emplace_back(w.cuda(), at::Tensor(), p);
      ASSERT_TRUE(taps.back().quantized_gemm());
      wq.push_back(quantize_rows(p, w));
    }
    const at::Tensor got = model::MixFfn::temporal(taps, pc.cuda(), ctx.cuda()).cpu().to(at::kDouble);
    // Frames −1 … T: the context, the call's frames, a zero frame after them; each quantized per row.
    const ops::QuantRows frames = quantize_rows(p, at::cat({ctx, pc, at::zeros_like(ctx)}, 1).reshape({-1, C}));
    const at::Tensor fq = (frames.q.to(at::kDouble) * frames.scale.to(at::kDouble)).view({B, T + 2, S, C});
    at::Tensor want = pc.to(at::kDouble);
    for (int64_t k = 0; k < K; ++k) {
      const at::Tensor wk = wq[k].q.to(at::kDouble) * wq[k].scale.to(at::kDouble);
      want = want + at::matmul(fq.narrow(1, k, T), wk.t());  // output frame t reads frame t + k − 1
    }
    EXPECT_LT(rel_rmse(got, want), 4e-3) << ops::precision_name(p);
  }
}

// The search's pieces without a device: the depth bands, and the greedy order — least error per
// millisecond saved first, a candidate kept only while the whole plan's error stays within the
// bound, one precision per (group, band), candidates that save nothing never tried.
TEST(QuantSearch, DepthBandsAndTheGreedyOrder) {
  using Band = std::vector<std::pair<int64_t, int64_t>>;
  EXPECT_EQ(pipeline::depth_bands(20), (Band{{0, 5}, {6, 13}, {14, 19}}));
  EXPECT_EQ(pipeline::depth_bands(4), (Band{{0, 0}, {1, 1}, {2, 3}}));
  EXPECT_EQ(pipeline::depth_bands(1), (Band{{0, 0}}));
  auto cand = [](const char* group, int64_t first, Precision p) { return pipeline::QuantCandidate{group, first, first, p}; };
  const std::vector<pipeline::ScoredCandidate> scored = {
      {cand("mlp.point_conv", 0, Precision::kFP8), 10, 0.004},   // 0.0004 / ms: first
      {cand("mlp.point_conv", 0, Precision::kINT8), 12, 0.006},  // 0.0005: its (group, band) is taken
      {cand("attn.qkv", 0, Precision::kFP8), 4, 0.012},          // 0.003: over the bound with the first
      {cand("attn.proj", 1, Precision::kFP8), 5, 0.005},         // 0.001: kept
      {cand("mlp.t_conv", 1, Precision::kFP8), -1, 0.0001},      // slower: never tried
  };
  std::vector<std::string> tried;
  auto error_of = [&](const std::vector<pipeline::QuantCandidate>& plan) {  // errors add
    tried.push_back(plan.back().key());
    double e = 0;
    for (const auto& c : plan)
      for (const auto& s : scored)
        if (s.candidate.key() == c.key()) e += s.error;
    return e;
  };
  const auto plan = pipeline::search_plan(scored, 0.01, error_of);
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].key(), "mlp.point_conv:0-0:fp8");
  EXPECT_EQ(plan[1].key(), "attn.proj:1-1:fp8");
  EXPECT_EQ(tried, (std::vector<std::string>{"mlp.point_conv:0-0:fp8", "attn.proj:1-1:fp8", "attn.qkv:0-0:fp8"}));
  EXPECT_TRUE(pipeline::search_plan(scored, 0.001, error_of).empty()) << "nothing fits a bound below every error";
}
