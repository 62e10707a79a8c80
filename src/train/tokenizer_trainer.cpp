#include "train/tokenizer_trainer.h"

#include <fstream>
#include <map>
#include <memory>

#include "core/error.h"
#include "core/fs.h"
#include "core/module.h"
#include "pipeline/prompt_encoder.h"
#include "train/edit_families.h"
#include "train/spm_trainer_shim.h"

namespace sanastream::train {

namespace {

constexpr const char* kModuleName = "libsanastream_spm_train.so";

struct TrainerModule {
  sanastream_spm_train_fn train = nullptr;
  sanastream_spm_decode_fn decode = nullptr;
  sanastream_spm_train_free_fn free = nullptr;
};

const TrainerModule& trainer_module() {
  static const TrainerModule module = [] {
    const std::string what = "SentencePiece trainer module";
    void* lib = open_module(kModuleName, "SANASTREAM_SPM_TRAIN_MODULE", SANASTREAM_SPM_TRAIN_MODULE_BUILD_PATH, what);
    TrainerModule m;
    m.train = reinterpret_cast<sanastream_spm_train_fn>(module_symbol(lib, "sanastream_spm_train", what));
    m.decode = reinterpret_cast<sanastream_spm_decode_fn>(module_symbol(lib, "sanastream_spm_decode", what));
    m.free = reinterpret_cast<sanastream_spm_train_free_fn>(module_symbol(lib, "sanastream_spm_train_free", what));
    return m;
  }();
  return module;
}

// A buffer the module allocated.
struct ModuleBuffer {
  char* data = nullptr;
  ~ModuleBuffer() {
    if (data) trainer_module().free(data);
  }
};

}  // namespace

const std::vector<std::string>& tokenizer_user_symbols() {
  static const std::vector<std::string> symbols = {"<start_of_turn>", "<end_of_turn>"};
  return symbols;
}

std::vector<std::string> tokenizer_corpus(const std::vector<std::string>& extra_files) {
  std::vector<std::string> out = edit_family_texts();
  // Each instruction again as prompt assembly places it, after the prefix's last line: its first word
  // then follows a space, as in every assembled prompt.
  const std::string prefix = pipeline::kPromptPrefix;
  const std::string last_line = prefix.substr(prefix.find_last_of('\n') + 1);  // "User Prompt: "
  for (const auto& text : edit_family_texts()) out.push_back(last_line + text);
  for (const char* fixed : {pipeline::kPromptPrefix, pipeline::kDefaultNegativePrompt, pipeline::kMotionSuffix})
    out.emplace_back(fixed);
  for (const auto& path : extra_files) {
    SS_CHECK(path_exists(path) && !is_directory(path), "--corpus '{}': expected a text file, it does not exist",
             path);
    std::ifstream in(path, std::ios::binary);
    SS_CHECK(in, "--corpus '{}': cannot be read", path);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) out.push_back(std::move(line));
    }
  }
  return out;
}

std::string train_tokenizer(const std::vector<std::string>& sentences, int64_t vocab) {
  SS_CHECK(!sentences.empty(), "tokenizer corpus: expected sentences, got none");
  SS_CHECK(vocab > 0, "--vocab: expected a positive number of pieces, got {}", vocab);
  std::string symbols;
  for (const auto& s : tokenizer_user_symbols()) symbols += (symbols.empty() ? "" : ",") + s;
  size_t longest = 0;
  for (const auto& s : sentences) longest = std::max(longest, s.size());
  // spm_train's flags. Gemma-2's tokenizer.model shape (see the header); determinism: one thread, every
  // sentence in order (no sampling, no shuffling), the generator seeded below.
  const std::map<std::string, std::string> options = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(vocab)},
      {"hard_vocab_limit", "false"},
      {"character_coverage", "1.0"},
      {"byte_fallback", "true"},
      {"normalization_rule_name", "identity"},
      {"add_dummy_prefix", "false"},
      {"remove_extra_whitespaces", "false"},
      {"allow_whitespace_only_pieces", "true"},
      {"split_digits", "true"},
      {"pad_id", "0"},
      {"eos_id", "1"},
      {"bos_id", "2"},
      {"unk_id", "3"},
      {"pad_piece", "<pad>"},
      {"eos_piece", "<eos>"},
      {"bos_piece", "<bos>"},
      {"unk_piece", "<unk>"},
      {"user_defined_symbols", symbols},
      {"num_threads", "1"},
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      {"max_sentence_length", std::to_string(std::max<size_t>(longest, 4192))},
      // Nothing below FATAL is logged: SentencePiece logs to std::cerr, which crashes inside the deep-bound
      // module (a warning such as BPE's "No valid symbol found" when --vocab exceeds what the corpus
      // supports did); its errors come back as the returned status.
      {"minloglevel", "3"}};
  std::vector<const char*> keys, values, texts;
  std::vector<size_t> lengths;
  for (const auto& [k, v] : options) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  for (const auto& s : sentences) {
    texts.push_back(s.data());
    lengths.push_back(s.size());
  }
  const TrainerModule& m = trainer_module();
  char err[1024] = {0};
  ModuleBuffer model;
  const int64_t size = m.train(texts.data(), lengths.data(), texts.size(), keys.data(), values.data(), keys.size(),
                               /*seed=*/0, &model.data, err, sizeof err);
  SS_CHECK(size > 0, "SentencePiece trainer (vocab {}, {} sentences): {}", vocab, sentences.size(), err);
  return std::string(model.data, static_cast<size_t>(size));
}

std::string decode_tokens(const std::string& model, const std::vector<int64_t>& ids) {
  std::vector<int32_t> ids32(ids.begin(), ids.end());
  char err[512] = {0};
  ModuleBuffer text;
  const int64_t size =
      trainer_module().decode(model.data(), model.size(), ids32.data(), ids32.size(), &text.data, err, sizeof err);
  SS_CHECK(size >= 0, "SentencePiece decode: {}", err);
  return std::string(text.data, static_cast<size_t>(size));
}

}  // namespace sanastream::train
