// The text encoder's tokenizer: a SentencePiece model (Gemma's tokenizer.model) called the way the
// SANA pipeline calls transformers' tokenizer (SPEC §4): BOS prepended, no EOS, truncation to
// max_length (BOS included) and right padding with the pad id. Built only with
// SANASTREAM_SENTENCEPIECE. libsentencepiece is reached through the libsanastream_spm module
// (sentencepiece_shim.h says why), found at $SANASTREAM_SPM_MODULE, next to the executable, in
// ../lib from it, or in the build tree.
#pragma once

#include <string>
#include <vector>

namespace sanastream::model {

struct TokenizedText {
  std::vector<int64_t> ids;   // [max_length]: BOS, text pieces, then pad
  std::vector<int64_t> mask;  // [max_length]: 1 for BOS and text pieces, 0 for padding
  int64_t tokens = 0;         // BOS + text pieces before truncation
  bool truncated() const { return tokens > static_cast<int64_t>(ids.size()); }
};

class Tokenizer {
 public:
  // Reads a SentencePiece model file; an unreadable or foreign file is one Error.
  explicit Tokenizer(const std::string& model_path);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  const std::string& path() const { return path_; }
  int64_t vocab_size() const { return pieces_; }
  int64_t bos_id() const { return bos_id_; }
  int64_t pad_id() const { return pad_id_; }  // the model's pad piece, else 0

  // The pieces of text, without BOS/EOS.
  std::vector<int64_t> encode(const std::string& text) const;
  // BOS + encode(text), truncated to max_length and right-padded to it (max_length ≥ 1).
  TokenizedText tokenize(const std::string& text, int64_t max_length) const;

 private:
  std::string path_;
  void* processor_ = nullptr;  // owned, freed through the module
  int64_t pieces_ = 0;
  int64_t bos_id_ = 2;
  int64_t pad_id_ = 0;
};

}  // namespace sanastream::model
