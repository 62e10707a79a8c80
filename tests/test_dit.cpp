// The hybrid DiT: configuration detection, the golden sets through `golden-check` (fp32 CPU;
// the CUDA runs are in test_gpu.cpp), shapes and sets the shared data does not cover, and errors.
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/checkpoint.h"
#include "model/dit_common.h"
#include "model/dit_config.h"
#include "model/dit_random.h"
#include "model/hybrid_dit.h"
#include "pipeline/latent_edit.h"
#include "pipeline/samplers.h"
#include "pipeline/schedule.h"
#include "support/test_env.h"
#include "support/tiny_configs.h"

using namespace sanastream;
using sanastream::test::file_exists;
using sanastream::test::golden_root;
using sanastream::test::run_cli;
using sanastream::test::temp_dir;
namespace fs = std::filesystem;

// Several projections of one input as one GEMM: each part equals its own dense layer, with and
// without biases, and every part starts 16-byte aligned when the widths before them are multiples of 8.
// With parts of several precisions, one GEMM per precision.
TEST(DitFusedProjection, EachPartEqualsItsOwnLayer) {
  at::manual_seed(4);
  const at::Tensor x = at::randn({2, 5, 24});
  const std::vector<model::ProjectionPart> parts = {
      {at::randn({16, 24}), {}}, {at::randn({8, 24}), at::randn({8})}, {at::randn({3, 24}), at::randn({3})}};
  const std::vector<at::Tensor> got = model::FusedProjection(parts)(x);
  ASSERT_EQ(got.size(), parts.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    const at::Tensor want = model::dense(x, parts[i].w, parts[i].b);
    ASSERT_EQ(got[i].sizes(), want.sizes()) << "part " << i;
    EXPECT_TRUE(at::allclose(got[i], want, 1e-5, 1e-5)) << "part " << i;
    EXPECT_EQ(got[i].stride(1), 32) << "27 outputs padded to 32";
  }
  EXPECT_EQ(reinterpret_cast<uintptr_t>(got[1].data_ptr()) - reinterpret_cast<uintptr_t>(got[0].data_ptr()), 16 * 4);
  const std::vector<at::Tensor> no_bias = model::FusedProjection({{parts[0].w, {}}})(x);
  EXPECT_TRUE(at::allclose(no_bias[0], model::dense(x, parts[0].w), 1e-5, 1e-5));
  // One GEMM per precision: the FP8 part alone (exactly its own layer), the other two stacked.
  std::vector<model::ProjectionPart> mixed = parts;
  mixed[0].precision = ops::Precision::kFP8;
  const std::vector<at::Tensor> grouped = model::FusedProjection(mixed)(x);
  ASSERT_EQ(grouped.size(), parts.size());
  EXPECT_TRUE(at::equal(grouped[0], model::Projection(mixed[0].w, mixed[0].b, mixed[0].precision)(x)));
  for (size_t i = 1; i < parts.size(); ++i)
    EXPECT_TRUE(at::allclose(grouped[i], model::dense(x, parts[i].w, parts[i].b), 1e-5, 1e-5)) << "part " << i;
  EXPECT_EQ(reinterpret_cast<uintptr_t>(grouped[2].data_ptr()) - reinterpret_cast<uintptr_t>(grouped[1].data_ptr()), 8 * 4);
  EXPECT_EQ(grouped[1].stride(1), 16) << "11 outputs padded to 16";
  // A quantized group stacks as well, each part as its own simulated layer.
  mixed[1].precision = mixed[2].precision = ops::Precision::kFP8;
  const std::vector<at::Tensor> fp8 = model::FusedProjection(mixed)(x);
  for (size_t i = 0; i < parts.size(); ++i)
    EXPECT_TRUE(at::allclose(fp8[i], model::Projection(mixed[i].w, mixed[i].b, mixed[i].precision)(x), 1e-5, 1e-5))
        << "part " << i;
  EXPECT_EQ(fp8[0].stride(1), 32) << "27 outputs padded to 32 (a multiple of 16)";
}

