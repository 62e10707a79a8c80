// The C interface of libsanastream_spm_train, the module that wraps libsentencepiece_train (the
// trainer of `sanastream train-tokenizer`, train/tokenizer_trainer.h). Loaded with dlopen(RTLD_LOCAL |
// RTLD_DEEPBIND) for the reason model/sentencepiece_shim.h gives: libsentencepiece brings its own
// protobuf-lite, which must never meet libtorch's. Errors come back as text in `err` (NUL-terminated,
// truncated to err_size); buffers the module allocates are freed with sanastream_spm_train_free.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" {

// Trains a model on n sentences (sentences[i] of lengths[i] bytes) with trainer options given as
// n_options key/value pairs (spm_train's flag names without "--"), after seeding SentencePiece's
// random generator with `seed`. Returns the size of the serialised ModelProto written to *model, or −1
// (message in err).
typedef int64_t (*sanastream_spm_train_fn)(const char* const* sentences, const size_t* lengths, size_t n,
                                           const char* const* keys, const char* const* values, size_t n_options,
                                           uint32_t seed, char** model, char* err, size_t err_size);
// Decodes ids [n] with the serialised model [model_size]: returns the size of the text written to
// *text, or −1 (message in err).
typedef int64_t (*sanastream_spm_decode_fn)(const char* model, size_t model_size, const int32_t* ids, size_t n,
                                            char** text, char* err, size_t err_size);
typedef void (*sanastream_spm_train_free_fn)(char* buffer);

}  // extern "C"
