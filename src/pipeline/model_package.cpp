#include "pipeline/model_package.h"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/fs.h"
#include "core/interrupt.h"
#include "core/runtime.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "model/sentencepiece_model.h"

namespace sanastream::pipeline {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::string trim_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

bool is_safetensors(const std::string& path) {
  return ends_with(path, ".safetensors") || ends_with(path, ".safetensors.index.json");
}

// A weights file's tensor names (wrapper prefixes stripped, as io::load_weights does) with their
// shapes as meta tensors: the header is read, the data is not.
io::TensorMap weight_shapes(const std::string& path) {
  io::TensorMap out;
  for (auto& [k, t] : io::load_safetensors_meta(path)) {
    const std::string key = io::strip_wrapper_prefixes(k);
    SS_CHECK(!out.count(key), "key '{}' appears twice after stripping 'model.'/'module.'", key);
    out[key] = std::move(t);
  }
  return out;
}

// Checks and errors of one model.json: every message starts with the file and the key.
class PackageReader {
 public:
  explicit PackageReader(std::string dir) : dir_(std::move(dir)), file_(dir_ + "/model.json") {}

  const std::string& file() const { return file_; }

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    SS_FAIL("{}: {}: {}", file_, key, what);
  }
  void check(bool ok, const std::string& key, const std::string& what) const {
    if (!ok) fail(key, what);
  }

  void only_keys(const json& obj, const std::string& where, const std::set<std::string>& known) const {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      if (known.count(it.key())) continue;
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      fail(where.empty() ? it.key() : where + "." + it.key(), "unknown key (expected " + list + ")");
    }
  }

  const json& required(const json& obj, const std::string& where, const std::string& key) const {
    const std::string name = where.empty() ? key : where + "." + key;
    check(obj.contains(key), name, "missing (required)");
    return obj[key];
  }

  std::string string(const json& v, const std::string& key) const {
    check(v.is_string() && !v.get<std::string>().empty(), key, "expected a non-empty string, got " + v.dump());
    return v.get<std::string>();
  }

  const json& object(const json& v, const std::string& key) const {
    check(v.is_object(), key, "expected an object, got " + v.dump());
    return v;
  }

  // A path of model.json, relative to the package unless absolute; it must exist.
  std::string path(const json& v, const std::string& key) const {
    const std::string p = string(v, key);
    const std::string full = p[0] == '/' ? p : dir_ + "/" + p;
    check(path_exists(full), key, "'" + p + "' does not exist (looked at " + full + ")");
    return trim_slashes(full);
  }

  // Runs f; an Error it throws becomes "model.json: key: message".
  template <typename F>
  auto wrap(const std::string& key, F&& f) const -> decltype(f()) {
    try {
      return f();
    } catch (const Error& e) {
      fail(key, e.message());
    }
  }

 private:
  std::string dir_;
  std::string file_;
};

}  // namespace

// ---- Opening a package -----------------------------------------------------------------------------

namespace {

PackageDit read_dit(const PackageReader& r, const json& v, const std::string& key) {
  const json& e = r.object(v, key);
  r.only_keys(e, key, {"weights", "config", "variant"});
  PackageDit d;
  d.weights = r.path(r.required(e, key, "weights"), key + ".weights");
  r.check(!is_directory(d.weights) && is_safetensors(d.weights), key + ".weights",
          "expected a .safetensors file or a shard index (.safetensors.index.json), got '" + d.weights +
              "' (`sanastream convert` turns a .pth into one)");
  json overrides = json::object();
  if (e.contains("config")) {
    d.config = r.path(e["config"], key + ".config");
    overrides = r.wrap(key + ".config", [&] { return model::load_model_config_overrides(d.config); });
  }
  d.detected = r.wrap(key + ".weights", [&] { return model::detect_dit_config(weight_shapes(d.weights), overrides); });
  if (e.contains("variant")) {
    const std::string v = r.string(e["variant"], key + ".variant");
    r.check(v == "streaming" || v == "bidirectional", key + ".variant",
            "expected streaming or bidirectional, got '" + v + "'");
    r.check(v == model::variant_name(d.detected.variant), key + ".variant",
            fmt::format("'{}', but the weights form a {} DiT", v, model::variant_name(d.detected.variant)));
  }
  return d;
}

PackageVae read_vae(const PackageReader& r, const json& v) {
  const json& e = r.object(v, "vae");
  r.only_keys(e, "vae", {"path", "decoder"});
  PackageVae out;
  out.path = r.path(r.required(e, "vae", "path"), "vae.path");
  r.check(is_directory(out.path), "vae.path",
          "expected a diffusers directory (config.json + diffusion_pytorch_model.safetensors), got a file");
  const std::string dec = r.string(r.required(e, "vae", "decoder"), "vae.decoder");
  r.check(dec == "causal" || dec == "chunk_tile", "vae.decoder", "expected causal or chunk_tile, got '" + dec + "'");
  out.decoder = dec == "causal" ? model::VaeDecoderKind::kCausal : model::VaeDecoderKind::kChunkTile;
  const model::Ltx2VaeSource src = r.wrap("vae.path", [&] { return model::resolve_ltx2_vae_source(out.path); });
  r.check(is_safetensors(src.weights_path), "vae.path", "expected safetensors weights, got '" + src.weights_path + "'");
  out.config = r.wrap("vae.path", [&] { return model::load_ltx2_vae_config(src.config_path); });
  // Every weight against the config, built on the meta device: shapes only, no data read.
  r.wrap("vae.path", [&] {
    const model::Ltx2Vae shapes_only(weight_shapes(src.weights_path), out.config,
                                     Runtime{at::Device(at::kMeta), at::kFloat});
  });
  if (out.decoder == model::VaeDecoderKind::kCausal)
    r.check(out.config.decoder_causal, "vae.decoder",
            "'causal' needs a VAE made for causal decoding (config.json decoder_causal: true, as the release's "
            "ltx2_causal_vae_0516/); this one has decoder_causal false: use \"chunk_tile\"");
  else
    r.check(!out.config.decoder_causal, "vae.decoder",
            "'chunk_tile' decodes tiles non-causally, but this VAE's config.json has decoder_causal true: use "
            "\"causal\"");
  return out;
}

PackageTextEncoder read_text_encoder(const PackageReader& r, const json& v) {
  const json& e = r.object(v, "text_encoder");
  r.only_keys(e, "text_encoder", {"path"});
  PackageTextEncoder t;
  t.path = r.path(r.required(e, "text_encoder", "path"), "text_encoder.path");
  r.check(is_directory(t.path), "text_encoder.path",
          "expected a directory with config.json, the weights and tokenizer.model, got a file");
  for (const char* name : {"config.json", "tokenizer.model"})
    r.check(path_exists(t.path + "/" + name), "text_encoder.path", fmt::format("{} is missing in {}", name, t.path));
  const std::string config = t.path + "/config.json";
  t.config = r.wrap("text_encoder.path", [&] {
    return model::parse_gemma2_config(json::parse(read_text_file(config), nullptr, false), config);
  });
  const std::string weights = r.wrap("text_encoder.path", [&] { return io::resolve_weights_path(t.path, "text encoder"); });
  r.check(is_safetensors(weights), "text_encoder.path", "expected safetensors weights, got '" + weights + "'");
  r.wrap("text_encoder.path", [&] { model::validate_gemma2_weights(t.config, weight_shapes(weights)); });
  return t;
}

}  // namespace

