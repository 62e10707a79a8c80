// Model configurations small enough for the CPU tests, shared by the test files that build them.
#pragma once

#include <nlohmann/json.hpp>

#include "model/dit_random.h"

namespace sanastream::test {

// A DiT small enough for the CPU tests: 336 wide (3 heads of 112, the 2B head dim), FFN 96, 16
// latent and source channels, a 12-token caption of 64 channels.
inline model::DitShape small_dit_shape(int64_t depth, model::DitVariant variant = model::DitVariant::kStreaming) {
  model::DitShape s;
  s.depth = depth;
  s.hidden = 336;
  s.heads = 3;
  s.ffn_hidden = 96;
  s.latent_channels = 16;
  s.source_channels = 16;
  s.caption_channels = 64;
  s.caption_length = 12;
  s.variant = variant;
  return s;
}

// The LTX-2 VAE structure (down/up kinds, residual ×2 upsampling; 32× space, 8× time) with narrow
// channels and one resnet per block, in diffusers' config.json form.
inline nlohmann::json narrow_ltx2_config(bool decoder_causal) {
  return {{"_class_name", "AutoencoderKLLTX2Video"},
          {"latent_channels", 16},
          {"block_out_channels", {8, 8, 16, 16}},
          {"layers_per_block", {1, 1, 1, 1, 1}},
          {"downsample_type", {"spatial", "temporal", "spatiotemporal", "spatiotemporal"}},
          {"decoder_block_out_channels", {8, 16, 32}},
          {"decoder_layers_per_block", {1, 1, 1, 1}},
          {"upsample_type", {"spatiotemporal", "spatiotemporal", "spatiotemporal"}},
          {"upsample_residual", {true, true, true}},
          {"upsample_factor", {2, 2, 2}},
          {"timestep_conditioning", false},
          {"encoder_causal", true},
          {"decoder_causal", decoder_causal},
          {"encoder_spatial_padding_mode", "zeros"},
          {"decoder_spatial_padding_mode", "reflect"}};
}

}  // namespace sanastream::test
