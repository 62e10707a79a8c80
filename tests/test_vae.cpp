// The LTX-2 video VAE: config parsing, the golden set through `golden-check` (fp32 CPU), streaming
// encode/decode against the whole clip, spatial tiling at 704×1280, the Lightricks-native conversion, and
// the CLI's errors. Random-weight tests use narrow configurations so the suite stays fast on 2 cores.
#include <filesystem>
#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>

#include "core/compare.h"
#include "core/error.h"
#include "io/checkpoint.h"
#include "model/ltx2_vae.h"
#include "model/ltx2_vae_convert.h"
#include "ops/quant.h"
#include "ops/vae.h"
#include "support/test_env.h"
#include "support/tiny_configs.h"

using namespace sanastream;
using nlohmann::json;
using sanastream::test::file_exists;
using sanastream::test::golden_root;
using sanastream::test::narrow_ltx2_config;
using sanastream::test::run_cli;
using sanastream::test::temp_dir;

namespace {

double rel_l2(const at::Tensor& a, const at::Tensor& b) { return compare_tensors(a, b).rel_l2; }

// The other structural options: an encoder "conv" downsampler and non-scaling block, replicate /
// circular padding, decoder blocks with factor 1 whose width changes (LayerNorm + 1×1×1 shortcut
// resnet), temporal-only and spatial-only upsamplers and a non-residual one, the causal class's
// reversed decoder_upsample_type.
json other_options_config() {
  return {{"latent_channels", 16},
          {"block_out_channels", {16, 16, 32, 32, 32}},
          {"layers_per_block", {1, 1, 1, 1, 1, 1}},
          {"spatio_temporal_scaling", {true, true, true, true, false}},
          {"downsample_type", {"conv", "temporal", "spatial", "spatiotemporal", "spatial"}},
          {"decoder_block_out_channels", {8, 16, 32, 32}},
          {"decoder_layers_per_block", {1, 1, 1, 1, 1}},
          {"decoder_spatio_temporal_scaling", true},
          {"decoder_upsample_type", {"spatial", "temporal", "spatiotemporal", "spatiotemporal"}},
          {"upsample_residual", {true, false, true, false}},
          {"upsample_factor", {1, 1, 1, 1}},
          {"decoder_inject_noise", false},
          {"encoder_causal", true},
          {"decoder_causal", true},
          {"encoder_spatial_padding_mode", "replicate"},
          {"decoder_spatial_padding_mode", "circular"}};
}

std::unique_ptr<model::Ltx2Vae> random_vae(const json& cfg_json, uint64_t seed) {
  const model::Ltx2VaeConfig cfg = model::parse_ltx2_vae_config(cfg_json);
  return std::make_unique<model::Ltx2Vae>(model::random_ltx2_vae_weights(cfg, seed), cfg, make_runtime("cpu", "fp32"));
}

at::Tensor random_video(int64_t frames, int64_t h, int64_t w, uint64_t seed) {
  at::manual_seed(seed);
  return at::rand({1, 3, frames, h, w}) * 2 - 1;
}

// Encodes in calls of the given sizes (the last repeats until the clip ends).
at::Tensor encode_chunked(const model::Ltx2Vae& vae, const at::Tensor& video, const std::vector<int64_t>& sizes,
                          const model::VaeTiling& tiling = {}) {
  model::Ltx2VaeEncodeStream s(vae, tiling);
  std::vector<at::Tensor> out;
  int64_t f = 0;
  for (size_t i = 0; f < video.size(2); ++i) {
    const int64_t n = std::min(sizes[std::min(i, sizes.size() - 1)], video.size(2) - f);
    at::Tensor part = s.push(video.narrow(2, f, n));
    // Latent frames come out as soon as they are complete: frame j·8 completes latent j.
    EXPECT_EQ(part.size(2), (f + n - 1) / 8 - (f == 0 ? -1 : (f - 1) / 8)) << "call " << i;
    out.push_back(part);
    f += n;
  }
  s.finish();
  return at::cat(out, 2);
}

at::Tensor decode_chunked(const model::Ltx2Vae& vae, const at::Tensor& z, const std::vector<int64_t>& sizes,
                          const model::VaeTiling& tiling = {}) {
  model::Ltx2VaeDecodeStream s(vae, tiling);
  std::vector<at::Tensor> out;
  int64_t t = 0;
  for (size_t i = 0; t < z.size(2); ++i) {
    const int64_t n = std::min(sizes[std::min(i, sizes.size() - 1)], z.size(2) - t);
    at::Tensor part = s.push(z.narrow(2, t, n));
    EXPECT_EQ(part.size(2), t == 0 ? 1 + (n - 1) * 8 : n * 8);
    out.push_back(part);
    t += n;
  }
  return at::cat(out, 2);
}

}  // namespace

