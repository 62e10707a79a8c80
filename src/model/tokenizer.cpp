#include "model/tokenizer.h"

#include <algorithm>

#include "core/error.h"
#include "core/fs.h"
#include "core/module.h"
#include "model/sentencepiece_shim.h"

namespace sanastream::model {

namespace {

constexpr const char* kModuleName = "libsanastream_spm.so";

// The module's entry points, resolved once per process.
struct SpmModule {
  sanastream_spm_load_fn load = nullptr;
  sanastream_spm_free_fn free = nullptr;
  sanastream_spm_info_fn info = nullptr;
  sanastream_spm_encode_fn encode = nullptr;
};

const SpmModule& spm_module() {
  static const SpmModule module = [] {
    const std::string what = "SentencePiece module";
    void* lib = open_module(kModuleName, "SANASTREAM_SPM_MODULE", SANASTREAM_SPM_MODULE_BUILD_PATH, what);
    SpmModule m;
    m.load = reinterpret_cast<sanastream_spm_load_fn>(module_symbol(lib, "sanastream_spm_load", what));
    m.free = reinterpret_cast<sanastream_spm_free_fn>(module_symbol(lib, "sanastream_spm_free", what));
    m.info = reinterpret_cast<sanastream_spm_info_fn>(module_symbol(lib, "sanastream_spm_info", what));
    m.encode = reinterpret_cast<sanastream_spm_encode_fn>(module_symbol(lib, "sanastream_spm_encode", what));
    return m;
  }();
  return module;
}

}  // namespace

Tokenizer::Tokenizer(const std::string& model_path) : path_(model_path) {
  SS_CHECK(path_exists(model_path) && !is_directory(model_path), "tokenizer model '{}' does not exist", model_path);
  const SpmModule& spm = spm_module();
  char err[512] = {0};
  processor_ = spm.load(model_path.c_str(), err, sizeof err);
  SS_CHECK(processor_, "tokenizer model '{}': expected a SentencePiece model, got an unreadable file ({})",
           model_path, err);
  int32_t bos = -1, pad = -1;
  pieces_ = spm.info(processor_, &bos, &pad);
  if (bos < 0) spm.free(processor_);
  SS_CHECK(bos >= 0, "tokenizer model '{}': expected a BOS piece, got none", model_path);
  bos_id_ = bos;
  pad_id_ = pad >= 0 ? pad : 0;
}

Tokenizer::~Tokenizer() { spm_module().free(processor_); }

std::vector<int64_t> Tokenizer::encode(const std::string& text) const {
  const SpmModule& spm = spm_module();
  char err[512] = {0};
  std::vector<int32_t> ids(text.size() + 16);
  int64_t n = spm.encode(processor_, text.data(), text.size(), ids.data(), ids.size(), err, sizeof err);
  if (n > static_cast<int64_t>(ids.size())) {
    ids.resize(n);
    n = spm.encode(processor_, text.data(), text.size(), ids.data(), ids.size(), err, sizeof err);
  }
  SS_CHECK(n >= 0, "tokenizer: could not encode the text ({})", err);
  return {ids.begin(), ids.begin() + n};
}

TokenizedText Tokenizer::tokenize(const std::string& text, int64_t max_length) const {
  SS_CHECK(max_length >= 1, "tokenizer: expected max_length >= 1, got {}", max_length);
  const std::vector<int64_t> pieces = encode(text);
  TokenizedText t;
  t.tokens = 1 + static_cast<int64_t>(pieces.size());
  t.ids.assign(max_length, pad_id_);
  t.mask.assign(max_length, 0);
  t.ids[0] = bos_id_;
  t.mask[0] = 1;
  const int64_t kept = std::min<int64_t>(pieces.size(), max_length - 1);
  for (int64_t i = 0; i < kept; ++i) {
    t.ids[1 + i] = pieces[i];
    t.mask[1 + i] = 1;
  }
  return t;
}

}  // namespace sanastream::model
