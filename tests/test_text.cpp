// The text encoder: Gemma-2 against the golden set (eager and sdpa semantics, fp32 and bf16),
// checkpoint layouts and config/weight mismatches; with SentencePiece, the tokenizer (a model
// trained here with hand-computable ids), the official prompt assembly, the prompt encoder's
// caches and `encode-prompt`.
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include <nlohmann/json.hpp>

#include "core/compare.h"
#include "core/error.h"
#include "core/runtime.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "model/gemma2.h"
#include "support/test_env.h"

#ifdef SANASTREAM_HAS_SENTENCEPIECE
#include "model/dit_random.h"
#include "model/sentencepiece_model.h"
#include "model/tokenizer.h"
#include "pipeline/prompt_encoder.h"
#endif

using namespace sanastream;
using nlohmann::json;
using sanastream::test::error_of;
using sanastream::test::golden_root;
using sanastream::test::run_cli;
using sanastream::test::temp_dir;

namespace {

std::string gemma_set() { return golden_root() + "/gemma2_small"; }

double rel(const at::Tensor& ours, const at::Tensor& ref) { return compare_tensors(ours, ref).rel_l2; }

// A Gemma-2 shaped like the golden set: vocab 512, width 64, layers (sliding 8, full), 4/2 heads × 16.
json tiny_config() {
  return {{"model_type", "gemma2"},      {"vocab_size", 512},          {"hidden_size", 64},
          {"intermediate_size", 128},    {"num_hidden_layers", 2},     {"num_attention_heads", 4},
          {"num_key_value_heads", 2},    {"head_dim", 16},             {"hidden_activation", "gelu_pytorch_tanh"},
          {"rms_norm_eps", 1e-6},        {"query_pre_attn_scalar", 16}, {"sliding_window", 8},
          {"attn_logit_softcapping", 50.0}, {"rope_theta", 10000.0},   {"pad_token_id", 0},
          {"bos_token_id", 2},           {"eos_token_id", 1}};
}

// Seeded random bf16 weights for tiny_config().
io::TensorMap tiny_weights(uint64_t seed) {
  at::manual_seed(seed);
  io::TensorMap w;
  auto mat = [&](const std::string& k, int64_t out, int64_t in) {
    w[k] = (at::randn({out, in}) / std::sqrt(static_cast<double>(in))).to(at::kBFloat16);
  };
  w["embed_tokens.weight"] = (at::randn({512, 64}) * 0.5).to(at::kBFloat16);
  w["norm.weight"] = (at::randn({64}) * 0.2).to(at::kBFloat16);
  for (int l = 0; l < 2; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    mat(p + "self_attn.q_proj.weight", 64, 64);
    mat(p + "self_attn.k_proj.weight", 32, 64);
    mat(p + "self_attn.v_proj.weight", 32, 64);
    mat(p + "self_attn.o_proj.weight", 64, 64);
    mat(p + "mlp.gate_proj.weight", 128, 64);
    mat(p + "mlp.up_proj.weight", 128, 64);
    mat(p + "mlp.down_proj.weight", 64, 128);
    for (const char* n : {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                          "post_feedforward_layernorm"})
      w[p + n + ".weight"] = (at::randn({64}) * 0.2).to(at::kBFloat16);
  }
  return w;
}

void write_json(const std::string& path, const json& j) { std::ofstream(path) << j.dump(1); }

}  // namespace

// ---- Gemma-2 against the golden set --------------------------------------------------------------

