// `sanastream train` (docs/TRAIN.md): gradients of every DiT block type against finite differences,
// one optimiser step lowering each objective's loss, the CRR loss against its formula, AdamW against
// torch.optim.AdamW's update, exact resume, the data cache, the PNG plot and the CLI end to end; the
// VAE mode's losses against hand computations, its gradients, step, resume and smoke config.
#include <dirent.h>

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"
#include "model/cross_attention.h"
#include "model/dit_cache.h"
#include "model/dit_common.h"
#include "model/gdn_attention.h"
#include "model/ltx2_vae.h"
#include "model/mix_ffn.h"
#include "model/softmax_attention.h"
#include "pipeline/samplers.h"
#include "pipeline/schedule.h"
#include "support/test_env.h"
#include "support/tiny_configs.h"
#include "train/data_cache.h"
#include "train/edit_families.h"
#include "train/objectives.h"
#include "train/optimizer.h"
#include "train/png.h"
#include "train/trainer.h"
#include "train/vae_objectives.h"
#ifdef SANASTREAM_HAS_SENTENCEPIECE
#include "model/sentencepiece_model.h"
#include "pipeline/prompt_encoder.h"
#include "train/text_encoder.h"
#endif

namespace {

using namespace sanastream;
using json = nlohmann::json;
using sanastream::test::run_cli;
using sanastream::test::narrow_ltx2_config;
using sanastream::test::temp_dir;

void expect_same_tensors(const io::TensorMap& a, const io::TensorMap& b, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (const auto& [k, t] : a) EXPECT_TRUE(at::equal(t, b.at(k))) << what << " " << k;
}

// A resumed run against the uninterrupted one: weights, EMA and AdamW moments bit for bit.
void expect_same_training_state(const train::Trainer& a, const train::Trainer& b) {
  expect_same_tensors(a.params(), b.params(), "weights");
  expect_same_tensors(a.ema(), b.ema(), "EMA");
  expect_same_tensors(a.optimizer().exp_avg(), b.optimizer().exp_avg(), "exp_avg");
  expect_same_tensors(a.optimizer().exp_avg_sq(), b.optimizer().exp_avg_sq(), "exp_avg_sq");
}

// Two runs' final checkpoints (CHECKPOINT/FILE) within `atol` weight by weight: data-parallel ranks
// sum their gradients in another order than one process, and AdamW's first steps move a weight by ±lr
// whatever its gradient's size, so rounding in a gradient near 0 can move it by a fraction of lr.
void expect_close_checkpoints(const std::string& a, const std::string& b, const std::string& file, double atol) {
  const io::TensorMap ta = io::load_safetensors(a + "/" + file), tb = io::load_safetensors(b + "/" + file);
  ASSERT_EQ(ta.size(), tb.size()) << file;
  for (const auto& [k, t] : ta) {
    ASSERT_TRUE(tb.count(k)) << file << " " << k;
    EXPECT_TRUE(at::allclose(t, tb.at(k), 0, atol)) << file << " " << k << ": max |diff| "
                                                    << (t - tb.at(k)).abs().max().item<double>();
  }
}

// `train --gpus 2` on the CPU (two processes over Gloo) against one process: the same losses and
// weights (data-parallel ranks compute shares of the one-process step).
void expect_data_parallel_matches_one_process(const std::string& dir, const json& config, int64_t steps) {
  json one = config, two = config;
  one["output"] = dir + "/one";
  two["output"] = dir + "/two";
  write_text_file_atomic(dir + "/one.json", one.dump(1));
  write_text_file_atomic(dir + "/two.json", two.dump(1));
  auto r = run_cli({"train", "--config", dir + "/one.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_cli({"train", "--config", dir + "/two.json", "--gpus", "2", "--json", dir + "/two_report.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(read_text_file(dir + "/two_report.json"))["ranks"], 2);
  const std::vector<double> a = train::read_logged_losses(dir + "/one/log.csv").second,
                            b = train::read_logged_losses(dir + "/two/log.csv").second;
  ASSERT_EQ(a.size(), static_cast<size_t>(steps));
  ASSERT_EQ(b.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5 * std::abs(a[i])) << "step " << i + 1;
  const std::string ck = fmt::format("checkpoints/step_{:08d}", steps);
  // 5 % of one step at the configs' lr of 1e-3.
  expect_close_checkpoints(dir + "/one/" + ck, dir + "/two/" + ck, "dit.safetensors", 5e-5);
  expect_close_checkpoints(dir + "/one/" + ck, dir + "/two/" + ck, "dit_ema.safetensors", 5e-5);
}

// A DiT small enough for finite differences: 2 blocks (block 1 softmax), C 24, 2 heads × 12,
// FFN 16, 4 latent channels, captions 5 × 8.
model::DitShape tiny_shape(model::DitVariant variant = model::DitVariant::kStreaming) {
  model::DitShape s;
  s.depth = 2;
  s.hidden = 24;
  s.heads = 2;
  s.ffn_hidden = 16;
  s.latent_channels = 4;
  s.source_channels = 4;
  s.caption_channels = 8;
  s.caption_length = 5;
  s.softmax_ratio = 0.5;
  s.variant = variant;
  return s;
}

json tiny_shape_json() {
  return {{"depth", 2},
          {"hidden", 24},
          {"heads", 4},  // not DitShape's default: the config must carry it
          {"ffn_hidden", 16},
          {"latent_channels", 4},
          {"source_channels", 4},
          {"caption_channels", 8},
          {"caption_length", 5},
          {"softmax_ratio", 0.5}};
}

train::DitWeights tiny_weights(uint64_t seed = 3) {
  train::DitWeights w;
  io::TensorMap m = model::random_dit_weights(tiny_shape(), seed, at::kFloat);
  w.cfg = model::detect_dit_config(m, {{"num_heads", 2}});
  for (auto& [k, t] : m) w.params[k] = t.clone().set_requires_grad(true);
  return w;
}

at::Tensor randn(at::IntArrayRef shape, uint64_t seed, at::ScalarType dtype = at::kFloat) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn(shape, g, at::TensorOptions().dtype(dtype));
}

// A clip of T latent frames on a 2 × 3 grid with prompts of the tiny shape.
train::TrainSample tiny_sample(int64_t T, bool target, uint64_t seed = 11) {
  train::TrainSample s;
  s.source = randn({1, 4, T, 2, 3}, seed);
  if (target) s.target = randn({1, 4, T, 2, 3}, seed + 1);
  s.prompt_embeds = randn({1, 5, 8}, seed + 2);
  s.reverse_embeds = randn({1, 5, 8}, seed + 3);
  s.null_embeds = randn({1, 5, 8}, seed + 4);
  s.prompt_mask = at::tensor({1, 1, 1, 0, 0}, at::kLong).view({1, 5});
  s.reverse_mask = at::tensor({1, 1, 1, 1, 0}, at::kLong).view({1, 5});
  s.null_mask = at::tensor({1, 0, 0, 0, 0}, at::kLong).view({1, 5});
  return s;
}

// Checks autograd against central differences along a random direction, for every tensor of
// `vars`: f(vars) is a scalar; (f(θ + εd) − f(θ − εd)) / 2ε ≈ ∇f · d within rtol·|·| + 1e-3 (the
// ops' fp32 parts round f by ≈ 1e-6, which the difference quotient divides by 2ε).
void expect_gradients_match(const io::TensorMap& vars, const std::function<at::Tensor(const io::TensorMap&)>& f,
                            double eps, double rtol, const std::string& what) {
  io::TensorMap leaves;
  for (const auto& [k, t] : vars) leaves[k] = t.detach().clone().set_requires_grad(true);
  f(leaves).backward();
  uint64_t seed = 100;
  for (const auto& [k, t] : vars) {
    const at::Tensor d = randn(t.sizes(), seed++, t.scalar_type());
    ASSERT_TRUE(leaves[k].grad().defined()) << what << ": no gradient reaches " << k;
    const double analytic = (leaves[k].grad() * d).sum().item<double>();
    at::NoGradGuard no_grad;
    io::TensorMap plus = vars, minus = vars;
    plus[k] = t + eps * d;
    minus[k] = t - eps * d;
    const double numeric = (f(plus).item<double>() - f(minus).item<double>()) / (2 * eps);
    EXPECT_NEAR(analytic, numeric, rtol * std::abs(numeric) + 1e-3) << what << ": " << k;
  }
}

// The tensors of `w` under prefix `p`, in fp64, plus extra inputs.
io::TensorMap block_vars(const io::TensorMap& w, const std::string& p) {
  io::TensorMap out;
  for (const auto& [k, t] : w)
    if (k.rfind(p, 0) == 0) out[k] = t.to(at::kDouble);
  return out;
}

// Projection of an output on a fixed random tensor: a scalar whose gradient touches every element.
at::Tensor project(const at::Tensor& out, uint64_t seed) {
  return (out.to(at::kDouble) * randn(out.sizes(), seed, at::kDouble)).sum();
}

// ---- Gradients against finite differences (fp64 inputs and weights; the ops keep their fp32 parts) ----

TEST(TrainGrad, GdnBlockMatchesFiniteDifferences) {
  const io::TensorMap w = model::random_dit_weights(tiny_shape(), 1, at::kFloat);
  const model::DitConfig cfg = model::detect_dit_config(w, {{"num_heads", 2}});
  const model::DitGrid g{3, 2, 2};
  const ops::RopeCache rope({cfg.rope_t, cfg.rope_h, cfg.rope_w, cfg.rope_theta}, 64, at::kCPU, at::kDouble);
  const ops::RopeTable table = rope.table(4, g.T, g.H, g.W);  // a later chunk's positions
  // Positive inputs, projections and norm weights keep the feature maps' ReLU away from its kink
  // (a difference quotient across it is meaningless).
  io::TensorMap vars = block_vars(w, "blocks.0.attn.");
  for (const char* k : {"blocks.0.attn.q.weight", "blocks.0.attn.k.weight"}) vars[k] = vars[k].abs();
  for (const char* k : {"blocks.0.attn.q_norm.weight", "blocks.0.attn.k_norm.weight"}) vars[k] = vars[k].abs() + 0.5;
  vars["h"] = randn({1, g.N(), 24}, 5, at::kDouble).abs() + 0.1;
  const ops::GdnState init{randn({1, 2, 12, 12}, 6).mul(0.1), randn({1, 2, 12, 1}, 7).abs().mul(0.1)};
  expect_gradients_match(
      vars,
      [&](const io::TensorMap& v) {
        model::GdnAttention gdn(v, "blocks.0.attn.", 2);
        return project(gdn.forward(v.at("h"), {}, g, table, init, nullptr), 9);
      },
      1e-3, 2e-3, "GDN");
}

TEST(TrainGrad, SoftmaxBlockWithCacheMatchesFiniteDifferences) {
  const io::TensorMap w = model::random_dit_weights(tiny_shape(), 1, at::kFloat);
  const model::DitConfig cfg = model::detect_dit_config(w, {{"num_heads", 2}});
  const ops::RopeCache rope({cfg.rope_t, cfg.rope_h, cfg.rope_w, cfg.rope_theta}, 64, at::kCPU, at::kDouble);
  const int64_t N = 12, context = 8;
  const ops::RopeTable table = rope.table(2, 3, 2, 2);
  io::TensorMap vars = block_vars(w, "blocks.1.attn.");
  vars["h"] = randn({1, N, 24}, 5, at::kDouble);
  const at::Tensor k_ctx = randn({1, 2, context + N, 12}, 6, at::kDouble),
                   v_ctx = randn({1, 2, context + N, 12}, 7, at::kDouble);
  expect_gradients_match(
      vars,
      [&](const io::TensorMap& v) {
        model::SoftmaxAttention sa(v, "blocks.1.attn.", 2);
        return project(sa.forward(v.at("h"), {}, table, k_ctx.clone(), v_ctx.clone(), context), 9);
      },
      1e-3, 2e-3, "softmax (streaming cache)");
}

TEST(TrainGrad, BidirectionalSoftmaxBlockMatchesFiniteDifferences) {
  const io::TensorMap w = model::random_dit_weights(tiny_shape(model::DitVariant::kBidirectional), 1, at::kFloat);
  const model::DitConfig cfg = model::detect_dit_config(w, {{"num_heads", 2}});
  const ops::RopeCache rope({cfg.rope_t, cfg.rope_h, cfg.rope_w, cfg.rope_theta}, 64, at::kCPU, at::kDouble);
  io::TensorMap vars = block_vars(w, "blocks.1.attn.");
  vars["h"] = randn({1, 12, 24}, 5, at::kDouble);
  expect_gradients_match(
      vars,
      [&](const io::TensorMap& v) {
        model::SoftmaxAttention sa(v, "blocks.1.attn.", 2);
        return project(sa.forward(v.at("h"), {}, rope.table(0, 3, 2, 2), {}, {}, 0), 9);
      },
      1e-3, 2e-3, "softmax (bidirectional)");
}

TEST(TrainGrad, CrossAttentionMatchesFiniteDifferences) {
  const io::TensorMap w = model::random_dit_weights(tiny_shape(), 1, at::kFloat);
  io::TensorMap vars = block_vars(w, "blocks.0.cross_attn.");
  vars["x"] = randn({1, 12, 24}, 5, at::kDouble);
  vars["y"] = randn({1, 5, 24}, 6, at::kDouble);
  const at::Tensor bias = ((1 - at::tensor({1., 1., 1., 0., 0.}, at::kDouble)) * -10000.0).view({1, 1, 1, 5});
  expect_gradients_match(
      vars,
      [&](const io::TensorMap& v) {
        model::CrossAttention ca(v, "blocks.0.cross_attn.", 2);
        return project(ca.forward(v.at("x"), {}, ca.project_caption(v.at("y")), bias), 9);
      },
      1e-3, 2e-3, "cross-attention");
}

TEST(TrainGrad, FfnWithTemporalContextMatchesFiniteDifferences) {
  const io::TensorMap w = model::random_dit_weights(tiny_shape(), 1, at::kFloat);
  const model::DitGrid g{3, 2, 2};
  io::TensorMap vars = block_vars(w, "blocks.0.mlp.");
  vars["h"] = randn({1, g.N(), 24}, 5, at::kDouble);
  const at::Tensor left = randn({1, 1, g.S(), 24}, 6, at::kDouble);
  expect_gradients_match(
      vars,
      [&](const io::TensorMap& v) {
        model::MixFfn ffn(v, "blocks.0.mlp.");
        return project(ffn.forward(v.at("h"), {}, g, left, nullptr), 9);
      },
      1e-3, 2e-3, "FFN");
}

TEST(TrainGrad, WholeDitMatchesFiniteDifferences) {
  // Embedders, adaLN modulation, gated residuals and the final layer (fp32 model: looser bounds).
  train::DitWeights w = tiny_weights(1);
  const train::TrainSample s = tiny_sample(3, true);
  io::TensorMap vars;
  for (const char* k : {"x_embedder.proj.weight", "t_embedder.mlp.0.weight", "t_block.1.weight",
                        "y_embedder.y_proj.fc1.weight", "attention_y_norm.weight", "blocks.0.scale_shift_table",
                        "blocks.1.scale_shift_table", "final_layer.scale_shift_table", "final_layer.linear.weight"})
    vars[k] = w.params.at(k).detach();
  expect_gradients_match(
      vars,
      [&](const io::TensorMap& v) {
        io::TensorMap p = w.params;
        for (const auto& [k, t] : v) p[k] = t;
        model::HybridDit dit(p, w.cfg, Runtime{});
        const model::CaptionState c = dit.encode_caption(s.prompt_embeds, s.prompt_mask);
        return project(dit.forward(s.target, s.source, at::full({1}, 500.0), c), 9);
      },
      1e-2, 2e-2, "DiT");
}

// ---- Objectives ----

// Loss before and after one AdamW step, with the same random draws (the generator re-seeded).
template <typename F>
std::pair<double, double> loss_before_after(train::DitWeights& w, F objective) {
  at::Generator g0 = at::make_generator<at::CPUGeneratorImpl>(21);
  const double before = objective(g0);
  train::OptimConfig oc;
  oc.lr = 1e-4;
  train::AdamW opt(w.params, oc);
  opt.step(1, oc.lr);
  at::Generator g1 = at::make_generator<at::CPUGeneratorImpl>(21);
  const double after = objective(g1);
  return {before, after};
}

TEST(TrainObjective, FlowMatchingStepLowersTheLoss) {
  train::DitWeights w = tiny_weights();
  const train::TrainSample s = tiny_sample(3, true);
  train::FlowMatchingConfig cfg;
  cfg.text_dropout = 0;
  auto [before, after] =
      loss_before_after(w, [&](at::Generator& g) { return train::flow_matching_step(w, s, cfg, {}, g, 1.0); });
  EXPECT_GT(before, 0);
  EXPECT_LT(after, before);
}

// The streaming regime of flow matching, two rows of two chunks: chunk 0 against an empty cache is the
// cache-free call; chunk 1 runs against the caches that a t = 0 pass on the target's chunk 0 wrote; the
// value is the chunks' mean, with the rows' σ and noise drawn as the whole-window objective draws them.
// With sink_gap, chunk 1 starts a drawn gap later (its loss then differs from the gap-free one). A step
// lowers it.
TEST(TrainObjective, ChunkedFlowMatchingEqualsItsFormulaAndLearns) {
  train::DitWeights w = tiny_weights();
  const train::TrainSample a = tiny_sample(6, true, 11), b = tiny_sample(6, true, 31);
  train::TrainSample s = a;
  for (auto [dst, x, y] : std::vector<std::tuple<at::Tensor*, at::Tensor, at::Tensor>>{
           {&s.source, a.source, b.source}, {&s.target, a.target, b.target},
           {&s.prompt_embeds, a.prompt_embeds, b.prompt_embeds}, {&s.prompt_mask, a.prompt_mask, b.prompt_mask}})
    *dst = at::cat({x, y}, 0);
  train::FlowMatchingConfig cfg;
  cfg.text_dropout = 0;
  cfg.chunked = true;
  train::RolloutConfig chunks;  // first chunk 3, then 3
  double l1_no_gap = 0;
  for (const int64_t sink_gap : {0, 500}) {
    cfg.sink_gap = sink_gap;
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
    const double got = train::flow_matching_step(w, s, cfg, chunks, g, 1.0);

    at::Generator d = at::make_generator<at::CPUGeneratorImpl>(5);
    std::vector<float> sigmas;
    for (int r = 0; r < 2; ++r) {
      sigmas.push_back(static_cast<float>(train::sample_logit_normal_sigma(cfg, d)));
      train::uniform(d);  // the caption-dropout draw
    }
    const at::Tensor sigma = at::tensor(sigmas), noise = train::randn_like_on(s.target, d);
    const int64_t gap = sink_gap > 0 ? train::uniform_index(sink_gap + 1, d) : 0;
    if (sink_gap > 0) EXPECT_GT(gap, 0);
    double l0 = 0, l1 = 0, l1_alone = 0;
    {
      at::NoGradGuard no_grad;
      const auto dit = w.build(false);
      const model::CaptionState caption = dit->encode_caption(s.prompt_embeds, s.prompt_mask);
      auto chunk = [&](const at::Tensor& t, int64_t c) { return t.narrow(2, 3 * c, 3); };
      auto loss = [&](int64_t c, const model::DitCallOptions& opt) {
        return train::flow_loss(*dit, caption, chunk(s.target, c), chunk(s.source, c), sigma, chunk(noise, c), opt)
            .loss.item<double>();
      };
      l0 = loss(0, {});
      model::StreamCache cache(w.cfg, 2, 2, 3, 3, 3, at::kFloat, at::kCPU);
      model::DitCallOptions opt;
      opt.cache = &cache;
      dit->forward(chunk(s.target, 0), chunk(s.source, 0), at::zeros({2}), caption, opt);
      cache.commit_chunk(3);
      opt.frame_offset = 3 + gap;
      l1 = loss(1, opt);
      model::DitCallOptions no_cache;
      no_cache.frame_offset = 3 + gap;
      l1_alone = loss(1, no_cache);
    }
    EXPECT_NEAR(got, (l0 + l1) / 2, 1e-6 * (l0 + l1)) << "sink_gap " << sink_gap;
    EXPECT_GT(std::abs(l1 - l1_alone), 1e-4 * l1) << "chunk 1 does not read the cache";
    if (sink_gap == 0) l1_no_gap = l1;
    else EXPECT_GT(std::abs(l1 - l1_no_gap), 1e-5 * l1) << "the gap does not reach chunk 1's positions";
  }
  cfg.sink_gap = 0;
  auto [before, after] =
      loss_before_after(w, [&](at::Generator& gen) { return train::flow_matching_step(w, s, cfg, chunks, gen, 1.0); });
  EXPECT_LT(after, before);
}

TEST(TrainObjective, RolloutStepLowersTheLoss) {
  train::DitWeights w = tiny_weights();
  const train::TrainSample s = tiny_sample(6, true);  // two chunks of 3
  train::RolloutConfig rc;
  rc.enabled = true;
  train::CrrConfig cc;
  auto [before, after] = loss_before_after(w, [&](at::Generator& g) {
    const train::RolloutLosses r = train::rollout_step(w, s, rc, cc, g, 1.0);
    EXPECT_EQ(r.chunks, 2);
    return r.rollout;
  });
  EXPECT_GT(before, 0);
  EXPECT_LT(after, before);
}

TEST(TrainObjective, CrrStepLowersTheLossWithoutATarget) {
  train::DitWeights w = tiny_weights();
  const train::TrainSample s = tiny_sample(6, false);
  train::RolloutConfig rc;
  train::CrrConfig cc;
  cc.enabled = true;
  auto [before, after] =
      loss_before_after(w, [&](at::Generator& g) { return train::rollout_step(w, s, rc, cc, g, 1.0).crr; });
  EXPECT_GT(before, 0);
  EXPECT_LT(after, before);
}

TEST(TrainObjective, CrrLossEqualsItsFormula) {
  // Two chunks of 3 latent frames, CRR alone. Independently: the edits from the inference sampler on
  // the same noise, then per chunk x_t = (1 − σ)·source + σ·ε at a step of [1000, 961, 893, 743],
  // v = DiT(x_t | edit, reverse prompt, its own cache), loss = mean((v − (ε − source))²), and the
  // CRR cache refreshed by a t = 0 pass on x0 = x_t − σ·v.
  train::DitWeights w = tiny_weights();
  const train::TrainSample s = tiny_sample(6, false);
  train::RolloutConfig rc;
  train::CrrConfig cc;
  cc.enabled = true;
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
  const double crr = train::rollout_step(w, s, rc, cc, g, 1.0).crr;

  // The same draws in the same order: per chunk the edit's noise, the step index, ε.
  at::Generator r = at::make_generator<at::CPUGeneratorImpl>(5);
  const std::vector<float> steps = pipeline::streaming_timesteps(4);
  std::vector<at::Tensor> edit_noise, eps;
  std::vector<double> sigma;
  for (int c = 0; c < 2; ++c) {
    edit_noise.push_back(at::randn({1, 4, 3, 2, 3}, r, at::TensorOptions().dtype(at::kFloat)));
    const int64_t i = std::min<int64_t>(
        3, static_cast<int64_t>(at::rand({1}, r, at::TensorOptions().dtype(at::kFloat)).item<double>() * 4));
    sigma.push_back(steps[i] / 1000.0);
    eps.push_back(at::randn({1, 4, 3, 2, 3}, r, at::TensorOptions().dtype(at::kFloat)));
  }
  at::NoGradGuard no_grad;
  model::HybridDit dit(w.params, w.cfg, Runtime{});
  const model::CaptionState fwd = dit.encode_caption(s.prompt_embeds, s.prompt_mask);
  const model::CaptionState rev = dit.encode_caption(s.reverse_embeds, s.reverse_mask);
  pipeline::StreamingOptions so;
  so.first_chunk = 3;
  so.cuda_graphs = false;
  pipeline::StreamingSampler sampler(dit, fwd, 1, 2, 3, 3, 3, so);
  model::StreamCache cache(w.cfg, 1, 2, 3, 3, 3, at::kFloat, at::kCPU);
  double expected = 0;
  for (int c = 0; c < 2; ++c) {
    const at::Tensor src = s.source.narrow(2, 3 * c, 3);
    const at::Tensor edit = sampler.step(edit_noise[c], src, c == 1);
    const at::Tensor x_t = (1 - sigma[c]) * src + sigma[c] * eps[c];
    model::DitCallOptions opt;
    opt.frame_offset = 3 * c;
    opt.cache = &cache;
    const at::Tensor v = dit.forward(x_t, edit, at::full({1}, sigma[c] * 1000.0), rev, opt);
    expected += (v - (eps[c] - src)).pow(2).mean().item<double>() / 2;
    dit.forward(x_t - sigma[c] * v, edit, at::zeros({1}), rev, opt);
    cache.commit_chunk(3);
  }
  EXPECT_NEAR(crr, expected, 1e-6 * expected);
}

// ---- Optimiser ----

TEST(TrainOptim, AdamWFollowsTorchUpdateWarmupAndClipping) {
  train::OptimConfig oc;
  oc.lr = 0.1;
  oc.weight_decay = 0.01;
  oc.warmup_steps = 4;
  EXPECT_DOUBLE_EQ(train::learning_rate(oc, 1), 0.025);
  EXPECT_DOUBLE_EQ(train::learning_rate(oc, 9), 0.1);
  at::Tensor p = at::tensor({1.0f, -2.0f}).set_requires_grad(true);
  io::TensorMap params{{"p", p}};
  train::AdamW opt(params, oc);
  const float g1[2] = {0.5f, -1.0f}, g2[2] = {-0.25f, 2.0f};
  double x[2] = {1.0, -2.0}, m[2] = {0, 0}, v[2] = {0, 0};
  for (int t = 1; t <= 2; ++t) {
    const float* g = t == 1 ? g1 : g2;
    p.mutable_grad() = at::tensor({g[0], g[1]});
    const double lr = train::learning_rate(oc, t);
    opt.step(t, lr);
    for (int i = 0; i < 2; ++i) {  // torch.optim.AdamW, in double
      x[i] *= 1 - lr * oc.weight_decay;
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
      const double mh = m[i] / (1 - std::pow(0.9, t)),
                   denom = std::sqrt(v[i]) / std::sqrt(1 - std::pow(0.999, t)) + 1e-8;
      x[i] -= lr * mh / denom;
      EXPECT_NEAR(p[i].item<double>(), x[i], 1e-6) << "step " << t << " element " << i;
    }
    EXPECT_FALSE(p.grad().defined());
  }
  p.mutable_grad() = at::tensor({3.0f, 4.0f});
  EXPECT_NEAR(train::clip_grad_norm(params, 1.0), 5.0, 1e-6);
  EXPECT_NEAR(p.grad().norm().item<double>(), 1.0, 1e-5);
  io::TensorMap ema{{"p", at::tensor({0.0f, 0.0f})}};
  train::update_ema(ema, params, 0.75);
  EXPECT_NEAR(ema["p"][0].item<double>(), 0.25 * p[0].item<double>(), 1e-7);
  // The warm-up: (1 + t) / (10 + t) until it reaches the configured decay; what stays of the
  // initial weights after 800 steps of 0.999.
  EXPECT_DOUBLE_EQ(train::ema_decay(0.999, 1), 2.0 / 11.0);
  EXPECT_DOUBLE_EQ(train::ema_decay(0.999, 100), 101.0 / 110.0);
  EXPECT_DOUBLE_EQ(train::ema_decay(0.999, 9000), 0.999);
  double kept = 1;
  for (int64_t t = 1; t <= 800; ++t) kept *= train::ema_decay(0.999, t);
  EXPECT_LT(kept, 1e-19);
  EXPECT_NEAR(std::pow(0.999, 800), 0.449, 1e-3);
}

// ---- Config, data cache, plot ----

// Sample i's prompt and reverse prompt: random 5 × 8 embeddings (seeded by i), 3 and 2 valid tokens.
void set_test_prompts(train::CacheSample& s, int i, const std::string& prompt, const std::string& reverse) {
  s.prompt_embeds = randn({5, 8}, 90 + i);
  s.prompt_mask = at::tensor({1, 1, 1, 0, 0}, at::kLong);
  s.reverse_embeds = randn({5, 8}, 130 + i);
  s.reverse_mask = at::tensor({1, 1, 0, 0, 0}, at::kLong);
  s.prompt = prompt;
  s.reverse_prompt = reverse;
}

// A latent cache of `n` clips of 6 latent frames on 64 × 96 pixels (2 × 3 tokens); odd clips lack a target.
std::string write_latent_cache(const std::string& dir, int n) {
  train::DataCacheWriter writer(dir, {train::CacheKind::kLatents, 96, 64, 41});
  writer.set_null_prompt(randn({5, 8}, 1), at::tensor({1, 0, 0, 0, 0}, at::kLong));
  for (int i = 0; i < n; ++i) {
    train::CacheSample s;
    s.source = randn({4, 6, 2, 3}, 10 + i);
    if (i % 2 == 0) s.target = randn({4, 6, 2, 3}, 50 + i);
    set_test_prompts(s, i, "make it snowy", "remove the snow");
    writer.add(s);
  }
  writer.finish();
  return dir;
}

json smoke_config(const std::string& cache, const std::string& out) {
  return {{"format_version", 1},
          {"output", out},
          {"seed", 4},
          {"max_steps", 4},
          {"dit", {{"random", tiny_shape_json()}, {"seed", 2}}},
          {"optim", {{"lr", 1e-3}, {"warmup_steps", 2}, {"weight_decay", 0.01}, {"grad_clip", 1.0}}},
          {"ema", {{"decay", 0.9}}},
          {"flow_matching", {{"enabled", true}}},
          {"rollout", {{"enabled", true}}},
          {"crr", {{"enabled", true}}},
          {"data", {{"cache", cache}, {"batch", 2}}}};
}

void expect_config_error(json j, const std::string& message) {
  try {
    train::parse_train_config(j, "train.json");
    ADD_FAILURE() << "no error for " << j.dump();
  } catch (const Error& e) {
    EXPECT_EQ(e.message(), message);
  }
}

TEST(TrainConfig, ParsesAndNamesEachProblem) {
  const json good = smoke_config("cache", "run");
  const train::TrainConfig c = train::parse_train_config(good, "dir/train.json");
  EXPECT_EQ(c.output, "dir/run");
  EXPECT_EQ(c.data.cache, "dir/cache");
  EXPECT_EQ(c.data.batch, 2);
  EXPECT_TRUE(c.rollout.enabled && c.crr.enabled);
  EXPECT_DOUBLE_EQ(c.crr.weight, 0.5);
  EXPECT_EQ(c.dit.random->depth, 2);
  EXPECT_EQ(c.dit.random->heads, 4);
  EXPECT_FALSE(c.flow_matching.chunked);
  json j = good;
  j["flow_matching"]["chunked"] = true;
  EXPECT_TRUE(train::parse_train_config(j, "dir/train.json").flow_matching.chunked);
  EXPECT_TRUE(train::parse_train_config(j, "dir/train.json").to_json()["flow_matching"]["chunked"].get<bool>());
  j["flow_matching"]["chunked"] = "yes";
  expect_config_error(j, "train.json: flow_matching.chunked: expected true or false, got \"yes\"");
  j["flow_matching"]["chunked"] = false;
  j["flow_matching"]["sink_gap"] = 40;
  expect_config_error(j, "train.json: flow_matching.sink_gap: needs chunked: true");
  j["flow_matching"]["chunked"] = true;
  EXPECT_EQ(train::parse_train_config(j, "dir/train.json").flow_matching.sink_gap, 40);
  j["flow_matching"]["sink_gap"] = 1001;
  expect_config_error(j, "train.json: flow_matching.sink_gap: expected at most 1000, got 1001");
  j = good;
  j["optim"]["lr"] = -1;
  expect_config_error(j, "train.json: optim.lr: expected a number >= 0, got -1");
  j = good;
  j["optim"]["lr_max"] = 1;
  expect_config_error(j, "train.json: optim.lr_max: unknown key");
  j = good;
  j.erase("dit");
  expect_config_error(j, "train.json: dit: required key missing");
  j = good;
  j["dit"]["init"] = "pkg";
  expect_config_error(j, "train.json: dit: expected exactly one of init (weights) and random, got both");
  j = good;
  j["rollout"]["first_chunk"] = 7;
  expect_config_error(j, "train.json: rollout.first_chunk: expected 3, 4 or 5, got 7");
  j = good;
  j["dtype"] = "fp16";
  expect_config_error(j, "train.json: dtype: expected bf16 or fp32, got 'fp16'");
  j = good;
  for (const char* o : {"flow_matching", "rollout", "crr"}) j[o]["enabled"] = false;
  expect_config_error(j, "train.json: expected at least one objective enabled (flow_matching, rollout, crr), got none");
}

// The committed configs (the demo model's recipe among them) are valid configs.
TEST(TrainConfig, EveryCommittedConfigParses) {
  const std::string dir = std::string(SANASTREAM_SOURCE_DIR) + "/configs/train";
  DIR* d = opendir(dir.c_str());
  ASSERT_NE(d, nullptr) << dir;
  int parsed = 0;
  while (const dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() < 5 || name.substr(name.size() - 5) != ".json") continue;
    const std::string path = dir + "/" + name;
    EXPECT_NO_THROW(train::parse_train_config(json::parse(read_text_file(path)), path)) << name;
    ++parsed;
  }
  closedir(d);
  EXPECT_GE(parsed, 10);
}

