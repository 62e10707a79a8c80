// A trainable Gemma-2 text encoder for `sanastream train` (docs/TRAIN.md, "text_encoder"): fp32 master
// weights under the official Gemma-2 keys and the tokenizer. Prompts are assembled and embedded by
// prompt_encoder.h's own functions (assemble_prompt / assemble_negative_prompt, embed_tokens), the
// path the cache builder and the streaming engine use; built on the master weights with grad, the
// embeddings carry a graph into them. Needs SentencePiece (without it, loading is an Error).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/runtime.h"
#include "io/safetensors.h"
#include "model/gemma2.h"
#include "train/objectives.h"

namespace sanastream::model {
class Tokenizer;
}

namespace sanastream::train {

struct TextEncoderWeights {
  io::TensorMap params;  // official keys (no "model.", no lm_head), fp32, on rt's device
  model::Gemma2Config cfg;
  Runtime rt;  // compute device and dtype (bf16: casts of the master weights)
  std::shared_ptr<const model::Tokenizer> tok;

  // A model on the current weights. With grad, the casts are part of the graph.
  std::unique_ptr<model::Gemma2Model> build(bool grad) const;
  // The cache builder's embedding of a prompt: kPrompt / kReverse the streaming assembly of `text`,
  // kNull the negative assembly of "" (the CFG null caption) → [1, 300, C] fp32, [1, 300] int64 on
  // the device, with a graph when m was built with grad and grad mode is on.
  std::pair<at::Tensor, at::Tensor> encode(const model::Gemma2Model& m, const std::string& text,
                                           PromptKind kind) const;
  // Several prompts of one kind in one encoder call: [B, 300, C] fp32, [B, 300] int64.
  std::pair<at::Tensor, at::Tensor> encode(const model::Gemma2Model& m, const std::vector<std::string>& texts,
                                           PromptKind kind) const;
};

// From a model package (its text_encoder) or a text-encoder directory (config.json, weights,
// tokenizer.model), fp32 on rt's device, no tensor requiring grad yet.
TextEncoderWeights load_text_encoder_weights(const std::string& path, const Runtime& rt);

}  // namespace sanastream::train