TEST(Ltx2VaeConfig, GoldenConfigAndUnsupportedOptions) {
  const std::string set = golden_root() + "/ltx2_vae_small";
  REQUIRE_GOLDEN(set + "/config.json");
  const model::Ltx2VaeConfig c = model::load_ltx2_vae_config(set + "/config.json");
  EXPECT_EQ(c.temporal_ratio(), 8);
  EXPECT_EQ(c.spatial_ratio(), 32);
  EXPECT_FALSE(c.decoder_causal);
  EXPECT_EQ(c.decoder_padding, model::VaePadding::kReflect);
  const auto up = c.up_blocks();
  ASSERT_EQ(up.size(), 3u);
  EXPECT_EQ(up[0].in_channels, 32);
  EXPECT_EQ(up[0].out_channels, 32);
  EXPECT_EQ(up[2].out_channels, 8);
  // The causal class's config (decoder_upsample_type null) describes the same network.
  const model::Ltx2VaeConfig cc = model::load_ltx2_vae_config(set + "/causal_class_config.json");
  EXPECT_EQ(cc.to_json().dump(), c.to_json().dump());
  // Round trip through our own JSON.
  EXPECT_EQ(model::parse_ltx2_vae_config(c.to_json()).to_json().dump(), c.to_json().dump());

  // decoder_upsample_type is in config order and reversed, upsample_type is in decode order.
  const model::Ltx2VaeConfig o = model::parse_ltx2_vae_config(other_options_config());
  EXPECT_EQ(o.dec_up[0], model::VaeResample::kSpatioTemporal);
  EXPECT_EQ(o.dec_up[3], model::VaeResample::kSpatial);
  EXPECT_EQ(o.enc_down[4], model::VaeResample::kNone);

  auto rejects = [&](json j, const std::string& fragment) {
    try {
      model::parse_ltx2_vae_config(j);
      ADD_FAILURE() << "accepted: " << fragment;
    } catch (const Error& e) {
      EXPECT_NE(e.message().find(fragment), std::string::npos) << e.message();
    }
  };
  json j = narrow_ltx2_config(false);
  j["timestep_conditioning"] = true;
  rejects(j, "timestep_conditioning");
  j = narrow_ltx2_config(false);
  j["decoder_inject_noise"] = {false, true, false, false};
  rejects(j, "decoder_inject_noise");
  j = narrow_ltx2_config(false);
  j["patch_size_t"] = 2;
  rejects(j, "patch_size_t");
  j = narrow_ltx2_config(false);
  j["layers_per_block"] = {1, 1, 1, 1};
  rejects(j, "layers_per_block has 4 entries, expected 5");
  j = narrow_ltx2_config(false);
  j["downsample_type"][1] = "sideways";
  rejects(j, "sideways");
  j = narrow_ltx2_config(false);
  j["upsample_type"][0] = "conv";
  rejects(j, "upsample_type");
  j = narrow_ltx2_config(false);
  j["decoder_spatial_padding_mode"] = "mirror";
  rejects(j, "mirror");
  j = narrow_ltx2_config(false);
  j["down_block_types"] = {"LTXVideoDownBlock3D", "LTX2VideoDownBlock3D", "LTX2VideoDownBlock3D", "LTX2VideoDownBlock3D"};
  rejects(j, "LTXVideoDownBlock3D");
  j = narrow_ltx2_config(false);
  j["temporal_compression_ratio"] = 4;
  rejects(j, "temporal_compression_ratio 4");
  j = narrow_ltx2_config(false);
  j["use_quant_conv"] = true;
  rejects(j, "use_quant_conv");
  // A decoder that does not invert the encoder's compression.
  j = narrow_ltx2_config(false);
  j["upsample_type"] = {"spatial", "spatiotemporal", "spatiotemporal"};
  const model::Ltx2VaeConfig bad = model::parse_ltx2_vae_config(j);
  EXPECT_THROW(model::Ltx2Vae(model::random_ltx2_vae_weights(bad, 1), bad, make_runtime("cpu", "fp32")), Error);
}

