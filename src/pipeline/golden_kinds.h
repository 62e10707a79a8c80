// The per-kind golden checkers, one file each (golden_dit.cpp, golden_vae.cpp, golden_text.cpp).
#pragma once

#include <nlohmann/json.hpp>

#include "pipeline/golden_check.h"

namespace sanastream::pipeline {

// "dit", "vae", "text" or "unknown", from a set's config.json alone.
std::string detect_golden_kind_name(const nlohmann::json& config);

GoldenKind golden_dit_kind();
GoldenKind golden_vae_kind();
GoldenKind golden_text_kind();

}  // namespace sanastream::pipeline
