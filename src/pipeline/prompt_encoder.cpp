#include "pipeline/prompt_encoder.h"

#include <filesystem>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"

namespace sanastream::pipeline {

const char* const kPromptPrefix =
    "Given a user prompt, generate an \"Enhanced prompt\" that provides detailed visual descriptions suitable for "
    "image generation. Evaluate the level of detail in the user prompt:\n"
    "- If the prompt is simple, focus on adding specifics about colors, shapes, sizes, textures, and spatial "
    "relationships to create vivid and concrete scenes.\n"
    "- If the prompt is already detailed, refine and enhance the existing details slightly without "
    "overcomplicating.\n"
    "Please generate only the enhanced description for the prompt below and avoid including any additional "
    "commentary or evaluations:\n"
    "User Prompt: ";

const char* const kDefaultNegativePrompt =
    "A chaotic sequence with misshapen, deformed limbs in heavy motion blur, sudden disappearance, jump cuts, "
    "jerky movements, rapid shot changes, frames out of sync, inconsistent character shapes, temporal artifacts, "
    "jitter, and ghosting effects, creating a disorienting visual experience.";

const char* const kMotionSuffix = " motion score: 10.";

namespace fs = std::filesystem;

PromptMode parse_prompt_mode(const std::string& mode) {
  if (mode == "streaming") return PromptMode::kStreaming;
  if (mode == "bidirectional") return PromptMode::kBidirectional;
  SS_FAIL("--mode: expected streaming or bidirectional, got '{}'", mode);
}

namespace {

bool is_python_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

size_t sequence_length(uint8_t lead) {
  return lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

// The code point of the UTF-8 sequence s[i, i + n); an invalid sequence decodes to U+FFFD (never space).
uint32_t decode(const std::string& s, size_t i, size_t n) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[i + k]); };
  if (n == 1) return b(0) < 0x80 ? b(0) : 0xFFFD;
  if (sequence_length(b(0)) != n) return 0xFFFD;
  uint32_t cp = b(0) & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0xFFFD;
    cp = (cp << 6) | (b(k) & 0x3F);
  }
  return cp;
}

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string file_identity(const std::string& path) {
  const fs::path p = fs::canonical(path);
  const auto mtime = fs::last_write_time(p).time_since_epoch().count();
  return fmt::format("{}:{}:{}", p.string(), fs::is_regular_file(p) ? fs::file_size(p) : 0, mtime);
}

void warn_truncated(const char* what, const PromptTokens& t) {
  log_warn("{} truncated: {} tokens with BOS{} exceed the encoder's {}; the last {} are dropped, as the official "
           "pipeline does",
           what, t.tokens, t.select.empty() ? "" : " and the instruction prefix", t.max_length,
           t.tokens - t.max_length);
}

PromptTokens from_tokenized(std::string text, const model::TokenizedText& tt, int64_t max_length) {
  PromptTokens p;
  p.text = std::move(text);
  p.ids = tt.ids;
  p.mask = tt.mask;
  p.tokens = tt.tokens;
  p.max_length = max_length;
  return p;
}

}  // namespace

std::string python_strip(const std::string& s) {
  size_t begin = 0, end = s.size();
  while (begin < end) {
    const size_t n = std::min(sequence_length(static_cast<uint8_t>(s[begin])), end - begin);
    if (!is_python_space(decode(s, begin, n))) break;
    begin += n;
  }
  while (end > begin) {
    size_t start = end - 1;
    while (start > begin && (static_cast<uint8_t>(s[start]) & 0xC0) == 0x80 && end - start < 4) --start;
    if (!is_python_space(decode(s, start, end - start))) break;
    end = start;
  }
  return s.substr(begin, end - begin);
}

void check_prompt_text(const std::string& prompt) {
  SS_CHECK(!python_strip(prompt).empty(), "expected a non-empty prompt, got {}",
           prompt.empty() ? "an empty string" : "only whitespace");
}

PromptTokens assemble_prompt(const model::Tokenizer& tok, const std::string& prompt, PromptMode mode) {
  check_prompt_text(prompt);
  std::string body = python_strip(prompt);
  if (mode == PromptMode::kBidirectional) body += kMotionSuffix;
  // len(tokenizer.encode(PREFIX)) counts BOS; the official code then subtracts 2 from 300.
  const int64_t prefix_tokens = 1 + static_cast<int64_t>(tok.encode(kPromptPrefix).size());
  const int64_t max_length = prefix_tokens + kCaptionLength - 2;
  std::string text = std::string(kPromptPrefix) + body;
  PromptTokens p = from_tokenized(text, tok.tokenize(text, max_length), max_length);
  p.select.push_back(0);
  for (int64_t i = max_length - (kCaptionLength - 1); i < max_length; ++i) p.select.push_back(i);
  return p;
}

PromptTokens assemble_negative_prompt(const model::Tokenizer& tok, const std::string& text) {
  return from_tokenized(text, tok.tokenize(text, kCaptionLength), kCaptionLength);
}

