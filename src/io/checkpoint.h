// One entry point for model weights in every published form: .safetensors, HF shard sets
// (*.safetensors.index.json), torch.save .pth archives, and directories that hold exactly one of
// these. Checkpoint wrappers follow the official loader (SPEC §2): "generator", then "state_dict",
// else the dict itself; prefixes "model." then "module." are stripped once each.
#pragma once

#include <string>
#include <vector>

#include "io/safetensors.h"

namespace sanastream::io {

struct WeightSet {
  std::string source;                 // the file that was read
  std::string format;                 // "safetensors", "safetensors-shards", "pth"
  std::string selected;               // "" or the wrapper key that held the state dict
  TensorMap tensors;
  std::vector<std::string> skipped;   // non-tensor leaves and ignored wrapper entries ("step: int", ...)
};

// Resolves a weights path: a file, or a directory holding exactly one candidate (else an error
// that lists them). `kind_hint` names the component in errors ("DiT", "VAE", ...).
std::string resolve_weights_path(const std::string& path, const std::string& kind_hint = "weights");

WeightSet load_weights(const std::string& path);

// Strips "model." then "module." (once each) from a key.
std::string strip_wrapper_prefixes(const std::string& key);

}  // namespace sanastream::io