TEST(TrainConfig, EditsAndLongCacheNameEachProblem) {
  json j = smoke_config("cache", "run");
  j["text_encoder"] = {{"trainable", true}, {"init", "te"}};
  j["data"]["vae"] = "vae";
  j["data"]["edits"] = {"sepia", "blur"};
  j["data"]["long_cache"] = "long";
  j["rollout"]["enabled"] = false;
  const train::TrainConfig c = train::parse_train_config(j, "dir/train.json");
  EXPECT_EQ(c.data.edits, (std::vector<std::string>{"sepia", "blur"}));
  EXPECT_EQ(c.data.long_cache, "dir/long");
  json bad = j;
  bad["data"]["edits"] = {"sepia", "neon"};
  expect_config_error(bad, "train.json: data.edits: unknown edit family 'neon' (train/edit_families.h lists them)");
  bad = j;
  bad["data"].erase("vae");
  expect_config_error(bad,
                      "train.json: data.edits: expected the DiT mode with data.vae (decodes and encodes the clips) "
                      "and text_encoder.trainable (encodes the families' prompts)");
  bad = j;
  bad["rollout"]["enabled"] = true;
  expect_config_error(bad,
                      "train.json: data.edits: its batch is one sample of data.batch clips, for flow matching; "
                      "expected rollout off and CRR only on data.long_cache");
  bad = j;
  bad["crr"]["enabled"] = false;
  expect_config_error(bad,
                      "train.json: data.long_cache: expected crr.enabled and data.edits (its clips have no target or "
                      "prompts)");
}

