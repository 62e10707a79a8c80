// Model packages (SPEC §8, docs/MODELS.md): make-package's tiny random package opens and its DiT,
// VAE and text encoder load and run; same seed → identical files; the lookup order of the package
// to use; bad packages are one clear error line (exit 1 through the CLI). Only the tiny preset is
// written; the 2b preset's shapes are checked without generating weights.
#include <algorithm>
#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"
#include "core/runtime.h"
#include "io/safetensors.h"
#include "model/dit_random.h"
#include "pipeline/model_package.h"
#include "support/test_env.h"
#ifdef SANASTREAM_HAS_SENTENCEPIECE
#include "model/tokenizer.h"
#include "pipeline/prompt_encoder.h"
#endif

using namespace sanastream;
using nlohmann::json;
using sanastream::test::error_of;
using sanastream::test::read_file;
using sanastream::test::write_file;
using sanastream::test::run_cli;
using sanastream::test::temp_dir;
namespace fs = std::filesystem;

namespace {

// Every regular file of a package, by relative path → its bytes.
std::map<std::string, std::string> package_files(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = read_file(e.path().string());
  return out;
}

// A tiny package (seed 7) in a scratch directory of its own: CTest runs the tests as parallel
// processes, so no two tests share a directory.
std::string tiny_package(const std::string& name) {
  pipeline::RandomPackageOptions opt;
  opt.seed = 7;
  return pipeline::write_random_package(opt, temp_dir("package_" + name) + "/pkg").dir;
}

// Latent-edit inputs for the tiny DiT in dir: 2 latent frames of 2×3, captions 64 wide.
std::string tiny_inputs(const std::string& dir) {
  const std::string p = dir + "/in.safetensors";
  at::manual_seed(3);
  at::Tensor mask = at::zeros({1, 300}, at::kLong);
  mask.narrow(1, 0, 20).fill_(1);
  io::save_safetensors(p, {{"inputs.noise", at::randn({1, 128, 2, 2, 3})},
                           {"inputs.src_latents", at::randn({1, 128, 2, 2, 3}).to(at::kBFloat16)},
                           {"inputs.prompt_embeds", at::randn({1, 1, 300, 64}).to(at::kBFloat16)},
                           {"inputs.prompt_mask", mask}});
  return p;
}

// A package directory whose model.json is `j` (component paths pointing into the tiny package).
std::string package_with(const std::string& name, const json& j) {
  const std::string dir = temp_dir("package_bad_" + name);
  write_file(dir + "/model.json", j.dump(1));
  return dir;
}

// A package's model.json with absolute component paths, to be broken one key at a time.
json absolute_model_json(const std::string& package) {
  const std::string pkg = fs::absolute(package).string();
  json j = json::parse(read_file(pkg + "/model.json"));
  j["dit"]["weights"] = pkg + "/dit/streaming.safetensors";
  j["vae"]["path"] = pkg + "/vae";
  j["text_encoder"]["path"] = pkg + "/text_encoder";
  return j;
}

}  // namespace

// ---- make-package and loading ----------------------------------------------------------------------

