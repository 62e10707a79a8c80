#include "model/quant_plan.h"

#include <algorithm>
#include <set>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "core/fs.h"

namespace sanastream::model {

using json = nlohmann::json;

namespace {
constexpr const char* kFormat = "sanastream-quant-plan";
constexpr int kVersion = 1;
// SPEC §6: these stay BF16; naming one in a plan is an error, not a silent no-op.
const std::set<std::string>& kept_bf16() {
  static const std::set<std::string> names = {"attn.output_gate", "attn.beta_proj", "attn.gate_proj",
                                              "mlp.depth_conv", "x_embedder", "final_layer",
                                              "t_embedder", "y_embedder"};
  return names;
}
}  // namespace

const std::vector<std::string>& quantizable_layers() {
  static const std::vector<std::string> names = {"attn.q",          "attn.k",           "attn.v",
                                                  "attn.proj",       "cross_attn.q_linear", "cross_attn.kv_linear",
                                                  "cross_attn.proj", "mlp.inverted_conv", "mlp.point_conv",
                                                  "mlp.t_conv"};
  return names;
}

ops::Precision BlockPrecisions::operator()(const std::string& layer) const {
  auto it = layers.find(layer);
  return it == layers.end() ? ops::Precision::kBF16 : it->second;
}

BlockPrecisions QuantPlan::block(int64_t b) const {
  BlockPrecisions bp;
  for (const QuantGroup& g : groups)
    if (b >= g.first_block && b <= g.last_block)
      for (const std::string& l : g.layers) bp.layers[l] = g.precision;
  return bp;
}

void QuantPlan::check_depth(int64_t depth) const {
  for (size_t i = 0; i < groups.size(); ++i)
    SS_CHECK(groups[i].last_block < depth, "quantization plan: group {} names blocks {}–{}, the model has {} (0–{})", i,
             groups[i].first_block, groups[i].last_block, depth, depth - 1);
}

json QuantPlan::to_json() const {
  json gs = json::array();
  for (const QuantGroup& g : groups)
    gs.push_back({{"layers", g.layers},
                  {"blocks", {g.first_block, g.last_block}},
                  {"precision", ops::precision_name(g.precision)}});
  json j = {{"format", kFormat}, {"version", kVersion}, {"groups", gs}, {"measurements", measurements}};
  if (vae != ops::Precision::kBF16) j["vae"] = ops::precision_name(vae);
  return j;
}

QuantPlan QuantPlan::from_json(const json& j) {
  SS_CHECK(j.is_object() && j.value("format", "") == kFormat,
           "quantization plan: expected an object with \"format\": \"{}\"", kFormat);
  SS_CHECK(j.value("version", 0) == kVersion, "quantization plan: version {} is not supported (this build reads {})",
           j.value("version", 0), kVersion);
  SS_CHECK(j.contains("groups") && j["groups"].is_array(), "quantization plan: \"groups\" must be an array");
  QuantPlan plan;
  std::set<std::pair<int64_t, std::string>> named;  // (block, layer) pairs seen so far
  const json& gs = j["groups"];
  for (size_t i = 0; i < gs.size(); ++i) {
    const json& g = gs[i];
    SS_CHECK(g.is_object(), "quantization plan: group {} is not an object", i);
    QuantGroup q;
    SS_CHECK(g.contains("precision") && g["precision"].is_string(), "quantization plan: group {} has no \"precision\"", i);
    q.precision = ops::parse_precision(g["precision"].get<std::string>());
    SS_CHECK(g.contains("blocks") && g["blocks"].is_array() && g["blocks"].size() == 2 &&
                 g["blocks"][0].is_number_integer() && g["blocks"][1].is_number_integer(),
             "quantization plan: group {}: \"blocks\" must be [first, last]", i);
    q.first_block = g["blocks"][0].get<int64_t>();
    q.last_block = g["blocks"][1].get<int64_t>();
    SS_CHECK(q.first_block >= 0 && q.first_block <= q.last_block,
             "quantization plan: group {}: blocks [{}, {}] is not a range of block indices", i, q.first_block,
             q.last_block);
    SS_CHECK(g.contains("layers") && g["layers"].is_array() && !g["layers"].empty(),
             "quantization plan: group {}: \"layers\" must be a non-empty array", i);
    for (const json& l : g["layers"]) {
      SS_CHECK(l.is_string(), "quantization plan: group {}: layer names are strings", i);
      const std::string name = l.get<std::string>();
      SS_CHECK(!kept_bf16().count(name), "quantization plan: group {}: '{}' stays BF16 (SPEC §6)", i, name);
      const auto& ok = quantizable_layers();
      SS_CHECK(std::find(ok.begin(), ok.end(), name) != ok.end(),
               "quantization plan: group {}: unknown layer '{}' (quantizable: {})", i, name, fmt::join(ok, ", "));
      for (int64_t b = q.first_block; b <= q.last_block; ++b)
        SS_CHECK(named.insert({b, name}).second, "quantization plan: group {}: block {} '{}' is already in an earlier group",
                 i, b, name);
      q.layers.push_back(name);
    }
    plan.groups.push_back(std::move(q));
  }
  if (j.contains("vae")) {
    SS_CHECK(j["vae"].is_string(), "quantization plan: \"vae\" must be \"bf16\" or \"fp8\"");
    plan.vae = ops::parse_precision(j["vae"].get<std::string>());
    SS_CHECK(plan.vae != ops::Precision::kINT8, "quantization plan: \"vae\": the VAE's convolutions take bf16 or fp8, "
             "not int8");
  }
  if (j.contains("measurements")) plan.measurements = j["measurements"];
  return plan;
}

QuantPlan load_quant_plan(const std::string& path) {
  if (path.empty()) return {};
  SS_CHECK(path_exists(path), "quantization plan: no file '{}'", path);
  json j = json::parse(read_text_file(path), nullptr, false);
  SS_CHECK(!j.is_discarded(), "quantization plan: '{}' is not valid JSON", path);
  return QuantPlan::from_json(j);
}

void save_quant_plan(const std::string& path, const QuantPlan& plan) {
  write_text_file_atomic(path, plan.to_json().dump(2) + "\n");
}

}  // namespace sanastream::model
