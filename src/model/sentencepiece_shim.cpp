// libsanastream_spm: libsentencepiece behind a C interface (see sentencepiece_shim.h). No ATen,
// no exceptions across the boundary.
#include "model/sentencepiece_shim.h"

#include <cstring>
#include <string>
#include <vector>

#include <sentencepiece_processor.h>

namespace {

void set_error(char* err, size_t err_size, const std::string& message) {
  if (!err || err_size == 0) return;
  const size_t n = std::min(message.size(), err_size - 1);
  std::memcpy(err, message.data(), n);
  err[n] = '\0';
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) void* sanastream_spm_load(const char* path, char* err, size_t err_size) {
  try {
    auto* sp = new sentencepiece::SentencePieceProcessor();
    const auto status = sp->Load(path);
    if (status.ok()) return sp;
    set_error(err, err_size, status.ToString());
    delete sp;
  } catch (const std::exception& e) {
    set_error(err, err_size, e.what());
  }
  return nullptr;
}

__attribute__((visibility("default"))) void sanastream_spm_free(void* processor) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(processor);
}

__attribute__((visibility("default"))) int32_t sanastream_spm_info(void* processor, int32_t* bos_id, int32_t* pad_id) {
  const auto* sp = static_cast<const sentencepiece::SentencePieceProcessor*>(processor);
  *bos_id = sp->bos_id();
  *pad_id = sp->pad_id();
  return sp->GetPieceSize();
}

__attribute__((visibility("default"))) int64_t sanastream_spm_encode(void* processor, const char* text, size_t len,
                                                                     int32_t* ids, int64_t cap, char* err,
                                                                     size_t err_size) {
  try {
    std::vector<int> pieces;
    const auto status =
        static_cast<const sentencepiece::SentencePieceProcessor*>(processor)->Encode(std::string(text, len), &pieces);
    if (!status.ok()) {
      set_error(err, err_size, status.ToString());
      return -1;
    }
    for (int64_t i = 0; i < static_cast<int64_t>(pieces.size()) && i < cap; ++i) ids[i] = pieces[i];
    return static_cast<int64_t>(pieces.size());
  } catch (const std::exception& e) {
    set_error(err, err_size, e.what());
    return -1;
  }
}

}  // extern "C"