bool ModelPackage::has_variant(model::DitVariant variant) const {
  return dit.detected.variant == variant || (variant == model::DitVariant::kBidirectional && dit_bidirectional);
}

int64_t ModelPackage::pixel_multiple() const {
  const int64_t patch = std::max(dit.detected.patch, dit_bidirectional ? dit_bidirectional->detected.patch : 1);
  return vae.config.spatial_ratio() * patch;
}

const PackageDit& ModelPackage::dit_for(model::DitVariant variant) const {
  if (dit.detected.variant == variant) return dit;
  if (variant == model::DitVariant::kBidirectional && dit_bidirectional) return *dit_bidirectional;
  SS_FAIL("model package '{}' has no {} DiT (model.json: {})", dir, model::variant_name(variant),
          variant == model::DitVariant::kBidirectional ? "no \"dit_bidirectional\" entry"
                                                       : "its \"dit\" is bidirectional");
}

json ModelPackage::to_json() const {
  auto dit_json = [](const PackageDit& d) {
    json j = d.detected.to_json();
    j["weights"] = d.weights;
    if (!d.config.empty()) j["config"] = d.config;
    return j;
  };
  json j = {{"dir", dir},
            {"name", name},
            {"description", description},
            {"random_weights", random_weights},
            {"dit", dit_json(dit)},
            {"vae",
             {{"path", vae.path},
              {"decoder", vae.decoder == model::VaeDecoderKind::kCausal ? "causal" : "chunk_tile"},
              {"summary", vae.config.summary()}}},
            {"text_encoder", {{"path", text_encoder.path}, {"config", text_encoder.config.to_json()}}},
            {"fps", fps},
            {"resolutions", resolutions}};
  if (dit_bidirectional) j["dit_bidirectional"] = dit_json(*dit_bidirectional);
  if (max_frames > 0) j["max_frames"] = max_frames;
  return j;
}

