#include "pipeline/golden_kinds.h"

namespace sanastream::pipeline {

std::string detect_golden_kind_name(const nlohmann::json& c) {
  if (c.contains("model") && c["model"].is_object() && c["model"].value("class", "").find("Sana") != std::string::npos)
    return "dit";
  if (c.value("_class_name", "").find("AutoencoderKL") != std::string::npos) return "vae";
  if (c.value("model_type", "") == "gemma2") return "text";
  return "unknown";
}

const std::vector<GoldenKind>& golden_kinds() {
  static const std::vector<GoldenKind> kinds = {golden_dit_kind(), golden_vae_kind(), golden_text_kind()};
  return kinds;
}

}  // namespace sanastream::pipeline
