// The C interface of libsanastream_spm, the small module that wraps libsentencepiece. The module
// is loaded with dlopen(RTLD_LOCAL | RTLD_DEEPBIND) because libsentencepiece exports the symbols
// of its bundled protobuf-lite: linked into a process that also has libtorch's libprotobuf, one
// library binds to the other's protobuf and the process crashes at start-up. Loaded this way the
// two copies never meet. Errors come back as text in `err` (NUL-terminated, truncated to err_size).
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {

// A SentencePieceProcessor for the model file, or null (message in err).
typedef void* (*sanastream_spm_load_fn)(const char* path, char* err, size_t err_size);
typedef void (*sanastream_spm_free_fn)(void* processor);
// piece count, BOS id, pad id (−1 when the model has none).
typedef int32_t (*sanastream_spm_info_fn)(void* processor, int32_t* bos_id, int32_t* pad_id);
// Encodes text[0, len) into at most cap ids; returns the total number of ids (call again with a
// larger buffer when it exceeds cap), or −1 on failure (message in err).
typedef int64_t (*sanastream_spm_encode_fn)(void* processor, const char* text, size_t len, int32_t* ids, int64_t cap,
                                            char* err, size_t err_size);

}  // extern "C"