TEST(TrainData, ManifestCacheAndOrder) {
  const std::string dir = temp_dir("train_data");
  {
    std::ofstream m(dir + "/manifest.jsonl");
    m << R"({"source_video": "a.mp4", "prompt": "make it snowy", "reverse_prompt": "remove the snow"})"
      << "\n\n"
      << R"({"source_video": "/v/b.mp4", "target_video": "b_edit.mp4", "prompt": "p", "reverse_prompt": "q"})"
      << "\n";
  }
  const auto rows = train::read_manifest(dir + "/manifest.jsonl");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].source_video, dir + "/a.mp4");
  EXPECT_EQ(rows[0].target_video, "");
  EXPECT_EQ(rows[1].source_video, "/v/b.mp4");
  EXPECT_EQ(rows[1].target_video, dir + "/b_edit.mp4");
  {
    std::ofstream m(dir + "/bad.jsonl");
    m << R"({"source_video": "a.mp4", "prompt": "p"})"
      << "\n";
  }
  try {
    train::read_manifest(dir + "/bad.jsonl");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.message(), dir + "/bad.jsonl:1: expected prompt and reverse_prompt together");
  }

  write_latent_cache(dir + "/cache", 3);
  const train::DataCache cache(dir + "/cache");
  EXPECT_EQ(cache.size(), 3);
  EXPECT_EQ(cache.header().frames, 41);
  const train::CacheSample s = cache.load(1);
  EXPECT_FALSE(s.target.defined());
  EXPECT_TRUE(at::equal(s.source, randn({4, 6, 2, 3}, 11)));
  EXPECT_TRUE(cache.load(0).target.defined());

  train::DataOrder a(3, 9), b(3, 9);
  std::vector<int64_t> seen;
  for (int i = 0; i < 7; ++i) seen.push_back(a.next());
  b.seek(a.epoch(), a.position());
  EXPECT_EQ(a.next(), b.next());
  std::vector<int64_t> first(seen.begin(), seen.begin() + 3);
  std::sort(first.begin(), first.end());
  EXPECT_EQ(first, (std::vector<int64_t>{0, 1, 2}));  // each epoch visits every sample once
}

