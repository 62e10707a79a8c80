// Which model a set of weights forms, for `sanastream info`.
#pragma once

#include <nlohmann/json.hpp>

#include "io/safetensors.h"

namespace sanastream::model {

// {"kind": "dit" | "vae" | "text-encoder" | "unknown", "summary": "...", ...details}
nlohmann::json describe_weights(const io::TensorMap& weights);

}  // namespace sanastream::model
