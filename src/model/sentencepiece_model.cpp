#include "model/sentencepiece_model.h"

#include <cstdint>
#include <cstring>

#include <fmt/format.h>

#include "core/error.h"

namespace sanastream::model {

namespace {

// Protocol-buffer wire format, the few field kinds a ModelProto needs.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_tag(std::string& out, int field, int wire_type) {
  put_varint(out, (static_cast<uint64_t>(field) << 3) | static_cast<uint64_t>(wire_type));
}
void put_int(std::string& out, int field, uint64_t v) {
  put_tag(out, field, 0);
  put_varint(out, v);
}
void put_bytes(std::string& out, int field, const std::string& bytes) {
  put_tag(out, field, 2);
  put_varint(out, bytes.size());
  out += bytes;
}
void put_float(std::string& out, int field, float f) {
  put_tag(out, field, 5);
  uint32_t u = 0;
  std::memcpy(&u, &f, 4);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((u >> (8 * i)) & 0xFF));
}

}  // namespace

std::vector<SpmPiece> gemma_special_pieces() {
  return {{"<pad>", 0, SpmType::kControl},
          {"<eos>", 0, SpmType::kControl},
          {"<bos>", 0, SpmType::kControl},
          {"<unk>", 0, SpmType::kUnknown}};
}

SpmPiece byte_piece(int byte) { return {fmt::format("<0x{:02X}>", byte), 0, SpmType::kByte}; }

std::string serialize_sentencepiece_model(const std::vector<SpmPiece>& pieces) {
  const std::vector<SpmPiece> special = gemma_special_pieces();
  SS_CHECK(pieces.size() > special.size(), "SentencePiece model: expected the special pieces and more");
  for (size_t i = 0; i < special.size(); ++i)
    SS_CHECK(pieces[i].piece == special[i].piece && pieces[i].type == special[i].type,
             "SentencePiece model: piece {} must be {}", i, special[i].piece);
  std::string model;
  for (const auto& p : pieces) {
    std::string sp;
    put_bytes(sp, 1, p.piece);
    put_float(sp, 2, p.score);
    put_int(sp, 3, static_cast<uint64_t>(p.type));
    put_bytes(model, 1, sp);
  }
  std::string trainer;
  put_int(trainer, 3, 1);              // model_type UNIGRAM
  put_int(trainer, 4, pieces.size());  // vocab_size
  put_int(trainer, 35, 1);             // byte_fallback
  put_int(trainer, 40, 3);             // unk_id
  put_int(trainer, 41, 2);             // bos_id
  put_int(trainer, 42, 1);             // eos_id
  put_int(trainer, 43, 0);             // pad_id
  put_bytes(trainer, 45, "<unk>");
  put_bytes(trainer, 46, "<bos>");
  put_bytes(trainer, 47, "<eos>");
  put_bytes(trainer, 48, "<pad>");
  put_bytes(model, 2, trainer);
  std::string normalizer;
  put_bytes(normalizer, 1, "identity");
  put_int(normalizer, 3, 0);  // add_dummy_prefix
  put_int(normalizer, 4, 0);  // remove_extra_whitespaces
  put_int(normalizer, 5, 1);  // escape_whitespaces
  put_bytes(model, 3, normalizer);
  return model;
}

}  // namespace sanastream::model