ModelPackage load_model_package(const std::string& dir_in) {
  const std::string dir = trim_slashes(dir_in);
  SS_CHECK(is_directory(dir), "model package '{}': expected a directory holding model.json{}", dir,
           path_exists(dir) ? "" : " (it does not exist)");
  const PackageReader r(dir);
  SS_CHECK(path_exists(r.file()), "model package '{}': model.json is missing", dir);
  const json j = json::parse(read_text_file(r.file()), nullptr, false);
  SS_CHECK(j.is_object(), "{}: expected a JSON object (is the file valid JSON?)", r.file());
  r.only_keys(j, "",
              {"format_version", "name", "description", "random_weights", "dit", "dit_bidirectional", "vae",
               "text_encoder", "fps", "resolutions", "max_frames"});
  const json& version = r.required(j, "", "format_version");
  r.check(version.is_number_integer() && version.get<int64_t>() == kPackageFormatVersion, "format_version",
          fmt::format("expected {}, got {}", kPackageFormatVersion, version.dump()));

  ModelPackage p;
  p.dir = dir;
  p.name = r.string(r.required(j, "", "name"), "name");
  if (j.contains("description")) p.description = r.string(j["description"], "description");
  if (j.contains("random_weights")) {
    r.check(j["random_weights"].is_boolean(), "random_weights", "expected true or false, got " + j["random_weights"].dump());
    p.random_weights = j["random_weights"].get<bool>();
  }
  const json& fps = r.required(j, "", "fps");
  r.check(fps.is_number() && fps.get<double>() > 0 && std::isfinite(fps.get<double>()), "fps",
          "expected a positive number of frames per second, got " + fps.dump());
  p.fps = fps.get<double>();

  p.vae = read_vae(r, r.required(j, "", "vae"));
  p.text_encoder = read_text_encoder(r, r.required(j, "", "text_encoder"));
  p.dit = read_dit(r, r.required(j, "", "dit"), "dit");
  if (j.contains("dit_bidirectional")) {
    r.check(p.dit.detected.variant == model::DitVariant::kStreaming, "dit_bidirectional",
            "a second DiT only goes beside a streaming \"dit\"; this package's \"dit\" is bidirectional already");
    p.dit_bidirectional = read_dit(r, j["dit_bidirectional"], "dit_bidirectional");
    r.check(p.dit_bidirectional->detected.variant == model::DitVariant::kBidirectional, "dit_bidirectional.weights",
            "expected a bidirectional DiT (softmax q/k as [C, C]), the weights form a streaming one");
  }

  // The parts must fit together.
  const int64_t latent = p.vae.config.latent_channels, caption = p.text_encoder.config.hidden;
  for (const auto* d : {&p.dit, p.dit_bidirectional ? &*p.dit_bidirectional : nullptr}) {
    if (!d) continue;
    const std::string key = (d == &p.dit ? "dit" : "dit_bidirectional") + std::string(".weights");
    const model::DitConfig& c = d->detected;
    r.check(c.latent_channels == latent && c.source_channels == latent, key,
            fmt::format("the DiT takes {} + {} latent channels and writes {}, the VAE's latent_channels is {}",
                        c.latent_channels, c.source_channels, c.latent_channels, latent));
    r.check(c.caption_channels == caption, key,
            fmt::format("the DiT reads captions {} wide, the text encoder's hidden_size is {}", c.caption_channels,
                        caption));
  }

  const json& res = r.required(j, "", "resolutions");
  r.check(res.is_array() && !res.empty(), "resolutions", "expected a non-empty list of [width, height], got " + res.dump());
  const int64_t multiple = p.pixel_multiple();
  for (size_t i = 0; i < res.size(); ++i) {
    const json& wh = res[i];
    const std::string key = fmt::format("resolutions[{}]", i);
    r.check(wh.is_array() && wh.size() == 2 && wh[0].is_number_integer() && wh[1].is_number_integer() &&
                wh[0].get<int64_t>() > 0 && wh[1].get<int64_t>() > 0,
            key, "expected [width, height] as two positive integers, got " + wh.dump());
    r.check(wh[0].get<int64_t>() % multiple == 0 && wh[1].get<int64_t>() % multiple == 0, key,
            fmt::format("expected a width and height that are multiples of {} (the VAE's spatial compression {} x "
                        "the DiT's patch {}), got {}",
                        multiple, p.vae.config.spatial_ratio(), multiple / p.vae.config.spatial_ratio(), wh.dump()));
    p.resolutions.push_back({wh[0].get<int64_t>(), wh[1].get<int64_t>()});
  }

  const bool bidirectional = p.has_variant(model::DitVariant::kBidirectional);
  if (j.contains("max_frames")) {
    r.check(bidirectional, "max_frames",
            "applies to the bidirectional mode, and this package has no bidirectional DiT (remove it, or add "
            "\"dit_bidirectional\")");
    const json& mf = j["max_frames"];
    const int64_t tr = p.vae.config.temporal_ratio();
    r.check(mf.is_number_integer() && mf.get<int64_t>() > tr && (mf.get<int64_t>() - 1) % tr == 0, "max_frames",
            fmt::format("expected 1 + {}·k frames with k ≥ 1 (the VAE's temporal compression is {}), got {}", tr, tr,
                        mf.dump()));
    p.max_frames = mf.get<int64_t>();
  } else {
    r.check(!bidirectional, "max_frames", "missing (required with a bidirectional DiT: its longest clip in frames)");
  }
  return p;
}

// ---- Which package -----------------------------------------------------------------------------------

bool is_package(const std::string& dir) { return is_directory(dir) && path_exists(dir + "/model.json"); }

namespace {

std::string executable_dir() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  SS_CHECK(n > 0, "cannot locate the executable (/proc/self/exe: {}) to find the demo model package; give --model DIR",
           std::strerror(errno));
  const std::string exe(buf, static_cast<size_t>(n));
  return exe.substr(0, exe.find_last_of('/'));
}
}  // namespace

ModelChoice resolve_model_dir(const std::string& cli_model, const std::string& exe_dir) {
  if (!cli_model.empty()) {
    SS_CHECK(is_package(cli_model), "--model '{}': expected a model package directory holding model.json{}", cli_model,
             path_exists(cli_model) ? "" : " (it does not exist)");
    return {trim_slashes(cli_model), "--model"};
  }
  if (const char* env = std::getenv("SANASTREAM_MODEL"); env && *env) {
    SS_CHECK(is_package(env), "SANASTREAM_MODEL='{}': expected a model package directory holding model.json (or give "
             "--model DIR)", env);
    return {trim_slashes(env), "SANASTREAM_MODEL"};
  }
  const std::string exe = exe_dir.empty() ? executable_dir() : trim_slashes(exe_dir);
  const std::string beside = exe + "/models/demo";
  const std::string installed = fs::path(exe + "/../share/sanastream/models/demo").lexically_normal().string();
  for (const std::string& d : {beside, installed})
    if (is_package(d)) return {d, "demo package"};
  SS_FAIL("no model package: give --model DIR or set SANASTREAM_MODEL (no demo package at {} or {})", beside, installed);
}

// ---- Loading the components --------------------------------------------------------------------------

DitSource package_dit_source(const PackageDit& dit) {
  DitSource s;
  s.weights_path = dit.weights;
  if (!dit.config.empty()) s.overrides = model::load_model_config_overrides(dit.config);
  return s;
}

std::unique_ptr<model::HybridDit> load_package_dit(const ModelPackage& pkg, model::DitVariant variant,
                                                   const Runtime& rt, const model::QuantPlan& plan) {
  return load_dit(package_dit_source(pkg.dit_for(variant)), rt, plan);
}

std::unique_ptr<model::Ltx2Vae> load_package_vae(const ModelPackage& pkg, const Runtime& rt, model::VaeLayout layout) {
  return model::load_ltx2_vae(model::resolve_ltx2_vae_source(pkg.vae.path), rt, layout);
}

std::unique_ptr<model::Ltx2Vae> load_vae(const std::string& package_or_vae_dir, const Runtime& rt) {
  return path_exists(package_or_vae_dir + "/model.json")
             ? load_package_vae(load_model_package(package_or_vae_dir), rt)
             : model::load_ltx2_vae(model::resolve_ltx2_vae_source(package_or_vae_dir), rt);
}

// ---- Random-weight packages --------------------------------------------------------------------------

