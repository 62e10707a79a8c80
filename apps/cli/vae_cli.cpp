#include "vae_cli.h"

#include "command.h"
#include "core/compare.h"
#include "core/error.h"

namespace sanastream::cli {

void add_vae_cli_options(CLI::App* sub, VaeCliOptions& o, const std::string& input_help, const std::string& chunk_help) {
  sub->add_option("--vae", o.vae, "VAE directory (config.json + diffusion_pytorch_model.safetensors, or vae/ inside), "
                  "or a weights file")->required();
  sub->add_option("--vae-config", o.vae_config, "config.json to use instead of the one beside the weights");
  sub->add_option("--input", o.input, input_help)->required();
  sub->add_option("--tensor", o.tensor, "Name of the input tensor (default: the conventional name, else the only one)");
  sub->add_option("--output", o.output, "Output .safetensors (written atomically)")->required();
  sub->add_option("--dtype", o.dtype, "fp32 | bf16")->capture_default_str();
  sub->add_option("--device", o.device, "cpu | cuda[:N]")->capture_default_str();
  const model::VaeTiling d = model::default_vae_tiling();
  o.tile = fmt::format("{}:{}", d.size, d.overlap);
  sub->add_option("--tile", o.tile, "Spatial tiles SIZE[:OVERLAP] in pixels for frames larger than SIZE; 0 = off")
      ->capture_default_str();
  sub->add_option("--chunk", o.chunk, chunk_help)->capture_default_str();
  add_json_option(sub, &o.json);
}

at::Tensor pick_input_tensor(const io::TensorMap& file, const std::string& path, const std::string& tensor,
                             const std::vector<std::string>& conventional, std::string* picked) {
  std::string name = tensor;
  if (name.empty())
    for (const auto& c : conventional)
      if (file.count(c)) {
        name = c;
        break;
      }
  if (name.empty() && file.size() == 1) name = file.begin()->first;
  if (name.empty()) {
    std::string list;
    for (const auto& c : conventional) list += (list.empty() ? "" : ", ") + c;
    SS_FAIL("{}: expected a tensor named {} (or --tensor NAME), the file has {} others", path, list, file.size());
  }
  auto it = file.find(name);
  SS_CHECK(it != file.end(), "{}: no tensor '{}'", path, name);
  SS_CHECK(it->second.is_floating_point(), "{}: '{}' is {}, expected a floating-point tensor", path, name,
           c10::toString(it->second.scalar_type()));
  *picked = name;
  return it->second;
}

nlohmann::json vae_report(const model::Ltx2Vae& vae, const VaeCliOptions& o, const model::VaeTiling& tiling,
                          double seconds, const ops::PeakMemory& mem) {
  return {{"input", o.input},
          {"output", o.output},
          {"dtype", o.dtype},
          {"device", o.device},
          {"tiling", model::describe(tiling)},
          {"chunk", o.chunk},
          {"seconds", seconds},
          {"peak_host_rss_mib", mem.host_rss_mib},
          {"peak_device_mib", mem.device_mib},
          {"vae", vae.config().to_json()}};
}

}  // namespace sanastream::cli