TEST(TrainData, StartsClipsWithoutPromptsAndHalfLatents) {
  const std::string dir = temp_dir("train_data_edits");
  {
    std::ofstream m(dir + "/manifest.jsonl");
    m << R"({"source_video": "a.mp4", "start": 2.5})" << "\n"
      << R"({"source_video": "b.mp4", "prompt": "p", "reverse_prompt": "q"})" << "\n";
  }
  const auto rows = train::read_manifest(dir + "/manifest.jsonl");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_DOUBLE_EQ(rows[0].start, 2.5);
  EXPECT_EQ(rows[0].prompt, "");
  EXPECT_DOUBLE_EQ(rows[1].start, 0);
  auto manifest_error = [&](const std::string& line) {
    std::ofstream(dir + "/bad.jsonl") << line << "\n";
    try {
      train::read_manifest(dir + "/bad.jsonl");
      return std::string("no error");
    } catch (const Error& e) {
      return e.message();
    }
  };
  EXPECT_EQ(manifest_error(R"({"source_video": "a.mp4", "start": -1})"),
            dir + "/bad.jsonl:1: start: expected seconds >= 0, got -1");

  // fp16 latents of a VAE compressing 4× in time and 8× in space, clips without prompts.
  {
    train::DataCacheWriter writer(dir + "/cache", {train::CacheKind::kLatents, 24, 16, 9, "", 8, 4});
    writer.set_null_prompt(randn({5, 8}, 1), at::tensor({1, 0, 0, 0, 0}, at::kLong));
    train::CacheSample s;
    s.source = randn({4, 3, 2, 3}, 5).to(at::kHalf);
    writer.add(s);
    s.source = randn({4, 3, 2, 2}, 5).to(at::kHalf);
    try {
      writer.add(s);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.message(), "data cache: expected source latents [Cl, 3, 2, 3] fp32 or fp16, got (4, 3, 2, 2) Half");
    }
    writer.finish();
  }
  const train::DataCache cache(dir + "/cache");
  EXPECT_EQ(cache.header().spatial_ratio, 8);
  EXPECT_EQ(cache.header().temporal_ratio, 4);
  const train::CacheSample s = cache.load(0);
  EXPECT_EQ(s.source.scalar_type(), at::kHalf);
  EXPECT_TRUE(at::equal(s.source, randn({4, 3, 2, 3}, 5).to(at::kHalf)));
  EXPECT_FALSE(s.prompt_embeds.defined());
  EXPECT_EQ(s.prompt, "");
}

TEST(TrainPlot, PngDecodesToThePixels) {
  const std::string dir = temp_dir("train_png");
  at::Tensor img = at::randint(0, 256, {5, 7, 3}, at::kByte);
  train::write_png(dir + "/a.png", img);
  const std::string png = read_text_file(dir + "/a.png");
  ASSERT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  // IHDR at 8 (25 bytes), then IDAT: length, type, zlib data.
  const size_t at_idat = 8 + 25;
  EXPECT_EQ(png.substr(at_idat + 4, 4), "IDAT");
  const uint32_t n = (uint8_t(png[at_idat]) << 24) | (uint8_t(png[at_idat + 1]) << 16) |
                     (uint8_t(png[at_idat + 2]) << 8) | uint8_t(png[at_idat + 3]);
  std::string raw(5 * (7 * 3 + 1), '\0');
  uLongf raw_size = raw.size();
  ASSERT_EQ(uncompress(reinterpret_cast<Bytef*>(&raw[0]), &raw_size,
                       reinterpret_cast<const Bytef*>(png.data() + at_idat + 8), n),
            Z_OK);
  for (int y = 0; y < 5; ++y) {
    EXPECT_EQ(raw[y * 22], '\0');
    EXPECT_EQ(std::memcmp(&raw[y * 22 + 1], img[y].contiguous().data_ptr<uint8_t>(), 21), 0);
  }
  train::plot_loss_png(dir + "/loss.png", {1, 2, 3}, {3.0, 2.0, 2.5});
  EXPECT_TRUE(path_exists(dir + "/loss.png"));
}

// ---- The trainer: exact resume, the frame cache through the VAE, the CLI ----

TEST(TrainResume, SaveLoadResumeReproducesTheUninterruptedRun) {
  const std::string dir = temp_dir("train_resume");
  write_latent_cache(dir + "/cache", 3);
  auto config = [&](const std::string& out, int64_t steps) {
    json j = smoke_config(dir + "/cache", dir + "/" + out);
    j["max_steps"] = steps;
    return train::parse_train_config(j, dir + "/train.json");
  };
  train::Trainer whole(config("whole", 4));
  const train::TrainReport rw = whole.run();
  EXPECT_TRUE(rw.finished);
  EXPECT_EQ(rw.last_step, 4);
  EXPECT_GT(rw.last.crr, 0);
  EXPECT_GT(rw.last.flow_matching + rw.last.rollout, 0);
  {
    train::Trainer first(config("split", 2));
    EXPECT_FALSE(first.run().resumed);
  }
  train::Trainer second(config("split", 4));
  EXPECT_EQ(second.current_step(), 2);
  const train::TrainReport rs = second.run();
  EXPECT_TRUE(rs.resumed);
  EXPECT_EQ(rs.first_step, 2);
  EXPECT_DOUBLE_EQ(rs.last.loss, rw.last.loss);
  expect_same_training_state(whole, second);
  // The split run's log has each step once; the checkpoint holds official keys.
  const std::string log = read_text_file(dir + "/split/log.csv");
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 5);
  const io::TensorMap ckpt = io::load_safetensors(rs.checkpoint + "/dit.safetensors");
  EXPECT_TRUE(ckpt.count("blocks.1.attn.q.weight") && ckpt.count("final_layer.linear.weight"));
  EXPECT_TRUE(at::equal(ckpt.at("t_block.1.weight"), second.params().at("t_block.1.weight")));
}