TEST(DitConfig, SoftmaxLayersFollowTheOfficialRule) {
  EXPECT_EQ(model::softmax_layer_indices(20, 0.25), (std::vector<int64_t>{3, 7, 11, 15, 19}));
  EXPECT_EQ(model::softmax_layer_indices(4, 0.25), (std::vector<int64_t>{3}));
  EXPECT_EQ(model::softmax_layer_indices(8, 0.25), (std::vector<int64_t>{3, 7}));
  EXPECT_EQ(model::softmax_layer_indices(6, 0.25), (std::vector<int64_t>{5}));
  EXPECT_TRUE(model::softmax_layer_indices(6, 0.0).empty());
}

TEST(DitConfig, DetectedFromGoldenWeights) {
  const std::string set = golden_root() + "/dit_stream_small";
  REQUIRE_GOLDEN(set + "/weights.safetensors");
  auto w = io::load_safetensors(set + "/weights.safetensors");
  model::DitConfig c = model::detect_dit_config(w);
  EXPECT_EQ(c.depth, 4);
  EXPECT_EQ(c.hidden, 224);
  EXPECT_EQ(c.heads, 2);
  EXPECT_EQ(c.head_dim, 112);
  EXPECT_EQ(c.ffn_hidden, 672);
  EXPECT_EQ(c.caption_length, 300);
  EXPECT_EQ(c.caption_channels, 2304);
  EXPECT_EQ(c.softmax_layers, (std::vector<int64_t>{3}));
  EXPECT_EQ(c.variant, model::DitVariant::kStreaming);
  EXPECT_EQ(c.rope_t, 40);
  EXPECT_EQ(c.rope_h, 36);
  // A bidirectional checkpoint has Linear softmax q/k.
  auto o = io::load_safetensors(golden_root() + "/dit_bidir_small/weights_overrides.safetensors");
  for (auto& [k, t] : o) w[k] = t;
  EXPECT_EQ(model::detect_dit_config(w).variant, model::DitVariant::kBidirectional);
  // A config that disagrees with the weights is an error; a head count that does not divide too.
  EXPECT_THROW(model::detect_dit_config(w, {{"depth", 5}}), Error);
  EXPECT_THROW(model::detect_dit_config(w, {{"num_heads", 3}}), Error);
  EXPECT_THROW(model::detect_dit_config(w, {{"linear_head_dim", 100}}), Error);
  auto broken = w;
  broken.erase("blocks.2.mlp.t_conv.weight");
  EXPECT_THROW(model::detect_dit_config(broken), Error);
  broken = w;
  broken["blocks.1.attn.v.weight"] = at::zeros({224, 200});
  EXPECT_THROW(model::detect_dit_config(broken), Error);
}

