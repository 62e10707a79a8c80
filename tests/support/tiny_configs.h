// Model configurations small enough for the CPU tests, shared by the test files that build them.
#pragma once

#include <nlohmann/json.hpp>

namespace sanastream::test {

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
