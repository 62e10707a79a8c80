// libsanastream_spm_train: libsentencepiece_train behind a C interface (see spm_trainer_shim.h). No
// ATen, no exceptions across the boundary.
#include "train/spm_trainer_shim.h"

#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

namespace {

void set_error(char* err, size_t err_size, const std::string& message) {
  if (!err || err_size == 0) return;
  const size_t n = std::min(message.size(), err_size - 1);
  std::memcpy(err, message.data(), n);
  err[n] = '\0';
}

int64_t give(const std::string& bytes, char** out) {
  *out = static_cast<char*>(std::malloc(bytes.size() + 1));
  if (!*out) return -1;
  std::memcpy(*out, bytes.data(), bytes.size());
  (*out)[bytes.size()] = '\0';
  return static_cast<int64_t>(bytes.size());
}

// The sentences, in order, as SentencePiece's trainer reads them.
class Sentences : public sentencepiece::SentenceIterator {
 public:
  explicit Sentences(std::vector<std::string> s) : s_(std::move(s)) {}
  bool done() const override { return i_ >= s_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return s_[i_]; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

 private:
  std::vector<std::string> s_;
  size_t i_ = 0;
};

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int64_t sanastream_spm_train(const char* const* sentences,
                                                                    const size_t* lengths, size_t n,
                                                                    const char* const* keys,
                                                                    const char* const* values, size_t n_options,
                                                                    uint32_t seed, char** model, char* err,
                                                                    size_t err_size) {
  try {
    std::vector<std::string> s;
    s.reserve(n);
    for (size_t i = 0; i < n; ++i) s.emplace_back(sentences[i], lengths[i]);
    std::unordered_map<std::string, std::string> kwargs;
    for (size_t i = 0; i < n_options; ++i) kwargs[keys[i]] = values[i];
    sentencepiece::SetRandomGeneratorSeed(seed);
    Sentences it(std::move(s));
    std::string proto;
    const auto status = sentencepiece::SentencePieceTrainer::Train(kwargs, &it, &proto);
    if (!status.ok()) {
      set_error(err, err_size, status.ToString());
      return -1;
    }
    const int64_t size = give(proto, model);
    if (size < 0) set_error(err, err_size, "out of memory");
    return size;
  } catch (const std::exception& e) {
    set_error(err, err_size, e.what());
    return -1;
  }
}

__attribute__((visibility("default"))) int64_t sanastream_spm_decode(const char* model, size_t model_size,
                                                                     const int32_t* ids, size_t n, char** text,
                                                                     char* err, size_t err_size) {
  try {
    sentencepiece::SentencePieceProcessor sp;
    auto status = sp.LoadFromSerializedProto(std::string(model, model_size));
    if (!status.ok()) {
      set_error(err, err_size, status.ToString());
      return -1;
    }
    std::string out;
    status = sp.Decode(std::vector<int>(ids, ids + n), &out);
    if (!status.ok()) {
      set_error(err, err_size, status.ToString());
      return -1;
    }
    const int64_t size = give(out, text);
    if (size < 0) set_error(err, err_size, "out of memory");
    return size;
  } catch (const std::exception& e) {
    set_error(err, err_size, e.what());
    return -1;
  }
}

__attribute__((visibility("default"))) void sanastream_spm_train_free(char* buffer) { std::free(buffer); }

}  // extern "C"
