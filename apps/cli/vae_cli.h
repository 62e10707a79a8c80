// What encode-video and decode-latents share: the VAE, device and tiling options, picking the input
// tensor of a safetensors file, and the peak-memory figures they report.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/runtime.h"
#include "io/safetensors.h"
#include "model/ltx2_vae.h"

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

// Peak memory since reset_peak_memory() (MiB): resident set of this process (Linux VmHWM, reset through
// /proc/self/clear_refs; where that is refused, the whole process's peak) and, on CUDA, the caching
// allocator's peak (0 on the CPU).
struct PeakMemory {
  double host_rss_mib = 0;
  double device_mib = 0;
};
void reset_peak_memory(const Runtime& rt);
PeakMemory peak_memory(const Runtime& rt);

nlohmann::json vae_report(const model::Ltx2Vae& vae, const VaeCliOptions& o, const model::VaeTiling& tiling,
                          double seconds, const PeakMemory& mem);

}  // namespace sanastream::cli