namespace {

// Whole words of the instruction prefix, the negative prompt and common edit instructions, each as a
// piece "▁word" (a word after a space); the capitalised ones as they start a line.
const char* const kSpaceWords =
    "a about additional adding already an and any avoid below colors commentary concrete create description "
    "descriptions detail detailed details enhance enhanced evaluations existing focus for generate generation image "
    "in including is level of on only or overcomplicating prompt provides refine relationships scenes shapes simple "
    "sizes slightly spatial specifics suitable textures that the to user visual vivid without If Evaluate Prompt "
    "artifacts blur changes character chaotic creating cuts deformed disappearance disorienting effects experience "
    "frames ghosting heavy inconsistent jerky jitter jump limbs misshapen motion movements out rapid sequence shot "
    "sudden sync temporal with score add autumn background black blue blurry bright cartoon change colour color dark "
    "day green into it its jacket like look make night oil painting pencil posterize rain rainy red remove replace "
    "sepia sketch sky snow snowy style summer sunset thermal turn video watercolor white winter yellow";
const char* const kBareWords = "Given Please User";

std::vector<model::SpmPiece> tokenizer_pieces() {
  // Gemma's special ids: pad 0, eos 1, bos 2, unk 3; then the 256 byte pieces (byte fallback), the
  // escaped space, newline and printable ASCII, then the words. A unigram model picks the segmentation
  // with the best total score: words (−5) beat their letters (−10 each); anything else falls back to
  // UTF-8 bytes.
  using model::SpmType;
  std::vector<model::SpmPiece> p = model::gemma_special_pieces();
  for (int b = 0; b < 256; ++b) p.push_back(model::byte_piece(b));
  const std::string space = "\xE2\x96\x81";  // ▁
  p.push_back({space, -10, SpmType::kNormal});
  p.push_back({"\n", -10, SpmType::kNormal});
  for (char c = 0x21; c < 0x7F; ++c) p.push_back({std::string(1, c), -10, SpmType::kNormal});
  std::set<std::string> seen;
  for (const auto& x : p) seen.insert(x.piece);
  auto add_words = [&](const char* words, const std::string& lead) {
    std::istringstream in(words);
    for (std::string w; in >> w;)
      if (seen.insert(lead + w).second) p.push_back({lead + w, -5, SpmType::kNormal});
  };
  add_words(kSpaceWords, space);
  add_words(kBareWords, "");
  return p;
}

// A transformers Gemma2Config; layers alternate sliding and full attention, as Gemma-2's.
json gemma2_config(int64_t vocab, int64_t hidden, int64_t intermediate, int64_t layers, int64_t heads,
                   int64_t kv_heads, int64_t head_dim, int64_t window) {
  std::vector<std::string> types;
  for (int64_t i = 0; i < layers; ++i) types.push_back(i % 2 == 0 ? "sliding_attention" : "full_attention");
  return {{"architectures", {"Gemma2Model"}},
          {"model_type", "gemma2"},
          {"vocab_size", vocab},
          {"hidden_size", hidden},
          {"intermediate_size", intermediate},
          {"num_hidden_layers", layers},
          {"num_attention_heads", heads},
          {"num_key_value_heads", kv_heads},
          {"head_dim", head_dim},
          {"hidden_activation", "gelu_pytorch_tanh"},
          {"max_position_embeddings", 8192},
          {"rms_norm_eps", 1e-6},
          {"rope_theta", 10000.0},
          {"query_pre_attn_scalar", head_dim},
          {"sliding_window", window},
          {"layer_types", types},
          {"attn_logit_softcapping", 50.0},
          {"final_logit_softcapping", 30.0},
          {"attention_bias", false},
          {"pad_token_id", 0},
          {"eos_token_id", 1},
          {"bos_token_id", 2},
          {"tie_word_embeddings", true}};
}

// Seeded random Gemma-2 weights with the golden set's distributions (embeddings N(0, 0.5), norm
// weights N(0, 0.2) — Gemma scales by 1 + w —, matrices N(0, 1/√fan_in)).
io::TensorMap random_gemma2_weights(const model::Gemma2Config& c, uint64_t seed, at::ScalarType dtype) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  io::TensorMap w;
  auto normal = [&](const std::string& key, std::vector<int64_t> shape, double std) {
    w[key] = at::empty(shape).normal_(0.0, std, gen).to(dtype);
  };
  auto mat = [&](const std::string& key, int64_t out, int64_t in) {
    normal(key, {out, in}, 1.0 / std::sqrt(static_cast<double>(in)));
  };
  const int64_t C = c.hidden, F = c.intermediate, QD = c.heads * c.head_dim, KD = c.kv_heads * c.head_dim;
  normal("embed_tokens.weight", {c.vocab_size, C}, 0.5);
  normal("norm.weight", {C}, 0.2);
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string p = fmt::format("layers.{}.", i);
    mat(p + "self_attn.q_proj.weight", QD, C);
    mat(p + "self_attn.k_proj.weight", KD, C);
    mat(p + "self_attn.v_proj.weight", KD, C);
    mat(p + "self_attn.o_proj.weight", C, QD);
    mat(p + "mlp.gate_proj.weight", F, C);
    mat(p + "mlp.up_proj.weight", F, C);
    mat(p + "mlp.down_proj.weight", C, F);
    for (const char* n : {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                          "post_feedforward_layernorm"})
      normal(p + n + ".weight", {C}, 0.2);
  }
  return w;
}

