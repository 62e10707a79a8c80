#include "train/text_encoder.h"

#include <optional>

#include <ATen/core/grad_mode.h>  // at::NoGradGuard (not in ATen.h of PyTorch 2.x)

#include "core/error.h"
#include "core/fs.h"
#include "io/checkpoint.h"
#include "pipeline/model_package.h"
#ifdef SANASTREAM_HAS_SENTENCEPIECE
#include "model/tokenizer.h"
#include "pipeline/prompt_encoder.h"
#endif

namespace sanastream::train {

std::unique_ptr<model::Gemma2Model> TextEncoderWeights::build(bool grad) const {
  std::optional<at::NoGradGuard> no_grad;
  if (!grad) no_grad.emplace();
  // Eager attention: the semantics the cache builder embeds with.
  return std::make_unique<model::Gemma2Model>(params, cfg, rt, model::Gemma2Attention::kEager);
}

std::pair<at::Tensor, at::Tensor> TextEncoderWeights::encode(const model::Gemma2Model& m, const std::string& text,
                                                             PromptKind kind) const {
  return encode(m, std::vector<std::string>{text}, kind);
}

#ifdef SANASTREAM_HAS_SENTENCEPIECE

std::pair<at::Tensor, at::Tensor> TextEncoderWeights::encode(const model::Gemma2Model& m,
                                                             const std::vector<std::string>& texts,
                                                             PromptKind kind) const {
  std::vector<pipeline::PromptTokens> batch;
  for (const std::string& text : texts)
    batch.push_back(kind == PromptKind::kNull ? pipeline::assemble_negative_prompt(*tok, "")
                                              : pipeline::assemble_prompt(*tok, text, pipeline::PromptMode::kStreaming));
  const pipeline::TokenEmbedding e = pipeline::embed_tokens(m, batch);
  return {e.embeds.to(at::kFloat), e.mask.to(rt.device)};
}

TextEncoderWeights load_text_encoder_weights(const std::string& path, const Runtime& rt) {
  const std::string dir = path_exists(path + "/model.json") ? pipeline::load_model_package(path).text_encoder.path : path;
  const pipeline::TextEncoderFiles f = pipeline::resolve_text_encoder(dir);
  TextEncoderWeights w;
  w.rt = rt;
  w.cfg = model::parse_gemma2_config(nlohmann::json::parse(read_text_file(f.config)), f.config);
  w.tok = std::make_shared<const model::Tokenizer>(f.tokenizer);
  SS_CHECK(w.tok->bos_id() == w.cfg.bos_id && w.tok->vocab_size() <= w.cfg.vocab_size,
           "text encoder '{}': tokenizer.model (BOS {}, {} pieces) does not fit config.json (BOS {}, vocab {})", dir,
           w.tok->bos_id(), w.tok->vocab_size(), w.cfg.bos_id, w.cfg.vocab_size);
  for (const auto& [k, t] : io::load_weights(f.weights).tensors)
    if (k.rfind("lm_head.", 0) != 0) w.params[k] = t.to(rt.device, at::kFloat, false, /*copy=*/true);
  model::validate_gemma2_weights(w.cfg, w.params);
  return w;
}

#else

std::pair<at::Tensor, at::Tensor> TextEncoderWeights::encode(const model::Gemma2Model&, const std::vector<std::string>&,
                                                             PromptKind) const {
  SS_FAIL("text encoder: this build has no SentencePiece (needed to tokenize prompts)");
}

TextEncoderWeights load_text_encoder_weights(const std::string& path, const Runtime&) {
  SS_FAIL("text_encoder.init '{}': this build has no SentencePiece (a trainable text encoder tokenizes prompts)",
          path);
}

#endif

}  // namespace sanastream::train
