// What encode-video and decode-latents share: the VAE, device and tiling options, picking the input
// tensor of a safetensors file, and the report they write.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/runtime.h"
#include "io/safetensors.h"
#include "model/ltx2_vae.h"
#include "ops/device.h"

namespace sanastream::cli {

struct VaeCliOptions {
  std::string vae, vae_config, input, tensor, output, dtype = "fp32", device = "cpu", tile, json;
  int chunk = 0;
};

// --vae, --vae-config, --input, --tensor, --output, --dtype, --device, --tile, --chunk, --json.
void add_vae_cli_options(CLI::App* sub, VaeCliOptions& o, const std::string& input_help, const std::string& chunk_help);

// The tensor named `tensor`, else the first of `conventional` present, else the file's only tensor.
at::Tensor pick_input_tensor(const io::TensorMap& file, const std::string& path, const std::string& tensor,
                             const std::vector<std::string>& conventional, std::string* picked);

nlohmann::json vae_report(const model::Ltx2Vae& vae, const VaeCliOptions& o, const model::VaeTiling& tiling,
                          double seconds, const ops::PeakMemory& mem);

}  // namespace sanastream::cli
