// The demo model's tooling (issue 11, docs/MODELS.md): `train-tokenizer` trains a deterministic
// SentencePiece model with Gemma's special ids that round-trips every instruction and never yields
// <unk>; `make-package --preset demo` has the demo shapes (32 latent channels, 8× space, 4× time);
// `assemble-package` packages a train checkpoint's DiT, VAE and text encoder exactly (bf16-rounded with
// --dtype bf16), and a missing or mismatched part is one error line.
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"
#include "core/runtime.h"
#include "io/safetensors.h"
#include "model/dit_random.h"
#include "model/ltx2_vae.h"
#include "model/sentencepiece_model.h"
#include "pipeline/model_package.h"
#include "support/test_env.h"
#include "train/edit_families.h"
#ifdef SANASTREAM_HAS_SENTENCEPIECE
#include "model/tokenizer.h"
#include "pipeline/prompt_encoder.h"
#endif
#ifdef SANASTREAM_HAS_SPM_TRAINER
#include "train/tokenizer_trainer.h"
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

#ifdef SANASTREAM_HAS_SPM_TRAINER
// The tokenizer of the default corpus, trained once per test program.
const std::string& demo_tokenizer_file() {
  static const std::string path = [] {
    const std::string p = temp_dir("demo_tokenizer") + "/tokenizer.model";
    write_file(p, train::train_tokenizer(train::tokenizer_corpus()));
    return p;
  }();
  return path;
}

// Random valid UTF-8: ASCII, Latin, Greek, Cyrillic, CJK, emoji, tabs and newlines (no U+2581, which
// SentencePiece reserves for the space).
std::string random_utf8(std::mt19937& rng, int chars) {
  static const std::vector<std::pair<uint32_t, uint32_t>> ranges = {
      {0x20, 0x7E}, {0x20, 0x7E}, {0x09, 0x0A}, {0xA0, 0x2FF}, {0x370, 0x4FF}, {0x4E00, 0x9FFF}, {0x1F300, 0x1FAFF}};
  std::string s;
  for (int i = 0; i < chars; ++i) {
    const auto& [lo, hi] = ranges[rng() % ranges.size()];
    const uint32_t cp = lo + rng() % (hi - lo + 1);
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else if (cp < 0x800) {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (cp >> 18));
      s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  return s;
}
#endif

// A fake train checkpoint for the tiny preset's shapes: dit_ema.safetensors, vae_ema/ and
// text_encoder_ema.safetensors, fp32 values that differ from the base package's.
struct FakeCheckpoint {
  std::string dir;
  io::TensorMap dit, vae, text_encoder;
};

FakeCheckpoint fake_checkpoint(const std::string& name, const pipeline::ModelPackage& base) {
  FakeCheckpoint c;
  c.dir = temp_dir("assemble_" + name);
  const pipeline::RandomPackagePreset tiny = pipeline::random_package_preset("tiny");
  c.dit = model::random_dit_weights(tiny.dit, 101, at::kFloat);
  io::save_safetensors(c.dir + "/dit_ema.safetensors", c.dit);
  c.vae = model::random_ltx2_vae_weights(tiny.vae, 102, at::kFloat);
  fs::create_directories(c.dir + "/vae_ema");
  write_file(c.dir + "/vae_ema/config.json", tiny.vae.to_json().dump(2));
  io::save_safetensors(c.dir + "/vae_ema/diffusion_pytorch_model.safetensors", c.vae);
  at::manual_seed(103);
  for (const auto& [k, t] : io::load_safetensors(base.text_encoder.path + "/model.safetensors"))
    c.text_encoder[k] = t.to(at::kFloat) + 0.01 * at::randn(t.sizes());
  io::save_safetensors(c.dir + "/text_encoder_ema.safetensors", c.text_encoder);
  return c;
}

std::string tiny_base(const std::string& name) {
  pipeline::RandomPackageOptions opt;
  opt.seed = 5;
  return pipeline::write_random_package(opt, temp_dir("assemble_base_" + name) + "/base").dir;
}

// Every tensor of `file` equals `expected` cast to dtype (bit for bit).
void expect_tensors(const std::string& file, const io::TensorMap& expected, at::ScalarType dtype) {
  const io::TensorMap got = io::load_safetensors(file);
  ASSERT_EQ(got.size(), expected.size()) << file;
  for (const auto& [k, t] : expected) {
    ASSERT_TRUE(got.count(k)) << file << ": " << k;
    EXPECT_EQ(got.at(k).scalar_type(), dtype) << k;
    EXPECT_TRUE(at::equal(got.at(k), t.to(dtype))) << file << ": " << k;
  }
}

}  // namespace