TEST(TrainCli, SmokeRunResumesAndReports) {
  const std::string dir = temp_dir("train_cli");
  write_latent_cache(dir + "/cache", 2);
  json j = smoke_config("cache", "run");
  j["max_steps"] = 3;
  j["data"]["batch"] = 1;
  write_text_file_atomic(dir + "/train.json", j.dump(1));
  // A time limit shorter than a step: one step, then a checkpoint.
  auto r = run_cli({"train", "--config", dir + "/train.json", "--time-limit", "0.001", "--json", dir + "/a.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json a = json::parse(read_text_file(dir + "/a.json"));
  EXPECT_EQ(a["last_step"], 1);
  EXPECT_FALSE(a["finished"].get<bool>());
  EXPECT_GT(a["steps_per_s"].get<double>(), 0);
  EXPECT_GT(a["peak_host_mib"].get<double>(), 0);
  // Steps 2..3, the last recorded by the op profiler: its table has the phases and ATen operators.
  r = run_cli({"train", "--config", dir + "/train.json", "--profile", "1", "--json", dir + "/b.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string table = read_text_file(dir + "/run/profile.txt");
  for (const char* row : {"train::sample", "train::flow_matching", "train::optimizer", "aten::matmul"})
    EXPECT_NE(table.find(row), std::string::npos) << row << " missing from\n" << table;
  json b = json::parse(read_text_file(dir + "/b.json"));
  EXPECT_TRUE(b["resumed"].get<bool>());
  EXPECT_EQ(b["first_step"], 1);
  EXPECT_TRUE(b["finished"].get<bool>());
  EXPECT_TRUE(path_exists(dir + "/run/loss.png"));
  EXPECT_EQ(read_text_file(dir + "/run/checkpoints/latest"), "step_00000003\n");
  j["optim"] = {{"lr", "fast"}};
  write_text_file_atomic(dir + "/bad.json", j.dump(1));
  r = run_cli({"train", "--config", dir + "/bad.json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err_lines(), 1);
  EXPECT_NE(r.err.find("optim.lr: expected a number >= 0, got \"fast\""), std::string::npos) << r.err;
  EXPECT_EQ(run_cli({"train"}).exit_code, 2);
}

TEST(TrainCli, DataParallelOnTwoProcessesTakesTheOneProcessSteps) {
#ifndef SANASTREAM_HAS_GLOO
  GTEST_SKIP() << "this build has no Gloo process group (CPU ranks)";
#endif
  // Samples 0 and 1 of each batch on ranks 0 and 1, each with its rollout and CRR.
  const std::string dir = temp_dir("train_data_parallel");
  write_latent_cache(dir + "/cache", 3);
  json j = smoke_config(dir + "/cache", "unused");
  j["max_steps"] = 2;
  expect_data_parallel_matches_one_process(dir, j, 2);
  // One error line before any rank starts.
  j["device"] = "cuda:1";
  write_text_file_atomic(dir + "/bad.json", j.dump(1));
  const auto r = run_cli({"train", "--config", dir + "/bad.json", "--gpus", "2"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err_lines(), 1) << r.err;
  EXPECT_NE(r.err.find("--gpus 2: expected device \"cuda\" (each rank takes its own GPU) or \"cpu\", got \"cuda:1\""),
            std::string::npos)
      << r.err;
  EXPECT_EQ(run_cli({"train", "--config", dir + "/one.json", "--gpus", "0"}).exit_code, 2);
}

// ---- The VAE mode ----

train::VaeWeights tiny_vae(at::ScalarType dtype, uint64_t seed = 5) {
  train::VaeWeights w;
  w.cfg = model::parse_ltx2_vae_config(narrow_ltx2_config(true));
  w.rt = Runtime{at::kCPU, dtype};
  for (auto& [k, t] : model::random_ltx2_vae_weights(w.cfg, seed))
    w.params[k] = t.to(dtype).clone().set_requires_grad(true);
  return w;
}

// Frames in [−1, 1] (uniform).
at::Tensor uniform_frames(at::IntArrayRef shape, uint64_t seed, at::ScalarType dtype = at::kFloat) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::rand(shape, g, at::TensorOptions().dtype(dtype)) * 2 - 1;
}

TEST(TrainVaeLoss, SsimHaarAndCharbonnierMatchHandComputations) {
  const at::Tensor same = uniform_frames({2, 3, 16, 16}, 1, at::kDouble);
  EXPECT_NEAR(train::mean_ssim(same, same).item<double>(), 1.0, 1e-12);
  EXPECT_EQ(train::haar_loss(same, same).item<double>(), 0.0);

  // A small random pair, 2 channels of 12 × 14 (2 × 4 window positions), by hand in double.
  const at::Tensor x = uniform_frames({1, 2, 12, 14}, 2, at::kDouble), y = uniform_frames({1, 2, 12, 14}, 3, at::kDouble);
  const auto X = x.accessor<double, 4>(), Y = y.accessor<double, 4>();
  double g[11], gsum = 0;
  for (int i = 0; i < 11; ++i) gsum += g[i] = std::exp(-(i - 5) * (i - 5) / (2 * 1.5 * 1.5));
  double ssim = 0;
  int positions = 0;
  for (int c = 0; c < 2; ++c)
    for (int oy = 0; oy + 11 <= 12; ++oy)
      for (int ox = 0; ox + 11 <= 14; ++ox, ++positions) {
        double ma = 0, mb = 0, saa = 0, sbb = 0, sab = 0;
        for (int i = 0; i < 11; ++i)
          for (int j = 0; j < 11; ++j) {
            const double wgt = g[i] * g[j] / (gsum * gsum);
            const double a = (X[0][c][oy + i][ox + j] + 1) / 2, b = (Y[0][c][oy + i][ox + j] + 1) / 2;
            ma += wgt * a;
            mb += wgt * b;
            saa += wgt * a * a;
            sbb += wgt * b * b;
            sab += wgt * a * b;
          }
        const double c1 = 1e-4, c2 = 9e-4, va = saa - ma * ma, vb = sbb - mb * mb, cov = sab - ma * mb;
        ssim += (2 * ma * mb + c1) * (2 * cov + c2) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
      }
  EXPECT_EQ(positions, 16);
  EXPECT_NEAR(train::mean_ssim(x, y).item<double>(), ssim / positions, 1e-12);

  double haar = 0, charb = 0;
  for (int c = 0; c < 2; ++c)
    for (int r = 0; r < 12; r += 2)
      for (int q = 0; q < 14; q += 2) {
        auto bands = [&](const decltype(X)& F, double out[3]) {
          const double a = F[0][c][r][q], b = F[0][c][r][q + 1], d0 = F[0][c][r + 1][q], d1 = F[0][c][r + 1][q + 1];
          out[0] = (a + b - d0 - d1) / 2;  // LH: rows differ
          out[1] = (a - b + d0 - d1) / 2;  // HL: columns differ
          out[2] = (a - b - d0 + d1) / 2;  // HH
        };
        double bx[3], by[3];
        bands(X, bx);
        bands(Y, by);
        for (int k = 0; k < 3; ++k) haar += std::abs(bx[k] - by[k]);
      }
  EXPECT_NEAR(train::haar_loss(x, y).item<double>(), haar / (3 * 2 * 6 * 7), 1e-12);
  for (int c = 0; c < 2; ++c)
    for (int r = 0; r < 12; ++r)
      for (int q = 0; q < 14; ++q) charb += std::sqrt(std::pow(X[0][c][r][q] - Y[0][c][r][q], 2) + 0.01);
  EXPECT_NEAR(train::charbonnier_loss(x, y, 0.1).item<double>(), charb / (2 * 12 * 14), 1e-12);

  // Their gradients w.r.t. the output frames against central differences (double, a step far below
  // the distance of any Haar difference or Charbonnier residual from its kink).
  const train::VaeLossConfig cfg;
  auto total = [&](const at::Tensor& out) {
    return train::reconstruction_losses(out.unsqueeze(2), y.unsqueeze(2), cfg).total;
  };
  const at::Tensor xg = x.clone().set_requires_grad(true);
  total(xg).backward();
  const at::Tensor dir = randn(x.sizes(), 7, at::kDouble);
  const double eps = 1e-7, numeric = (total(x + eps * dir).item<double>() - total(x - eps * dir).item<double>()) / (2 * eps);
  const double analytic = (xg.grad() * dir).sum().item<double>();
  EXPECT_NEAR(numeric, analytic, 1e-6 * std::abs(analytic) + 1e-7);
}

// The reconstruction loss through the whole tiny VAE (encoder, causal decoder) in fp64 against
// central differences along a random direction of a few weights; the VAE's per-pixel norms run in
// fp32 and bound the agreement.
TEST(TrainVaeGrad, ReconstructionLossMatchesFiniteDifferences) {
  train::VaeWeights w = tiny_vae(at::kDouble);
  const at::Tensor clip = uniform_frames({1, 3, 9, 64, 64}, 4, at::kDouble);
  // Smooth losses only: the Haar L1's kinks (and Charbonnier's at a small ε) put central differences
  // off by the crossings a step makes; their gradients are checked on frames below.
  train::VaeLossConfig cfg;
  cfg.charbonnier_eps = 0.5;
  cfg.ssim = 1.0;
  cfg.haar = 0.0;
  train::vae_step(w, clip, cfg, 1.0);
  auto loss = [&] {
    at::NoGradGuard no_grad;
    return train::vae_reconstruction(*w.build(), clip, cfg).total.item<double>();
  };
  int checked = 0;
  for (const std::string key : {"encoder.conv_in.conv.weight", "encoder.down_blocks.1.resnets.0.conv1.conv.weight",
                                "decoder.mid_block.resnets.0.conv2.conv.bias", "decoder.conv_out.conv.weight"}) {
    ASSERT_TRUE(w.params.count(key)) << key;
    at::Tensor p = w.params.at(key);
    ASSERT_TRUE(p.grad().defined()) << key;
    const at::Tensor dir = randn(p.sizes(), 20 + checked, at::kDouble);
    const double analytic = (p.grad() * dir).sum().item<double>(), eps = 1e-4;
    double plus = 0, minus = 0;
    {
      at::NoGradGuard no_grad;
      p.add_(dir, eps);
      plus = loss();
      p.add_(dir, -2 * eps);
      minus = loss();
      p.add_(dir, eps);
    }
    const double numeric = (plus - minus) / (2 * eps);
    EXPECT_GT(std::abs(analytic), 1e-3) << key;
    EXPECT_NEAR(numeric, analytic, 2e-3 * std::abs(analytic) + 1e-4) << key;
    ++checked;
  }
}

TEST(TrainVaeObjective, OneStepLowersTheLoss) {
  train::VaeWeights w = tiny_vae(at::kFloat);
  const at::Tensor clip = uniform_frames({1, 3, 9, 64, 64}, 6);
  const train::VaeLossConfig cfg;
  train::OptimConfig o;
  o.lr = 1e-3;
  train::AdamW opt(w.params, o);
  const train::VaeLosses before = train::vae_step(w, clip, cfg, 1.0);
  EXPECT_NEAR(before.total.item<double>(), before.charbonnier + 0.2 * before.ssim + 0.5 * before.haar, 1e-5);
  opt.step(1, o.lr);
  at::NoGradGuard no_grad;
  const double after = train::vae_reconstruction(*w.build(), clip, cfg).total.item<double>();
  EXPECT_LT(after, before.total.item<double>());
}

// Distillation: the L1 between the student's causal decode and a teacher's of the same latents; a
// step on it alone lowers it.
TEST(TrainVaeObjective, DistillationIsTheL1ToTheTeachersDecodeAndAStepLowersIt) {
  train::VaeWeights w = tiny_vae(at::kFloat);
  const model::Ltx2Vae teacher(model::random_ltx2_vae_weights(w.cfg, 9), w.cfg, Runtime{});
  const at::Tensor clip = uniform_frames({1, 3, 9, 64, 64}, 6);
  train::VaeLossConfig cfg;
  cfg.teacher = 2.0;
  {
    at::NoGradGuard no_grad;
    const auto student = w.build();
    const at::Tensor z = student->encode(clip);
    const double expected = (student->decode(z, model::VaeDecoderKind::kCausal) -
                             teacher.decode(z, model::VaeDecoderKind::kCausal))
                                .abs()
                                .mean()
                                .item<double>();
    const train::VaeLosses l = train::vae_reconstruction(*student, clip, cfg, &teacher);
    EXPECT_NEAR(l.teacher, expected, 1e-6);
    EXPECT_NEAR(l.total.item<double>(), l.charbonnier + 0.2 * l.ssim + 0.5 * l.haar + 2.0 * expected, 1e-5);
  }
  cfg = train::VaeLossConfig{0, 1e-3, 0, 0, 1.0};
  train::OptimConfig o;
  o.lr = 1e-3;
  train::AdamW opt(w.params, o);
  const double before = train::vae_step(w, clip, cfg, 1.0, &teacher).teacher;
  opt.step(1, o.lr);
  at::NoGradGuard no_grad;
  EXPECT_LT(train::vae_reconstruction(*w.build(), clip, cfg, &teacher).teacher, before);
}

// A frame cache of `n` clips of 9 frames at 72 × 72 (random pixels, prompts as the latent cache's).
std::string write_frame_cache(const std::string& dir, int n) {
  train::DataCacheWriter writer(dir, {train::CacheKind::kFrames, 72, 72, 9});
  writer.set_null_prompt(randn({5, 8}, 1), at::tensor({1, 0, 0, 0, 0}, at::kLong));
  for (int i = 0; i < n; ++i) {
    train::CacheSample s;
    s.source = (randn({9, 72, 72, 3}, 10 + i) * 50 + 128).clamp(0, 255).to(at::kByte);
    set_test_prompts(s, i, "p", "q");
    writer.add(s);
  }
  writer.finish();
  return dir;
}

// The narrow LTX-2 VAE (16 latent channels, 8× time, 32× space) as a VAE directory, seeded weights.
std::string write_vae_dir(const std::string& dir) {
  train::make_directories(dir);
  write_text_file_atomic(dir + "/config.json", narrow_ltx2_config(true).dump());
  io::save_safetensors(dir + "/diffusion_pytorch_model.safetensors",
                       model::random_ltx2_vae_weights(model::parse_ltx2_vae_config(narrow_ltx2_config(true)), 9));
  return dir;
}

json vae_smoke_config(const std::string& cache, const std::string& out) {
  return {{"format_version", 1},
          {"output", out},
          {"seed", 4},
          {"max_steps", 4},
          {"optim", {{"lr", 1e-3}, {"warmup_steps", 2}, {"weight_decay", 0.01}, {"grad_clip", 1.0}}},
          {"ema", {{"decay", 0.9}}},
          {"vae", {{"enabled", true}, {"random", narrow_ltx2_config(true)}, {"seed", 2}}},
          {"data", {{"cache", cache}, {"width", 64}, {"height", 64}, {"crop_min", 0.8}, {"batch", 2}}}};
}

TEST(TrainVaeConfig, ParsesAndNamesEachProblem) {
  const json good = vae_smoke_config("cache", "run");
  const train::TrainConfig c = train::parse_train_config(good, "dir/train.json");
  EXPECT_TRUE(c.vae.enabled);
  EXPECT_EQ(c.vae.random->latent_channels, 16);
  EXPECT_DOUBLE_EQ(c.vae.losses.ssim, 0.2);
  json j = good;
  j["dit"] = {{"random", tiny_shape_json()}};
  expect_config_error(j, "train.json: dit: not used in the VAE mode (vae.enabled)");
  j = good;
  j["vae"]["losses"] = {{"ssim", -1}};
  expect_config_error(j, "train.json: vae.losses.ssim: expected a number >= 0, got -1");
  j = good;
  j["vae"]["losses"] = {{"l2", 1}};
  expect_config_error(j, "train.json: vae.losses.l2: unknown key");
  j = good;
  j["vae"].erase("random");
  expect_config_error(j, "train.json: vae: expected exactly one of init (weights) and random, got neither");
  j = good;
  j["data"]["vae"] = "pkg";
  expect_config_error(j, "train.json: data.vae: not used in the VAE mode (the trained VAE encodes)");
  j = good;
  j["vae"]["teacher"] = {{"weight", 1}};
  expect_config_error(j, "train.json: vae.teacher.init: expected the teacher's package or VAE directory, got nothing");
  j = good;
  j["vae"]["teacher"] = {{"init", "t"}};
  EXPECT_EQ(train::parse_train_config(j, "dir/train.json").vae.teacher, "dir/t");
  EXPECT_DOUBLE_EQ(train::parse_train_config(j, "dir/train.json").vae.losses.teacher, 1.0);
  j = good;
  j["vae"]["random"]["timestep_conditioning"] = true;
  try {
    train::parse_train_config(j, "train.json");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.message().rfind("train.json: vae.random: ", 0), 0u) << e.message();
  }
}

TEST(TrainVaeResume, SaveLoadResumeReproducesTheUninterruptedRun) {
  const std::string dir = temp_dir("train_vae_resume");
  write_frame_cache(dir + "/cache", 3);
  write_vae_dir(dir + "/teacher");  // the teacher: another seed of the same structure
  auto config = [&](const std::string& out, int64_t steps) {
    json j = vae_smoke_config(dir + "/cache", dir + "/" + out);
    j["max_steps"] = steps;
    j["vae"]["teacher"] = {{"init", "teacher"}, {"weight", 0.5}};
    return train::parse_train_config(j, dir + "/train.json");
  };
  train::Trainer whole(config("whole", 4));
  const train::TrainReport rw = whole.run();
  EXPECT_TRUE(rw.finished);
  EXPECT_GT(rw.last.charbonnier, 0);
  EXPECT_GT(rw.last.ssim, 0);
  EXPECT_GT(rw.last.haar, 0);
  EXPECT_GT(rw.last.teacher, 0);
  {
    train::Trainer first(config("split", 2));
    EXPECT_FALSE(first.run().resumed);
  }
  train::Trainer second(config("split", 4));
  EXPECT_EQ(second.current_step(), 2);
  const train::TrainReport rs = second.run();
  EXPECT_TRUE(rs.resumed);
  EXPECT_DOUBLE_EQ(rs.last.loss, rw.last.loss);
  expect_same_training_state(whole, second);
  const std::string log = read_text_file(dir + "/split/log.csv");
  EXPECT_EQ(log.substr(0, log.find('\n')), "step,lr,loss,charbonnier,ssim,haar,teacher,grad_norm,step_seconds");
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 5);
  // The checkpoint's vae/ is a VAE directory: it loads and reconstructs as the trainer's weights do.
  const auto vae = model::load_ltx2_vae(model::resolve_ltx2_vae_source(rs.checkpoint + "/vae"), Runtime{});
  const at::Tensor clip = uniform_frames({1, 3, 9, 64, 64}, 8);
  at::NoGradGuard no_grad;
  train::VaeWeights trained;
  trained.params = second.params();
  trained.cfg = vae->config();
  EXPECT_TRUE(at::equal(vae->decode(vae->encode(clip), model::VaeDecoderKind::kCausal),
                        trained.build()->decode(trained.build()->encode(clip), model::VaeDecoderKind::kCausal)));
  EXPECT_TRUE(path_exists(rs.checkpoint + "/vae_ema/config.json"));
}

// configs/train/vae_tiny_cpu.json through the CLI on a frame cache written here.
TEST(TrainVaeCli, TinyCpuConfigRunsEndToEnd) {
  const std::string dir = temp_dir("train_vae_cli");
  write_frame_cache(dir + "/cache", 2);
  json j = json::parse(read_text_file(std::string(SANASTREAM_SOURCE_DIR) + "/configs/train/vae_tiny_cpu.json"));
  j["output"] = "run";
  j["data"]["cache"] = "cache";
  j["max_steps"] = 3;
  write_text_file_atomic(dir + "/train.json", j.dump(1));
  const auto r = run_cli({"train", "--config", dir + "/train.json", "--json", dir + "/a.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json a = json::parse(read_text_file(dir + "/a.json"));
  EXPECT_TRUE(a["finished"].get<bool>());
  EXPECT_EQ(a["last_step"], 3);
  EXPECT_GT(a["ssim"].get<double>(), 0);
  EXPECT_TRUE(path_exists(dir + "/run/loss.png"));
  EXPECT_TRUE(path_exists(dir + "/run/checkpoints/step_00000003/vae/diffusion_pytorch_model.safetensors"));
}

}  // namespace

// ---- A trainable text encoder (text_encoder.trainable) ----
#ifdef SANASTREAM_HAS_SENTENCEPIECE

namespace {

// A Gemma-2 as wide as the tiny DiT's captions (8): vocab 512, 2 layers (sliding 8, full), 2/1 heads × 4,
// GeGLU 16, seeded random weights; a tokenizer of Gemma's special pieces, ▁, the letters, "snow" and
// the bytes. The directory layout of a package's text encoder.
std::string write_text_encoder(const std::string& dir) {
    train::make_directories(dir);
    const json cfg = {{"model_type", "gemma2"},      {"vocab_size", 512},         {"hidden_size", 8},
                      {"intermediate_size", 16},     {"num_hidden_layers", 2},    {"num_attention_heads", 2},
                      {"num_key_value_heads", 1},    {"head_dim", 4},             {"rms_norm_eps", 1e-6},
                      {"query_pre_attn_scalar", 4},  {"sliding_window", 8},       {"attn_logit_softcapping", 50.0},
                      {"rope_theta", 10000.0},       {"pad_token_id", 0},         {"bos_token_id", 2},
                      {"eos_token_id", 1}};
    std::ofstream(dir + "/config.json") << cfg.dump(1);
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(77);
    io::TensorMap w;
    auto normal = [&](const std::string& k, std::vector<int64_t> shape, double std) {
      w[k] = at::randn(shape, g, at::TensorOptions().dtype(at::kFloat)) * std;
    };
    normal("embed_tokens.weight", {512, 8}, 0.5);
    normal("norm.weight", {8}, 0.2);
    for (int l = 0; l < 2; ++l) {
      const std::string p = "layers." + std::to_string(l) + ".";
      normal(p + "self_attn.q_proj.weight", {8, 8}, 0.35);
      normal(p + "self_attn.k_proj.weight", {4, 8}, 0.35);
      normal(p + "self_attn.v_proj.weight", {4, 8}, 0.35);
      normal(p + "self_attn.o_proj.weight", {8, 8}, 0.35);
      normal(p + "mlp.gate_proj.weight", {16, 8}, 0.35);
      normal(p + "mlp.up_proj.weight", {16, 8}, 0.35);
      normal(p + "mlp.down_proj.weight", {8, 16}, 0.25);
      for (const char* n : {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                            "post_feedforward_layernorm"})
        normal(p + n + ".weight", {8}, 0.2);
    }
    io::save_safetensors(dir + "/model.safetensors", w);
    std::vector<model::SpmPiece> pieces = model::gemma_special_pieces();
    pieces.push_back({"\xE2\x96\x81", 0, model::SpmType::kUserDefined});
    for (char c = 'a'; c <= 'z'; ++c) pieces.push_back({std::string(1, c), 0, model::SpmType::kUserDefined});
    pieces.push_back({"snow", 0, model::SpmType::kUserDefined});
    for (int b = 0; b < 256; ++b) pieces.push_back(model::byte_piece(b));
    std::ofstream(dir + "/tokenizer.model", std::ios::binary) << model::serialize_sentencepiece_model(pieces);
    return dir;
}

// Written once per test process.
const std::string& text_encoder_dir() {
  static const std::string dir = write_text_encoder(temp_dir("train_text_encoder") + "/te");
  return dir;
}

// The tiny DiT reading 300 captions of the encoder's width.
json text_shape_json() {
  json j = tiny_shape_json();
  j["caption_length"] = 300;
  return j;
}

// A latent cache whose prompts were embedded by the tiny encoder (as `train-cache` does).
void write_text_cache(const std::string& dir, int n) {
  pipeline::PromptEncoder enc(text_encoder_dir(), Runtime{}, model::Gemma2Attention::kEager);
  train::DataCacheWriter writer(dir, {train::CacheKind::kLatents, 96, 64, 41});
  const pipeline::PromptEmbedding null = enc.encode_negative("");
  writer.set_null_prompt(null.embeds, null.mask);
  const char* prompts[][2] = {{"make it snowy", "remove the snow"}, {"paint it red", "paint it back"},
                              {"add rain", "remove the rain"}};
  for (int i = 0; i < n; ++i) {
    train::CacheSample s;
    s.source = randn({4, 6, 2, 3}, 10 + i);
    if (i % 2 == 0) s.target = randn({4, 6, 2, 3}, 50 + i);
    s.prompt = prompts[i % 3][0];
    s.reverse_prompt = prompts[i % 3][1];
    const pipeline::PromptEmbedding p = enc.encode(s.prompt, pipeline::PromptMode::kStreaming);
    const pipeline::PromptEmbedding q = enc.encode(s.reverse_prompt, pipeline::PromptMode::kStreaming);
    s.prompt_embeds = p.embeds;
    s.prompt_mask = p.mask;
    s.reverse_embeds = q.embeds;
    s.reverse_mask = q.mask;
    writer.add(s);
  }
  writer.finish();
}

json text_config(const std::string& cache, const std::string& out) {
  json j = smoke_config(cache, out);
  j["dit"]["random"] = text_shape_json();
  j["max_steps"] = 2;
  j["text_encoder"] = {{"trainable", true}, {"init", text_encoder_dir()}};
  return j;
}

train::DitWeights text_dit(uint64_t seed = 3) {
  model::DitShape shape = tiny_shape();
  shape.caption_length = 300;
  train::DitWeights w;
  io::TensorMap m = model::random_dit_weights(shape, seed, at::kFloat);
  w.cfg = model::detect_dit_config(m, {{"num_heads", 2}});
  for (auto& [k, t] : m) w.params[k] = t.clone().set_requires_grad(true);
  return w;
}

}  // namespace

TEST(TrainText, EncoderGradientOfADitLossMatchesFiniteDifferences) {
  // The encoder in fp64 (its RMSNorm statistics are fp32, as in every dtype), the DiT in fp32.
  Runtime fp64;
  fp64.dtype = at::kDouble;
  const train::TextEncoderWeights te = train::load_text_encoder_weights(text_encoder_dir(), fp64);
  train::DitWeights w = text_dit(5);
  const train::TrainSample s = tiny_sample(3, true);
  const at::Tensor noise = randn({1, 4, 3, 2, 3}, 99);
  io::TensorMap vars;
  for (const char* k : {"embed_tokens.weight", "layers.0.self_attn.q_proj.weight", "layers.0.self_attn.v_proj.weight",
                        "layers.1.mlp.down_proj.weight", "layers.1.post_feedforward_layernorm.weight", "norm.weight"})
    vars[k] = te.params.at(k).to(at::kDouble);
  expect_gradients_match(
      vars,
      [&](const io::TensorMap& v) {
        train::TextEncoderWeights t = te;
        for (const auto& [k, x] : v) t.params[k] = x;
        const std::pair<at::Tensor, at::Tensor> p = t.encode(*t.build(true), "make it snowy", train::PromptKind::kPrompt);
        model::HybridDit dit(w.params, w.cfg, Runtime{});
        const train::FlowLoss r = train::flow_loss(dit, dit.encode_caption(p.first, p.second), s.target, s.source, 0.6,
                                                   noise);
        return r.loss.to(at::kDouble) * 1e3;
      },
      1e-4, 2e-2, "text encoder");
}

TEST(TrainText, OneStepChangesTheEncoderAndLowersTheLoss) {
  train::TextEncoderWeights te = train::load_text_encoder_weights(text_encoder_dir(), Runtime{});
  for (auto& [k, p] : te.params) p.set_requires_grad(true);
  const io::TensorMap before = [&] {
    io::TensorMap m;
    for (const auto& [k, p] : te.params) m[k] = p.detach().clone();
    return m;
  }();
  train::DitWeights w = text_dit();
  train::TrainSample s = tiny_sample(3, true);
  s.encode = [&](train::PromptKind kind) { return te.encode(*te.build(true), "make it snowy", kind); };
  train::FlowMatchingConfig fm;
  fm.text_dropout = 0;
  auto objective = [&](at::Generator& g) { return train::flow_matching_step(w, s, fm, {}, g, 1.0); };
  at::Generator g0 = at::make_generator<at::CPUGeneratorImpl>(21);
  const double loss0 = objective(g0);
  train::OptimConfig oc;
  oc.lr = 1e-3;
  train::AdamW opt(te.params, oc);  // the encoder alone: its gradient alone lowers the loss
  for (auto& [k, p] : w.params) p.mutable_grad() = at::Tensor();
  opt.step(1, oc.lr);
  for (const auto& [k, p] : te.params) EXPECT_FALSE(at::equal(p, before.at(k))) << k;
  at::Generator g1 = at::make_generator<at::CPUGeneratorImpl>(21);
  const double loss1 = objective(g1);
  EXPECT_LT(loss1, loss0);
}

TEST(TrainText, SaveLoadResumeIsBitIdenticalWithATrainableEncoder) {
  const std::string dir = temp_dir("train_text_resume");
  write_text_cache(dir + "/cache", 3);
  auto config = [&](const std::string& out, int64_t steps) {
    json j = text_config(dir + "/cache", dir + "/" + out);
    j["max_steps"] = steps;
    return train::parse_train_config(j, dir + "/train.json");
  };
  const train::TextEncoderWeights init = train::load_text_encoder_weights(text_encoder_dir(), Runtime{});
  train::Trainer whole(config("whole", 2));
  const train::TrainReport rw = whole.run();
  EXPECT_TRUE(rw.finished);
  for (const auto& [k, p] : whole.text_encoder_params())
    EXPECT_FALSE(at::equal(p, init.params.at(k))) << "the encoder did not train: " << k;
  EXPECT_TRUE(whole.ema().count("text_encoder.layers.1.mlp.up_proj.weight"));
  {
    train::Trainer first(config("split", 1));
    EXPECT_FALSE(first.run().resumed);
  }
  train::Trainer second(config("split", 2));
  EXPECT_EQ(second.current_step(), 1);
  const train::TrainReport rs = second.run();
  EXPECT_TRUE(rs.resumed);
  EXPECT_DOUBLE_EQ(rs.last.loss, rw.last.loss);
  expect_same_training_state(whole, second);
  expect_same_tensors(whole.text_encoder_params(), second.text_encoder_params(), "encoder weights");
  // The encoder's checkpoint: official keys, loadable as a text encoder's weights; DiT files without it.
  const io::TensorMap te = io::load_safetensors(rs.checkpoint + "/text_encoder.safetensors");
  EXPECT_TRUE(at::equal(te.at("layers.0.self_attn.q_proj.weight"),
                        second.text_encoder_params().at("layers.0.self_attn.q_proj.weight")));
  model::validate_gemma2_weights(init.cfg, io::load_safetensors(rs.checkpoint + "/text_encoder_ema.safetensors"));
  for (const auto& [k, t] : io::load_safetensors(rs.checkpoint + "/dit_ema.safetensors"))
    EXPECT_NE(k.rfind("text_encoder.", 0), 0u) << k;
  EXPECT_TRUE(io::load_safetensors(rs.checkpoint + "/state.safetensors").count("exp_avg.text_encoder.norm.weight"));
}

TEST(TrainText, FrozenByDefaultMatchesTheCachedEmbeddingPath) {
  const std::string dir = temp_dir("train_text_frozen");
  write_text_cache(dir + "/cache", 2);
  // The trainable encoder's prompt path is the cache builder's: the same embeddings, bit for bit.
  pipeline::PromptEncoder enc(text_encoder_dir(), Runtime{}, model::Gemma2Attention::kEager);
  const train::TextEncoderWeights te = train::load_text_encoder_weights(text_encoder_dir(), Runtime{});
  {
    at::NoGradGuard no_grad;
    const std::pair<at::Tensor, at::Tensor> p = te.encode(*te.build(false), "make it snowy", train::PromptKind::kPrompt);
    EXPECT_TRUE(at::equal(p.first[0], enc.encode("make it snowy", pipeline::PromptMode::kStreaming).embeds));
    EXPECT_TRUE(at::equal(p.second[0], enc.encode("make it snowy", pipeline::PromptMode::kStreaming).mask));
    const std::pair<at::Tensor, at::Tensor> n = te.encode(*te.build(false), "", train::PromptKind::kNull);
    EXPECT_TRUE(at::equal(n.first[0], enc.encode_negative("").embeds));
    const train::CacheSample cs = train::DataCache(dir + "/cache").load(0);
    EXPECT_EQ(cs.prompt, "make it snowy");
    EXPECT_EQ(cs.reverse_prompt, "remove the snow");
  }
  // The section: parsed, strict.
  const train::TrainConfig parsed = train::parse_train_config(text_config("cache", "run"), "train.json");
  EXPECT_TRUE(parsed.text_encoder.trainable);
  EXPECT_EQ(parsed.text_encoder.trainable_keys, std::vector<std::string>{""});
  EXPECT_FALSE(train::parse_train_config(smoke_config("cache", "run"), "train.json").text_encoder.trainable);
  json bad = text_config("cache", "run");
  bad["text_encoder"]["lr"] = 1;
  expect_config_error(bad, "train.json: text_encoder.lr: unknown key");
  // Frozen (the default, or trainable: false): the cache's embeddings, nothing of the encoder loaded or saved.
  auto run = [&](const std::string& out, const json& text) {
    json j = text_config(dir + "/cache", dir + "/" + out);
    if (text.is_null())
      j.erase("text_encoder");
    else
      j["text_encoder"] = text;
    auto t = std::make_unique<train::Trainer>(train::parse_train_config(j, dir + "/train.json"));
    const train::TrainReport r = t->run();
    EXPECT_TRUE(t->text_encoder_params().empty());
    EXPECT_FALSE(path_exists(r.checkpoint + "/text_encoder.safetensors"));
    return std::make_pair(std::move(t), r);
  };
  auto a = run("default", json());
  auto b = run("frozen", {{"trainable", false}, {"init", text_encoder_dir()}});
  EXPECT_EQ(a.second.last.loss, b.second.last.loss);
  for (const auto& [k, p] : a.first->params()) EXPECT_TRUE(at::equal(p, b.first->params().at(k))) << k;
  // A trainable subset: the other encoder weights stay as loaded.
  auto c = std::make_unique<train::Trainer>(train::parse_train_config(
      [&] {
        json j = text_config(dir + "/cache", dir + "/subset");
        j["text_encoder"]["trainable_keys"] = {"layers.1.mlp."};
        return j;
      }(),
      dir + "/train.json"));
  c->run();
  for (const auto& [k, p] : c->text_encoder_params())
    EXPECT_EQ(at::equal(p, te.params.at(k)), k.rfind("layers.1.mlp.", 0) != 0) << k;
}


namespace {

// ---- Edit families (data.edits) and CRR's long clips (data.long_cache) ----

// `n` clips of fp16 latents of `frames` frames at 64 × 64 (2 × 2 tokens), no prompts (data.edits gives them).
std::string write_prompt_free_cache(const std::string& dir, int n, int64_t frames) {
  train::DataCacheWriter writer(dir, {train::CacheKind::kLatents, 64, 64, frames});
  writer.set_null_prompt(randn({5, 8}, 1), at::tensor({1, 0, 0, 0, 0}, at::kLong));
  for (int i = 0; i < n; ++i) {
    train::CacheSample s;
    s.source = randn({16, (frames - 1) / 8 + 1, 2, 2}, 20 + i).to(at::kHalf);
    writer.add(s);
  }
  writer.finish();
  return dir;
}

json edits_config(const std::string& dir, const std::string& out) {
  json j = text_config(dir + "/cache", dir + "/" + out);
  j["dit"]["random"]["latent_channels"] = 16;
  j["dit"]["random"]["source_channels"] = 16;
  j["data"]["vae"] = dir + "/vae";
  j["data"]["edits"] = {"sepia", "blur"};
  j["rollout"]["enabled"] = false;
  j["crr"]["enabled"] = false;
  return j;
}

}  // namespace

TEST(TrainEdits, TheTargetIsTheFamilyOfTheDecodedSourceWithItsPrompts) {
  const std::string dir = temp_dir("train_edits_sample");
  write_vae_dir(dir + "/vae");
  write_prompt_free_cache(dir + "/cache", 3, 17);
  json j = edits_config(dir, "run");
  j["data"]["edits"] = {"sepia"};
  train::Trainer t(train::parse_train_config(j, dir + "/train.json"));
  const train::TrainSample s = t.next_sample();

  // Which clips: the first two of the data order (data.batch 2: one sample of two rows); the training
  // size is the cache's, so each window is the whole clip.
  train::DataOrder order(3, 4);
  const train::DataCache cache(dir + "/cache");
  const int64_t first = order.next(), second = order.next();
  const at::Tensor z = at::cat({cache.load(first).source, cache.load(second).source}, 0).to(at::kFloat).view({2, 16, 3, 2, 2});
  EXPECT_TRUE(at::equal(s.source, z));
  at::NoGradGuard no_grad;
  const auto vae = model::load_ltx2_vae(model::resolve_ltx2_vae_source(dir + "/vae"), Runtime{});
  std::vector<at::Tensor> targets;
  for (int64_t r = 0; r < 2; ++r) {  // each whole clip decoded, edited and re-encoded (here the window)
    const at::Tensor pixels = vae->decode(vae->denormalize(z.narrow(0, r, 1)), model::VaeDecoderKind::kCausal).clamp(-1, 1);
    const at::Tensor frames = pixels[0].transpose(0, 1).add(1).div(2);  // [17, 3, 64, 64]
    const at::Tensor edited = train::apply_edit_family("sepia", frames).mul(2).sub(1).transpose(0, 1).unsqueeze(0);
    targets.push_back(vae->normalize(vae->encode(edited)));
  }
  ASSERT_TRUE(s.target.defined());
  EXPECT_TRUE(at::allclose(s.target, at::cat(targets, 0), 1e-5, 1e-6))
      << (s.target - at::cat(targets, 0)).abs().max().item<double>();

  // Each row's prompt is one of sepia's phrasings, its reverse prompt one of sepia's reverse phrasings.
  const train::TextEncoderWeights te = train::load_text_encoder_weights(text_encoder_dir(), Runtime{});
  const std::unique_ptr<model::Gemma2Model> m = te.build(false);
  auto one_of = [&](const at::Tensor& embeds, const std::vector<std::string>& texts, train::PromptKind kind) {
    for (const std::string& text : texts)
      if (at::allclose(te.encode(*m, text, kind).first[0], embeds, 1e-5, 1e-6)) return true;  // batched: not bit-equal
    return false;
  };
  const train::EditFamily& f = train::edit_family("sepia");
  ASSERT_EQ(s.prompt_embeds.size(0), 2);
  for (int64_t r = 0; r < 2; ++r) {
    EXPECT_TRUE(one_of(s.prompt_embeds[r], f.phrasings, train::PromptKind::kPrompt));
    EXPECT_TRUE(one_of(s.reverse_embeds[r], f.reverse_phrasings, train::PromptKind::kReverse));
    EXPECT_FALSE(one_of(s.prompt_embeds[r], train::edit_family("blur").phrasings, train::PromptKind::kPrompt));
  }

  // A smaller training size: each row is a window of its clip (the same two clips), and its target the
  // same window of the whole clip's edit.
  j["data"]["width"] = j["data"]["height"] = 32;
  j["output"] = dir + "/run_window";
  train::Trainer tw(train::parse_train_config(j, dir + "/train.json"));
  const train::TrainSample w = tw.next_sample();
  ASSERT_EQ(w.target.sizes(), (at::IntArrayRef{2, 16, 3, 1, 1}));
  for (int64_t r = 0; r < 2; ++r) {
    int64_t found = 0;
    for (int64_t y = 0; y < 2; ++y)
      for (int64_t x = 0; x < 2; ++x)
        found += at::equal(w.source[r], z[r].narrow(2, y, 1).narrow(3, x, 1)) &&
                 at::allclose(w.target[r], targets[r][0].narrow(2, y, 1).narrow(3, x, 1), 1e-5, 1e-6);
    EXPECT_GE(found, 1) << "row " << r;
  }
}

TEST(TrainEdits, CrrOnLongClipsResumesBitIdentically) {
  const std::string dir = temp_dir("train_edits_resume");
  write_vae_dir(dir + "/vae");
  write_prompt_free_cache(dir + "/cache", 3, 17);
  write_prompt_free_cache(dir + "/long", 2, 41);  // 6 latent frames: chunks 3 + 3
  auto config = [&](const std::string& out, int64_t steps) {
    json j = edits_config(dir, out);
    j["max_steps"] = steps;
    j["crr"]["enabled"] = true;
    j["data"]["long_cache"] = dir + "/long";
    return train::parse_train_config(j, dir + "/train.json");
  };
  train::Trainer whole(config("whole", 2));
  const train::TrainReport rw = whole.run();
  EXPECT_TRUE(rw.finished);
  EXPECT_GT(rw.last.flow_matching, 0);
  EXPECT_GT(rw.last.crr, 0);
  EXPECT_EQ(rw.last.rollout, 0);
  {
    train::Trainer first(config("split", 1));
    EXPECT_FALSE(first.run().resumed);
  }
  train::Trainer second(config("split", 2));
  const train::TrainReport rs = second.run();
  EXPECT_TRUE(rs.resumed);
  EXPECT_DOUBLE_EQ(rs.last.loss, rw.last.loss);
  expect_same_training_state(whole, second);
  expect_same_tensors(whole.text_encoder_params(), second.text_encoder_params(), "encoder weights");
}

TEST(TrainEdits, DataParallelRanksSplitTheRowsAndTakeTurnsAtCrr) {
#ifndef SANASTREAM_HAS_GLOO
  GTEST_SKIP() << "this build has no Gloo process group (CPU ranks)";
#endif
  // A batch of 2 rows: one per rank; CRR's long clip on rank 0 at step 1, rank 1 at step 2.
  const std::string dir = temp_dir("train_edits_data_parallel");
  write_vae_dir(dir + "/vae");
  write_prompt_free_cache(dir + "/cache", 3, 17);
  write_prompt_free_cache(dir + "/long", 2, 41);
  json j = edits_config(dir, "unused");
  j["crr"]["enabled"] = true;
  j["data"]["long_cache"] = dir + "/long";
  expect_data_parallel_matches_one_process(dir, j, 2);
  expect_close_checkpoints(dir + "/one/checkpoints/step_00000002", dir + "/two/checkpoints/step_00000002",
                           "text_encoder.safetensors", 5e-5);
  j["data"]["batch"] = 3;
  write_text_file_atomic(dir + "/bad.json", j.dump(1));
  const auto r = run_cli({"train", "--config", dir + "/bad.json", "--gpus", "2"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err_lines(), 1) << r.err;
  EXPECT_NE(r.err.find("data.batch 3: expected a multiple of the 2 ranks"), std::string::npos) << r.err;
}

#endif  // SANASTREAM_HAS_SENTENCEPIECE