// Independent seeds per component from the one --seed (splitmix64).
uint64_t component_seed(uint64_t seed, uint64_t component) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (component + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

int64_t parameter_count(const io::TensorMap& w) {
  int64_t n = 0;
  for (const auto& [_, t] : w) n += t.numel();
  return n;
}

// Removes the partial directory unless the package was completed.
struct PartialDir {
  std::string path;
  bool done = false;
  ~PartialDir() {
    if (done || path.empty()) return;
    remove_tree(path);
  }
};

// Writes a package directory: every file under OUT.part, which is opened with load_model_package()
// and only then renamed to OUT (make-package and assemble-package).
class PackageWriter {
 public:
  PackageWriter(const std::string& out_dir, bool force) : out_(trim_slashes(out_dir)) {
    SS_CHECK(!out_.empty(), "expected an output directory");
    if (path_exists(out_)) {
      SS_CHECK(force, "output '{}' exists (give --force to replace it)", out_);
      SS_CHECK(is_directory(out_) && (path_exists(out_ + "/model.json") || fs::is_empty(out_)),
               "output '{}' exists and is not a model package; --force replaces only a package directory", out_);
    }
    part_ = out_ + ".part";
    const std::string stale = remove_tree(part_);  // left by an interrupted run
    SS_CHECK(stale.empty(), "{}: cannot remove the partial package of an earlier run ({})", part_, stale);
    partial_.path = part_;
    std::error_code ec;
    for (const char* sub : {"dit", "vae", "text_encoder"}) {
      fs::create_directories(part_ + "/" + sub, ec);
      SS_CHECK(!ec, "{}/{}: cannot create ({})", part_, sub, ec.message());
    }
  }

  const std::string& dir() const { return out_; }

  // Tensors to OUT.part/rel; returns their parameter count.
  int64_t tensors(const std::string& rel, const io::TensorMap& w, const std::map<std::string, std::string>& meta) {
    io::save_safetensors(part_ + "/" + rel, w, meta);
    return parameter_count(w);
  }
  void file(const std::string& rel, const std::string& bytes) { write_text_file_atomic(part_ + "/" + rel, bytes); }

  // Writes model.json, opens the package (every file, shape and cross-check), renames it to OUT and
  // returns the bytes of all its files.
  int64_t finish(const nlohmann::ordered_json& model_json) {
    file("model.json", model_json.dump(2) + "\n");
    check_interrupt();
    load_model_package(part_);
    if (path_exists(out_)) {
      const std::string failed = remove_tree(out_);
      SS_CHECK(failed.empty(), "{}: cannot remove the package it replaces ({})", out_, failed);
    }
    std::error_code ec;
    fs::rename(part_, out_, ec);
    SS_CHECK(!ec, "{}: cannot rename to {} ({})", part_, out_, ec.message());
    partial_.done = true;
    int64_t bytes = 0;
    for (const auto& e : fs::recursive_directory_iterator(out_))
      if (e.is_regular_file()) bytes += static_cast<int64_t>(e.file_size());
    return bytes;
  }

 private:
  std::string out_, part_;
  PartialDir partial_;
};

// The DiT's config overrides a package needs: its head count when the detector's default head dim
// (112) does not give it (the demo's 2 heads of 80); null otherwise.
json dit_overrides(const model::DitShape& s) {
  if (s.hidden == 112 * s.heads) return nullptr;
  return {{"num_heads", s.heads}};
}

// Protocol-buffer wire format: the few reads a ModelProto's pieces need.
class WireReader {
 public:
  WireReader(const std::string& bytes, size_t begin, size_t end, const std::string& origin)
      : b_(bytes), pos_(begin), end_(end), origin_(origin) {}
  bool done() const { return pos_ >= end_; }
  size_t pos() const { return pos_; }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      check(pos_ < end_);
      const auto c = static_cast<uint8_t>(b_[pos_++]);
      v |= static_cast<uint64_t>(c & 0x7F) << shift;
      if (!(c & 0x80)) return v;
    }
    check(false);
    return 0;
  }
  // The field's [begin, end) for a length-delimited field (wire type 2); skips other wire types.
  std::pair<size_t, size_t> skip(int wire_type) {
    size_t n = 0;
    switch (wire_type) {
      case 0: varint(); return {pos_, pos_};
      case 1: n = 8; break;
      case 2: n = varint(); break;
      case 5: n = 4; break;
      default: check(false);
    }
    check(n <= end_ - pos_);
    pos_ += n;
    return {pos_ - n, pos_};
  }
  void check(bool ok) const {
    SS_CHECK(ok, "{}: expected a SentencePiece model (a serialised ModelProto), got bytes that are not one", origin_);
  }

 private:
  const std::string& b_;
  size_t pos_, end_;
  const std::string& origin_;
};

// The tokenizer of a random-weight package: the file given, or the built-in test pieces.
std::string package_tokenizer_bytes(const std::string& tokenizer) {
  if (tokenizer.empty()) return model::serialize_sentencepiece_model(tokenizer_pieces());
  SS_CHECK(path_exists(tokenizer) && !is_directory(tokenizer), "--tokenizer '{}': expected a tokenizer.model file{}",
           tokenizer, path_exists(tokenizer) ? ", got a directory" : " (it does not exist)");
  return read_text_file(tokenizer);
}

// Gemma's special pieces at ids 0 … 3, as the Gemma-2 config (pad 0, eos 1, bos 2) and the tokenizer
// (unk 3) expect; returns the piece count.
int64_t check_gemma_tokenizer(const std::string& bytes, const std::string& origin) {
  const std::vector<model::SpmPiece> pieces = read_sentencepiece_pieces(bytes, origin);
  const std::vector<model::SpmPiece> special = model::gemma_special_pieces();
  std::string got;
  for (size_t i = 0; i < special.size() && i < pieces.size(); ++i) got += (i ? ", " : "") + pieces[i].piece;
  bool ok = pieces.size() > special.size();
  for (size_t i = 0; ok && i < special.size(); ++i)
    ok = pieces[i].piece == special[i].piece && pieces[i].type == special[i].type;
  SS_CHECK(ok, "{}: expected Gemma's special pieces <pad>, <eos>, <bos>, <unk> at ids 0-3 (`sanastream "
           "train-tokenizer` makes such a model), got {}", origin, got.empty() ? "no pieces" : got);
  return static_cast<int64_t>(pieces.size());
}

