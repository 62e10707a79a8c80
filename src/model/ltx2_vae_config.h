// The LTX-2 video VAE's structure as its diffusers config.json names it (AutoencoderKLLTX2Video, and
// the official causal class AutoencoderKLCausalLTX2Video, SPEC §4): block types and counts, down/up-
// sampling kinds, residual upsampling and its factor, patch sizes, causality, spatial padding modes.
// Every key is parsed or rejected with a clear error; defaults are the diffusers class defaults.
#pragma once

#include <array>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sanastream::model {

// How a down block of the encoder shrinks, or an up block of the decoder grows, its input.
enum class VaeResample {
  kNone,            // spatio_temporal_scaling false: no sampler
  kConv,            // encoder "conv": a 3×3×3 convolution with stride 2 in t, h, w
  kSpatial,         // space-to-channel (encoder) / channel-to-space (decoder), stride (1, 2, 2)
  kTemporal,        // stride (2, 1, 1)
  kSpatioTemporal,  // stride (2, 2, 2)
};
const char* resample_name(VaeResample r);
// Stride (t, h, w) of a sampler kind ({1, 1, 1} for kNone).
std::array<int64_t, 3> resample_stride(VaeResample r);

// Spatial padding of the 3×3×3 convolutions (nn.Conv3d padding_mode).
enum class VaePadding { kZeros, kReflect, kReplicate, kCircular };
const char* padding_name(VaePadding p);

// One decoder up block in decode order (the mid block's output side first).
struct VaeUpBlockSpec {
  int64_t in_channels = 0;   // diffusers' nominal input width (output of the previous block / factor)
  int64_t out_channels = 0;  // width of this block's resnets
  int64_t layers = 0;
  VaeResample upsample = VaeResample::kSpatioTemporal;
  bool residual = false;
  int64_t factor = 1;        // upsample_factor: the sampler's output width is in·stride³/factor/stride³
};

struct Ltx2VaeConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  int64_t latent_channels = 128;
  int64_t patch_size = 4;
  int64_t patch_size_t = 1;
  double resnet_eps = 1e-6;     // LayerNorm of channel-changing resnets
  double scaling_factor = 1.0;

  // Encoder, in config order: block i has enc_layers[i] resnets at the previous block's width, then
  // its sampler (which changes the width to enc_channels[i]); the mid block has enc_layers.back().
  std::vector<int64_t> enc_channels{256, 512, 1024, 2048};
  std::vector<int64_t> enc_layers{4, 6, 6, 2, 2};
  std::vector<VaeResample> enc_down{VaeResample::kSpatial, VaeResample::kTemporal, VaeResample::kSpatioTemporal,
                                    VaeResample::kSpatioTemporal};
  bool encoder_causal = true;
  VaePadding encoder_padding = VaePadding::kZeros;

  // Decoder, in config order (mirrors the encoder: index 0 is the block next to the output).
  std::vector<int64_t> dec_channels{256, 512, 1024};
  std::vector<int64_t> dec_layers{5, 5, 5, 5};          // blocks..., then the mid block last
  std::vector<VaeResample> dec_up{VaeResample::kSpatioTemporal, VaeResample::kSpatioTemporal,
                                  VaeResample::kSpatioTemporal};  // decode order (diffusers upsample_type)
  std::vector<bool> dec_residual{true, true, true};
  std::vector<int64_t> dec_factor{2, 2, 2};
  bool decoder_causal = true;
  VaePadding decoder_padding = VaePadding::kReflect;

  // Frames per latent frame and pixels per latent pixel, from the encoder's samplers.
  int64_t temporal_ratio() const;
  int64_t spatial_ratio() const;
  // The decoder's up blocks in decode order, as the diffusers constructor derives them.
  std::vector<VaeUpBlockSpec> up_blocks() const;
  int64_t decoder_mid_channels() const { return dec_channels.back(); }

  nlohmann::json to_json() const;  // diffusers keys
  std::string summary() const;
};

// Parses a diffusers (or causal-class) config.json object. Unknown keys, timestep conditioning, noise
// injection, patch_size_t ≠ 1 and inconsistent lengths are errors that name the key.
Ltx2VaeConfig parse_ltx2_vae_config(const nlohmann::json& config);
Ltx2VaeConfig load_ltx2_vae_config(const std::string& path);

}  // namespace sanastream::model