TEST(PackageMake, TinyPackageOpensLoadsAndRuns) {
  const std::string dir = tiny_package("load");
  EXPECT_FALSE(fs::exists(dir + ".part"));
  const json mj = json::parse(read_file(dir + "/model.json"));
  EXPECT_EQ(mj["random_weights"], true);
  EXPECT_NE(mj["description"].get<std::string>().find("noise"), std::string::npos);

  const pipeline::ModelPackage pkg = pipeline::load_model_package(dir);
  EXPECT_TRUE(pkg.random_weights);
  EXPECT_EQ(pkg.fps, 16);
  ASSERT_FALSE(pkg.resolutions.empty());
  EXPECT_EQ(pkg.max_frames, 0);
  const model::DitConfig& dc = pkg.dit.detected;
  EXPECT_EQ(dc.variant, model::DitVariant::kStreaming);
  EXPECT_EQ(dc.depth, 2);
  EXPECT_EQ(dc.hidden, 224);
  EXPECT_EQ(dc.softmax_layers, (std::vector<int64_t>{1}));  // one GDN block, one softmax block
  EXPECT_EQ(dc.latent_channels, 128);
  EXPECT_EQ(dc.caption_channels, pkg.text_encoder.config.hidden);
  EXPECT_EQ(pkg.vae.decoder, model::VaeDecoderKind::kCausal);
  EXPECT_EQ(pkg.vae.config.temporal_ratio(), 8);
  EXPECT_EQ(pkg.vae.config.spatial_ratio(), 32);
  EXPECT_FALSE(pkg.has_variant(model::DitVariant::kBidirectional));
  EXPECT_NE(error_of([&] { pkg.dit_for(model::DitVariant::kBidirectional); }).find("no bidirectional DiT"),
            std::string::npos);

  const Runtime rt = make_runtime("cpu", "fp32");
  // VAE: frames of the first resolution → latents → frames.
  auto vae = pipeline::load_package_vae(pkg, rt);
  const int64_t W = pkg.resolutions[0][0], H = pkg.resolutions[0][1];
  at::manual_seed(1);
  const at::Tensor video = at::rand({1, 3, 9, H, W}) * 2 - 1;
  const at::Tensor latents = vae->normalize(vae->encode(video));
  ASSERT_EQ(latents.sizes(), (std::vector<int64_t>{1, 128, 2, H / 32, W / 32}));
  const at::Tensor frames = vae->decode(vae->denormalize(latents), model::VaeDecoderKind::kCausal);
  EXPECT_EQ(frames.sizes(), video.sizes());
  EXPECT_TRUE(at::isfinite(frames).all().item<bool>());

  // Captions: the text encoder when SentencePiece is built in, else random embeddings of its width.
  at::Tensor embeds, mask;
#ifdef SANASTREAM_HAS_SENTENCEPIECE
  pipeline::PromptEncoder enc(pkg.text_encoder.path, rt, model::Gemma2Attention::kEager);
  const pipeline::PromptEmbedding e = enc.encode("make it snowy", pipeline::PromptMode::kStreaming);
  ASSERT_EQ(e.embeds.sizes(), (std::vector<int64_t>{300, dc.caption_channels}));
  EXPECT_TRUE(at::isfinite(e.embeds).all().item<bool>());
  embeds = e.embeds.unsqueeze(0);
  mask = e.mask.unsqueeze(0);
#else
  embeds = at::randn({1, 300, dc.caption_channels});
  mask = at::ones({1, 300}, at::kLong);
#endif

  // DiT: one forward on the VAE's latents.
  auto dit = pipeline::load_package_dit(pkg, model::DitVariant::kStreaming, rt);
  const model::CaptionState caption = dit->encode_caption(embeds.to(at::kFloat), mask);
  const at::Tensor v = dit->forward(at::randn(latents.sizes()), latents, at::full({1}, 1000.0), caption);
  EXPECT_EQ(v.sizes(), latents.sizes());
  EXPECT_TRUE(at::isfinite(v).all().item<bool>());
}