TextEncoderFiles resolve_text_encoder(const std::string& dir) {
  SS_CHECK(is_directory(dir),
           "text encoder '{}': expected a directory with config.json, the weights and tokenizer.model", dir);
  TextEncoderFiles f;
  f.config = dir + "/config.json";
  f.tokenizer = dir + "/tokenizer.model";
  SS_CHECK(path_exists(f.config), "text encoder '{}': config.json is missing", dir);
  SS_CHECK(path_exists(f.tokenizer), "text encoder '{}': tokenizer.model is missing", dir);
  f.weights = io::resolve_weights_path(dir, "text encoder");
  return f;
}

PromptEncoder::PromptEncoder(const std::string& model_dir, const Runtime& rt, model::Gemma2Attention attn,
                             std::string cache_dir)
    : cache_dir_(std::move(cache_dir)) {
  const TextEncoderFiles f = resolve_text_encoder(model_dir);
  tok_ = std::make_unique<model::Tokenizer>(f.tokenizer);
  model_ = model::load_gemma2(f.config, f.weights, rt, attn);
  const model::Gemma2Config& c = model_->config();
  SS_CHECK(tok_->vocab_size() <= c.vocab_size, "text encoder: tokenizer.model has {} pieces, config.json vocab_size {}",
           tok_->vocab_size(), c.vocab_size);
  SS_CHECK(tok_->bos_id() == c.bos_id, "text encoder: tokenizer.model's BOS id is {}, config.json bos_token_id {}",
           tok_->bos_id(), c.bos_id);
  identity_ = fmt::format("{}|{}|{}|{}|{}", file_identity(f.config), file_identity(f.weights),
                          file_identity(f.tokenizer), dtype_label(rt.dtype), model::gemma2_attention_name(attn));
  if (!cache_dir_.empty()) {
    std::error_code ec;
    fs::create_directories(cache_dir_, ec);
    SS_CHECK(is_directory(cache_dir_), "prompt cache '{}': expected a directory, could not create it ({})",
             cache_dir_, ec.message());
  }
}

PromptEmbedding PromptEncoder::encode(const std::string& prompt, PromptMode mode) {
  PromptTokens t = assemble_prompt(*tok_, prompt, mode);
  if (t.truncated()) warn_truncated("prompt", t);
  return embed(t);
}

PromptEmbedding PromptEncoder::encode_negative(const std::string& text) {
  PromptTokens t = assemble_negative_prompt(*tok_, text);
  if (t.truncated()) warn_truncated("negative prompt", t);
  return embed(t);
}

std::string PromptEncoder::cache_path(const std::string& key) const {
  return fmt::format("{}/prompt-{:016x}.safetensors", cache_dir_, fnv1a64(key));
}

TokenEmbedding embed_tokens(const model::Gemma2Model& model, const PromptTokens& t) {
  TokenEmbedding r = embed_tokens(model, std::vector<PromptTokens>{t});
  return {r.embeds[0], r.mask[0]};
}

TokenEmbedding embed_tokens(const model::Gemma2Model& model, const std::vector<PromptTokens>& batch) {
  SS_CHECK(!batch.empty(), "embed_tokens: no prompts");
  std::vector<at::Tensor> ids, masks;
  for (const PromptTokens& t : batch) {
    SS_CHECK(t.max_length == batch[0].max_length && t.select == batch[0].select,
             "embed_tokens: one batch holds assemblies of one length and row selection");
    ids.push_back(at::tensor(t.ids, at::kLong));
    masks.push_back(at::tensor(t.mask, at::kLong));
  }
  const at::Tensor mask = at::stack(masks);              // [B, M]
  const at::Tensor h = model.forward(at::stack(ids), mask);  // [B, M, C]
  if (batch[0].select.empty()) return {h, mask};
  const at::Tensor rows = at::tensor(batch[0].select, at::kLong);  // [300]
  return {h.index_select(1, rows.to(h.device())), mask.index_select(1, rows).contiguous()};
}

PromptEmbedding PromptEncoder::embed(const PromptTokens& t) {
  const std::string key = fmt::format("{}\n{}\n{}\n{}", identity_, t.max_length, t.select.empty() ? "all" : "select",
                                      t.text);
  if (auto it = memory_.find(key); it != memory_.end()) {
    PromptEmbedding e = it->second;
    e.source = "memory";
    return e;
  }
  PromptEmbedding e;
  e.tokens = t.tokens;
  e.max_length = t.max_length;
  e.truncated = t.truncated();
  const std::string path = cache_dir_.empty() ? "" : cache_path(key);
  if (!path.empty() && path_exists(path)) {
    try {
      auto file = io::SafetensorsFile::open(path);
      auto k = file->metadata().find("key");
      if (k != file->metadata().end() && k->second == key) {
        e.embeds = file->tensor("embeds");
        e.mask = file->tensor("mask");
        e.source = "disk";
      }
    } catch (const Error& err) {
      log_debug("prompt cache '{}' unreadable, recomputing: {}", path, err.message());
    }
  }
  if (e.source.empty()) {
    const TokenEmbedding te = embed_tokens(*model_, t);
    e.embeds = te.embeds.to(at::kCPU).contiguous();
    e.mask = te.mask;
    e.source = "encoder";
    ++runs_;
    if (!path.empty()) io::save_safetensors(path, {{"embeds", e.embeds}, {"mask", e.mask}}, {{"key", key}});
  }
  memory_[key] = e;
  return e;
}

}  // namespace sanastream::pipeline
