// Hyper-parameters of the hybrid DiT, detected from the weights alone (SPEC §2), optionally
// overridden by the "model" / "model_kwargs" sections of a golden config.json.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"

namespace sanastream::model {

enum class DitVariant { kStreaming, kBidirectional };
const char* variant_name(DitVariant v);

struct DitConfig {
  int64_t depth = 0;
  int64_t hidden = 0;            // C
  int64_t heads = 0;             // H (self-attention; GDN uses the same split)
  int64_t head_dim = 0;          // D = C / H
  int64_t cross_heads = 0;       // cross-attention heads
  int64_t ffn_hidden = 0;        // F (the GLU value width; the inverted conv makes 2F)
  int64_t latent_channels = 0;   // noisy-latent channels (= output channels)
  int64_t source_channels = 0;   // source-latent channels concatenated after them
  int64_t caption_channels = 0;  // text-encoder width (2304)
  int64_t caption_length = 0;    // tokens (300)
  int64_t freq_dim = 256;        // timestep sinusoid width
  int64_t t_kernel = 3;          // temporal conv taps
  int64_t patch = 1;             // spatial patch: a token covers patch × patch latent pixels
  std::vector<int64_t> softmax_layers;
  DitVariant variant = DitVariant::kStreaming;
  // RoPE split of the head dim (t, h, w), Wan style: h = w = 2·(D/6), t = D − h − w.
  int64_t rope_t = 0, rope_h = 0, rope_w = 0;
  int64_t rope_positions = 1024;  // rows of the official table per axis
  double rope_theta = 10000.0;

  bool is_softmax(int64_t block) const;
  // Tokens along a latent extent; throws unless the patch divides it.
  int64_t tokens_along(int64_t latent_extent, const char* axis) const;
  nlohmann::json to_json() const;
  std::string summary() const;
};

// The official get_softmax_layer_indices(depth, ratio).
std::vector<int64_t> softmax_layer_indices(int64_t depth, double ratio);

// Detects the configuration from tensor names and shapes; `overrides` holds the keys of a golden
// config.json ("model" and "model_kwargs" merged; null values mean "detect").
DitConfig detect_dit_config(const io::TensorMap& weights, const nlohmann::json& overrides = nlohmann::json::object());

// Reads a golden config.json (or a file holding just the override keys) into override form.
nlohmann::json load_model_config_overrides(const std::string& path);

// Checks every weight the model reads: present, right shape. One error names the first problem.
void validate_dit_weights(const DitConfig& cfg, const io::TensorMap& weights);

bool looks_like_dit(const io::TensorMap& weights);

}  // namespace sanastream::model