TEST(TextGemma2, GoldenSetEagerAndSdpaSemantics) {
  const std::string set = gemma_set();
  REQUIRE_GOLDEN(set + "/model.safetensors");
  const json cj = json::parse(std::ifstream(set + "/config.json"));
  const model::Gemma2Config cfg = model::parse_gemma2_config(cj, "config.json");
  EXPECT_EQ(cfg.sliding, (std::vector<bool>{true, false}));
  EXPECT_EQ(cfg.sliding_window, 8);
  EXPECT_EQ(cfg.attn_softcap, 50.0);
  const auto w = io::load_weights(set + "/model.safetensors").tensors;
  const auto in = io::load_safetensors(set + "/inputs.safetensors");
  const auto ref = io::load_safetensors(set + "/outputs.safetensors");
  const at::Tensor ids = in.at("inputs.input_ids"), mask = in.at("inputs.attention_mask");
  const Runtime fp32 = make_runtime("cpu", "fp32");

  model::Gemma2Model eager(w, cfg, fp32, model::Gemma2Attention::kEager);
  std::vector<at::Tensor> states;
  const at::Tensor out = eager.forward(ids, mask, &states);
  ASSERT_EQ(states.size(), 3u);
  EXPECT_LE(rel(out, ref.at("eager.fp32.last_hidden_state")), 1e-4);
  for (int i = 0; i < 3; ++i)
    EXPECT_LE(rel(states[i], ref.at("eager.fp32.hidden_states." + std::to_string(i))), 1e-4) << i;

  model::Gemma2Model sdpa(w, cfg, fp32, model::Gemma2Attention::kSdpa);
  const at::Tensor out_sdpa = sdpa.forward(ids, mask);
  EXPECT_LE(rel(out_sdpa, ref.at("sdpa.fp32.last_hidden_state")), 1e-4);
  EXPECT_LE(rel(out_sdpa, ref.at("default.fp32.last_hidden_state")), 1e-4);
  // Each semantics misses the other's reference: the soft-capping is really there (≈1.2e-4).
  EXPECT_GT(rel(out_sdpa, ref.at("eager.fp32.last_hidden_state")), 1e-4);
  EXPECT_GT(rel(out, ref.at("sdpa.fp32.last_hidden_state")), 1e-4);

  // bf16 against the fp32 reference and the official bf16 output (SPEC §9: 1e-2).
  model::Gemma2Model eager16(w, cfg, make_runtime("cpu", "bf16"), model::Gemma2Attention::kEager);
  const at::Tensor out16 = eager16.forward(ids, mask);
  EXPECT_EQ(out16.scalar_type(), at::kBFloat16);
  EXPECT_LE(rel(out16, ref.at("eager.fp32.last_hidden_state")), 1e-2);
  EXPECT_LE(rel(out16, ref.at("eager.bf16.last_hidden_state")), 1e-2);
}

