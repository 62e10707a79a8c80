#include "model/ltx2_vae_convert.h"

#include <utility>

#include "core/error.h"

namespace sanastream::model {

namespace {

// In order; every rule is applied to the result of the previous ones (str.replace semantics).
const std::vector<std::pair<std::string, std::string>>& rename_rules() {
  static const std::vector<std::pair<std::string, std::string>> rules = {
      // Encoder: native down_blocks alternate resnet groups and samplers, the last is the mid block.
      {"down_blocks.0", "down_blocks.0"},
      {"down_blocks.1", "down_blocks.0.downsamplers.0"},
      {"down_blocks.2", "down_blocks.1"},
      {"down_blocks.3", "down_blocks.1.downsamplers.0"},
      {"down_blocks.4", "down_blocks.2"},
      {"down_blocks.5", "down_blocks.2.downsamplers.0"},
      {"down_blocks.6", "down_blocks.3"},
      {"down_blocks.7", "down_blocks.3.downsamplers.0"},
      {"down_blocks.8", "mid_block"},
      // Decoder: the mid block first, then sampler / resnet group pairs.
      {"up_blocks.0", "mid_block"},
      {"up_blocks.1", "up_blocks.0.upsamplers.0"},
      {"up_blocks.2", "up_blocks.0"},
      {"up_blocks.3", "up_blocks.1.upsamplers.0"},
      {"up_blocks.4", "up_blocks.1"},
      {"up_blocks.5", "up_blocks.2.upsamplers.0"},
      {"up_blocks.6", "up_blocks.2"},
      {"up_blocks.7", "up_blocks.3.upsamplers.0"},
      {"up_blocks.8", "up_blocks.3"},
      {"last_time_embedder", "time_embedder"},
      {"last_scale_shift_table", "scale_shift_table"},
      // Both.
      {"res_blocks", "resnets"},
      {"per_channel_statistics.mean-of-means", "latents_mean"},
      {"per_channel_statistics.std-of-means", "latents_std"},
  };
  return rules;
}

// Keys diffusers drops after renaming (any key containing one of these).
const std::vector<std::string>& dropped_markers() {
  static const std::vector<std::string> m = {"per_channel_statistics.channel", "per_channel_statistics.mean-of-stds"};
  return m;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
    s.replace(pos, from.size(), to);
}

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

}  // namespace

std::string ltx2_native_vae_key(const std::string& native_key) {
  std::string k = native_key;
  for (const auto& [from, to] : rename_rules()) replace_all(k, from, to);
  return k;
}

Ltx2NativeConversion convert_ltx2_native_vae(const io::TensorMap& native) {
  const std::string prefix = "vae.";
  bool prefixed = false, statistics = false;
  for (const auto& [k, _] : native) {
    prefixed = prefixed || starts_with(k, prefix);
    statistics = statistics || starts_with(k, "per_channel_statistics.");
  }
  SS_CHECK(prefixed || statistics,
           "not a Lightricks-native LTX-2 checkpoint: expected 'vae.*' tensors (or a VAE-only file with "
           "per_channel_statistics.*)");
  Ltx2NativeConversion out;
  for (const auto& [k, t] : native) {
    if (prefixed && !starts_with(k, prefix)) {
      ++out.ignored;
      continue;
    }
    const std::string key = ltx2_native_vae_key(prefixed ? k.substr(prefix.size()) : k);
    bool drop = false;
    for (const auto& m : dropped_markers()) drop = drop || key.find(m) != std::string::npos;
    if (drop) {
      out.dropped.push_back(k);
      continue;
    }
    SS_CHECK(!out.tensors.count(key), "ltx2-native: two tensors map to '{}'", key);
    out.tensors[key] = t;
  }
  return out;
}

}  // namespace sanastream::model
