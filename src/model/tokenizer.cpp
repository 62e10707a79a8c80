#include "model/tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "core/error.h"
#include "core/fs.h"
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

std::vector<std::string> module_candidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("SANASTREAM_SPM_MODULE")) out.push_back(env);
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    std::string dir(exe, n);
    dir = dir.substr(0, dir.find_last_of('/'));
    out.push_back(dir + "/" + kModuleName);
    out.push_back(dir + "/../lib/" + kModuleName);
  }
  out.push_back(SANASTREAM_SPM_MODULE_BUILD_PATH);
  return out;
}

const SpmModule& spm_module() {
  static const SpmModule module = [] {
    std::string tried;
    for (const auto& path : module_candidates()) {
      if (!path_exists(path)) {
        tried += (tried.empty() ? "" : ", ") + path;
        continue;
      }
      // Local and deep-bound: libsentencepiece keeps its own protobuf (sentencepiece_shim.h).
      void* lib = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      SS_CHECK(lib, "SentencePiece module '{}': expected a loadable library, got: {}", path, ::dlerror());
      SpmModule m;
      m.load = reinterpret_cast<sanastream_spm_load_fn>(::dlsym(lib, "sanastream_spm_load"));
      m.free = reinterpret_cast<sanastream_spm_free_fn>(::dlsym(lib, "sanastream_spm_free"));
      m.info = reinterpret_cast<sanastream_spm_info_fn>(::dlsym(lib, "sanastream_spm_info"));
      m.encode = reinterpret_cast<sanastream_spm_encode_fn>(::dlsym(lib, "sanastream_spm_encode"));
      SS_CHECK(m.load && m.free && m.info && m.encode,
               "SentencePiece module '{}': expected the sanastream_spm_* functions, some are missing", path);
      return m;
    }
    SS_FAIL("SentencePiece module {} not found (looked at {}; set SANASTREAM_SPM_MODULE)", kModuleName, tried);
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
