// Writing a SentencePiece model file (a serialised sentencepiece.ModelProto) without SentencePiece's
// trainer: the pieces in id order, a unigram model with byte fallback, and an identity normaliser that
// only escapes spaces (no dummy prefix, no whitespace folding), as gemma-2's tokenizer.model. Used for
// the tokenizers of random-weight packages and of the tests; read back through model/tokenizer.h.
#pragma once

#include <string>
#include <vector>

namespace sanastream::model {

// sentencepiece_model.proto, ModelProto.SentencePiece.Type.
enum class SpmType : int { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kByte = 6 };

struct SpmPiece {
  std::string piece;
  float score = 0;  // the unigram segmentation maximises the sum of the pieces' scores
  SpmType type = SpmType::kNormal;
};

// Gemma's special pieces, ids 0 … 3: <pad>, <eos>, <bos>, <unk>.
std::vector<SpmPiece> gemma_special_pieces();
// The byte-fallback piece of one byte, "<0xAB>".
SpmPiece byte_piece(int byte);

// The ModelProto bytes; the pieces' ids are their positions. The special ids are Gemma's (pad 0,
// eos 1, bos 2, unk 3): the first four pieces must be gemma_special_pieces().
std::string serialize_sentencepiece_model(const std::vector<SpmPiece>& pieces);

}  // namespace sanastream::model
