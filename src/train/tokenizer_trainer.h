// The demo model's tokenizer (`sanastream train-tokenizer`, docs/MODELS.md): a SentencePiece BPE model
// trained with libsentencepiece's trainer on the instruction corpus — every edit-family phrasing
// (edit_families.h), the fixed texts prompt assembly adds around a prompt (pipeline/prompt_encoder.h:
// the instruction prefix, the default negative prompt, the motion suffix) and any extra files. BPE
// rather than unigram: on a corpus this small it keeps the instructions' words whole (≈ 3.5 characters
// per token over the assembled phrasings, against ≈ 2.3 for a unigram model of the same size).
//
// Shaped like gemma-2's tokenizer.model so the project's tokenizer, prompt assembly and Gemma-2
// config take it as they take the real one: Gemma's special ids (<pad> 0, <eos> 1, <bos> 2, <unk> 3),
// <start_of_turn> and <end_of_turn> as user-defined pieces (ids 4 and 5), the 256 byte pieces with
// byte fallback (no text is ever <unk>), an identity normaliser without a dummy prefix or whitespace
// folding (decode(encode(x)) == x), digits split. Deterministic: one thread, no sampling or shuffling
// of the corpus, SentencePiece's generator seeded: the same corpus and vocabulary give the same bytes.
//
// The trainer lives in the libsanastream_spm_train module (spm_trainer_shim.h says why), found at
// $SANASTREAM_SPM_TRAIN_MODULE, next to the executable, in ../lib from it, or in the build tree.
// Built only with SANASTREAM_SENTENCEPIECE and libsentencepiece_train (SANASTREAM_HAS_SPM_TRAINER).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sanastream::train {

// The default vocabulary: what the built-in corpus fills with useful merges, and a multiple of 64, so
// the Gemma embedding needs no padding rows.
constexpr int64_t kDefaultTokenizerVocab = 512;

// The user-defined pieces, ids 4 and 5 (Gemma's chat markup).
const std::vector<std::string>& tokenizer_user_symbols();

// The corpus, one sentence per entry: edit_family_texts(); each of them again after the prefix's last
// line "User Prompt: " (as assembly places an instruction: after a space); kPromptPrefix,
// kDefaultNegativePrompt and kMotionSuffix (each one sentence, newlines kept: the tokenizer sees them
// so); then the non-empty lines of each extra file in order. An unreadable file is an Error.
std::vector<std::string> tokenizer_corpus(const std::vector<std::string>& extra_files = {});

// Trains on `sentences` and returns the serialised ModelProto (a tokenizer.model). `vocab` is an upper
// bound: a corpus that supports fewer pieces gives fewer (SentencePiece's hard_vocab_limit false);
// make-package sizes the Gemma embedding to the piece count rounded up to 64. Too small a vocabulary
// for the special, byte and character pieces is an Error.
std::string train_tokenizer(const std::vector<std::string>& sentences, int64_t vocab = kDefaultTokenizerVocab);

// SentencePiece's own decoding of `ids` with a serialised model (tests: decode(encode(x)) == x).
std::string decode_tokens(const std::string& model, const std::vector<int64_t>& ids);

}  // namespace sanastream::train