TEST(PackageMake, CliAndLibrarySameSeedSameFilesOtherSeedDiffers) {
  const std::string root = temp_dir("package_seeds");
  auto r = run_cli({"make-package", "--random-weights", "--preset", "tiny", "--seed", "7", "--json",
                    root + "/report.json", root + "/cli"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;  // one summary line
  EXPECT_NE(r.out.find("its outputs are noise"), std::string::npos) << r.out;
  const json rep = json::parse(read_file(root + "/report.json"));
  EXPECT_GT(rep["parameters"]["dit"].get<int64_t>(), 1000000);
  EXPECT_EQ(rep["parameters"]["total"].get<int64_t>(),
            rep["parameters"]["dit"].get<int64_t>() + rep["parameters"]["vae"].get<int64_t>() +
                rep["parameters"]["text_encoder"].get<int64_t>());
  EXPECT_EQ(rep["package"]["dit"]["depth"], 2);

  pipeline::RandomPackageOptions opt;
  opt.seed = 7;
  pipeline::write_random_package(opt, root + "/same");
  opt.seed = 8;
  pipeline::write_random_package(opt, root + "/other");
  const auto cli = package_files(root + "/cli"), same = package_files(root + "/same"),
             other = package_files(root + "/other");
  ASSERT_EQ(cli.size(), 7u);  // model.json, dit, vae ×2, text encoder ×3
  EXPECT_TRUE(cli == same) << "the CLI and the library, both seed 7, wrote different bytes";
  ASSERT_EQ(other.size(), cli.size());
  for (const auto& [name, bytes] : cli) {
    const bool weights = name.size() > 12 && name.substr(name.size() - 12) == ".safetensors";
    if (!weights) {
      if (name != "model.json") EXPECT_EQ(other.at(name), bytes) << name;  // configs, tokenizer
      continue;
    }
    // Every tensor depends on the seed (the files' metadata names the seed too, so compare values).
    const io::TensorMap a = io::load_safetensors(root + "/same/" + name), b = io::load_safetensors(root + "/other/" + name);
    ASSERT_EQ(a.size(), b.size()) << name;
    std::vector<std::string> same_values;
    for (const auto& [key, t] : a)
      if (at::equal(t, b.at(key))) same_values.push_back(key);
    EXPECT_TRUE(same_values.empty()) << name << ": " << same_values.size() << " tensors, e.g. " << same_values[0];
  }
}

TEST(PackageMake, BidirectionalDitAndMaxFrames) {
  const std::string root = temp_dir("package_bidir");
  pipeline::RandomPackageOptions opt;
  opt.bidirectional = true;
  opt.dtype = at::kFloat;
  const pipeline::RandomPackageReport rep = pipeline::write_random_package(opt, root + "/pkg");
  EXPECT_EQ(rep.dit_bidirectional_parameters, rep.dit_parameters - 2 * 224 * 224 * 2);  // q/k [C, C] not [C, C, 3]
  const pipeline::ModelPackage pkg = pipeline::load_model_package(root + "/pkg");
  ASSERT_TRUE(pkg.has_variant(model::DitVariant::kBidirectional));
  EXPECT_EQ(pkg.max_frames, 81);
  EXPECT_EQ(pkg.dit_for(model::DitVariant::kBidirectional).detected.variant, model::DitVariant::kBidirectional);
  EXPECT_EQ(pkg.dit_for(model::DitVariant::kStreaming).detected.variant, model::DitVariant::kStreaming);
  auto dit = pipeline::load_package_dit(pkg, model::DitVariant::kBidirectional, make_runtime("cpu", "fp32"));
  EXPECT_EQ(dit->config().variant, model::DitVariant::kBidirectional);
  EXPECT_EQ(io::load_safetensors(root + "/pkg/dit/streaming.safetensors").begin()->second.scalar_type(), at::kFloat);
}

TEST(PackageMake, OutputIsAtomicAndForceReplacesOnlyPackages) {
  const std::string root = temp_dir("package_force");
  const std::string out = root + "/pkg";
  fs::create_directories(out + ".part/junk");  // left by an interrupted run: replaced
  auto r = run_cli({"make-package", "--random-weights", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(out + ".part"));
  r = run_cli({"make-package", "--random-weights", "--seed", "1", out});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err_lines(), 1) << r.err;
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
  const std::string before = read_file(out + "/dit/streaming.safetensors");
  r = run_cli({"make-package", "--random-weights", "--seed", "1", "--force", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(read_file(out + "/dit/streaming.safetensors"), before);
  EXPECT_FALSE(fs::exists(out + ".part"));

  // --force never deletes a directory that is not a package.
  fs::create_directories(root + "/notes");
  write_file(root + "/notes/keep.txt", "mine");
  r = run_cli({"make-package", "--random-weights", "--force", root + "/notes"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err_lines(), 1) << r.err;
  EXPECT_EQ(read_file(root + "/notes/keep.txt"), "mine");
  EXPECT_FALSE(fs::exists(root + "/notes.part"));

  r = run_cli({"make-package", "--random-weights", "--preset", "huge", root + "/huge"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err_lines(), 1) << r.err;
  EXPECT_NE(r.err.find("tiny, small or 2b"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(root + "/huge.part"));
  r = run_cli({"make-package", root + "/plain"});  // --random-weights is required: a usage error
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_FALSE(fs::exists(root + "/plain"));
}

TEST(PackagePreset, TwoBHasTheOfficialShapes) {
  const pipeline::RandomPackagePreset p = pipeline::random_package_preset("2b");
  EXPECT_EQ(p.dit.hidden, 2240);
  EXPECT_EQ(p.dit.depth, 20);
  EXPECT_EQ(p.dit.heads, 20);
  EXPECT_EQ(p.dit.ffn_hidden, 6720);
  EXPECT_EQ(p.dit.latent_channels, 128);
  EXPECT_EQ(p.dit.source_channels, 128);
  EXPECT_EQ(p.dit.caption_channels, 2304);
  EXPECT_EQ(model::softmax_layer_indices(p.dit.depth, p.dit.softmax_ratio), (std::vector<int64_t>{3, 7, 11, 15, 19}));
  // The LTX-2 VAE (SPEC §4), as written to config.json and read back.
  const model::Ltx2VaeConfig vae = model::parse_ltx2_vae_config(p.vae.to_json());
  EXPECT_EQ(vae.latent_channels, 128);
  EXPECT_EQ(vae.temporal_ratio(), 8);
  EXPECT_EQ(vae.spatial_ratio(), 32);
  EXPECT_EQ(vae.enc_channels, (std::vector<int64_t>{256, 512, 1024, 2048}));
  EXPECT_EQ(vae.enc_layers, (std::vector<int64_t>{4, 6, 6, 2, 2}));
  EXPECT_EQ(vae.dec_channels, (std::vector<int64_t>{256, 512, 1024}));
  EXPECT_EQ(vae.dec_layers, (std::vector<int64_t>{5, 5, 5, 5}));
  EXPECT_TRUE(vae.decoder_causal);
  // gemma-2-2b-it's shapes; its width is the DiT's caption width.
  const model::Gemma2Config te = model::parse_gemma2_config(p.text_encoder, "2b");
  EXPECT_EQ(te.hidden, p.dit.caption_channels);
  EXPECT_EQ(te.layers, 26);
  EXPECT_EQ(te.vocab_size, 256000);
  EXPECT_EQ(p.resolutions[0], (std::array<int64_t, 2>{1280, 704}));
  // The small preset is between tiny and 2b, with the LTX-2 compression too.
  const pipeline::RandomPackagePreset s = pipeline::random_package_preset("small");
  EXPECT_EQ(s.dit.caption_channels, model::parse_gemma2_config(s.text_encoder, "small").hidden);
  EXPECT_EQ(s.vae.spatial_ratio(), 32);
  EXPECT_EQ(s.vae.temporal_ratio(), 8);
  EXPECT_EQ(model::softmax_layer_indices(s.dit.depth, s.dit.softmax_ratio), (std::vector<int64_t>{3, 7}));
}

#ifdef SANASTREAM_HAS_SENTENCEPIECE
TEST(PackageTokenizer, HandWrittenModelLoadsThroughSentencePiece) {
  const std::string pkg = tiny_package("tokenizer");
  model::Tokenizer tok(pkg + "/text_encoder/tokenizer.model");
  const model::Gemma2Config cfg = pipeline::load_model_package(pkg).text_encoder.config;
  EXPECT_EQ(tok.bos_id(), 2);
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_LE(tok.vocab_size(), cfg.vocab_size);
  EXPECT_GT(tok.vocab_size(), 4 + 256 + 96);
  // No dummy prefix: a text's first word is spelled letter by letter; later words are whole pieces.
  const std::vector<int64_t> ids = tok.encode("make it snowy");
  ASSERT_EQ(ids.size(), 6u);
  EXPECT_EQ(tok.encode(" make").size(), 1u);
  // Characters outside the vocabulary fall back to their UTF-8 bytes (<0xC3> = 4 + 0xC3).
  EXPECT_EQ(tok.encode("\xC3\xA9"), (std::vector<int64_t>{4 + 0xC3, 4 + 0xA9}));
  EXPECT_LT(tok.encode(pipeline::kPromptPrefix).size(), 250u);  // 583 bytes: its words are pieces
}
#endif

// ---- Which package ---------------------------------------------------------------------------------

TEST(PackageLookup, ModelFlagThenEnvironmentThenDemoBesideThenInstalled) {
  const std::string root = temp_dir("package_lookup");
  const std::string exe = root + "/bin";
  for (const std::string d : {exe + "/models/demo", root + "/share/sanastream/models/demo", root + "/flag",
                              root + "/env"}) {
    fs::create_directories(d);
    write_file(d + "/model.json", "{}");
  }
  fs::create_directories(root + "/empty");
  const char* saved = std::getenv("SANASTREAM_MODEL");
  const std::string saved_value = saved ? saved : "";
  unsetenv("SANASTREAM_MODEL");

  auto choice = pipeline::resolve_model_dir("", exe);
  EXPECT_EQ(choice.dir, exe + "/models/demo");
  EXPECT_EQ(choice.source, "demo package");
  remove_tree(exe + "/models");
  choice = pipeline::resolve_model_dir("", exe);
  EXPECT_EQ(choice.dir, root + "/share/sanastream/models/demo");
  setenv("SANASTREAM_MODEL", (root + "/env").c_str(), 1);
  choice = pipeline::resolve_model_dir("", exe);
  EXPECT_EQ(choice.dir, root + "/env");
  EXPECT_EQ(choice.source, "SANASTREAM_MODEL");
  choice = pipeline::resolve_model_dir(root + "/flag/", exe);
  EXPECT_EQ(choice.dir, root + "/flag");
  EXPECT_EQ(choice.source, "--model");

  // Named but not a package; nothing at all: one message, naming --model.
  setenv("SANASTREAM_MODEL", (root + "/empty").c_str(), 1);
  std::string err = error_of([&] { pipeline::resolve_model_dir("", exe); });
  EXPECT_NE(err.find("SANASTREAM_MODEL"), std::string::npos) << err;
  EXPECT_NE(err.find("--model"), std::string::npos) << err;
  unsetenv("SANASTREAM_MODEL");
  err = error_of([&] { pipeline::resolve_model_dir(root + "/empty", exe); });
  EXPECT_NE(err.find("--model"), std::string::npos) << err;
  EXPECT_NE(err.find("model.json"), std::string::npos) << err;
  remove_tree(root + "/share");
  err = error_of([&] { pipeline::resolve_model_dir("", exe); });
  EXPECT_NE(err.find("--model"), std::string::npos) << err;
  EXPECT_NE(err.find(exe + "/models/demo"), std::string::npos) << err;
  EXPECT_EQ(err.find('\n'), std::string::npos);
  // Without exe_dir, the running executable's directory.
  err = error_of([&] { pipeline::resolve_model_dir(""); });
  EXPECT_NE(err.find(fs::read_symlink("/proc/self/exe").parent_path().string() + "/models/demo"), std::string::npos)
      << err;

  if (saved) setenv("SANASTREAM_MODEL", saved_value.c_str(), 1);
}

// ---- Bad packages ----------------------------------------------------------------------------------

TEST(PackageBad, EachProblemIsOneClearError) {
  const json good = absolute_model_json(tiny_package("bad"));
  const std::string inputs = tiny_inputs(temp_dir("package_bad_inputs"));
  ASSERT_EQ(error_of([&] { pipeline::load_model_package(package_with("good", good)); }), "");

  // A DiT that reads 32-wide captions, beside the 64-wide text encoder.
  const std::string narrow = temp_dir("package_narrow_dit") + "/dit.safetensors";
  model::DitShape s;
  s.depth = 1;
  s.hidden = 112;
  s.heads = 1;
  s.ffn_hidden = 64;
  s.caption_channels = 32;
  io::save_safetensors(narrow, model::random_dit_weights(s, 1));
  const std::string pth = temp_dir("package_pth") + "/dit.pth";
  write_file(pth, "not used");

  struct Case {
    std::string name;
    std::function<void(json&)> edit;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"weights", [](json& j) { j["dit"]["weights"] = "dit/missing.safetensors"; },
       "dit.weights: 'dit/missing.safetensors' does not exist"},
      {"resolution", [](json& j) { j["resolutions"] = {{96, 64}, {100, 64}}; },
       "resolutions[1]: expected a width and height that are multiples of 32"},
      {"decoder", [](json& j) { j["vae"]["decoder"] = "noncausal"; },
       "vae.decoder: expected causal or chunk_tile, got 'noncausal'"},
      {"caption", [&](json& j) { j["dit"]["weights"] = narrow; },
       "dit.weights: the DiT reads captions 32 wide, the text encoder's hidden_size is 64"},
      {"key", [](json& j) { j["fpz"] = 16; }, "fpz: unknown key"},
      {"type", [](json& j) { j["fps"] = "16"; }, "fps: expected a positive number"},
      {"version", [](json& j) { j["format_version"] = 2; }, "format_version: expected 1, got 2"},
      {"missing", [](json& j) { j.erase("vae"); }, "vae: missing (required)"},
      {"sub_key", [](json& j) { j["vae"]["decoders"] = "causal"; }, "vae.decoders: unknown key"},
      {"max_frames", [](json& j) { j["max_frames"] = 81; }, "max_frames: applies to the bidirectional mode"},
      {"variant", [](json& j) { j["dit"]["variant"] = "bidirectional"; },
       "dit.variant: 'bidirectional', but the weights form a streaming DiT"},
      {"chunk_tile", [](json& j) { j["vae"]["decoder"] = "chunk_tile"; }, "decoder_causal true"},
      {"pth", [&](json& j) { j["dit"]["weights"] = pth; }, "expected a .safetensors file or a shard index"},
      {"text_dir", [](json& j) { j["text_encoder"]["path"] = j["vae"]["path"]; }, "tokenizer.model is missing"},
  };
  // Through the CLI too (latent-edit opens a package directory): exit 1, one line.
  const std::set<std::string> via_cli = {"weights", "resolution", "decoder", "caption", "key"};
  for (const auto& c : cases) {
    json j = good;
    c.edit(j);
    const std::string dir = package_with(c.name, j);
    const std::string err = error_of([&] { pipeline::load_model_package(dir); });
    EXPECT_NE(err.find(dir + "/model.json: " + c.expect.substr(0, c.expect.find(':') + 1)), std::string::npos)
        << c.name << ": " << err;
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.name << ": " << err;
    EXPECT_EQ(err.find('\n'), std::string::npos) << c.name << ": " << err;
    if (!via_cli.count(c.name)) continue;
    auto r = run_cli({"latent-edit", "--model", dir, "--inputs", inputs, "--output", dir + "/out.safetensors"});
    EXPECT_EQ(r.exit_code, 1) << c.name;
    EXPECT_EQ(r.err_lines(), 1) << c.name << ": " << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.name << ": " << r.err;
    EXPECT_FALSE(fs::exists(dir + "/out.safetensors"));
  }

  // No model.json; not JSON.
  const std::string empty = temp_dir("package_bad_empty");
  std::string err = error_of([&] { pipeline::load_model_package(empty); });
  EXPECT_NE(err.find("model.json is missing"), std::string::npos) << err;
  write_file(empty + "/model.json", "{\"name\": ");
  err = error_of([&] { pipeline::load_model_package(empty); });
  EXPECT_NE(err.find("expected a JSON object"), std::string::npos) << err;
}

TEST(PackageBad, LatentEditRunsTheGoodPackage) {
  const std::string dir = temp_dir("package_latent_edit");
  const std::string out = dir + "/out.safetensors";
  auto r = run_cli({"latent-edit", "--model", tiny_package("latent_edit_pkg"), "--inputs", tiny_inputs(dir), "--output",
                    out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(io::load_safetensors(out).at("output.latents").sizes(), (std::vector<int64_t>{1, 128, 2, 2, 3}));
}