TEST(TextGemma2, GoldenCheckTextKind) {
  REQUIRE_GOLDEN(gemma_set() + "/model.safetensors");
  const std::string dir = temp_dir("text_golden_check");
  auto r = run_cli({"golden-check", gemma_set(), "--require", "text", "--json", dir + "/report.json"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  const json rep = json::parse(std::ifstream(dir + "/report.json"));
  ASSERT_EQ(rep["sets"].size(), 1u);
  EXPECT_EQ(rep["sets"][0]["kind"], "text");
  EXPECT_EQ(rep["sets"][0]["status"], "pass");
  std::set<std::string> names;
  for (const auto& t : rep["sets"][0]["tensors"]) {
    names.insert(t["name"]);
    EXPECT_LE(t["rel_l2"].get<double>(), 1e-4) << t["name"];
    EXPECT_EQ(t["threshold"].get<double>(), 1e-4);
  }
  // fp32 runs compare the fp32 references only (the bf16 ones are the official bf16 path's).
  EXPECT_EQ(names, (std::set<std::string>{"default.fp32.last_hidden_state", "eager.fp32.hidden_states.0",
                                          "eager.fp32.hidden_states.1", "eager.fp32.hidden_states.2",
                                          "eager.fp32.last_hidden_state", "sdpa.fp32.last_hidden_state"}));
  // bf16: every reference, at 1e-2.
  r = run_cli({"golden-check", gemma_set(), "--dtype", "bf16", "--json", dir + "/report16.json"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  const json rep16 = json::parse(std::ifstream(dir + "/report16.json"));
  EXPECT_EQ(rep16["sets"][0]["tensors"].size(), 9u);
  for (const auto& t : rep16["sets"][0]["tensors"]) EXPECT_EQ(t["threshold"].get<double>(), 1e-2);
}

TEST(TextGemma2, CheckpointLayoutsLoadTheSameModel) {
  const std::string dir = temp_dir("text_layouts");
  const io::TensorMap w = tiny_weights(3);
  write_json(dir + "/config.json", tiny_config());
  io::save_safetensors(dir + "/plain.safetensors", w);
  // A Gemma2ForCausalLM checkpoint: "model." prefixes and a head that is ignored.
  io::TensorMap causal;
  for (const auto& [k, t] : w) causal["model." + k] = t;
  causal["lm_head.weight"] = w.at("embed_tokens.weight");
  io::save_safetensors(dir + "/causal.safetensors", causal);
  // HF shards with an index.
  io::TensorMap a, b;
  json index = {{"metadata", json::object()}, {"weight_map", json::object()}};
  for (const auto& [k, t] : w) {
    const bool first = k.rfind("layers.1.", 0) != 0;
    (first ? a : b)["model." + k] = t;
    index["weight_map"]["model." + k] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  std::filesystem::create_directories(dir + "/sharded");
  io::save_safetensors(dir + "/sharded/model-00001-of-00002.safetensors", a);
  io::save_safetensors(dir + "/sharded/model-00002-of-00002.safetensors", b);
  write_json(dir + "/sharded/model.safetensors.index.json", index);

  const Runtime rt = make_runtime("cpu", "fp32");
  const at::Tensor ids = at::tensor(std::vector<int64_t>{2, 17, 300, 4, 511, 0, 0}, at::kLong).unsqueeze(0);
  const at::Tensor mask = at::tensor(std::vector<int64_t>{1, 1, 1, 1, 1, 0, 0}, at::kLong).unsqueeze(0);
  const auto cfg = dir + "/config.json";
  const at::Tensor plain =
      model::load_gemma2(cfg, dir + "/plain.safetensors", rt, model::Gemma2Attention::kEager)->forward(ids, mask);
  EXPECT_TRUE(at::isfinite(plain).all().item<bool>());
  EXPECT_TRUE(at::equal(
      plain, model::load_gemma2(cfg, dir + "/causal.safetensors", rt, model::Gemma2Attention::kEager)->forward(ids, mask)));
  EXPECT_TRUE(at::equal(plain, model::load_gemma2(cfg, dir + "/sharded", rt, model::Gemma2Attention::kEager)
                                   ->forward(ids, mask)));
  // Padding positions are computed, and they do not change the tokens' outputs (causal + mask).
  const at::Tensor shorter = model::load_gemma2(cfg, dir + "/plain.safetensors", rt, model::Gemma2Attention::kEager)
                                 ->forward(ids.narrow(1, 0, 5), mask.narrow(1, 0, 5));
  EXPECT_TRUE(at::allclose(plain.narrow(1, 0, 5), shorter, 1e-5, 1e-5));
}

TEST(TextGemma2, ConfigThatDoesNotMatchTheWeightsIsOneClearError) {
  const io::TensorMap w = tiny_weights(4);
  const Runtime rt = make_runtime("cpu", "fp32");
  auto build = [&](const json& j, const io::TensorMap& weights) {
    return error_of([&] { model::Gemma2Model(weights, model::parse_gemma2_config(j, "config.json"), rt,
                                             model::Gemma2Attention::kEager); });
  };
  EXPECT_EQ(build(tiny_config(), w), "");
  json c = tiny_config();
  c["hidden_size"] = 32;
  EXPECT_NE(build(c, w).find("config.json (hidden_size 32"), std::string::npos) << build(c, w);
  c = tiny_config();
  c["num_key_value_heads"] = 4;
  EXPECT_NE(build(c, w).find("'layers.0.self_attn.k_proj.weight' of shape (64, 64), the weights have (32, 64)"),
            std::string::npos)
      << build(c, w);
  c = tiny_config();
  c["num_hidden_layers"] = 3;
  c.erase("layer_types");
  EXPECT_EQ(build(c, w), "text encoder: config.json num_hidden_layers 3 but the weights hold 2 layers");
  io::TensorMap extra = w;
  extra["layers.0.self_attn.q_norm.weight"] = at::ones({16});  // a Gemma-3 checkpoint
  EXPECT_NE(build(tiny_config(), extra).find("unexpected tensor 'layers.0.self_attn.q_norm.weight'"),
            std::string::npos);
  io::TensorMap missing = w;
  missing.erase("layers.1.mlp.up_proj.weight");
  EXPECT_NE(build(tiny_config(), missing).find("lack 'layers.1.mlp.up_proj.weight'"), std::string::npos);
  c = tiny_config();
  c["hidden_activation"] = "silu";
  EXPECT_NE(build(c, w).find("gelu_pytorch_tanh"), std::string::npos);
  c = tiny_config();
  c["model_type"] = "gemma3_text";
  EXPECT_NE(build(c, w).find("expected model_type 'gemma2'"), std::string::npos);
  c = tiny_config();
  c["layer_types"] = {"sliding_attention"};
  EXPECT_NE(build(c, w).find("layer_types with 2 entries"), std::string::npos);
  // Token ids outside the vocabulary.
  model::Gemma2Model m(w, model::parse_gemma2_config(tiny_config(), "c"), rt, model::Gemma2Attention::kEager);
  EXPECT_NE(error_of([&] { m.forward(at::full({1, 3}, 512, at::kLong), at::ones({1, 3}, at::kLong)); })
                .find("token ids in [0, 512)"),
            std::string::npos);
}

#ifdef SANASTREAM_HAS_SENTENCEPIECE

// ---- Tokenizer and prompt assembly ---------------------------------------------------------------

namespace {

// A SentencePiece model with hand-computable ids: pad 0, eos 1, bos 2, unk 3; user-defined pieces
// "▁" (4), "a"…"z" (5…30) and "snow" (31, longest match first); then the 256 byte pieces
// (<0x00> = 32 … <0xFF> = 287). Every other character of a text falls back to its UTF-8 bytes: one id
// per byte, 32 + byte.
const std::string& trained_tokenizer() {
  static const std::string path = [] {
    std::vector<model::SpmPiece> pieces = model::gemma_special_pieces();
    pieces.push_back({"\xE2\x96\x81", 0, model::SpmType::kUserDefined});  // ▁, the escaped space
    for (char c = 'a'; c <= 'z'; ++c) pieces.push_back({std::string(1, c), 0, model::SpmType::kUserDefined});
    pieces.push_back({"snow", 0, model::SpmType::kUserDefined});
    for (int b = 0; b < 256; ++b) pieces.push_back(model::byte_piece(b));
    const std::string file = temp_dir("text_tokenizer") + "/tok.model";
    std::ofstream(file, std::ios::binary) << model::serialize_sentencepiece_model(pieces);
    return file;
  }();
  return path;
}

// The same vocabulary trained by SentencePiece's own trainer (Debian's spm_train; a char model with the
// letters, "▁" and "snow" as user-defined symbols and byte fallback) on a corpus of characters no test
// text uses. Skipped where spm_train is not installed (the GPU image); scripts/install-deps.sh has it.
std::string spm_trained_tokenizer() {
#ifdef SANASTREAM_SPM_TRAIN
  const std::string dir = temp_dir("text_tokenizer_trained");
  std::ofstream(dir + "/corpus.txt") << "#%&*+ #%&\n*+#% &*\n#+&%*\n";
  std::string symbols = "\xE2\x96\x81";
  for (char c = 'a'; c <= 'z'; ++c) symbols += std::string(",") + c;
  symbols += ",snow";
  const std::string cmd = std::string(SANASTREAM_SPM_TRAIN) + " --input=" + dir + "/corpus.txt --model_prefix=" + dir +
                          "/tok --model_type=char --vocab_size=400 --hard_vocab_limit=false --pad_id=0 --eos_id=1"
                          " --bos_id=2 --unk_id=3 --normalization_rule_name=identity --add_dummy_prefix=false"
                          " --remove_extra_whitespaces=false --byte_fallback=true --user_defined_symbols=" +
                          symbols + " > " + dir + "/train.log 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return dir + "/tok.model";
#else
  return "";
#endif
}

// The rule above, by hand: letters and space from the table, "snow" as one piece, bytes otherwise.
std::vector<int64_t> hand_ids(const std::string& text) {
  std::vector<int64_t> ids;
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, 4, "snow") == 0) {
      ids.push_back(31);
      i += 4;
      continue;
    }
    const unsigned char c = text[i++];
    ids.push_back(c == ' ' ? 4 : (c >= 'a' && c <= 'z') ? 5 + (c - 'a') : 32 + c);
  }
  return ids;
}

std::vector<int64_t> ones(size_t n) { return std::vector<int64_t>(n, 1); }

// SPEC §4's PREFIX, written as its JSON string.
const char* kSpecPrefixJson =
    R"("Given a user prompt, generate an \"Enhanced prompt\" that provides detailed visual descriptions suitable for image generation. Evaluate the level of detail in the user prompt:\n- If the prompt is simple, focus on adding specifics about colors, shapes, sizes, textures, and spatial relationships to create vivid and concrete scenes.\n- If the prompt is already detailed, refine and enhance the existing details slightly without overcomplicating.\nPlease generate only the enhanced description for the prompt below and avoid including any additional commentary or evaluations:\nUser Prompt: ")";

constexpr int64_t kPrefixBytes = 583;                   // strlen(PREFIX): one test token per byte
constexpr int64_t kMaxLength = 1 + kPrefixBytes + 298;  // len(encode(PREFIX)) + 298 = 882

// A text-encoder directory: tiny random Gemma-2 + the trained tokenizer.
std::string write_encoder_dir(const std::string& name, const json& config = tiny_config(), uint64_t seed = 5) {
  const std::string dir = temp_dir(name);
  write_json(dir + "/config.json", config);
  io::save_safetensors(dir + "/model.safetensors", tiny_weights(seed));
  std::filesystem::copy_file(trained_tokenizer(), dir + "/tokenizer.model");
  return dir;
}

}  // namespace

TEST(TextTokenizer, IdsBosPaddingAndTruncation) {
  model::Tokenizer tok(trained_tokenizer());
  EXPECT_EQ(tok.bos_id(), 2);
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_LE(tok.vocab_size(), 512);
  // m a k e ▁ i t ▁ snow y "," ▁ "N" o w ":" "\n" é(2 bytes)
  EXPECT_EQ(tok.encode("make it snowy, Now:\n\xC3\xA9"),
            (std::vector<int64_t>{17, 5, 15, 9, 4, 13, 24, 4, 31, 29, 76, 4, 110, 19, 27, 90, 42, 227, 201}));
  EXPECT_EQ(tok.encode("snowsnow sno"), (std::vector<int64_t>{31, 31, 4, 23, 18, 19}));
  EXPECT_TRUE(tok.encode("").empty());

  // BOS first, no EOS, right padding with 0.
  model::TokenizedText t = tok.tokenize("make it", 10);
  EXPECT_EQ(t.ids, (std::vector<int64_t>{2, 17, 5, 15, 9, 4, 13, 24, 0, 0}));
  EXPECT_EQ(t.mask, (std::vector<int64_t>{1, 1, 1, 1, 1, 1, 1, 1, 0, 0}));
  EXPECT_EQ(t.tokens, 8);
  EXPECT_FALSE(t.truncated());
  // Truncation keeps BOS and drops the tail.
  t = tok.tokenize("make it", 5);
  EXPECT_EQ(t.ids, (std::vector<int64_t>{2, 17, 5, 15, 9}));
  EXPECT_EQ(t.mask, ones(5));
  EXPECT_EQ(t.tokens, 8);
  EXPECT_TRUE(t.truncated());
  t = tok.tokenize("", 3);
  EXPECT_EQ(t.ids, (std::vector<int64_t>{2, 0, 0}));
  EXPECT_EQ(t.mask, (std::vector<int64_t>{1, 0, 0}));
}

TEST(TextTokenizer, UnreadableModelIsOneClearError) {
  const std::string dir = temp_dir("text_bad_tokenizer");
  EXPECT_EQ(error_of([&] { model::Tokenizer t(dir + "/none.model"); }),
            "tokenizer model '" + dir + "/none.model' does not exist");
  std::ofstream(dir + "/text.model") << "this is not a SentencePiece model\n";
  EXPECT_NE(error_of([&] { model::Tokenizer t(dir + "/text.model"); })
                .find("expected a SentencePiece model, got an unreadable file"),
            std::string::npos);
}

TEST(TextPromptAssembly, PrefixAndNegativePromptAreTheOfficialTexts) {
  EXPECT_EQ(std::string(pipeline::kPromptPrefix), json::parse(kSpecPrefixJson).get<std::string>());
  EXPECT_EQ(static_cast<int64_t>(std::strlen(pipeline::kPromptPrefix)), kPrefixBytes);
  EXPECT_EQ(std::string(pipeline::kDefaultNegativePrompt),
            "A chaotic sequence with misshapen, deformed limbs in heavy motion blur, sudden disappearance, jump "
            "cuts, jerky movements, rapid shot changes, frames out of sync, inconsistent character shapes, temporal "
            "artifacts, jitter, and ghosting effects, creating a disorienting visual experience.");
  EXPECT_EQ(std::string(pipeline::kMotionSuffix), " motion score: 10.");
}

TEST(TextPromptAssembly, PythonStripAndModeNames) {
  EXPECT_EQ(pipeline::python_strip("  make it\tsnowy \n"), "make it\tsnowy");
  EXPECT_EQ(pipeline::python_strip("\xE3\x80\x80\xC2\xA0x y\xE2\x80\xA9\x1F"), "x y");  // U+3000, U+00A0, U+2029
  EXPECT_EQ(pipeline::python_strip("\xC3\xA9"), "\xC3\xA9");                            // é is not space
  EXPECT_EQ(pipeline::python_strip(" \t\r\n\v\f"), "");
  EXPECT_EQ(pipeline::parse_prompt_mode("bidirectional"), pipeline::PromptMode::kBidirectional);
  EXPECT_EQ(error_of([] { pipeline::parse_prompt_mode("live"); }),
            "--mode: expected streaming or bidirectional, got 'live'");
}

TEST(TextPromptAssembly, PositivePromptLengthRuleAndSelection) {
  model::Tokenizer tok(trained_tokenizer());
  const std::vector<int64_t> prefix = hand_ids(pipeline::kPromptPrefix);
  ASSERT_EQ(static_cast<int64_t>(prefix.size()), kPrefixBytes);

  pipeline::PromptTokens p = pipeline::assemble_prompt(tok, "  make it snowy \n", pipeline::PromptMode::kStreaming);
  EXPECT_EQ(p.text, std::string(pipeline::kPromptPrefix) + "make it snowy");
  EXPECT_EQ(p.max_length, kMaxLength);
  // BOS, the prefix, m a k e ▁ i t ▁ snow y, then padding.
  std::vector<int64_t> want{2};
  want.insert(want.end(), prefix.begin(), prefix.end());
  for (int64_t id : {17, 5, 15, 9, 4, 13, 24, 4, 31, 29}) want.push_back(id);
  EXPECT_EQ(p.tokens, 1 + kPrefixBytes + 10);
  want.resize(kMaxLength, 0);
  EXPECT_EQ(p.ids, want);
  std::vector<int64_t> mask = ones(1 + kPrefixBytes + 10);
  mask.resize(kMaxLength, 0);
  EXPECT_EQ(p.mask, mask);
  EXPECT_FALSE(p.truncated());
  // Position 0, then the last 299 positions: 583 … 881 (583 = the prefix's last token, its space).
  ASSERT_EQ(p.select.size(), 300u);
  EXPECT_EQ(p.select[0], 0);
  EXPECT_EQ(p.select[1], 583);
  EXPECT_EQ(p.select[2], 584);
  EXPECT_EQ(p.select[299], 881);
  EXPECT_EQ(p.ids[p.select[1]], 4);
  EXPECT_EQ(p.ids[p.select[2]], 17);  // the prompt's first token
  // Selected mask: BOS, the prefix's space, the 10 prompt tokens → 12 ones.
  int64_t selected_valid = 0;
  for (int64_t i : p.select) selected_valid += p.mask[i];
  EXPECT_EQ(selected_valid, 12);

  // Bidirectional: " motion score: 10." appended after the strip (18 more tokens, one per byte).
  p = pipeline::assemble_prompt(tok, " make it snowy ", pipeline::PromptMode::kBidirectional);
  EXPECT_EQ(p.text, std::string(pipeline::kPromptPrefix) + "make it snowy motion score: 10.");
  EXPECT_EQ(p.tokens, 1 + kPrefixBytes + 10 + 18);
  EXPECT_EQ(p.ids[1 + kPrefixBytes + 10 + 17], 32 + '.');
  EXPECT_EQ(p.max_length, kMaxLength);

  // Over-long: truncated to max_length, every selected position valid, the tail dropped.
  std::string longp;
  for (int i = 0; i < 200; ++i) longp += "ab ";
  p = pipeline::assemble_prompt(tok, longp, pipeline::PromptMode::kStreaming);
  EXPECT_TRUE(p.truncated());
  EXPECT_EQ(p.tokens, 1 + kPrefixBytes + 599);
  EXPECT_EQ(p.mask, ones(kMaxLength));
  EXPECT_EQ(p.ids[kMaxLength - 1], 5);  // prompt token 297 (0-based): 'a', as 297 % 3 == 0

  // Empty prompts are refused.
  EXPECT_EQ(error_of([&] { pipeline::assemble_prompt(tok, "", pipeline::PromptMode::kStreaming); }),
            "expected a non-empty prompt, got an empty string");
  EXPECT_EQ(error_of([&] { pipeline::assemble_prompt(tok, " \n\t", pipeline::PromptMode::kStreaming); }),
            "expected a non-empty prompt, got only whitespace");
}

TEST(TextPromptAssembly, NegativePromptIsVerbatimWithoutSelection) {
  model::Tokenizer tok(trained_tokenizer());
  pipeline::PromptTokens n = pipeline::assemble_negative_prompt(tok, " Ab ");
  EXPECT_EQ(n.text, " Ab ");
  EXPECT_EQ(n.max_length, 300);
  EXPECT_TRUE(n.select.empty());
  std::vector<int64_t> want{2, 4, 32 + 'A', 6, 4};
  want.resize(300, 0);
  EXPECT_EQ(n.ids, want);
  n = pipeline::assemble_negative_prompt(tok, pipeline::kDefaultNegativePrompt);
  EXPECT_EQ(n.tokens, 1 + 285);
  EXPECT_FALSE(n.truncated());
  n = pipeline::assemble_negative_prompt(tok, "");  // the streaming script's negative: BOS alone
  EXPECT_EQ(n.tokens, 1);
}

TEST(TextPromptEncoder, SelectedRowsOfTheEncoderAndCaches) {
  const std::string dir = write_encoder_dir("text_encoder_dir");
  const std::string cache = temp_dir("text_encoder_cache");
  const Runtime rt = make_runtime("cpu", "fp32");
  pipeline::PromptEncoder enc(dir, rt, model::Gemma2Attention::kEager, cache);
  const pipeline::PromptEmbedding e = enc.encode("make it snowy", pipeline::PromptMode::kStreaming);
  EXPECT_EQ(e.embeds.sizes(), (std::vector<int64_t>{300, 64}));
  EXPECT_EQ(e.mask.sizes(), (std::vector<int64_t>{300}));
  EXPECT_EQ(e.mask.sum().item<int64_t>(), 12);
  EXPECT_EQ(e.source, "encoder");

  // The same rows of one forward over all 882 positions.
  const pipeline::PromptTokens t =
      pipeline::assemble_prompt(enc.tokenizer(), "make it snowy", pipeline::PromptMode::kStreaming);
  const at::Tensor full = enc.model().forward(at::tensor(t.ids, at::kLong).unsqueeze(0),
                                              at::tensor(t.mask, at::kLong).unsqueeze(0))[0];  // [882, 64]
  EXPECT_TRUE(at::equal(e.embeds[0], full[0]));
  EXPECT_TRUE(at::equal(e.embeds.narrow(0, 1, 299), full.narrow(0, 583, 299)));
  EXPECT_TRUE(at::equal(e.mask.narrow(0, 0, 12), at::ones({12}, at::kLong)));

  // Memory cache, then the disk cache from a second encoder.
  EXPECT_EQ(enc.encode("  make it snowy", pipeline::PromptMode::kStreaming).source, "memory");
  EXPECT_EQ(enc.encoder_runs(), 1);
  pipeline::PromptEncoder again(dir, rt, model::Gemma2Attention::kEager, cache);
  const pipeline::PromptEmbedding d = again.encode("make it snowy", pipeline::PromptMode::kStreaming);
  EXPECT_EQ(d.source, "disk");
  EXPECT_EQ(again.encoder_runs(), 0);
  EXPECT_TRUE(at::equal(d.embeds, e.embeds));
  EXPECT_TRUE(at::equal(d.mask, e.mask));
  // Another mode or semantics is another entry.
  EXPECT_EQ(again.encode("make it snowy", pipeline::PromptMode::kBidirectional).source, "encoder");
  pipeline::PromptEncoder sdpa(dir, rt, model::Gemma2Attention::kSdpa, cache);
  EXPECT_EQ(sdpa.encode("make it snowy", pipeline::PromptMode::kStreaming).source, "encoder");

  // Negative: all 300 rows of its own forward.
  const pipeline::PromptEmbedding n = enc.encode_negative(pipeline::kDefaultNegativePrompt);
  const pipeline::PromptTokens nt = pipeline::assemble_negative_prompt(enc.tokenizer(), pipeline::kDefaultNegativePrompt);
  EXPECT_TRUE(at::equal(n.embeds, enc.model().forward(at::tensor(nt.ids, at::kLong).unsqueeze(0),
                                                      at::tensor(nt.mask, at::kLong).unsqueeze(0))[0]));
  EXPECT_EQ(n.mask.sum().item<int64_t>(), 286);
}

TEST(TextPromptEncoder, TokenizerThatDoesNotFitTheModel) {
  json c = tiny_config();
  c["bos_token_id"] = 1;
  const std::string dir = write_encoder_dir("text_encoder_bos", c);
  EXPECT_EQ(error_of([&] { pipeline::PromptEncoder e(dir, make_runtime("cpu", "fp32"), model::Gemma2Attention::kEager); }),
            "text encoder: tokenizer.model's BOS id is 2, config.json bos_token_id 1");
}

// ---- encode-prompt -------------------------------------------------------------------------------

TEST(TextEncodePromptCli, WritesLatentEditInputs) {
  const std::string dir = write_encoder_dir("text_cli_model");
  const std::string out = temp_dir("text_cli_out");
  // A small DiT that reads 300 × 64 captions, and the latents for it.
  model::DitShape s;
  s.depth = 4;
  s.hidden = 224;
  s.heads = 2;
  s.ffn_hidden = 96;
  s.latent_channels = 16;
  s.source_channels = 16;
  s.caption_channels = 64;
  s.variant = model::DitVariant::kBidirectional;
  io::save_safetensors(out + "/dit.safetensors", model::random_dit_weights(s, 9));
  at::manual_seed(1);
  io::save_safetensors(out + "/latents.safetensors",
                       {{"inputs.noise", at::randn({1, 16, 2, 2, 3})},
                        {"inputs.src_latents", at::randn({1, 16, 2, 2, 3}).to(at::kBFloat16)}});

  auto r = run_cli({"encode-prompt", "--model", dir, "-p", "make it snowy", "--mode", "bidirectional", "--negative",
                    "--inputs", out + "/latents.safetensors", "--output", out + "/in.safetensors", "--cache-dir",
                    out + "/cache", "--json", out + "/enc.json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.err, "");
  auto t = io::load_safetensors(out + "/in.safetensors");
  EXPECT_EQ(t.size(), 6u);
  EXPECT_EQ(t.at("inputs.prompt_embeds").scalar_type(), at::kBFloat16);
  EXPECT_EQ(t.at("inputs.prompt_embeds").sizes(), (std::vector<int64_t>{1, 1, 300, 64}));
  EXPECT_EQ(t.at("inputs.prompt_mask").scalar_type(), at::kLong);
  EXPECT_EQ(t.at("inputs.prompt_mask").sizes(), (std::vector<int64_t>{1, 300}));
  EXPECT_EQ(t.at("inputs.prompt_mask").sum().item<int64_t>(), 12 + 18);  // + " motion score: 10."
  EXPECT_EQ(t.at("inputs.neg_prompt_embeds").sizes(), (std::vector<int64_t>{1, 1, 300, 64}));
  EXPECT_EQ(t.at("inputs.neg_prompt_mask").sum().item<int64_t>(), 286);  // the default negative prompt
  json rep = json::parse(std::ifstream(out + "/enc.json"));
  EXPECT_EQ(rep["encoder_runs"], 2);
  EXPECT_EQ(rep["prompt"]["max_length"], kMaxLength);

  // The output feeds latent-edit as it is.
  r = run_cli({"latent-edit", "--model", out + "/dit.safetensors", "--inputs", out + "/in.safetensors", "--output",
               out + "/lat.safetensors", "--mode", "bidirectional", "--steps", "2"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;

  // Second run: served from the disk cache; a negative TEXT of our own.
  r = run_cli({"encode-prompt", "--model", dir, "-p", "make it snowy", "--mode", "bidirectional", "--negative", "ab",
               "--output", out + "/in2.safetensors", "--cache-dir", out + "/cache", "--json", out + "/enc2.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  rep = json::parse(std::ifstream(out + "/enc2.json"));
  EXPECT_EQ(rep["prompt"]["source"], "disk");
  EXPECT_EQ(rep["encoder_runs"], 1);
  auto t2 = io::load_safetensors(out + "/in2.safetensors");
  EXPECT_TRUE(at::equal(t2.at("inputs.prompt_embeds"), t.at("inputs.prompt_embeds")));
  EXPECT_EQ(t2.at("inputs.neg_prompt_mask").sum().item<int64_t>(), 3);

  // sdpa semantics in bf16: close to the eager fp32 embeddings, not identical.
  r = run_cli({"encode-prompt", "--model", dir, "-p", "make it snowy", "--mode", "bidirectional", "--output",
               out + "/in3.safetensors", "--attention", "sdpa", "--dtype", "bf16"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const double d = rel(io::load_safetensors(out + "/in3.safetensors").at("inputs.prompt_embeds"),
                       t.at("inputs.prompt_embeds"));
  EXPECT_GT(d, 0);
  EXPECT_LT(d, 2e-2);
}

TEST(TextEncodePromptCli, ErrorsAndWarningsAreOneLine) {
  const std::string dir = write_encoder_dir("text_cli_errors");
  const std::string out = temp_dir("text_cli_errors_out") + "/o.safetensors";
  // Empty prompt.
  auto r = run_cli({"encode-prompt", "--model", dir, "-p", "  ", "--output", out});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "sanastream: error: expected a non-empty prompt, got only whitespace\n");
  // Over-long prompt: truncated with one warning, still written.
  std::string longp;
  for (int i = 0; i < 200; ++i) longp += "ab ";
  r = run_cli({"encode-prompt", "--model", dir, "-p", longp, "--output", out});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err_lines(), 1) << r.err;
  EXPECT_NE(r.err.find("prompt truncated: 1183 tokens with BOS and the instruction prefix exceed the encoder's 882"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(io::load_safetensors(out).at("inputs.prompt_mask").sum().item<int64_t>(), 300);
  // Unreadable tokenizer model.
  const std::string bad_tok = write_encoder_dir("text_cli_bad_tok");
  std::ofstream(bad_tok + "/tokenizer.model", std::ios::trunc) << "not a model";
  r = run_cli({"encode-prompt", "--model", bad_tok, "-p", "x", "--output", out});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err_lines(), 1) << r.err;
  EXPECT_NE(r.err.find("expected a SentencePiece model, got an unreadable file"), std::string::npos) << r.err;
  // A config that does not match the weights.
  json c = tiny_config();
  c["intermediate_size"] = 256;
  const std::string bad_cfg = write_encoder_dir("text_cli_bad_cfg", c);
  r = run_cli({"encode-prompt", "--model", bad_cfg, "-p", "x", "--output", out});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err_lines(), 1) << r.err;
  EXPECT_NE(r.err.find("config.json (hidden_size 64, intermediate_size 256"), std::string::npos) << r.err;
  // A directory without the tokenizer; a bad attention name.
  std::filesystem::remove(bad_cfg + "/tokenizer.model");
  r = run_cli({"encode-prompt", "--model", bad_cfg, "-p", "x", "--output", out});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "sanastream: error: text encoder '" + bad_cfg + "': tokenizer.model is missing\n");
  r = run_cli({"encode-prompt", "--model", dir, "-p", "x", "--attention", "flash", "--output", out});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "sanastream: error: text encoder attention: expected eager or sdpa, got 'flash'\n");
}

TEST(TextTokenizer, ATrainedModelGivesTheHandWrittenIds) {
  const std::string trained = spm_trained_tokenizer();
  if (trained.empty()) GTEST_SKIP() << "spm_train is not installed (Debian package sentencepiece)";
  model::Tokenizer from_trainer(trained), hand(trained_tokenizer());
  for (const std::string text : {std::string(pipeline::kPromptPrefix) + "make it snowy", std::string("snowy snow, 42!"),
                                 std::string("caf\xC3\xA9 \xE2\x98\x83 \xE6\x97\xA5\xE6\x9C\xAC")}) {
    EXPECT_EQ(from_trainer.encode(text), hand_ids(text)) << text;
    EXPECT_EQ(hand.encode(text), hand_ids(text)) << text;
  }
  EXPECT_EQ(from_trainer.bos_id(), hand.bos_id());
}

#endif  // SANASTREAM_HAS_SENTENCEPIECE
