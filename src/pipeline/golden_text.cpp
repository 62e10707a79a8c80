// golden-check for text-encoder sets (transformers' Gemma2Model): references named
// <impl>.<dtype>.<tensor>, e.g. eager.fp32.last_hidden_state, sdpa.bf16.last_hidden_state,
// eager.fp32.hidden_states.1. Each <impl> runs with its own attention semantics: "eager" soft-caps
// the logits, "sdpa" does not, and any other name (e.g. "default") takes the implementation that
// report.json records for it (<impl>.attn_implementation).
//
// fp32 runs are compared with the fp32 references at 1e-4 (SPEC §9); the bf16 references are the
// official bf16 path's outputs and are skipped there. bf16 runs are compared with both: the fp32
// references (SPEC §9: bf16 vs the fp32 reference) and the official bf16 outputs, each at 1e-2.
#include <regex>
#include <set>

#include "core/error.h"
#include "core/fs.h"
#include "io/checkpoint.h"
#include "model/gemma2.h"
#include "pipeline/golden_kinds.h"

namespace sanastream::pipeline {

using nlohmann::json;

namespace {

model::Gemma2Attention semantics_of(const std::string& impl, const json& report, const std::string& set) {
  const std::string key = impl + ".attn_implementation";
  if (report.contains(key) && report[key].is_string()) return model::parse_gemma2_attention(report[key]);
  SS_CHECK(impl == "eager" || impl == "sdpa",
           "{}: cannot tell which attention implementation made the '{}.*' references (report.json has no '{}')", set,
           impl, key);
  return model::parse_gemma2_attention(impl);
}

void run_text_set(const GoldenSet& set, const Runtime& rt, GoldenSetResult& result) {
  const model::Gemma2Config cfg = model::parse_gemma2_config(set.config, set.dir + "/config.json");
  std::string weights_path;
  for (const char* f : {"model.safetensors.index.json", "model.safetensors"})
    if (weights_path.empty() && path_exists(set.dir + "/" + f)) weights_path = set.dir + "/" + f;
  SS_CHECK(!weights_path.empty(), "{}: expected model.safetensors or model.safetensors.index.json", set.name);
  const io::TensorMap weights = io::load_weights(weights_path).tensors;
  const io::TensorMap inputs = set.load_inputs();
  const io::TensorMap refs = set.load_references();
  json report = json::object();
  if (path_exists(set.dir + "/report.json"))
    report = json::parse(read_text_file(set.dir + "/report.json"), nullptr, false);

  const std::regex name_re("^(\\w+)\\.(fp32|bf16)\\.(.+)$");
  std::set<std::string> impls;
  for (const auto& [name, _] : refs) {
    std::smatch m;
    SS_CHECK(std::regex_match(name, m, name_re), "{}: reference '{}' is not named <impl>.<fp32|bf16>.<tensor>",
             set.name, name);
    impls.insert(m[1]);
  }
  auto input = [&](const char* key) {
    auto it = inputs.find(key);
    SS_CHECK(it != inputs.end(), "{}: inputs.safetensors lacks '{}'", set.name, key);
    return it->second;
  };
  const at::Tensor ids = input("inputs.input_ids"), mask = input("inputs.attention_mask");

  const bool bf16 = rt.dtype == at::kBFloat16;
  io::TensorMap ours;
  for (const auto& impl : impls) {
    model::Gemma2Model m(weights, cfg, rt, semantics_of(impl, report, set.name));
    std::vector<at::Tensor> states;
    at::Tensor last = m.forward(ids, mask, &states);  // [B, L, C]
    // One run answers both dtype names: in fp32 only the fp32 ones are compared (threshold below).
    for (const char* dt : {"fp32", "bf16"}) {
      ours[fmt::format("{}.{}.last_hidden_state", impl, dt)] = last.to(at::kCPU, at::kFloat);
      for (size_t i = 0; i < states.size(); ++i)
        ours[fmt::format("{}.{}.hidden_states.{}", impl, dt, i)] = states[i].to(at::kCPU, at::kFloat);
    }
  }
  auto threshold = [&](const std::string& name) -> double {
    const bool ref_bf16 = name.find(".bf16.") != std::string::npos;
    if (!bf16) return ref_bf16 ? -1 : 1e-4;
    return 1e-2;
  };
  compare_references(refs, ours, threshold, result);
}

}  // namespace

GoldenKind golden_text_kind() {
  return {"text", [](const json& c) { return detect_golden_kind_name(c) == "text"; }, run_text_set};
}

}  // namespace sanastream::pipeline
