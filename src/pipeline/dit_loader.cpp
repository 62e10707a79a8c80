#include "pipeline/dit_loader.h"

#include "core/error.h"
#include "core/fs.h"
#include "io/checkpoint.h"
#include "pipeline/model_package.h"

namespace sanastream::pipeline {

DitSource resolve_dit_source(const std::string& model_path, const std::string& model_config_path) {
  DitSource s;
  SS_CHECK(!model_path.empty(), "no model given (expected --model PATH)");
  if (is_directory(model_path) && path_exists(model_path + "/model.json")) {
    s = package_dit_source(load_model_package(model_path).dit);
  } else {
    s.weights_path = io::resolve_weights_path(model_path, "DiT");
  }
  if (!model_config_path.empty()) s.overrides = model::load_model_config_overrides(model_config_path);
  return s;
}

std::unique_ptr<model::HybridDit> load_dit(const DitSource& src, const Runtime& rt, const model::QuantPlan& plan) {
  io::WeightSet ws = io::load_weights(src.weights_path);
  try {
    return model::load_hybrid_dit(ws.tensors, src.overrides, rt, plan);
  } catch (const Error& e) {
    SS_FAIL("{}: {}", src.weights_path, e.message());
  }
}

}  // namespace sanastream::pipeline
