// The Gemma-2 decoder (transformers' Gemma2Model), SANA's text encoder (SPEC §4): embeddings
// scaled by sqrt(C) in the model dtype, RMSNorm with (1 + w) in fp32, grouped-query attention with
// attention-logit soft-capping and query_pre_attn_scalar, alternating sliding-window and global
// layers, GeGLU (tanh) MLP, sandwich norms around both branches, final norm. Weights in the
// transformers layout (config.json + model.safetensors or shards, keys with or without "model.";
// a causal-LM head is ignored). One code path for CPU/CUDA and fp32/bf16; no tokenizer here.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/runtime.h"
#include "io/safetensors.h"

namespace sanastream::model {

// transformers' attention implementations differ in one step: "eager" soft-caps the logits
// (tanh(s/c)·c), "sdpa" (the default of transformers 5.x) does not. They differ by ≈1.2e-4 in fp32.
enum class Gemma2Attention { kEager, kSdpa };
Gemma2Attention parse_gemma2_attention(const std::string& name);  // "eager" | "sdpa"
const char* gemma2_attention_name(Gemma2Attention a);

struct Gemma2Config {
  int64_t vocab_size = 0;
  int64_t hidden = 0;          // C
  int64_t intermediate = 0;    // F (GeGLU width)
  int64_t layers = 0;
  int64_t heads = 0;           // H (queries)
  int64_t kv_heads = 0;        // Hkv (keys/values; H is a multiple)
  int64_t head_dim = 0;        // D
  double rms_eps = 1e-6;
  double rope_theta = 10000.0;
  double query_pre_attn_scalar = 0;  // logits scale = query_pre_attn_scalar^-0.5
  double attn_softcap = 0;           // 0: none
  int64_t sliding_window = 0;
  std::vector<bool> sliding;         // per layer: sliding-window (true) or global attention
  int64_t pad_id = 0, bos_id = 2, eos_id = 1;

  nlohmann::json to_json() const;
  std::string summary() const;
};

// A transformers config.json of a Gemma2Model / Gemma2ForCausalLM (4.x and 5.x spellings:
// rope_theta or rope_parameters, hidden_activation or hidden_act, layer_types or the even/odd
// rule). `origin` names the file in errors.
Gemma2Config parse_gemma2_config(const nlohmann::json& j, const std::string& origin);

// Every tensor the model reads is present with the shape the config implies, and no other tensor
// is (a causal-LM head "lm_head.*" is ignored). One Error names the first mismatch.
void validate_gemma2_weights(const Gemma2Config& cfg, const io::TensorMap& weights);

class Gemma2Model {
 public:
  // weights: validated against cfg here, converted to rt's device and dtype.
  Gemma2Model(const io::TensorMap& weights, Gemma2Config cfg, const Runtime& rt, Gemma2Attention attn);

  const Gemma2Config& config() const { return cfg_; }
  const Runtime& runtime() const { return rt_; }
  Gemma2Attention attention() const { return attn_; }

  // ids: [B, L] int64; mask: [B, L] (1 = token, 0 = padding; every position is computed).
  // Returns the last hidden state [B, L, C] in the model dtype on rt's device. hidden_states, when
  // given, receives transformers' output_hidden_states: the scaled embeddings, the output of layers
  // 0 … n−2, and the final (normed) state — n + 1 tensors [B, L, C].
  at::Tensor forward(const at::Tensor& ids, const at::Tensor& mask,
                     std::vector<at::Tensor>* hidden_states = nullptr) const;

 private:
  struct Layer {
    at::Tensor q, k, v, o;                 // [H·D, C], [Hkv·D, C], [Hkv·D, C], [C, H·D]
    at::Tensor gate, up, down;             // [F, C], [F, C], [C, F]
    at::Tensor input_norm, post_attn_norm, pre_ffn_norm, post_ffn_norm;  // [C] fp32, 1 + w
    bool sliding = false;
  };
  // x: [B, L, C]; cos, sin: [L, D]; bias: [B, 1, L, L] → [B, L, C]
  at::Tensor attend(const Layer& l, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                    const at::Tensor& bias) const;

  Gemma2Config cfg_;
  Runtime rt_;
  Gemma2Attention attn_;
  at::Tensor embed_;      // [V, C]
  at::Tensor final_norm_; // [C] fp32, 1 + w
  std::vector<Layer> layers_;
};

// Reads config.json and the weights (a file, a shard index, or a directory holding one of them).
std::unique_ptr<Gemma2Model> load_gemma2(const std::string& config_path, const std::string& weights_path,
                                         const Runtime& rt, Gemma2Attention attn);

}  // namespace sanastream::model
