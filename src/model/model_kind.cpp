#include "model/model_kind.h"

#include "core/error.h"
#include "model/dit_config.h"

namespace sanastream::model {

nlohmann::json describe_weights(const io::TensorMap& w) {
  if (looks_like_dit(w)) {
    try {
      DitConfig c = detect_dit_config(w);
      nlohmann::json j = c.to_json();
      j["summary"] = c.summary();
      return j;
    } catch (const Error& e) {
      return {{"kind", "dit"}, {"summary", "DiT weights that do not form a valid model: " + e.message()}};
    }
  }
  if (w.count("encoder.conv_in.conv.weight") || w.count("decoder.conv_in.conv.weight"))
    return {{"kind", "vae"}, {"summary", "LTX-2 video VAE (diffusers layout)"}};
  if (w.count("embed_tokens.weight") || w.count("model.embed_tokens.weight"))
    return {{"kind", "text-encoder"}, {"summary", "Gemma-2 decoder (transformers layout)"}};
  return {{"kind", "unknown"}, {"summary", "unknown (no known model's tensor names)"}};
}

}  // namespace sanastream::model