TEST(GoldenCheck, VaeSetPassesInFp32OnCpu) {
  const std::string set = golden_root() + "/ltx2_vae_small";
  REQUIRE_GOLDEN(set + "/outputs.safetensors");
  const std::string dir = temp_dir("golden_vae");
  auto r = run_cli({"golden-check", set, "--require", "vae", "--json", dir + "/report.json"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  std::ifstream in(dir + "/report.json");
  auto j = json::parse(in);
  ASSERT_EQ(j["sets"].size(), 1u);
  EXPECT_EQ(j["sets"][0]["status"], "pass");
  std::set<std::string> names;
  for (const auto& t : j["sets"][0]["tensors"]) {
    names.insert(t["name"]);
    EXPECT_LE(t["rel_l2"].get<double>(), 1e-4) << t["name"];
  }
  for (const char* n : {"enc.diffusers.mode", "enc.diffusers.normalized", "enc.causal_chunked.mode",
                        "enc.causal_chunked.normalized", "dec.input_denormalized", "dec.diffusers",
                        "dec.causal_class_noncausal_full", "dec.chunk_tile", "dec.causal_full", "dec.causal_stream"})
    EXPECT_TRUE(names.count(n)) << n;
}

// The encoder fed 1 + 8k frames and then 8 at a time (and other splits, down to single frames) returns
// exactly the whole-clip latents, each as soon as its last frame arrived.
TEST(Ltx2VaeStreaming, ChunkedCausalEncodeEqualsWholeClip) {
  for (const json& cfg : {narrow_ltx2_config(false), other_options_config()}) {
    auto vae = random_vae(cfg, 11);
    const at::Tensor video = random_video(25, 64, 96, 3);
    const at::Tensor whole = vae->encode(video);
    ASSERT_EQ(whole.sizes(), (std::vector<int64_t>{1, 16, 4, 2, 3}));
    for (const std::vector<int64_t>& sizes :
         std::vector<std::vector<int64_t>>{{1, 8}, {9, 8}, {17, 8}, {25}, {3, 5, 2, 7}, {1}}) {
      const at::Tensor chunked = encode_chunked(*vae, video, sizes);
      EXPECT_LE(rel_l2(chunked, whole), 1e-5) << cfg.dump() << " first call " << sizes[0];
    }
    // An incomplete last latent frame is an error at the end of the stream, and frames must keep their size.
    model::Ltx2VaeEncodeStream s(*vae);
    s.push(video.narrow(2, 0, 12));
    EXPECT_THROW(s.finish(), Error);
    EXPECT_THROW(s.push(random_video(8, 64, 64, 1)), Error);
  }
}

// The causal decoder fed latent frames chunk by chunk returns exactly the whole-clip causal decode.
TEST(Ltx2VaeStreaming, ChunkedCausalDecodeEqualsWholeClip) {
  for (const json& cfg : {narrow_ltx2_config(true), other_options_config()}) {
    auto vae = random_vae(cfg, 5);
    at::manual_seed(9);
    const at::Tensor z = at::randn({1, 16, 5, 2, 3});
    const at::Tensor whole = vae->decode(z, model::VaeDecoderKind::kCausal);
    ASSERT_EQ(whole.sizes(), (std::vector<int64_t>{1, 3, 33, 64, 96}));
    for (const std::vector<int64_t>& sizes : std::vector<std::vector<int64_t>>{{1}, {2}, {1, 2}, {3, 1}, {5}}) {
      const at::Tensor chunked = decode_chunked(*vae, z, sizes);
      EXPECT_LE(rel_l2(chunked, whole), 1e-5) << cfg.dump() << " first call " << sizes[0];
    }
    // The causal decode differs from the non-causal one (the decoder really looks ahead there).
    EXPECT_GT(rel_l2(vae->decode(z, model::VaeDecoderKind::kNonCausal), whole), 1e-3);
  }
}

// Spatial tiles keep their own stream caches: a tiled stream equals the tiled whole clip.
TEST(Ltx2VaeTiling, TiledStreamsEqualTiledWholeClip) {
  auto vae = random_vae(narrow_ltx2_config(true), 21);
  const model::VaeTiling tiling{128, 64};
  at::manual_seed(2);
  const at::Tensor z = at::randn({1, 16, 2, 5, 6});
  const at::Tensor whole = vae->decode(z, model::VaeDecoderKind::kCausal, tiling);
  EXPECT_LE(rel_l2(decode_chunked(*vae, z, {1, 1}, tiling), whole), 1e-5);
  const at::Tensor untiled = vae->decode(z, model::VaeDecoderKind::kCausal);
  EXPECT_GT(rel_l2(whole, untiled), 0.0);  // tiles really were used
  const at::Tensor video = random_video(9, 160, 192, 4);
  const at::Tensor enc = vae->encode(video, tiling);
  EXPECT_EQ(enc.sizes(), (std::vector<int64_t>{1, 16, 2, 5, 6}));
  EXPECT_LE(rel_l2(encode_chunked(*vae, video, {1, 8}, tiling), enc), 1e-5);
  // The chunk-tile decode takes spatial tiles too and keeps the frame count.
  EXPECT_EQ(vae->decode(z, model::VaeDecoderKind::kChunkTile, tiling).sizes(),
            (std::vector<int64_t>{1, 3, 9, 160, 192}));
}

TEST(Ltx2VaeTiling, SpansAndSpecs) {
  EXPECT_EQ(model::describe(model::parse_vae_tiling("0")), "off");
  EXPECT_EQ(model::describe(model::parse_vae_tiling("256:64")), "256:64 px");
  EXPECT_EQ(model::parse_vae_tiling("384").overlap, 192);
  for (const char* bad : {"abc", "64:64", "-32", "512:x", ":"}) EXPECT_THROW(model::parse_vae_tiling(bad), Error) << bad;
  // Tile size and overlap must be whole latent pixels.
  auto vae = random_vae(narrow_ltx2_config(true), 1);
  EXPECT_THROW(vae->decode(at::zeros({1, 16, 1, 4, 4}), model::VaeDecoderKind::kCausal, {100, 20}), Error);
}

namespace {

// A VAE directory in the diffusers layout with random weights.
std::string write_vae_dir(const std::string& dir, const json& cfg_json, uint64_t seed) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/config.json") << cfg_json.dump(1);
  io::save_safetensors(dir + "/diffusion_pytorch_model.safetensors",
                       model::random_ltx2_vae_weights(model::parse_ltx2_vae_config(cfg_json), seed, at::kBFloat16));
  return dir;
}

at::Tensor load_one(const std::string& path, const std::string& name) { return io::load_safetensors(path).at(name); }

}  // namespace

TEST(VaeCli, EncodeAndDecodeWholeAndStreamed) {
  const std::string dir = temp_dir("vae_cli");
  const std::string vae = write_vae_dir(dir + "/vae", narrow_ltx2_config(true), 3);
  io::save_safetensors(dir + "/video.safetensors", {{"inputs.video", random_video(17, 64, 96, 8)}});
  auto enc = run_cli({"encode-video", "--vae", vae, "--input", dir + "/video.safetensors", "--output",
                      dir + "/lat.safetensors", "--json", dir + "/enc.json"});
  ASSERT_EQ(enc.exit_code, 0) << enc.err;
  auto enc8 = run_cli({"encode-video", "--vae", vae, "--input", dir + "/video.safetensors", "--output",
                       dir + "/lat8.safetensors", "--chunk", "8"});
  ASSERT_EQ(enc8.exit_code, 0) << enc8.err;
  const at::Tensor lat = load_one(dir + "/lat.safetensors", "output.latents");
  EXPECT_EQ(lat.sizes(), (std::vector<int64_t>{1, 16, 3, 2, 3}));
  EXPECT_LE(rel_l2(load_one(dir + "/lat8.safetensors", "output.latents"), lat), 1e-5);
  auto report = json::parse(std::ifstream(dir + "/enc.json"));
  EXPECT_GT(report["peak_host_rss_mib"].get<double>(), 0.0);
  EXPECT_EQ(report["vae"]["temporal_compression_ratio"], 8);

  // decode-latents reads encode-video's output; the causal decoder (the config's) streamed in 1-frame calls.
  auto dec = run_cli({"decode-latents", "--vae", vae, "--input", dir + "/lat.safetensors", "--output",
                      dir + "/video_out.safetensors", "--json", dir + "/dec.json"});
  ASSERT_EQ(dec.exit_code, 0) << dec.err;
  auto dec1 = run_cli({"decode-latents", "--vae", vae, "--input", dir + "/lat.safetensors", "--output",
                       dir + "/video_out1.safetensors", "--chunk", "1"});
  ASSERT_EQ(dec1.exit_code, 0) << dec1.err;
  const at::Tensor frames = load_one(dir + "/video_out.safetensors", "output.video");
  EXPECT_EQ(frames.sizes(), (std::vector<int64_t>{1, 3, 17, 64, 96}));
  EXPECT_LE(rel_l2(load_one(dir + "/video_out1.safetensors", "output.video"), frames), 1e-5);
  EXPECT_EQ(json::parse(std::ifstream(dir + "/dec.json"))["decoder"], "causal");
  auto ct = run_cli({"decode-latents", "--vae", vae, "--input", dir + "/lat.safetensors", "--output",
                     dir + "/video_ct.safetensors", "--decoder", "chunk-tile"});
  ASSERT_EQ(ct.exit_code, 0) << ct.err;
  EXPECT_EQ(load_one(dir + "/video_ct.safetensors", "output.video").sizes(), frames.sizes());
}

// A config that does not match its weights, and inputs the path cannot take: one line, exit 1, no output.
TEST(VaeCli, BadInputsGiveOneLineAndExitOne) {
  const std::string dir = temp_dir("vae_cli_bad");
  const json cfg = narrow_ltx2_config(false);
  const std::string vae = write_vae_dir(dir + "/vae", cfg, 4);
  io::save_safetensors(dir + "/video.safetensors", {{"inputs.video", random_video(17, 64, 96, 1)}});
  io::save_safetensors(dir + "/video18.safetensors", {{"inputs.video", random_video(18, 64, 96, 1)}});
  io::save_safetensors(dir + "/video70.safetensors", {{"inputs.video", random_video(9, 70, 96, 1)}});
  io::save_safetensors(dir + "/lat.safetensors", {{"output.latents", at::randn({1, 16, 2, 2, 3})}});
  io::save_safetensors(dir + "/lat8.safetensors", {{"output.latents", at::randn({1, 8, 2, 2, 3})}});

  // Mismatched config / weights.
  json more_layers = cfg;
  more_layers["layers_per_block"] = {2, 1, 1, 1, 1};
  std::filesystem::create_directories(dir + "/more_layers");
  std::ofstream(dir + "/more_layers/config.json") << more_layers.dump();
  auto w = io::load_safetensors(vae + "/diffusion_pytorch_model.safetensors");
  w["encoder.down_blocks.1.resnets.0.conv1.conv.weight"] = at::zeros({8, 8, 3, 3, 1});
  std::filesystem::create_directories(dir + "/bad_shape");
  std::ofstream(dir + "/bad_shape/config.json") << cfg.dump();
  io::save_safetensors(dir + "/bad_shape/diffusion_pytorch_model.safetensors", w);
  w = io::load_safetensors(vae + "/diffusion_pytorch_model.safetensors");
  w["decoder.up_blocks.0.resnets.1.conv1.conv.weight"] = at::zeros({16, 16, 3, 3, 3});
  std::filesystem::create_directories(dir + "/extra");
  std::ofstream(dir + "/extra/config.json") << cfg.dump();
  io::save_safetensors(dir + "/extra/diffusion_pytorch_model.safetensors", w);

  auto expect_fail = [&](std::vector<std::string> args, const std::string& fragment) {
    const std::string out = dir + "/out.safetensors";
    args.insert(args.end(), {"--output", out});
    auto r = run_cli(args);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_EQ(r.err_lines(), 1) << r.err;
    EXPECT_NE(r.err.find(fragment), std::string::npos) << r.err;
    EXPECT_FALSE(file_exists(out));
    EXPECT_FALSE(file_exists(out + ".part"));
  };
  const std::string weights = vae + "/diffusion_pytorch_model.safetensors";
  expect_fail({"encode-video", "--vae", weights, "--vae-config", dir + "/more_layers/config.json", "--input",
               dir + "/video.safetensors"}, "missing tensor 'encoder.down_blocks.0.resnets.1.conv1.conv.weight'");
  expect_fail({"decode-latents", "--vae", dir + "/bad_shape", "--input", dir + "/lat.safetensors"},
              "'encoder.down_blocks.1.resnets.0.conv1.conv.weight' expected shape (8, 8, 3, 3, 3)");
  expect_fail({"decode-latents", "--vae", dir + "/extra", "--input", dir + "/lat.safetensors"},
              "decoder.up_blocks.0.resnets.1.conv1.conv.weight");
  expect_fail({"encode-video", "--vae", vae, "--input", dir + "/video18.safetensors", "--chunk", "8"},
              "expected 1 + 8k frames (whole latent frames), got 18");
  expect_fail({"encode-video", "--vae", vae, "--input", dir + "/video70.safetensors"}, "multiples of 32, got 70x96");
  expect_fail({"decode-latents", "--vae", vae, "--input", dir + "/lat8.safetensors"}, "expected latents [B, 16, T, h, w]");
  expect_fail({"decode-latents", "--vae", vae, "--input", dir + "/lat.safetensors", "--decoder", "noncausal",
               "--chunk", "1"}, "--chunk streams the causal decoder only");
  expect_fail({"decode-latents", "--vae", vae, "--input", dir + "/lat.safetensors", "--decoder", "sideways"},
              "--decoder");
  expect_fail({"decode-latents", "--vae", vae, "--input", dir + "/lat.safetensors", "--tile", "100:10"},
              "multiples of 32 pixels");
  expect_fail({"decode-latents", "--vae", dir + "/nowhere", "--input", dir + "/lat.safetensors"}, "does not exist");
  expect_fail({"decode-latents", "--vae", vae, "--input", dir + "/video.safetensors"}, "expected latents");
}

namespace {

// diffusers → Lightricks-native names, written independently of the converter (its inverse).
std::string to_native(const std::string& key) {
  static const std::vector<std::pair<std::regex, std::string>> rules = {
      {std::regex(R"(^encoder\.mid_block\.resnets\.)"), "encoder.down_blocks.8.res_blocks."},
      {std::regex(R"(^decoder\.mid_block\.resnets\.)"), "decoder.up_blocks.0.res_blocks."},
      {std::regex(R"(^latents_mean$)"), "per_channel_statistics.mean-of-means"},
      {std::regex(R"(^latents_std$)"), "per_channel_statistics.std-of-means"},
  };
  for (const auto& [re, to] : rules)
    if (std::regex_search(key, re)) return "vae." + std::regex_replace(key, re, to);
  std::smatch m;
  if (std::regex_match(key, m, std::regex(R"(^encoder\.down_blocks\.(\d)\.downsamplers\.0\.(.*)$)")))
    return fmt::format("vae.encoder.down_blocks.{}.{}", 2 * std::stoi(m[1]) + 1, m[2].str());
  if (std::regex_match(key, m, std::regex(R"(^encoder\.down_blocks\.(\d)\.resnets\.(.*)$)")))
    return fmt::format("vae.encoder.down_blocks.{}.res_blocks.{}", 2 * std::stoi(m[1]), m[2].str());
  if (std::regex_match(key, m, std::regex(R"(^decoder\.up_blocks\.(\d)\.upsamplers\.0\.(.*)$)")))
    return fmt::format("vae.decoder.up_blocks.{}.{}", 2 * std::stoi(m[1]) + 1, m[2].str());
  if (std::regex_match(key, m, std::regex(R"(^decoder\.up_blocks\.(\d)\.resnets\.(.*)$)")))
    return fmt::format("vae.decoder.up_blocks.{}.res_blocks.{}", 2 * std::stoi(m[1]) + 2, m[2].str());
  return "vae." + key;  // conv_in, conv_out
}

}  // namespace

TEST(Ltx2NativeConversion, RoundTripsTheGoldenWeights) {
  const std::string set = golden_root() + "/ltx2_vae_small";
  REQUIRE_GOLDEN(set + "/diffusion_pytorch_model.safetensors");
  EXPECT_EQ(model::ltx2_native_vae_key("decoder.up_blocks.3.conv.conv.weight"),
            "decoder.up_blocks.1.upsamplers.0.conv.conv.weight");
  EXPECT_EQ(model::ltx2_native_vae_key("encoder.down_blocks.8.res_blocks.1.conv2.conv.bias"),
            "encoder.mid_block.resnets.1.conv2.conv.bias");
  const std::string dir = temp_dir("vae_native");
  const auto golden = io::load_safetensors(set + "/diffusion_pytorch_model.safetensors");
  io::TensorMap native;
  for (const auto& [k, t] : golden) native[to_native(k)] = t;
  EXPECT_TRUE(native.count("vae.decoder.up_blocks.6.res_blocks.4.conv2.conv.weight"));
  EXPECT_TRUE(native.count("vae.encoder.down_blocks.7.conv.conv.bias"));
  native["vae.per_channel_statistics.channel"] = at::arange(128);
  native["vae.per_channel_statistics.mean-of-stds"] = at::ones({128});
  native["model.diffusion_model.patchify_proj.weight"] = at::zeros({4, 4});
  native["audio_vae.decoder.conv_in.conv.weight"] = at::zeros({2});
  io::save_safetensors(dir + "/ltx2.safetensors", native);

  auto r = run_cli({"convert", "--from", "ltx2-native", dir + "/ltx2.safetensors", dir + "/vae.safetensors",
                    "--vae-config", set + "/config.json", "--json", dir + "/convert.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto converted = io::load_safetensors(dir + "/vae.safetensors");
  ASSERT_EQ(converted.size(), golden.size());
  for (const auto& [k, t] : golden) {
    ASSERT_TRUE(converted.count(k)) << k;
    EXPECT_TRUE(at::equal(converted.at(k), t)) << k;
  }
  EXPECT_EQ(json::parse(std::ifstream(dir + "/convert.json"))["dropped"].size(), 2u);

  // Against a config it does not match: one line, exit 1, nothing written.
  std::ofstream(dir + "/narrow.json") << narrow_ltx2_config(false).dump();
  auto bad = run_cli({"convert", "--from", "ltx2-native", dir + "/ltx2.safetensors", dir + "/bad.safetensors",
                      "--vae-config", dir + "/narrow.json"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.err_lines(), 1) << bad.err;
  EXPECT_NE(bad.err.find("does not match"), std::string::npos) << bad.err;
  EXPECT_FALSE(file_exists(dir + "/bad.safetensors"));
  // A file without a native VAE.
  auto none = run_cli({"convert", "--from", "ltx2-native", set + "/diffusion_pytorch_model.safetensors",
                       dir + "/none.safetensors"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("not a Lightricks-native LTX-2 checkpoint"), std::string::npos) << none.err;
  // Plain conversion is unchanged: the native file copied with its keys.
  auto plain = run_cli({"convert", dir + "/ltx2.safetensors", dir + "/plain.safetensors"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(io::load_safetensors(dir + "/plain.safetensors").size(), native.size());
}

// 704×1280 (22×40 latents), one latent frame, a narrow random decoder of the LTX-2 depth (5 resnets per
// block): the tiled decode at the default tile size and overlap agrees with the untiled one;
// decode-latents reports each run's peak memory.
TEST(Ltx2VaeTiling, TiledDecodeAt704x1280MatchesUntiled) {
  const std::string dir = temp_dir("vae_tiling_704");
  json cfg = narrow_ltx2_config(false);
  cfg["decoder_layers_per_block"] = {5, 5, 5, 5};
  const std::string vae = write_vae_dir(dir + "/vae", cfg, 6);
  at::manual_seed(3);
  io::save_safetensors(dir + "/lat.safetensors", {{"output.latents", at::randn({1, 16, 1, 22, 40})}});
  double peak[2] = {0, 0};
  at::Tensor frames[2];
  for (int tiled = 0; tiled < 2; ++tiled) {
    const std::string out = fmt::format("{}/video{}.safetensors", dir, tiled);
    std::vector<std::string> args = {"decode-latents", "--vae", vae, "--input", dir + "/lat.safetensors",
                                     "--output", out, "--json", out + ".json"};
    if (!tiled) args.insert(args.end(), {"--tile", "0"});
    auto r = run_cli(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = json::parse(std::ifstream(out + ".json"));
    EXPECT_EQ(j["tiling"], tiled ? model::describe(model::default_vae_tiling()) : "off");
    peak[tiled] = j["peak_host_rss_mib"].get<double>();
    frames[tiled] = load_one(out, "output.video");
  }
  ASSERT_EQ(frames[0].sizes(), (std::vector<int64_t>{1, 3, 1, 704, 1280}));
  const double rel = rel_l2(frames[1], frames[0]);
  std::printf("704x1280, 1 frame: tiled vs untiled rel L2 %.3e; peak RSS untiled %.0f MiB, tiled %.0f MiB\n", rel,
              peak[0], peak[1]);
  EXPECT_LE(rel, 1e-2);
  EXPECT_GT(rel, 0.0);  // the tiles were really used
}

// A measurement, not a check (skipped unless SANASTREAM_VAE_FULLSIZE=fp32|bf16; minutes, ~4 GB): the full
// LTX-2 decoder (channels 256/512/1024, 5 resnets per block; random weights) at 704×1280, 2 latent frames,
// untiled, tiled at the default, and streamed chunk by chunk; prints time and peak memory of each run
// (SANASTREAM_VAE_DEVICE=cuda for the GPU's caching-allocator peak). docs/VAE.md quotes its output.
TEST(Ltx2VaeMemory, FullSizeDecoderAt704x1280) {
  const char* dtype = std::getenv("SANASTREAM_VAE_FULLSIZE");
  if (!dtype) GTEST_SKIP() << "set SANASTREAM_VAE_FULLSIZE=fp32 or bf16 to measure";
  const char* device = std::getenv("SANASTREAM_VAE_DEVICE");
  const std::string dir = temp_dir("vae_fullsize");
  json cfg = narrow_ltx2_config(false);  // a narrow encoder: only the decoder is measured
  cfg["latent_channels"] = 128;
  cfg["block_out_channels"] = {32, 32, 64, 64};
  cfg.erase("decoder_block_out_channels");  // the diffusers defaults: (256, 512, 1024), 5 resnets per block
  cfg.erase("decoder_layers_per_block");
  const std::string vae = write_vae_dir(dir + "/vae", cfg, 1);
  at::manual_seed(5);
  io::save_safetensors(dir + "/lat.safetensors", {{"output.latents", at::randn({1, 128, 2, 22, 40})}});
  struct Run {
    const char* what;
    std::vector<std::string> extra;
  };
  for (const Run& run : {Run{"non-causal, untiled", {"--tile", "0"}}, Run{"non-causal, tiled (default)", {}},
                         Run{"causal, untiled, 1 latent frame per call", {"--decoder", "causal", "--chunk", "1", "--tile", "0"}},
                         Run{"causal, tiled, 1 latent frame per call", {"--decoder", "causal", "--chunk", "1"}}}) {
    std::vector<std::string> args = {"decode-latents", "--vae", vae, "--input", dir + "/lat.safetensors", "--output",
                                     dir + "/out.safetensors", "--dtype", dtype, "--json", dir + "/run.json"};
    if (device) args.insert(args.end(), {"--device", device});
    args.insert(args.end(), run.extra.begin(), run.extra.end());
    auto r = run_cli(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = json::parse(std::ifstream(dir + "/run.json"));
    std::printf("full-size decoder %s %s, 704x1280, 9 frames, %s: %.1f s, peak host RSS %.0f MiB, device peak %.0f MiB\n",
                dtype, device ? device : "cpu", run.what, j["seconds"].get<double>(),
                j["peak_host_rss_mib"].get<double>(), j["peak_device_mib"].get<double>());
  }
}

// The chunk-tile decode on clips longer than the golden one (which blends only one pair of tiles over 8
// frames): the release's algorithm written out directly — decode every tile z[i : i + 4], drop the first
// frame of later tiles, blend each with the previous (already blended) tile over min(16, lengths) frames,
// keep 9 frames of the first tile and 8 of the others.
TEST(Ltx2VaeChunkTile, MatchesTheReleaseAlgorithmOnLongerClips) {
  auto vae = random_vae(narrow_ltx2_config(false), 8);
  at::manual_seed(4);
  for (int64_t T : {1, 2, 7}) {
    const at::Tensor z = at::randn({1, 16, T, 2, 2});
    std::vector<at::Tensor> row;
    for (int64_t i = 0; i < T; ++i) {
      at::Tensor d = vae->decode(z.narrow(2, i, std::min<int64_t>(4, T - i)), model::VaeDecoderKind::kNonCausal);
      row.push_back(i > 0 ? d.narrow(2, 1, d.size(2) - 1) : d);
    }
    std::vector<at::Tensor> kept;
    for (size_t i = 0; i < row.size(); ++i) {
      if (i == 0) {
        kept.push_back(row[0].narrow(2, 0, std::min<int64_t>(9, row[0].size(2))));
        continue;
      }
      const int64_t e = std::min({row[i - 1].size(2), row[i].size(2), int64_t{16}});
      for (int64_t x = 0; x < e; ++x)
        row[i].select(2, x).copy_(row[i - 1].select(2, row[i - 1].size(2) - e + x) * (1.0 - double(x) / e) +
                                  row[i].select(2, x) * (double(x) / e));
      kept.push_back(row[i].narrow(2, 0, std::min<int64_t>(8, row[i].size(2))));
    }
    const at::Tensor want = at::cat(kept, 2).narrow(2, 0, 1 + (T - 1) * 8);
    const at::Tensor got = vae->decode(z, model::VaeDecoderKind::kChunkTile);
    ASSERT_EQ(got.sizes(), want.sizes()) << T;
    EXPECT_LE(rel_l2(got, want), 1e-6) << T;
  }
}

// The VAE's resnet convolutions in FP8 (issue 15, docs/QUANT.md "The VAE in FP8"), simulated on the
// CPU. The static input scale √C / 448 does not saturate SiLU(pixel-norm(x)) even when one channel
// holds nearly all of every pixel's energy (its value is then √C): each value moves by at most E4M3's
// half step. A plan's "vae": "fp8" moves decoded and encoded frames by the format's error, the
// streams still equal the whole clip, and int8 is refused.
TEST(Ltx2VaeFp8, SimulatedResnetsMoveTheFramesByTheFormatsError) {
  const int64_t C = 64;
  at::manual_seed(4);
  at::Tensor x = at::randn({1, C, 2, 4, 4}) * 1e-3;
  x.select(1, 5).fill_(50.f);
  ops::ConvInputSpec spec;
  spec.norm_silu = true;
  spec.pad = 1;
  const at::Tensor v = ops::vae_conv_input(x, {}, spec);
  const double s = ops::vae_fp8_input_scale(C);
  EXPECT_NEAR(v.abs().max().item<double>(), std::sqrt(double(C)), 0.01) << "the bound is reached";
  const at::Tensor q = ops::fake_quant_conv_input(v, s);
  EXPECT_TRUE((q - v).abs().le(v.abs() / 16 + s * std::ldexp(1.0, -10)).all().item<bool>())
      << "no value is clipped: each moves by at most half an E4M3 step";

  for (const json& cfg : {narrow_ltx2_config(true), other_options_config()}) {
    auto vae = random_vae(cfg, 5);
    auto fp8 = random_vae(cfg, 5);
    fp8->set_resnet_precision(ops::Precision::kFP8);
    EXPECT_EQ(fp8->resnet_precision(), ops::Precision::kFP8);
    at::manual_seed(9);
    const at::Tensor z = at::randn({1, 16, 3, 2, 3});
    const at::Tensor ref = vae->decode(z, model::VaeDecoderKind::kCausal);
    const at::Tensor got = fp8->decode(z, model::VaeDecoderKind::kCausal);
    const double err = rel_l2(got, ref);
    EXPECT_GT(err, 1e-3) << cfg.dump() << " the resnets really are quantized";
    EXPECT_LT(err, 0.15) << cfg.dump();
    EXPECT_LE(rel_l2(decode_chunked(*fp8, z, {1, 2}), got), 1e-5) << cfg.dump() << " streaming";
    const at::Tensor video = random_video(9, 64, 64, 3);
    const double enc_err = rel_l2(fp8->encode(video), vae->encode(video));
    EXPECT_GT(enc_err, 1e-3) << cfg.dump();
    EXPECT_LT(enc_err, 0.15) << cfg.dump();
  }
  auto vae = random_vae(narrow_ltx2_config(true), 5);
  EXPECT_NE(test::error_of([&] { vae->set_resnet_precision(ops::Precision::kINT8); }).find("not int8"),
            std::string::npos);
}

// On a GPU with FP8 convolutions (skipped elsewhere): the conv-input kernel's E4M3 output is the
// simulation's grid value of its bf16 output, with E4M3 history copied in front; cuDNN's FP8
// convolution with the scale and bias in its graph equals the float64 convolution of the same
// quantized operands within the bf16 output's rounding; a VAE with FP8 resnets decodes as its CPU
// simulation does within the formats' differences, and its stream equals its whole clip.
TEST(GpuVaeFp8, ConvInputConvolutionAndVaeMatchTheirSimulation) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  if (!ops::conv3d_fp8_available(at::Device(at::kCUDA, 0), at::kBFloat16)) GTEST_SKIP() << "no FP8 convolutions";
  const auto cl = at::MemoryFormat::ChannelsLast3d;
  const int64_t B = 2, C = 32, K = 48, T = 3, H = 6, W = 10;
  at::manual_seed(11);
  const at::Tensor x = (at::randn({B, C, T, H, W}) * 2).to(at::kBFloat16).contiguous(cl).cuda();
  const double s = ops::vae_fp8_input_scale(C);
  const at::Tensor w = (at::randn({K, C, 3, 3, 3}) / 12).to(at::kBFloat16).contiguous(cl).cuda();
  const ops::Fp8ConvWeight wq = ops::quantize_conv_weight_fp8(w);
  const at::Tensor bias = at::randn({K}).cuda();
  auto dequant_w = [&] {
    return wq.q.cpu().to(at::kDouble) * wq.scale.cpu().to(at::kDouble).view({K, 1, 1, 1, 1});
  };
  for (int64_t pad : {1, 0}) {  // reflect-padded input, or the convolution's zero padding
    ops::ConvInputSpec spec;
    spec.norm_silu = true;
    spec.pad = pad;
    spec.lead = 2;
    const at::Tensor plain = ops::vae_conv_input(x, {}, spec);
    spec.fp8_scale = s;
    const at::Tensor q = ops::vae_conv_input(x, {}, spec);
    const at::Tensor grid = ops::round_to_grid(plain.cpu().to(at::kFloat) / s, ops::Precision::kFP8);
    EXPECT_TRUE(at::equal(q.cpu().to(at::kFloat), grid)) << "pad " << pad;
    // History: the last two E4M3 frames in front of the next call's frames.
    ops::ConvInputSpec next = spec;
    next.lead = 0;
    const at::Tensor hist = q.narrow(2, q.size(2) - 2, 2).clone(cl);
    const at::Tensor q2 = ops::vae_conv_input(x, hist, next);
    EXPECT_TRUE(at::equal(q2.narrow(2, 0, 2).cpu().to(at::kFloat), hist.cpu().to(at::kFloat)));
    EXPECT_TRUE(at::equal(q2.narrow(2, 2, T).cpu().to(at::kFloat), grid.narrow(2, 2, T)));

    const int64_t zp = 1 - pad;
    const at::Tensor y = ops::conv3d_fp8(q, wq.q, wq.scale * s, bias, 1, zp);
    ASSERT_EQ(y.sizes(), (std::vector<int64_t>{B, K, T, H, W}));
    const at::Tensor want = at::conv3d(q.cpu().to(at::kDouble) * s, dequant_w(), bias.cpu().to(at::kDouble), {1, 1, 1},
                                       {0, zp, zp});
    EXPECT_LT(rel_l2(y.cpu().to(at::kDouble), want), 4e-3) << "pad " << pad;
  }

  const model::Ltx2VaeConfig cfg = model::parse_ltx2_vae_config(narrow_ltx2_config(true));
  const io::TensorMap weights = model::random_ltx2_vae_weights(cfg, 5);
  model::Ltx2Vae gpu_fp8(weights, cfg, make_runtime("cuda", "bf16")), cpu(weights, cfg, make_runtime("cpu", "fp32")),
      cpu_fp8(weights, cfg, make_runtime("cpu", "fp32"));
  gpu_fp8.set_resnet_precision(ops::Precision::kFP8);
  cpu_fp8.set_resnet_precision(ops::Precision::kFP8);
  at::manual_seed(9);
  const at::Tensor z = at::randn({1, 16, 3, 2, 3});
  const at::Tensor got = gpu_fp8.decode(z.cuda().to(at::kBFloat16), model::VaeDecoderKind::kCausal).cpu().to(at::kFloat);
  const at::Tensor ref = cpu.decode(z, model::VaeDecoderKind::kCausal);
  const at::Tensor sim = cpu_fp8.decode(z, model::VaeDecoderKind::kCausal);
  // The whole VAE amplifies rounding: bf16 activations and fp32 ones round onto different E4M3 steps
  // in places (one step is 6 %), so the path is held to the simulation's error, not to its values
  // (the operations themselves are held to theirs above). Measured on the H200: simulation against
  // fp32 5.8 %, the FP8 path against the simulation 4.2 %.
  const double fp8_error = rel_l2(sim, ref);
  EXPECT_GT(rel_l2(got, ref), 0.5 * fp8_error) << "the resnets really run in FP8";
  EXPECT_LT(rel_l2(got, ref), 2 * fp8_error) << "with E4M3's error, not more";
  // Streamed: each call's frame count picks its own cuDNN engines, so rounding differs the same way
  // (1.1 % measured); wrong history frames would be an error of order one.
  const at::Tensor streamed =
      decode_chunked(gpu_fp8, z.cuda().to(at::kBFloat16), {1, 2}).cpu().to(at::kFloat);
  EXPECT_LT(rel_l2(streamed, got), 0.05) << "E4M3 history frames carry the stream";
}

// The FP8 convolutions' engine choices (ops/cuda/conv_fp8.cpp) outlive the process: the first run
// times cuDNN's engines for each new shape and records its choices in $SANASTREAM_CACHE_DIR; a second
// run builds the recorded ones without timing; a corrupt record is one warning, timed afresh and
// rewritten. On a GPU with FP8 convolutions (skipped elsewhere).
TEST(GpuVaeFp8, EngineChoicesAreRecordedAndReused) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  if (!ops::conv3d_fp8_available(at::Device(at::kCUDA, 0), at::kBFloat16)) GTEST_SKIP() << "no FP8 convolutions";
  const std::string dir = temp_dir("engine-record");
  auto pkg = run_cli({"make-package", "--random-weights", "--preset", "tiny", dir + "/pkg"});
  ASSERT_EQ(pkg.exit_code, 0) << pkg.err;
  std::ofstream(dir + "/plan.json") << R"({"format": "sanastream-quant-plan", "version": 1, "groups": [], "vae": "fp8"})";
  const std::string record = dir + "/cache/cudnn-fp8-conv.json";
  ASSERT_EQ(setenv("SANASTREAM_CACHE_DIR", (dir + "/cache").c_str(), 1), 0);
  auto bench = [&] {
    return run_cli({"-v", "bench", "--part", "vae-decode", "--model", dir + "/pkg", "--device", "cuda", "--size",
                    "96x64", "--latent-frames", "12", "--plan", dir + "/plan.json"});
  };
  const auto first = bench();
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.err.find("timing cuDNN's engines"), std::string::npos) << first.err;
  const json kept = json::parse(std::ifstream(record));
  EXPECT_EQ(kept["format"], "sanastream-cudnn-fp8-conv");
  ASSERT_GT(kept["choices"].size(), 0u);
  for (const auto& [key, choice] : kept["choices"].items()) {
    EXPECT_NE(key.find("cuDNN"), std::string::npos) << key;
    EXPECT_GE(choice["engine"].get<int64_t>(), 0) << key;
  }
  const auto second = bench();
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(second.err.find("timing cuDNN's engines"), std::string::npos) << second.err;
  EXPECT_NE(second.err.find("the recorded config"), std::string::npos) << second.err;
  EXPECT_EQ(json::parse(std::ifstream(record))["choices"], kept["choices"]);

  std::ofstream(record) << "{";
  const auto third = bench();
  ASSERT_EQ(third.exit_code, 0) << third.err;
  EXPECT_NE(third.err.find("ignoring the engine record"), std::string::npos) << third.err;
  EXPECT_EQ(json::parse(std::ifstream(record))["choices"].size(), kept["choices"].size());
  unsetenv("SANASTREAM_CACHE_DIR");
}