// ---- train-tokenizer -------------------------------------------------------------------------------

#ifdef SANASTREAM_HAS_SPM_TRAINER
TEST(DemoTokenizer, TrainsDeterministicallyWithGemmaSpecialIds) {
  const std::string root = temp_dir("demo_tokenizer_cli");
  for (const char* run : {"a", "b"}) {
    auto r = run_cli({"train-tokenizer", "--out", root + "/" + run + "/tokenizer.model", "--json",
                      root + "/" + run + ".json"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_EQ(r.err, "");  // SentencePiece's training log stays quiet
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  }
  const std::string a = read_file(root + "/a/tokenizer.model");
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == read_file(root + "/b/tokenizer.model")) << "two runs wrote different bytes";
  EXPECT_TRUE(a == read_file(demo_tokenizer_file())) << "the CLI and the library wrote different bytes";
  const json rep = json::parse(read_file(root + "/a.json"));

  const std::vector<model::SpmPiece> pieces = pipeline::read_sentencepiece_pieces(a, "tokenizer");
  EXPECT_EQ(rep["pieces"].get<int64_t>(), static_cast<int64_t>(pieces.size()));
  EXPECT_EQ(rep["gemma_vocab_rows"].get<int64_t>(), pipeline::gemma_vocab_rows(pieces.size()));
  // The default corpus supports the default vocabulary, a multiple of 64.
  EXPECT_EQ(static_cast<int64_t>(pieces.size()), train::kDefaultTokenizerVocab);
  EXPECT_EQ(pipeline::gemma_vocab_rows(pieces.size()) % 64, 0);
  using model::SpmType;
  const std::vector<std::pair<std::string, SpmType>> head = {
      {"<pad>", SpmType::kControl},       {"<eos>", SpmType::kControl},        {"<bos>", SpmType::kControl},
      {"<unk>", SpmType::kUnknown},       {"<start_of_turn>", SpmType::kUserDefined},
      {"<end_of_turn>", SpmType::kUserDefined}};
  for (size_t i = 0; i < head.size(); ++i) {
    EXPECT_EQ(pieces[i].piece, head[i].first) << "id " << i;
    EXPECT_EQ(pieces[i].type, head[i].second) << "id " << i;
  }
  for (int b = 0; b < 256; ++b) EXPECT_EQ(pieces[6 + b].piece, model::byte_piece(b).piece);

  // --vocab is the piece count, up to what the corpus supports (every merge down to whole words: then
  // fewer, quietly: SentencePiece's warning used to crash the process); a vocabulary too small for the
  // fixed pieces is one error line.
  auto r = run_cli({"train-tokenizer", "--vocab", "384", "--out", root + "/small.model"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(pipeline::read_sentencepiece_pieces(read_file(root + "/small.model"), "small").size(), 384u);
  r = run_cli({"train-tokenizer", "--vocab", "4096", "--out", root + "/large.model"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  const size_t large = pipeline::read_sentencepiece_pieces(read_file(root + "/large.model"), "large").size();
  EXPECT_GT(large, 1000u);
  EXPECT_LT(large, 4096u);
  r = run_cli({"train-tokenizer", "--vocab", "100", "--out", root + "/tiny.model"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err_lines(), 1) << r.err;
  EXPECT_NE(r.err.find("SentencePiece trainer (vocab 100"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(root + "/tiny.model"));
  r = run_cli({"train-tokenizer", "--corpus", root + "/missing.txt", "--out", root + "/x.model"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err_lines(), 1) << r.err;
  EXPECT_NE(r.err.find("--corpus '" + root + "/missing.txt'"), std::string::npos) << r.err;

  // An extra corpus file changes the model (its words become pieces).
  write_file(root + "/extra.txt", "zanzibar quokka\nzanzibar quokka marmalade\n");
  r = run_cli({"train-tokenizer", "--corpus", root + "/extra.txt", "--vocab", "640", "--out", root + "/extra.model"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  bool found = false;
  for (const auto& p : pipeline::read_sentencepiece_pieces(read_file(root + "/extra.model"), "extra"))
    found |= p.piece.find("quokka") != std::string::npos;
  EXPECT_TRUE(found);
}

TEST(DemoTokenizer, RoundTripsEveryPhrasingAndNeverUnknown) {
  const std::string path = demo_tokenizer_file();
  const std::string bytes = read_file(path);
  const model::Tokenizer tok(path);
  EXPECT_EQ(tok.bos_id(), 2);
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.vocab_size(), train::kDefaultTokenizerVocab);
  auto round_trip = [&](const std::string& text) {
    const std::vector<int64_t> ids = tok.encode(text);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), 3), 0) << "<unk> in: " << text;
    EXPECT_EQ(train::decode_tokens(bytes, ids), text);
    return ids;
  };
  size_t phrasings = 0, tokens = 0, chars = 0;
  for (const auto& f : train::edit_families())
    for (const auto* list : {&f.phrasings, &f.reverse_phrasings})
      for (const auto& p : *list) {
        tokens += round_trip(p).size();
        chars += p.size();
        ++phrasings;
        round_trip(std::string(pipeline::kPromptPrefix) + p);  // as prompt assembly sends it
      }
  EXPECT_GE(phrasings, 40u);
  EXPECT_LT(tokens * 3, chars) << "the corpus's words should be whole pieces, not letters";
  round_trip(pipeline::kDefaultNegativePrompt);
  round_trip(pipeline::kMotionSuffix);

  // The chat markup is one piece each.
  const std::vector<int64_t> chat = round_trip("<start_of_turn>user\nmake it snowy<end_of_turn>\n");
  EXPECT_EQ(chat.front(), 4);
  EXPECT_NE(std::find(chat.begin(), chat.end(), 5), chat.end());

  // Arbitrary text falls back to bytes: never <unk>, and it decodes to itself.
  std::mt19937 rng(11);
  for (int i = 0; i < 200; ++i) round_trip(random_utf8(rng, 1 + i % 40));

  // The tokenizer works in prompt assembly: BOS first, the prefix, padding with <pad>.
  const pipeline::PromptTokens t = pipeline::assemble_prompt(tok, "make it black and white", pipeline::PromptMode::kStreaming);
  EXPECT_EQ(t.ids[0], 2);
  EXPECT_EQ(t.ids.back(), 0);
  EXPECT_FALSE(t.truncated());
}
#endif

// ---- make-package --preset demo ----------------------------------------------------------------------

TEST(DemoPackage, PresetHasTheDemoShapesAndOpens) {
  pipeline::RandomPackageOptions opt;
  opt.preset = "demo";
  opt.seed = 3;
#ifdef SANASTREAM_HAS_SPM_TRAINER
  opt.tokenizer = demo_tokenizer_file();
#endif
  const pipeline::PackageReport rep = pipeline::write_random_package(opt, temp_dir("demo_preset") + "/demo");
  EXPECT_LE(rep.bytes, 16'000'000) << "the demo package must stay within 16 MB in bf16";
  const pipeline::ModelPackage pkg = pipeline::load_model_package(rep.dir);
  EXPECT_EQ(pkg.fps, 16);
  EXPECT_EQ(pkg.resolutions,
            (std::vector<std::array<int64_t, 2>>{{448, 256}, {352, 256}, {256, 256}, {256, 448}, {256, 352}}));

  const model::DitConfig& dc = pkg.dit.detected;
  EXPECT_EQ(dc.depth, 8);
  EXPECT_EQ(dc.hidden, 160);
  EXPECT_EQ(dc.heads, 2);
  EXPECT_EQ(dc.head_dim, 80);
  EXPECT_EQ(dc.ffn_hidden, 400);
  EXPECT_EQ(dc.caption_channels, 128);
  EXPECT_EQ(dc.latent_channels, 32);
  EXPECT_EQ(dc.source_channels, 32);
  EXPECT_EQ(dc.softmax_layers, (std::vector<int64_t>{3, 7}));
  EXPECT_FALSE(pkg.dit.config.empty()) << "2 heads of 80 need the head count in the DiT's config";

  const model::Ltx2VaeConfig& vc = pkg.vae.config;
  EXPECT_EQ(vc.latent_channels, 32);
  EXPECT_EQ(vc.spatial_ratio(), 8);
  EXPECT_EQ(vc.temporal_ratio(), 4);
  EXPECT_TRUE(vc.decoder_causal);
  EXPECT_EQ(pkg.vae.decoder, model::VaeDecoderKind::kCausal);

  const model::Gemma2Config& tc = pkg.text_encoder.config;
  EXPECT_EQ(tc.hidden, 128);
  EXPECT_EQ(tc.intermediate, 256);
  EXPECT_EQ(tc.layers, 2);
  EXPECT_EQ(tc.heads, 4);
  EXPECT_EQ(tc.kv_heads, 2);
  EXPECT_EQ(tc.head_dim, 32);
  EXPECT_EQ(tc.vocab_size % 64, 0);
  const auto pieces = pipeline::read_sentencepiece_pieces(read_file(pkg.text_encoder.path + "/tokenizer.model"), "t");
  EXPECT_EQ(tc.vocab_size, pipeline::gemma_vocab_rows(pieces.size()));
#ifdef SANASTREAM_HAS_SPM_TRAINER
  EXPECT_TRUE(read_file(pkg.text_encoder.path + "/tokenizer.model") == read_file(demo_tokenizer_file()));
#endif

  // The VAE compresses 5 frames of 64×48 to 2 latent frames of 8×6 with 32 channels, and back.
  const Runtime rt = make_runtime("cpu", "fp32");
  auto vae = pipeline::load_package_vae(pkg, rt);
  at::manual_seed(1);
  const at::Tensor video = at::rand({1, 3, 5, 48, 64}) * 2 - 1;
  const at::Tensor latents = vae->normalize(vae->encode(video));
  ASSERT_EQ(latents.sizes(), (std::vector<int64_t>{1, 32, 2, 6, 8}));
  const at::Tensor frames = vae->decode(vae->denormalize(latents), model::VaeDecoderKind::kCausal);
  EXPECT_EQ(frames.sizes(), video.sizes());
  EXPECT_TRUE(at::isfinite(frames).all().item<bool>());
}

TEST(DemoPackage, TokenizerOptionIsChecked) {
  const std::string dir = temp_dir("demo_bad_tokenizer");
  write_file(dir + "/garbage.model", std::string("\x0a\xff\xff\xff\xff\x0f", 6));
  EXPECT_NE(error_of([&] { pipeline::random_package_preset("demo", dir + "/garbage.model"); })
                .find("expected a SentencePiece model"),
            std::string::npos);
  std::vector<model::SpmPiece> gemma = model::gemma_special_pieces();
  gemma.push_back({"a", -1, model::SpmType::kNormal});
  write_file(dir + "/gemma.model", model::serialize_sentencepiece_model(gemma));
  // serialize_sentencepiece_model insists on Gemma's ids, so rename a special piece in its bytes.
  std::string renamed = read_file(dir + "/gemma.model");
  renamed.replace(renamed.find("<bos>"), 5, "<s>xx");
  write_file(dir + "/renamed.model", renamed);
  EXPECT_EQ(error_of([&] { pipeline::random_package_preset("demo", dir + "/gemma.model"); }), "");
  EXPECT_EQ(pipeline::random_package_preset("demo", dir + "/gemma.model").text_encoder["vocab_size"], 64);
  auto r = run_cli({"make-package", "--random-weights", "--preset", "demo", "--tokenizer", dir + "/renamed.model",
                    dir + "/out"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err_lines(), 1) << r.err;
  EXPECT_NE(r.err.find("expected Gemma's special pieces <pad>, <eos>, <bos>, <unk> at ids 0-3"), std::string::npos)
      << r.err;
  r = run_cli({"make-package", "--random-weights", "--preset", "demo", "--tokenizer", dir + "/missing.model",
               dir + "/out"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err_lines(), 1) << r.err;
  EXPECT_NE(r.err.find("--tokenizer '" + dir + "/missing.model'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir + "/out"));
  EXPECT_FALSE(fs::exists(dir + "/out.part"));
}

// ---- assemble-package ------------------------------------------------------------------------------------

TEST(PackageAssemble, TrainedPartsArePackagedExactly) {
  const std::string base_dir = tiny_base("exact");
  const pipeline::ModelPackage base = pipeline::load_model_package(base_dir);
  const FakeCheckpoint ck = fake_checkpoint("exact", base);
  const std::string out = ck.dir + "/pkg";
  auto r = run_cli({"assemble-package", "--base", base_dir, "--dit", ck.dir + "/dit_ema.safetensors", "--vae",
                    ck.dir + "/vae_ema", "--text-encoder", ck.dir + "/text_encoder_ema.safetensors", "--name",
                    "demo-test", "--json", ck.dir + "/report.json", out});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_FALSE(fs::exists(out + ".part"));
  const json mj = json::parse(read_file(out + "/model.json"));
  EXPECT_EQ(mj["random_weights"], false);
  EXPECT_EQ(mj["name"], "demo-test");
  EXPECT_EQ(mj["fps"], base.fps);
  const json rep = json::parse(read_file(ck.dir + "/report.json"));
  EXPECT_EQ(rep["parameters"]["dit"].get<int64_t>(), static_cast<int64_t>([&] {
              int64_t n = 0;
              for (const auto& [_, t] : ck.dit) n += t.numel();
              return n;
            }()));
  EXPECT_EQ(rep["package"]["name"], "demo-test");

  // bf16 (the default): the inputs rounded to bf16, bit for bit; configs and tokenizer copied.
  const pipeline::ModelPackage pkg = pipeline::load_model_package(out);
  EXPECT_FALSE(pkg.random_weights);
  expect_tensors(pkg.dit.weights, ck.dit, at::kBFloat16);
  expect_tensors(pkg.vae.path + "/diffusion_pytorch_model.safetensors", ck.vae, at::kBFloat16);
  expect_tensors(pkg.text_encoder.path + "/model.safetensors", ck.text_encoder, at::kBFloat16);
  EXPECT_EQ(read_file(pkg.vae.path + "/config.json"), read_file(ck.dir + "/vae_ema/config.json"));
  for (const char* f : {"config.json", "tokenizer.model"})
    EXPECT_EQ(read_file(pkg.text_encoder.path + "/" + f), read_file(base.text_encoder.path + "/" + f)) << f;
  EXPECT_EQ(pkg.resolutions, base.resolutions);

  // fp32 through the library: the inputs exactly; without --text-encoder the base's weights.
  pipeline::AssembleOptions opt;
  opt.base = base_dir;
  opt.dit = ck.dir + "/dit_ema.safetensors";
  opt.vae = ck.dir + "/vae_ema";
  opt.dtype = at::kFloat;
  const pipeline::PackageReport r32 = pipeline::assemble_package(opt, ck.dir + "/pkg32");
  const pipeline::ModelPackage p32 = pipeline::load_model_package(r32.dir);
  expect_tensors(p32.dit.weights, ck.dit, at::kFloat);
  expect_tensors(p32.vae.path + "/diffusion_pytorch_model.safetensors", ck.vae, at::kFloat);
  expect_tensors(p32.text_encoder.path + "/model.safetensors", io::load_safetensors(base.text_encoder.path + "/model.safetensors"),
                 at::kFloat);
  EXPECT_EQ(p32.name, base.name);
  EXPECT_EQ(r32.dit_parameters, rep["parameters"]["dit"].get<int64_t>());
  // An existing output needs --force.
  EXPECT_NE(error_of([&] { pipeline::assemble_package(opt, ck.dir + "/pkg32"); }).find("give --force"),
            std::string::npos);
  opt.force = true;
  EXPECT_EQ(error_of([&] { pipeline::assemble_package(opt, ck.dir + "/pkg32"); }), "");
}

TEST(PackageAssemble, MissingOrMismatchedPartsAreOneError) {
  const std::string base_dir = tiny_base("bad");
  const pipeline::ModelPackage base = pipeline::load_model_package(base_dir);
  const FakeCheckpoint ck = fake_checkpoint("bad", base);
  const std::string dit = ck.dir + "/dit_ema.safetensors", vae = ck.dir + "/vae_ema",
                    te = ck.dir + "/text_encoder_ema.safetensors";

  // A DiT reading 32-wide captions; a VAE of 64 latent channels; a text encoder missing a tensor; a VAE
  // missing a tensor.
  pipeline::RandomPackagePreset tiny = pipeline::random_package_preset("tiny");
  model::DitShape narrow = tiny.dit;
  narrow.caption_channels = 32;
  io::save_safetensors(ck.dir + "/narrow_dit.safetensors", model::random_dit_weights(narrow, 1, at::kFloat));
  model::Ltx2VaeConfig wide = tiny.vae;
  wide.latent_channels = 64;
  fs::create_directories(ck.dir + "/wide_vae");
  write_file(ck.dir + "/wide_vae/config.json", wide.to_json().dump());
  io::save_safetensors(ck.dir + "/wide_vae/diffusion_pytorch_model.safetensors", model::random_ltx2_vae_weights(wide, 1));
  io::TensorMap short_te = ck.text_encoder;
  short_te.erase("norm.weight");
  io::save_safetensors(ck.dir + "/short_te.safetensors", short_te);
  io::TensorMap short_vae = ck.vae;
  short_vae.erase(short_vae.begin());
  fs::create_directories(ck.dir + "/short_vae");
  write_file(ck.dir + "/short_vae/config.json", read_file(vae + "/config.json"));
  io::save_safetensors(ck.dir + "/short_vae/diffusion_pytorch_model.safetensors", short_vae);

  struct Case {
    std::string name;
    std::vector<std::string> args;  // replacing the good ones
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"base", {"--base", ck.dir}, "--base '" + ck.dir + "': model package '" + ck.dir + "': model.json is missing"},
      {"dit_missing", {"--dit", ck.dir + "/nope.safetensors"}, "--dit '" + ck.dir + "/nope.safetensors': does not exist"},
      {"dit_not_dit", {"--dit", te}, "--dit '" + te + "': not DiT weights"},
      {"vae_missing", {"--vae", ck.dir + "/nope"}, "--vae '" + ck.dir + "/nope': expected a VAE directory"},
      {"vae_short", {"--vae", ck.dir + "/short_vae"}, "--vae '" + ck.dir + "/short_vae': "},
      {"te_short", {"--text-encoder", ck.dir + "/short_te.safetensors"},
       "--text-encoder '" + ck.dir + "/short_te.safetensors': "},
      {"caption", {"--dit", ck.dir + "/narrow_dit.safetensors"},
       "the DiT reads captions 32 wide, the text encoder's hidden_size is 64"},
      {"latent", {"--vae", ck.dir + "/wide_vae"}, "the DiT takes 128 + 128 latent channels and writes 128, the --vae has "
                                                 "64 latent channels"},
  };
  for (const auto& c : cases) {
    std::map<std::string, std::string> args = {{"--base", base_dir}, {"--dit", dit}, {"--vae", vae}, {"--text-encoder", te}};
    for (size_t i = 0; i + 1 < c.args.size(); i += 2) args[c.args[i]] = c.args[i + 1];
    std::vector<std::string> argv = {"assemble-package"};
    for (const auto& [k, v] : args) argv.insert(argv.end(), {k, v});
    const std::string out = ck.dir + "/out_" + c.name;
    argv.push_back(out);
    const auto r = run_cli(argv);
    EXPECT_EQ(r.exit_code, 1) << c.name;
    EXPECT_EQ(r.err_lines(), 1) << c.name << ": " << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.name << ": " << r.err;
    EXPECT_FALSE(fs::exists(out)) << c.name;
    EXPECT_FALSE(fs::exists(out + ".part")) << c.name;
  }
  // --dit and --vae are required options: a usage error.
  EXPECT_EQ(run_cli({"assemble-package", "--base", base_dir, "--vae", vae, ck.dir + "/out_usage"}).exit_code, 2);
}
