// Instructions → the 300 caption embeddings the DiT reads, assembled exactly as the official SANA
// streaming script does (SPEC §4):
//   positive: text = PREFIX + prompt.strip() (+ " motion score: 10." in the bidirectional mode),
//             max_length = len(encode(PREFIX)) + 298 (BOS counted), right padding / truncation,
//             Gemma-2 over all max_length positions with the mask, then position 0 and the last
//             299 positions of the hidden states and of the mask;
//   negative: the text as given (no prefix, no strip), max_length 300, every position kept.
// Results are cached per assembled text in memory and, with a cache directory, on disk.
//
// A text-encoder directory holds config.json, the weights (model.safetensors, or
// model.safetensors.index.json with its shards; a Gemma2ForCausalLM checkpoint is fine) and
// tokenizer.model — the layout of the gemma-2-2b-it release.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/runtime.h"
#include "model/gemma2.h"
#include "model/tokenizer.h"

namespace sanastream::pipeline {

// config.text_encoder.chi_prompt of the official configs, lines joined by "\n".
extern const char* const kPromptPrefix;
// The official script's DEFAULT_NEGATIVE_PROMPT (bidirectional mode).
extern const char* const kDefaultNegativePrompt;
// Appended to the stripped prompt in the bidirectional mode (motion score 10).
extern const char* const kMotionSuffix;
constexpr int64_t kCaptionLength = 300;  // config.text_encoder.model_max_length

enum class PromptMode { kStreaming, kBidirectional };
PromptMode parse_prompt_mode(const std::string& mode);  // "streaming" | "bidirectional"

// Python's str.strip(): removes leading and trailing Unicode whitespace (UTF-8).
std::string python_strip(const std::string& s);

// What goes into the encoder and which rows come out.
struct PromptTokens {
  std::string text;              // the assembled text that was tokenized
  std::vector<int64_t> ids;      // [max_length]
  std::vector<int64_t> mask;     // [max_length]
  std::vector<int64_t> select;   // [300] rows kept; empty = all rows (negative prompt)
  int64_t max_length = 0;
  int64_t tokens = 0;            // BOS + text pieces before truncation
  bool truncated() const { return tokens > max_length; }
};

// An empty (or all-whitespace) positive prompt is an Error.
void check_prompt_text(const std::string& prompt);

// The positive prompt (checked by check_prompt_text).
PromptTokens assemble_prompt(const model::Tokenizer& tok, const std::string& prompt, PromptMode mode);
// The negative prompt, used verbatim (empty allowed: BOS alone).
PromptTokens assemble_negative_prompt(const model::Tokenizer& tok, const std::string& text);

// The token → embedding step of PromptEncoder, shared with the trainer (a trainable text encoder,
// docs/TRAIN.md): the encoder's last hidden state of t.ids, the rows t.select keeps. embeds
// [rows, C] in the encoder's dtype on its device, mask [rows] int64 on the CPU. Under grad mode the
// graph reaches the weights the model was built on.
struct TokenEmbedding {
  at::Tensor embeds, mask;
};
TokenEmbedding embed_tokens(const model::Gemma2Model& model, const PromptTokens& t);
// Several assemblies of one max_length in one encoder call: embeds [B, rows, C], mask [B, rows].
TokenEmbedding embed_tokens(const model::Gemma2Model& model, const std::vector<PromptTokens>& batch);

struct PromptEmbedding {
  at::Tensor embeds;   // [300, C] in the encoder's dtype, CPU
  at::Tensor mask;     // [300] int64, CPU
  int64_t tokens = 0;  // as PromptTokens::tokens
  int64_t max_length = 0;
  bool truncated = false;
  std::string source;  // "encoder", "memory" or "disk"
};

struct TextEncoderFiles {
  std::string config, weights, tokenizer;
};
// The files of a text-encoder directory (layout above); a missing one is an Error.
TextEncoderFiles resolve_text_encoder(const std::string& dir);

class PromptEncoder {
 public:
  // cache_dir: "" = memory cache only; otherwise created if needed.
  PromptEncoder(const std::string& model_dir, const Runtime& rt, model::Gemma2Attention attn,
                std::string cache_dir = "");

  const model::Gemma2Model& model() const { return *model_; }
  const model::Tokenizer& tokenizer() const { return *tok_; }

  // Truncation is logged as one warning line.
  PromptEmbedding encode(const std::string& prompt, PromptMode mode);
  PromptEmbedding encode_negative(const std::string& text);

  int64_t encoder_runs() const { return runs_; }  // forwards actually computed (cache misses)

 private:
  PromptEmbedding embed(const PromptTokens& t);
  std::string cache_path(const std::string& key) const;

  std::unique_ptr<model::Tokenizer> tok_;
  std::unique_ptr<model::Gemma2Model> model_;
  std::string identity_;   // model files, dtype and attention semantics: part of every cache key
  std::string cache_dir_;
  std::map<std::string, PromptEmbedding> memory_;
  int64_t runs_ = 0;
};

}  // namespace sanastream::pipeline