io::TensorMap cast_floating(const io::TensorMap& w, at::ScalarType dtype) {
  io::TensorMap out;
  for (const auto& [k, t] : w) out[k] = t.is_floating_point() ? t.to(dtype) : t;
  return out;
}

}  // namespace

std::unique_ptr<model::Gemma2Model> load_resident_text_encoder(const std::string& package, const std::string& preset,
                                                               uint64_t seed, const Runtime& rt) {
  if (!package.empty()) {  // the files PromptEncoder reads (load_gemma2 resolves the directory's weights)
    const std::string dir = load_model_package(package).text_encoder.path;
    return model::load_gemma2(dir + "/config.json", dir, rt, model::Gemma2Attention::kEager);
  }
  const model::Gemma2Config cfg = model::parse_gemma2_config(random_package_preset(preset).text_encoder, preset);
  return std::make_unique<model::Gemma2Model>(random_gemma2_weights(cfg, seed, rt.dtype), cfg, rt,
                                              model::Gemma2Attention::kEager);
}

std::vector<model::SpmPiece> read_sentencepiece_pieces(const std::string& bytes, const std::string& origin) {
  std::vector<model::SpmPiece> out;
  WireReader top(bytes, 0, bytes.size(), origin);
  top.check(!bytes.empty());
  while (!top.done()) {
    const uint64_t tag = top.varint();
    const auto [begin, end] = top.skip(static_cast<int>(tag & 7));
    if (tag != ((1u << 3) | 2)) continue;  // ModelProto.pieces = 1
    model::SpmPiece p;                     // SentencePiece: piece = 1, score = 2, type = 3 (NORMAL by default)
    WireReader r(bytes, begin, end, origin);
    while (!r.done()) {
      const uint64_t t = r.varint();
      const size_t at = r.pos();
      const auto [b, e] = r.skip(static_cast<int>(t & 7));
      if (t == ((1u << 3) | 2)) p.piece = bytes.substr(b, e - b);
      if (t == ((2u << 3) | 5)) std::memcpy(&p.score, bytes.data() + b, 4);
      if (t == ((3u << 3) | 0)) {
        WireReader v(bytes, at, e, origin);
        p.type = static_cast<model::SpmType>(v.varint());
      }
    }
    out.push_back(std::move(p));
  }
  top.check(!out.empty());
  return out;
}

int64_t gemma_vocab_rows(int64_t pieces) { return (pieces + 63) / 64 * 64; }

RandomPackagePreset random_package_preset(const std::string& name, const std::string& tokenizer) {
  RandomPackagePreset p;
  p.name = name;
  const int64_t pieces = tokenizer.empty() ? static_cast<int64_t>(tokenizer_pieces().size())
                                           : check_gemma_tokenizer(package_tokenizer_bytes(tokenizer),
                                                                   "--tokenizer '" + tokenizer + "'");
  const int64_t small_vocab = gemma_vocab_rows(pieces);
  if (name == "tiny") {
    p.dit.depth = 2;
    p.dit.hidden = 224;
    p.dit.heads = 2;
    p.dit.ffn_hidden = 672;
    p.dit.caption_channels = 64;
    p.vae.enc_channels = {32, 32, 64, 64};
    p.vae.enc_layers = {1, 1, 1, 1, 1};
    p.vae.dec_channels = {16, 32, 64};
    p.vae.dec_layers = {1, 1, 1, 1};
    p.text_encoder = gemma2_config(small_vocab, 64, 128, 2, 4, 2, 16, 128);
    p.resolutions = {{96, 64}, {128, 96}, {64, 96}};
  } else if (name == "small") {
    p.dit.depth = 8;
    p.dit.hidden = 448;
    p.dit.heads = 4;
    p.dit.ffn_hidden = 1344;
    p.dit.caption_channels = 256;
    p.vae.enc_channels = {32, 32, 64, 64};  // the golden ltx2_vae_small: LTX-2 depths, narrow widths
    p.vae.enc_layers = {4, 6, 6, 2, 2};
    p.vae.dec_channels = {16, 32, 64};
    p.vae.dec_layers = {5, 5, 5, 5};
    p.text_encoder = gemma2_config(small_vocab, 256, 512, 4, 4, 2, 64, 512);
    p.resolutions = {{512, 288}, {384, 288}, {288, 512}};
  } else if (name == "2b") {
    p.dit = model::dit_shape_2b();
    p.vae = model::Ltx2VaeConfig{};  // LTX-2's own widths and depths
    SS_CHECK(pieces <= 256000, "--tokenizer '{}': {} pieces do not fit gemma-2's vocabulary of 256000", tokenizer, pieces);
    p.text_encoder = gemma2_config(256000, 2304, 9216, 26, 8, 4, 256, 4096);  // gemma-2-2b-it
    p.resolutions = {{1280, 704}, {704, 1280}};
  } else if (name == "demo") {
    // The embedded demo model (docs/MODELS.md): 2 softmax blocks of 8 (3, 7), 2 heads of 80, 2×2 patches.
    p.dit.depth = 8;
    p.dit.hidden = 160;
    p.dit.heads = 2;
    p.dit.ffn_hidden = 400;
    p.dit.caption_channels = 128;
    p.dit.latent_channels = p.dit.source_channels = 32;
    p.dit.patch = 2;  // 2×2 latent pixels per token: 448×256 is 28×16 tokens a frame
    // Encoder widths 32 (conv_in) → 64 → 64, 4× time and 2× space, then the 4×4 patches: 8× space. The
    // decoder mirrors its samplers: upsample_factor 2 halves the width at each level, 128 → 64 → 32 (as
    // LTX-2's). The encoder stays at 64 (not 128) to keep the package within 16 MB in bf16, as the VAE
    // training config configs/train/demo_vae.json.
    using model::VaeResample;
    p.vae.latent_channels = 32;
    p.vae.patch_size = 4;
    p.vae.enc_channels = {64, 64};
    p.vae.enc_layers = {1, 1, 1};
    p.vae.enc_down = {VaeResample::kSpatioTemporal, VaeResample::kTemporal};
    p.vae.dec_channels = {64, 128};
    p.vae.dec_layers = {1, 1, 1};
    p.vae.dec_up = {VaeResample::kTemporal, VaeResample::kSpatioTemporal};  // decode order
    p.vae.dec_residual = {true, true};
    p.vae.dec_factor = {2, 2};
    p.text_encoder = gemma2_config(small_vocab, 128, 256, 2, 4, 2, 32, 128);
    p.resolutions = {{448, 256}, {352, 256}, {256, 256}, {256, 448}, {256, 352}};
  } else {
    SS_FAIL("--preset: expected demo, tiny, small or 2b, got '{}'", name);
  }
  p.vae.decoder_causal = true;  // decoded chunk by chunk ("causal" in model.json)
  return p;
}