TEST(DitSchedules, OfficialTimesteps) {
  EXPECT_EQ(pipeline::streaming_timesteps(4), (std::vector<float>{1000, 961, 893, 743}));
  EXPECT_EQ(pipeline::streaming_timesteps(2), (std::vector<float>{1000, 743}));
  auto t3 = pipeline::streaming_timesteps(3);
  ASSERT_EQ(t3.size(), 3u);
  EXPECT_NEAR(t3[0], 1000.0, 1e-3);
  EXPECT_NEAR(t3[1], 890.45, 0.01);
  EXPECT_NEAR(t3[2], 60.21, 0.01);
  auto g = pipeline::dpm_time_grid(3);
  EXPECT_NEAR(g[0], 0.999875, 1e-6);
  EXPECT_NEAR(g[1], 0.941010, 1e-6);
  EXPECT_NEAR(g[2], 0.799760, 1e-6);
  EXPECT_EQ(g[3], 0.0f);
  EXPECT_EQ(pipeline::chunk_boundaries(14, 0), (std::vector<int64_t>{0, 5, 8, 11, 14}));
  EXPECT_EQ(pipeline::chunk_boundaries(122, 0).size(), 41u);  // 5 + 39 × 3
  EXPECT_EQ(pipeline::chunk_boundaries(3, 0), (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(pipeline::chunk_boundaries(2, 0), (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(pipeline::chunk_boundaries(10, 3), (std::vector<int64_t>{0, 3, 6, 9, 10}));
  EXPECT_EQ(pipeline::chunk_boundaries(10, 5), (std::vector<int64_t>{0, 5, 8, 10}));
  EXPECT_THROW(pipeline::chunk_boundaries(10, 6), Error);
  EXPECT_EQ(pipeline::longest_later_chunk({0, 5, 8, 10}), 3);
  EXPECT_EQ(pipeline::longest_later_chunk({0, 3}), 0);
}

TEST(GoldenCheck, DitSetsPassInFp32OnCpu) {
  REQUIRE_GOLDEN(golden_root() + "/dit_stream_small/config.json");
  const std::string dir = temp_dir("golden_cpu");
  auto r = run_cli({"golden-check", golden_root(), "--require", "dit", "--json", dir + "/report.json"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  std::ifstream in(dir + "/report.json");
  auto j = nlohmann::json::parse(in);
  int dit_sets = 0;
  for (const auto& s : j["sets"])
    if (s["kind"] == "dit") {
      ++dit_sets;
      EXPECT_EQ(s["status"], "pass") << s["set"];
      EXPECT_GT(s["tensors"].size(), 40u);
    }
  EXPECT_EQ(dit_sets, 2);
}

// The same set with its weights split into HF shards, a different archive form: nothing may
// depend on the weights being one file.
TEST(GoldenCheck, ShardedCopyOfTheStreamingSetPasses) {
  const std::string src = golden_root() + "/dit_stream_small";
  REQUIRE_GOLDEN(src + "/weights.safetensors");
  const std::string dir = temp_dir("golden_sharded") + "/dit_stream_sharded";
  fs::create_directories(dir);
  for (const char* f : {"config.json", "inputs.safetensors", "outputs.safetensors", "activations.safetensors"})
    fs::copy_file(src + "/" + f, dir + "/" + f);
  auto w = io::load_safetensors(src + "/weights.safetensors");
  io::TensorMap shard[3];
  nlohmann::json index = {{"weight_map", nlohmann::json::object()}};
  int i = 0;
  for (auto& [k, t] : w) {
    const std::string file = fmt::format("weights-{:05d}-of-00003.safetensors", i % 3 + 1);
    shard[i % 3][k] = t;
    index["weight_map"][k] = file;
    ++i;
  }
  for (int s = 0; s < 3; ++s) io::save_safetensors(fmt::format("{}/weights-{:05d}-of-00003.safetensors", dir, s + 1), shard[s]);
  std::ofstream(dir + "/weights.safetensors.index.json") << index.dump();
  auto r = run_cli({"golden-check", dir, "--require", "dit"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("PASS"), std::string::npos) << r.out;
}

namespace {
io::TensorMap small_inputs(const model::DitShape& s, int64_t T, int64_t H, int64_t W, uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor mask = at::zeros({1, s.caption_length}, at::kLong);
  mask.narrow(1, 0, 5).fill_(1);
  return {{"inputs.noise", at::randn({1, s.latent_channels, T, H, W})},
          {"inputs.src_latents", at::randn({1, s.source_channels, T, H, W}).to(at::kBFloat16)},
          {"inputs.prompt_embeds", at::randn({1, 1, s.caption_length, s.caption_channels}).to(at::kBFloat16)},
          {"inputs.prompt_mask", mask},
          {"inputs.neg_prompt_embeds", at::randn({1, 1, s.caption_length, s.caption_channels}).to(at::kBFloat16)},
          {"inputs.neg_prompt_mask", at::ones({1, s.caption_length}, at::kLong)}};
}
}  // namespace

// Depth, width, grid and frame counts unlike the shared sets, every chunking rule.
TEST(DitStreaming, OtherShapesAndChunkingsRunAndAgree) {
  auto shape = test::small_dit_shape(8, model::DitVariant::kStreaming);
  auto w = model::random_dit_weights(shape, 7);
  Runtime rt = make_runtime("cpu", "fp32");
  auto dit = model::load_hybrid_dit(w, nlohmann::json::object(), rt);
  EXPECT_EQ(dit->config().softmax_layers, (std::vector<int64_t>{3, 7}));
  auto in = small_inputs(shape, 10, 3, 5, 1);
  for (int first : {0, 3, 4, 5}) {
    for (bool eff : {false, true}) {
      pipeline::LatentEditOptions o;
      o.first_chunk = first;
      o.efficient_cache = eff;
      o.dump = true;
      auto r = pipeline::latent_edit(*dit, in, o);
      EXPECT_EQ(r.latents.sizes(), in["inputs.noise"].sizes());
      EXPECT_TRUE(at::isfinite(r.latents).all().item<bool>());
      EXPECT_EQ(r.model_calls, pipeline::streaming_call_count(10, first, 4, eff));
      // save_kv_cache does not change a call's output: the first chunk's calls agree bit for bit.
      if (eff) {
        pipeline::LatentEditOptions std_o = o;
        std_o.efficient_cache = false;
        auto s = pipeline::latent_edit(*dit, in, std_o);
        for (int c = 0; c < 4; ++c) {
          const std::string n = fmt::format("call{:02d}.v_out", c);
          EXPECT_TRUE(at::equal(r.dump.at(n), s.dump.at(n))) << n;
        }
      }
    }
  }
}

// The cross-attention attends to the caption's tokens only, as the official code's compacted caption:
// each row's tokens first, the keys cut to the longest row rounded up to 128, the rest masked.
TEST(DitCaption, OnlyTheCaptionsTokensAreAttendedTo) {
  auto shape = test::small_dit_shape(4, model::DitVariant::kStreaming);
  shape.caption_length = 300;
  Runtime rt = make_runtime("cpu", "fp32");
  auto dit = model::load_hybrid_dit(model::random_dit_weights(shape, 13), nlohmann::json::object(), rt);
  auto in = small_inputs(shape, 2, 3, 4, 8);
  const at::Tensor x = in.at("inputs.noise"), src = in.at("inputs.src_latents").to(at::kFloat);
  const at::Tensor t = at::full({1}, 600.0);
  const at::Tensor embeds = at::randn({1, 1, 300, 64});
  auto mask_of = [](std::initializer_list<std::pair<int64_t, int64_t>> spans) {
    at::Tensor m = at::zeros({1, 300}, at::kLong);
    for (auto [a, n] : spans) m.narrow(1, a, n).fill_(1);
    return m;
  };
  // 40 tokens, not a prefix: at 0–9, 50–69 and 200–209.
  const at::Tensor mask = mask_of({{0, 10}, {50, 20}, {200, 10}});
  const model::CaptionState cs = dit->encode_caption(embeds, mask);
  ASSERT_EQ(cs.y.size(1), 128);
  ASSERT_TRUE(cs.bias.defined());
  EXPECT_EQ(cs.kv[0].k.size(2), 128);
  const at::Tensor v = dit->forward(x, src, t, cs);

  // The same tokens as a prefix: the same keys, bit for bit.
  const at::Tensor idx = mask[0].nonzero().squeeze(1);
  at::Tensor front = at::randn({1, 1, 300, 64});
  front.narrow(2, 0, 40).copy_(embeds.index_select(2, idx));
  EXPECT_TRUE(at::equal(dit->forward(x, src, t, dit->encode_caption(front, mask_of({{0, 40}}))), v));
  // Whatever sits under the mask is never read.
  at::Tensor garbage = 100 * at::randn({1, 1, 300, 64});
  garbage.index_copy_(2, idx, embeds.index_select(2, idx));
  EXPECT_TRUE(at::equal(dit->forward(x, src, t, dit->encode_caption(garbage, mask)), v));
  // All 300 keys with the bias over the padding (the official non-compacted form): the same output.
  EXPECT_TRUE(at::allclose(dit->forward(x, src, t, model::pad_caption_keys(cs, 300)), v, 1e-5, 1e-6));

  // The key count: a bucket of 128 (no bias when it is full), the whole caption when full or empty.
  auto keys = [&](const at::Tensor& m) {
    const model::CaptionState c = dit->encode_caption(embeds, m);
    return std::make_pair(c.y.size(1), c.bias.defined());
  };
  EXPECT_EQ(keys(mask_of({{3, 128}})), std::make_pair(int64_t{128}, false));
  EXPECT_EQ(keys(mask_of({{0, 129}})), std::make_pair(int64_t{256}, true));
  EXPECT_EQ(keys(mask_of({{0, 300}})), std::make_pair(int64_t{300}, false));
  EXPECT_EQ(keys(mask_of({})), std::make_pair(int64_t{300}, true));
  EXPECT_THROW(model::pad_caption_keys(cs, 100), Error);

  // A batch of two prompts of 40 and 140 tokens: 256 keys, each row as alone.
  const at::Tensor mask2 = at::cat({mask, mask_of({{5, 140}})});
  const at::Tensor embeds2 = at::cat({embeds, at::randn({1, 1, 300, 64})});
  const model::CaptionState c2 = dit->encode_caption(embeds2, mask2);
  EXPECT_EQ(c2.y.size(1), 256);
  const at::Tensor v2 = dit->forward(at::cat({x, x}), at::cat({src, src}), at::full({2}, 600.0), c2);
  EXPECT_TRUE(at::allclose(v2.narrow(0, 0, 1), v, 1e-5, 1e-6));
  const at::Tensor v1 = dit->forward(x, src, t, dit->encode_caption(embeds2.narrow(0, 1, 1), mask2.narrow(0, 1, 1)));
  EXPECT_TRUE(at::allclose(v2.narrow(0, 1, 1), v1, 1e-5, 1e-6));
}

// A live prompt change to a caption with another key count (40 → 140 tokens: 128 → 256 keys) replaces
// the sampler's caption (and, on CUDA, its graphs); it streams what an in-place change to the same
// caption computes. On CPU, and on CUDA with graphs where there is a device.
TEST(DitCaption, PromptChangeToAnotherKeyCountOnCpuAndCuda) {
  auto shape = test::small_dit_shape(4, model::DitVariant::kStreaming);
  shape.caption_length = 300;
  const auto weights = model::random_dit_weights(shape, 17);
  for (const char* device : {"cpu", "cuda"}) {
    if (std::string(device) == "cuda" && !cuda_available()) continue;
    Runtime rt = make_runtime(device, "fp32");
    auto dit = model::load_hybrid_dit(weights, nlohmann::json::object(), rt);
    at::manual_seed(9);
    const at::Tensor noise = at::randn({1, 16, 11, 3, 4}), src = at::randn({1, 16, 11, 3, 4});
    at::Tensor m1 = at::zeros({1, 300}, at::kLong), m2 = at::zeros({1, 300}, at::kLong);
    m1.narrow(1, 0, 40).fill_(1);
    m2.narrow(1, 0, 140).fill_(1);
    const model::CaptionState a = dit->encode_caption(at::randn({1, 1, 300, 64}), m1);
    const model::CaptionState b = dit->encode_caption(at::randn({1, 1, 300, 64}), m2);
    ASSERT_NE(a.y.size(1), b.y.size(1));
    auto stream = [&](const model::CaptionState& first) {
      pipeline::StreamingOptions o;
      o.first_chunk = 5;
      o.cuda_graphs = true;
      pipeline::StreamingSampler sampler(*dit, first, 1, 3, 4, 5, 3, o);
      std::vector<at::Tensor> out;
      for (int64_t s = 0; s < 11;) {
        const int64_t n = s == 0 ? 5 : 3;
        if (s == 8) sampler.set_caption(b);
        out.push_back(sampler.step(noise.narrow(2, s, n), src.narrow(2, s, n), s + n == 11).cpu());
        s += n;
      }
      return at::cat(out, 2);
    };
    const at::Tensor replaced = stream(a), in_place = stream(model::pad_caption_keys(a, b.y.size(1)));
    EXPECT_TRUE(at::allclose(replaced, in_place, 1e-5, 1e-5)) << device;
  }
}

// A patch of 2: the embedding is the official strided 1×2×2 Conv3d, each token's output row
// (row, column, channel) lands on its 2×2 latent pixels, and streaming runs on the token grid.
TEST(DitPatch, EmbeddingIsTheStridedConvAndTheOutputUnpatchifies) {
  auto shape = test::small_dit_shape(4, model::DitVariant::kStreaming);
  shape.patch = 2;
  auto w = model::random_dit_weights(shape, 11);
  EXPECT_EQ(w.at("x_embedder.proj.weight").sizes(), (at::IntArrayRef{336, 32, 1, 2, 2}));
  Runtime rt = make_runtime("cpu", "fp32");
  auto dit = model::load_hybrid_dit(w, nlohmann::json::object(), rt);
  EXPECT_EQ(dit->config().patch, 2);
  EXPECT_EQ(dit->config().latent_channels, 16);
  EXPECT_NE(dit->config().summary().find("2x2 patches"), std::string::npos);

  const int64_t T = 2, H = 4, W = 6, Cl = 16;
  auto in = small_inputs(shape, T, H, W, 5);
  const at::Tensor x = in.at("inputs.noise"), src = in.at("inputs.src_latents").to(at::kFloat);
  const model::CaptionState cap = dit->encode_caption(in.at("inputs.prompt_embeds"), in.at("inputs.prompt_mask"));
  io::TensorMap acts;
  model::DitCallOptions o;
  o.capture.out = &acts;
  const at::Tensor v = dit->forward(x, src, at::full({1}, 700.0), cap, o);
  ASSERT_EQ(v.sizes(), x.sizes());

  const at::Tensor conv = at::conv3d(at::cat({x, src}, 1), w.at("x_embedder.proj.weight").to(at::kFloat),
                                     w.at("x_embedder.proj.bias").to(at::kFloat), {1, 2, 2});
  EXPECT_TRUE(at::allclose(acts.at("x_embedder"), conv.flatten(2).transpose(1, 2), 1e-4, 1e-5));

  const at::Tensor rows = acts.at("final_layer");  // [1, T·2·3, 2·2·Cl]
  ASSERT_EQ(rows.sizes(), (at::IntArrayRef{1, T * 2 * 3, 4 * Cl}));
  auto r = rows.accessor<float, 3>();
  auto out = v.accessor<float, 5>();
  int64_t mismatches = 0;
  for (int64_t c = 0; c < Cl; ++c)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t x_ = 0; x_ < W; ++x_) {
          const int64_t token = (t * 2 + h / 2) * 3 + x_ / 2, col = ((h % 2) * 2 + x_ % 2) * Cl + c;
          mismatches += out[0][c][t][h][x_] != r[0][token][col];
        }
  EXPECT_EQ(mismatches, 0);

  pipeline::LatentEditOptions eo;
  auto stream = small_inputs(shape, 10, 4, 6, 6);
  auto res = pipeline::latent_edit(*dit, stream, eo);
  EXPECT_EQ(res.latents.sizes(), stream["inputs.noise"].sizes());
  EXPECT_TRUE(at::isfinite(res.latents).all().item<bool>());

  auto odd = small_inputs(shape, 10, 3, 6, 6);
  try {
    pipeline::latent_edit(*dit, odd, eo);
    ADD_FAILURE() << "a latent height of 3 with 2x2 patches ran";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("latent height 3: not a positive multiple of the DiT's 2x2 patch"),
              std::string::npos)
        << e.what();
  }
  io::TensorMap bad = w;
  bad["final_layer.linear.weight"] = at::zeros({63, 336});
  EXPECT_THROW(model::detect_dit_config(bad), Error);
}

TEST(DitBidirectional, DpmSamplerRunsWithAndWithoutCfg) {
  auto shape = test::small_dit_shape(4, model::DitVariant::kBidirectional);
  auto w = model::random_dit_weights(shape, 3);
  Runtime rt = make_runtime("cpu", "fp32");
  auto dit = model::load_hybrid_dit(w, nlohmann::json::object(), rt);
  EXPECT_EQ(dit->config().variant, model::DitVariant::kBidirectional);
  auto in = small_inputs(shape, 5, 2, 3, 4);
  for (double cfg : {1.0, 4.5}) {
    pipeline::LatentEditOptions o;
    o.mode = pipeline::SamplerMode::kBidirectional;
    o.steps = 4;
    o.cfg = cfg;
    o.dump = true;
    auto r = pipeline::latent_edit(*dit, in, o);
    EXPECT_TRUE(at::isfinite(r.latents).all().item<bool>());
    EXPECT_EQ(r.model_calls, 4);
    EXPECT_TRUE(r.dump.count("dpm.call03.x_in"));
    EXPECT_EQ(r.dump.count("dpm.call03.v_uncond"), cfg != 1.0 ? 1u : 0u);
  }
}

TEST(LatentEditCli, GoodRunAndBadInputs) {
  const std::string dir = temp_dir("latent_edit_cli");
  auto shape = test::small_dit_shape(4, model::DitVariant::kStreaming);
  io::save_safetensors(dir + "/dit.safetensors", model::random_dit_weights(shape, 5));
  auto in = small_inputs(shape, 7, 2, 3, 9);
  io::save_safetensors(dir + "/in.safetensors", in);
  auto ok = run_cli({"latent-edit", "--model", dir + "/dit.safetensors", "--inputs", dir + "/in.safetensors",
                     "--output", dir + "/out.safetensors", "--dump", dir + "/dump.safetensors", "--dump-calls", "0,5",
                     "--json", dir + "/run.json"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  auto dump = io::load_safetensors(dir + "/dump.safetensors");
  EXPECT_TRUE(dump.count("first_call.block03.attn"));
  EXPECT_TRUE(dump.count("call05.block00.mlp"));
  EXPECT_TRUE(dump.count("cache_after_chunk0.block00.slot0"));
  EXPECT_TRUE(dump.count("cache_view_chunk1.block03.slot1"));
  EXPECT_TRUE(at::equal(dump.at("output.latents"), io::load_safetensors(dir + "/out.safetensors").at("output.latents")));

  auto expect_fail = [&](std::vector<std::string> args, int code, const std::string& fragment) {
    const std::string out = dir + "/bad.safetensors";
    args.insert(args.end(), {"--output", out});
    auto r = run_cli(args);
    EXPECT_EQ(r.exit_code, code) << r.err;
    if (code == 1) EXPECT_EQ(r.err_lines(), 1) << r.err;
    EXPECT_NE(r.err.find(fragment), std::string::npos) << r.err;
    EXPECT_FALSE(file_exists(out));
    EXPECT_FALSE(file_exists(out + ".part"));
  };
  // Inputs that disagree with the model.
  auto bad = in;
  bad["inputs.noise"] = at::randn({1, 8, 7, 2, 3});
  io::save_safetensors(dir + "/bad_noise.safetensors", bad);
  expect_fail({"latent-edit", "--model", dir + "/dit.safetensors", "--inputs", dir + "/bad_noise.safetensors"}, 1,
              "inputs.noise");
  bad = in;
  bad["inputs.prompt_embeds"] = at::randn({1, 1, 12, 32});
  io::save_safetensors(dir + "/bad_prompt.safetensors", bad);
  expect_fail({"latent-edit", "--model", dir + "/dit.safetensors", "--inputs", dir + "/bad_prompt.safetensors"}, 1,
              "prompt embeddings");
  bad = in;
  bad.erase("inputs.src_latents");
  io::save_safetensors(dir + "/no_src.safetensors", bad);
  expect_fail({"latent-edit", "--model", dir + "/dit.safetensors", "--inputs", dir + "/no_src.safetensors"}, 1,
              "inputs.src_latents");
  // Weights that are missing or mis-shaped.
  auto w = model::random_dit_weights(shape, 5);
  w.erase("blocks.1.cross_attn.proj.weight");
  io::save_safetensors(dir + "/missing.safetensors", w);
  expect_fail({"latent-edit", "--model", dir + "/missing.safetensors", "--inputs", dir + "/in.safetensors"}, 1,
              "blocks.1.cross_attn.proj.weight");
  w = model::random_dit_weights(shape, 5);
  w["blocks.0.mlp.point_conv.conv.weight"] = at::zeros({336, 95, 1, 1});
  io::save_safetensors(dir + "/misshaped.safetensors", w);
  expect_fail({"latent-edit", "--model", dir + "/misshaped.safetensors", "--inputs", dir + "/in.safetensors"}, 1,
              "expected shape");
  expect_fail({"latent-edit", "--model", dir + "/dit.safetensors", "--inputs", dir + "/in.safetensors", "--mode",
               "sideways"},
              1, "--mode");
  expect_fail({"latent-edit", "--model", dir + "/dit.safetensors", "--inputs", dir + "/in.safetensors", "--cfg", "3"},
              1, "guidance");
  expect_fail({"latent-edit", "--model", dir + "/dit.safetensors", "--inputs", dir + "/in.safetensors", "--bogus"}, 2,
              "bogus");
  expect_fail({"latent-edit", "--model", dir + "/nope.pth", "--inputs", dir + "/in.safetensors"}, 1, "does not exist");
}
