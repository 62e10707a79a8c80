// A mixed-precision quantization plan (SPEC §6, issue 15): which projections of which DiT blocks
// run in which precision, by layer group and depth band. The file:
//   {"format": "sanastream-quant-plan", "version": 1,
//    "groups": [{"layers": ["attn.q", "attn.k", "attn.v"], "blocks": [0, 5], "precision": "fp8"}, …],
//    "vae": "fp8", "measurements": {…}}
// "blocks" is an inclusive range; "measurements" holds what a search measured and is kept as written.
// "vae" (optional, default "bf16"): the precision of the VAE resnets' 3×3×3 convolutions.
// A layer no group names stays in the model's dtype. Groups name quantizable projections only (the
// gates, embedders, final layer and depthwise conv stay BF16, SPEC §6) and never the same (block,
// layer) twice.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ops/quant.h"

namespace sanastream::model {

// The quantizable projections of a block, named by their checkpoint keys under "blocks.N.".
const std::vector<std::string>& quantizable_layers();

// One block's precisions by layer name (absent: the model's dtype).
struct BlockPrecisions {
  std::map<std::string, ops::Precision> layers;
  ops::Precision operator()(const std::string& layer) const;
};

struct QuantGroup {
  std::vector<std::string> layers;
  int64_t first_block = 0, last_block = 0;  // inclusive
  ops::Precision precision = ops::Precision::kBF16;
};

struct QuantPlan {
  std::vector<QuantGroup> groups;
  ops::Precision vae = ops::Precision::kBF16;  // the VAE resnets' convolutions
  nlohmann::json measurements = nlohmann::json::object();

  bool empty() const { return groups.empty() && vae == ops::Precision::kBF16; }
  // The precisions of block `block`'s layers.
  BlockPrecisions block(int64_t block) const;
  // Throws unless every group's blocks lie in [0, depth).
  void check_depth(int64_t depth) const;

  nlohmann::json to_json() const;
  // Validates as it reads; an error names the group and the field.
  static QuantPlan from_json(const nlohmann::json& j);
};

// "" is the empty plan (no --plan).
QuantPlan load_quant_plan(const std::string& path);
// Writes the plan atomically (a temporary name, renamed once complete).
void save_quant_plan(const std::string& path, const QuantPlan& plan);

}  // namespace sanastream::model