json PackageReport::to_json() const {
  return {{"dir", dir},
          {"parameters",
           {{"dit", dit_parameters},
            {"dit_bidirectional", dit_bidirectional_parameters},
            {"vae", vae_parameters},
            {"text_encoder", text_encoder_parameters},
            {"total", dit_parameters + dit_bidirectional_parameters + vae_parameters + text_encoder_parameters}}},
          {"bytes", bytes}};
}

PackageReport write_random_package(const RandomPackageOptions& opt, const std::string& out_dir) {
  const RandomPackagePreset preset = random_package_preset(opt.preset, opt.tokenizer);
  SS_CHECK(opt.dtype == at::kBFloat16 || opt.dtype == at::kFloat, "--dtype: expected bf16 or fp32, got {}",
           dtype_label(opt.dtype));
  const std::string tokenizer = package_tokenizer_bytes(opt.tokenizer);
  PackageWriter out(out_dir, opt.force);

  PackageReport rep;
  rep.dir = out.dir();
  const std::string what = fmt::format("seeded random weights (preset {}, seed {}, {})", preset.name, opt.seed,
                                       dtype_label(opt.dtype));
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"sanastream", what + ": the outputs are noise"}};
  nlohmann::ordered_json m;
  m["format_version"] = kPackageFormatVersion;
  m["name"] = "random-" + preset.name;
  m["description"] = "Made by `sanastream make-package --random-weights`: " + what +
                     ". Its outputs are noise; for tests and benchmarks only.";
  m["random_weights"] = true;

  model::DitShape shape = preset.dit;
  const json overrides = dit_overrides(shape);
  if (!overrides.is_null()) out.file("dit/config.json", overrides.dump(1) + "\n");
  auto dit_entry = [&](const std::string& weights, const char* variant) {
    nlohmann::ordered_json d;
    d["weights"] = weights;
    if (!overrides.is_null()) d["config"] = "dit/config.json";
    d["variant"] = variant;
    return d;
  };
  shape.variant = model::DitVariant::kStreaming;
  rep.dit_parameters = out.tensors("dit/streaming.safetensors",
                                   model::random_dit_weights(shape, component_seed(opt.seed, 0), opt.dtype), meta);
  m["dit"] = dit_entry("dit/streaming.safetensors", "streaming");
  check_interrupt();
  if (opt.bidirectional) {
    shape.variant = model::DitVariant::kBidirectional;
    rep.dit_bidirectional_parameters = out.tensors(
        "dit/bidirectional.safetensors", model::random_dit_weights(shape, component_seed(opt.seed, 1), opt.dtype), meta);
    m["dit_bidirectional"] = dit_entry("dit/bidirectional.safetensors", "bidirectional");
    check_interrupt();
  }
  out.file("vae/config.json", preset.vae.to_json().dump(1) + "\n");
  rep.vae_parameters =
      out.tensors("vae/diffusion_pytorch_model.safetensors",
                  model::random_ltx2_vae_weights(preset.vae, component_seed(opt.seed, 2), opt.dtype), meta);
  m["vae"] = {{"path", "vae"}, {"decoder", "causal"}};
  check_interrupt();
  {
    const model::Gemma2Config cfg = model::parse_gemma2_config(preset.text_encoder, "preset " + preset.name);
    out.file("text_encoder/config.json", preset.text_encoder.dump(1) + "\n");
    rep.text_encoder_parameters =
        out.tensors("text_encoder/model.safetensors", random_gemma2_weights(cfg, component_seed(opt.seed, 3), opt.dtype),
                    meta);
    out.file("text_encoder/tokenizer.model", tokenizer);
  }
  m["text_encoder"] = {{"path", "text_encoder"}};
  m["fps"] = preset.fps;
  m["resolutions"] = preset.resolutions;
  if (opt.bidirectional) m["max_frames"] = preset.max_frames;
  rep.bytes = out.finish(m);
  return rep;
}

// ---- Packages from trained parts -----------------------------------------------------------------------

namespace {

// Runs f; an Error it throws becomes "OPTION 'PATH': message".
template <typename F>
auto for_option(const std::string& option, const std::string& path, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error& e) {
    SS_FAIL("{} '{}': {}", option, path, e.message());
  }
}

// A safetensors weights file given on the command line, read whole (wrapper prefixes stripped).
io::TensorMap read_part(const std::string& option, const std::string& path, const char* what) {
  SS_CHECK(!path.empty(), "{}: expected {}", option, what);
  return for_option(option, path, [&] {
    SS_CHECK(path_exists(path), "does not exist");
    const std::string file = io::resolve_weights_path(path, what);
    SS_CHECK(is_safetensors(file), "expected safetensors weights, got '{}'", file);
    return io::load_weights(file).tensors;
  });
}

}  // namespace

PackageReport assemble_package(const AssembleOptions& opt, const std::string& out_dir) {
  SS_CHECK(opt.dtype == at::kBFloat16 || opt.dtype == at::kFloat, "--dtype: expected bf16 or fp32, got {}",
           dtype_label(opt.dtype));
  SS_CHECK(!opt.base.empty(), "--base: expected a model package (its model.json fields, DiT config, text encoder config "
           "and tokenizer)");
  const ModelPackage base = for_option("--base", opt.base, [&] { return load_model_package(opt.base); });

  // The VAE: a directory, its config and every tensor checked (on the meta device: shapes only).
  SS_CHECK(!opt.vae.empty(), "--vae: expected a VAE directory (config.json + diffusion_pytorch_model.safetensors, "
           "a checkpoint's vae_ema/)");
  SS_CHECK(is_directory(opt.vae), "--vae '{}': expected a VAE directory (config.json + "
           "diffusion_pytorch_model.safetensors){}", opt.vae, path_exists(opt.vae) ? ", got a file" : ", it does not exist");
  const model::Ltx2VaeSource vae_src = for_option("--vae", opt.vae, [&] { return model::resolve_ltx2_vae_source(opt.vae); });
  const model::Ltx2VaeConfig vae_cfg = for_option("--vae", opt.vae, [&] { return model::load_ltx2_vae_config(vae_src.config_path); });
  const io::TensorMap vae = read_part("--vae", vae_src.weights_path, "VAE");
  for_option("--vae", opt.vae, [&] {
    io::TensorMap meta;
    for (const auto& [k, t] : vae) meta[k] = at::empty(t.sizes(), t.options().device(at::kMeta));
    const model::Ltx2Vae shapes_only(meta, vae_cfg, Runtime{at::Device(at::kMeta), at::kFloat});
  });

  // The text encoder: the base's config and tokenizer, these weights.
  const std::string te_path =
      opt.text_encoder.empty() ? io::resolve_weights_path(base.text_encoder.path, "text encoder") : opt.text_encoder;
  const std::string te_option = opt.text_encoder.empty() ? "--base text encoder" : "--text-encoder";
  const io::TensorMap te = read_part(te_option, te_path, "text encoder");
  for_option(te_option, te_path, [&] { model::validate_gemma2_weights(base.text_encoder.config, te); });

  // The DiT: detected with the base's config overrides, and it must fit the VAE and the text encoder.
  const io::TensorMap dit = read_part("--dit", opt.dit, "DiT (a checkpoint's dit_ema.safetensors)");
  const json overrides = base.dit.config.empty() ? json::object() : model::load_model_config_overrides(base.dit.config);
  const model::DitConfig dc = for_option("--dit", opt.dit, [&] { return model::detect_dit_config(dit, overrides); });
  SS_CHECK(dc.latent_channels == vae_cfg.latent_channels && dc.source_channels == vae_cfg.latent_channels,
           "--dit '{}': the DiT takes {} + {} latent channels and writes {}, the --vae has {} latent channels", opt.dit,
           dc.latent_channels, dc.source_channels, dc.latent_channels, vae_cfg.latent_channels);
  SS_CHECK(dc.caption_channels == base.text_encoder.config.hidden,
           "--dit '{}': the DiT reads captions {} wide, the text encoder's hidden_size is {}", opt.dit,
           dc.caption_channels, base.text_encoder.config.hidden);
  const bool bidirectional = dc.variant == model::DitVariant::kBidirectional;
  SS_CHECK(!bidirectional || base.max_frames > 0,
           "--dit '{}': a bidirectional DiT needs max_frames, and the --base package has no bidirectional DiT to take "
           "it from", opt.dit);

  PackageWriter out(out_dir, opt.force);
  PackageReport rep;
  rep.dir = out.dir();
  const std::string te_from = opt.text_encoder.empty() ? "the base's text encoder" : "text encoder " + opt.text_encoder;
  const std::string what = fmt::format("DiT {}, VAE {}, {}, base package {}", opt.dit, opt.vae, te_from, base.dir);
  const std::map<std::string, std::string> meta = {{"format", "pt"},
                                                   {"sanastream", "assembled by sanastream assemble-package: " + what}};
  nlohmann::ordered_json m;
  m["format_version"] = kPackageFormatVersion;
  m["name"] = opt.name.empty() ? base.name : opt.name;
  m["description"] = opt.description.empty()
                         ? fmt::format("Made by `sanastream assemble-package` from trained parts ({}; {}).", what,
                                       dtype_label(opt.dtype))
                         : opt.description;
  m["random_weights"] = false;

  const std::string variant = model::variant_name(dc.variant);
  const std::string dit_file = "dit/" + variant + ".safetensors";
  rep.dit_parameters = out.tensors(dit_file, cast_floating(dit, opt.dtype), meta);
  nlohmann::ordered_json d;
  d["weights"] = dit_file;
  if (!base.dit.config.empty()) {
    out.file("dit/config.json", read_text_file(base.dit.config));
    d["config"] = "dit/config.json";
  }
  d["variant"] = variant;
  m["dit"] = d;
  check_interrupt();

  out.file("vae/config.json", read_text_file(vae_src.config_path));
  rep.vae_parameters = out.tensors("vae/diffusion_pytorch_model.safetensors", cast_floating(vae, opt.dtype), meta);
  m["vae"] = {{"path", "vae"}, {"decoder", vae_cfg.decoder_causal ? "causal" : "chunk_tile"}};
  check_interrupt();

  out.file("text_encoder/config.json", read_text_file(base.text_encoder.path + "/config.json"));
  rep.text_encoder_parameters = out.tensors("text_encoder/model.safetensors", cast_floating(te, opt.dtype), meta);
  out.file("text_encoder/tokenizer.model", read_text_file(base.text_encoder.path + "/tokenizer.model"));
  m["text_encoder"] = {{"path", "text_encoder"}};
  m["fps"] = base.fps;
  m["resolutions"] = base.resolutions;
  if (bidirectional) m["max_frames"] = base.max_frames;
  rep.bytes = out.finish(m);
  return rep;
}

}  // namespace sanastream::pipeline
