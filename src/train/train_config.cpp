#include "train/train_config.h"

#include <set>

#include "core/error.h"
#include "core/fs.h"
#include "train/edit_families.h"

namespace sanastream::train {

using json = nlohmann::json;

namespace {

// Strict reading of one JSON object: every read key is remembered, finish() rejects the others.
class ObjectReader {
 public:
  ObjectReader(const json& j, std::string file, std::string prefix)
      : j_(j), file_(std::move(file)), prefix_(std::move(prefix)) {
    SS_CHECK(j_.is_object(), "{}: {}: expected an object, got {}", file_, prefix_.empty() ? "top level" : where(""),
             j_.dump());
  }

  bool has(const std::string& key) const { return j_.contains(key); }

  void number(const std::string& key, double& out, double lo, double hi, const char* range) {
    if (!take(key)) return;
    const json& v = j_.at(key);
    SS_CHECK(v.is_number() && v.get<double>() >= lo && v.get<double>() <= hi, "{}: {}: expected a number {}, got {}",
             file_, where(key), range, v.dump());
    out = v.get<double>();
  }
  void integer(const std::string& key, int64_t& out, int64_t lo, const char* range) {
    if (!take(key)) return;
    const json& v = j_.at(key);
    SS_CHECK(v.is_number_integer() && v.get<int64_t>() >= lo, "{}: {}: expected an integer {}, got {}", file_,
             where(key), range, v.dump());
    out = v.get<int64_t>();
  }
  void boolean(const std::string& key, bool& out) {
    if (!take(key)) return;
    const json& v = j_.at(key);
    SS_CHECK(v.is_boolean(), "{}: {}: expected true or false, got {}", file_, where(key), v.dump());
    out = v.get<bool>();
  }
  void string(const std::string& key, std::string& out, const std::set<std::string>& allowed = {}) {
    if (!take(key)) return;
    const json& v = j_.at(key);
    SS_CHECK(v.is_string(), "{}: {}: expected a string, got {}", file_, where(key), v.dump());
    out = v.get<std::string>();
    if (!allowed.empty()) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : " or ") + a;
      SS_CHECK(allowed.count(out), "{}: {}: expected {}, got '{}'", file_, where(key), list, out);
    }
  }
  // A file or directory path, relative to the config's directory unless absolute.
  void path(const std::string& key, std::string& out, const std::string& base) {
    std::string s;
    string(key, s);
    if (s.empty()) return;
    out = s[0] == '/' || base.empty() ? s : base + "/" + s;
  }
  void strings(const std::string& key, std::vector<std::string>& out) {
    if (!take(key)) return;
    const json& v = j_.at(key);
    bool ok = v.is_array();
    for (const auto& e : v) ok = ok && e.is_string();
    SS_CHECK(ok, "{}: {}: expected a list of strings, got {}", file_, where(key), v.dump());
    out = v.get<std::vector<std::string>>();
  }
  // The value of `key` as it is (parsed elsewhere).
  const json& raw(const std::string& key) {
    take(key);
    return j_.at(key);
  }
  ObjectReader child(const std::string& key) {
    take(key);
    return ObjectReader(j_.at(key), file_, where(key));
  }
  void finish() const {
    for (const auto& [k, _] : j_.items()) SS_CHECK(used_.count(k), "{}: {}: unknown key", file_, where(k));
  }

 private:
  bool take(const std::string& key) {
    used_.insert(key);
    return j_.contains(key) && !j_.at(key).is_null();
  }
  std::string where(const std::string& key) const {
    if (key.empty()) return prefix_;
    return prefix_.empty() ? key : prefix_ + "." + key;
  }
  const json& j_;
  std::string file_, prefix_;
  std::set<std::string> used_;
};

constexpr double kInf = 1e300;

void read_dit(ObjectReader r, DitInit& d, const std::string& base, const std::string& file) {
  r.path("init", d.init, base);
  if (r.has("random")) {
    ObjectReader s = r.child("random");
    model::DitShape shape;
    std::string variant = "streaming";
    s.integer("depth", shape.depth, 1, ">= 1");
    s.integer("hidden", shape.hidden, 6, ">= 6");
    int64_t heads = 0;
    s.integer("heads", heads, 1, ">= 1 (default: width / 112)");
    s.integer("ffn_hidden", shape.ffn_hidden, 1, ">= 1");
    s.integer("latent_channels", shape.latent_channels, 1, ">= 1");
    s.integer("source_channels", shape.source_channels, 1, ">= 1");
    s.integer("caption_channels", shape.caption_channels, 1, ">= 1");
    s.integer("caption_length", shape.caption_length, 1, ">= 1");
    s.integer("patch", shape.patch, 1, ">= 1");
    s.number("softmax_ratio", shape.softmax_ratio, 0, 1, "in [0, 1]");
    s.string("variant", variant, {"streaming", "bidirectional"});
    s.finish();
    shape.variant = variant == "streaming" ? model::DitVariant::kStreaming : model::DitVariant::kBidirectional;
    shape.heads = heads ? heads : shape.hidden % 112 == 0 ? shape.hidden / 112 : 1;
    SS_CHECK(shape.hidden % shape.heads == 0 && (shape.hidden / shape.heads) % 2 == 0 && shape.hidden / shape.heads >= 6,
             "{}: dit.random: expected a width that splits into {} heads of an even dim >= 6, got {}", file,
             shape.heads, shape.hidden);
    d.random = shape;
  }
  int64_t seed = 0;
  r.integer("seed", seed, 0, ">= 0");
  d.seed = static_cast<uint64_t>(seed);
  r.strings("trainable", d.trainable);
  r.finish();
  SS_CHECK(d.init.empty() != !d.random.has_value(),
           "{}: dit: expected exactly one of init (weights) and random, got {}", file,
           d.init.empty() ? "neither" : "both");
}

void read_vae(ObjectReader r, VaeTrainConfig& v, const std::string& base, const std::string& file) {
  r.boolean("enabled", v.enabled);
  r.path("init", v.init, base);
  if (r.has("random")) {
    const json& structure = r.raw("random");
    try {
      v.random = model::parse_ltx2_vae_config(structure);
    } catch (const Error& e) {
      SS_FAIL("{}: vae.random: {}", file, e.message());
    }
  }
  int64_t seed = 0;
  r.integer("seed", seed, 0, ">= 0");
  v.seed = static_cast<uint64_t>(seed);
  r.strings("trainable", v.trainable);
  if (r.has("losses")) {
    ObjectReader o = r.child("losses");
    o.number("charbonnier", v.losses.charbonnier, 0, kInf, ">= 0");
    o.number("charbonnier_eps", v.losses.charbonnier_eps, 1e-12, kInf, "> 0");
    o.number("ssim", v.losses.ssim, 0, kInf, ">= 0");
    o.number("haar", v.losses.haar, 0, kInf, ">= 0");
    o.finish();
  }
  if (r.has("teacher")) {
    ObjectReader o = r.child("teacher");
    o.path("init", v.teacher, base);
    v.losses.teacher = 1.0;
    o.number("weight", v.losses.teacher, 0, kInf, ">= 0");
    o.finish();
    SS_CHECK(!v.teacher.empty(), "{}: vae.teacher.init: expected the teacher's package or VAE directory, got nothing",
             file);
  }
  r.finish();
  SS_CHECK(!v.enabled || v.init.empty() != !v.random.has_value(),
           "{}: vae: expected exactly one of init (weights) and random, got {}", file,
           v.init.empty() ? "neither" : "both");
}

}  // namespace

TrainConfig parse_train_config(const json& j, const std::string& path) {
  TrainConfig c;
  c.path = path;
  const size_t slash = path.rfind('/');
  const std::string base = slash == std::string::npos ? "." : path.substr(0, slash);
  ObjectReader r(j, path, "");
  SS_CHECK(r.has("format_version"), "{}: format_version: required key missing", path);
  int64_t version = 0;
  r.integer("format_version", version, 1, "1");
  SS_CHECK(version == 1, "{}: format_version: expected 1, got {}", path, version);
  r.path("output", c.output, base);
  SS_CHECK(!c.output.empty(), "{}: output: expected the run directory, got nothing", path);
  r.string("device", c.device);
  r.string("dtype", c.dtype, {"fp32", "bf16"});
  int64_t seed = 0;
  r.integer("seed", seed, 0, ">= 0");
  c.seed = static_cast<uint64_t>(seed);
  r.integer("max_steps", c.max_steps, 1, ">= 1");
  r.integer("checkpoint_every", c.checkpoint_every, 0, ">= 0");
  r.integer("keep_checkpoints", c.keep_checkpoints, 1, ">= 1");
  r.number("time_limit_s", c.time_limit_s, 0, kInf, ">= 0");
  if (r.has("vae")) read_vae(r.child("vae"), c.vae, base, path);
  if (c.vae.enabled) {
    for (const char* k : {"dit", "flow_matching", "rollout", "crr"})
      SS_CHECK(!r.has(k), "{}: {}: not used in the VAE mode (vae.enabled)", path, k);
  } else {
    SS_CHECK(r.has("dit"), "{}: dit: required key missing", path);
    read_dit(r.child("dit"), c.dit, base, path);
  }
  if (r.has("text_encoder")) {
    SS_CHECK(!c.vae.enabled, "{}: text_encoder: not used in the VAE mode (vae.enabled)", path);
    ObjectReader o = r.child("text_encoder");
    o.boolean("trainable", c.text_encoder.trainable);
    o.path("init", c.text_encoder.init, base);
    o.strings("trainable_keys", c.text_encoder.trainable_keys);
    o.finish();
  }
  if (r.has("optim")) {
    ObjectReader o = r.child("optim");
    o.number("lr", c.optim.lr, 0, kInf, ">= 0");
    o.number("beta1", c.optim.beta1, 0, 0.999999, "in [0, 1)");
    o.number("beta2", c.optim.beta2, 0, 0.999999999, "in [0, 1)");
    o.number("eps", c.optim.eps, 1e-30, kInf, "> 0");
    o.number("weight_decay", c.optim.weight_decay, 0, kInf, ">= 0");
    o.integer("warmup_steps", c.optim.warmup_steps, 0, ">= 0");
    o.number("grad_clip", c.optim.grad_clip, 0, kInf, ">= 0 (0 = off)");
    o.finish();
  }
  if (r.has("ema")) {
    ObjectReader o = r.child("ema");
    o.boolean("enabled", c.ema.enabled);
    o.number("decay", c.ema.decay, 0, 1, "in [0, 1]");
    o.finish();
  }
  if (r.has("flow_matching")) {
    ObjectReader o = r.child("flow_matching");
    o.boolean("enabled", c.flow_matching.enabled);
    o.number("weight", c.flow_matching.weight, 0, kInf, ">= 0");
    o.number("logit_mean", c.flow_matching.logit_mean, -kInf, kInf, "");
    o.number("logit_std", c.flow_matching.logit_std, 0, kInf, ">= 0");
    o.number("flow_shift", c.flow_matching.flow_shift, 1e-6, kInf, "> 0");
    o.number("text_dropout", c.flow_matching.text_dropout, 0, 1, "in [0, 1]");
    o.boolean("chunked", c.flow_matching.chunked);
    o.integer("sink_gap", c.flow_matching.sink_gap, 0, ">= 0");
    SS_CHECK(c.flow_matching.sink_gap <= 1000, "{}: flow_matching.sink_gap: expected at most 1000, got {}", path,
             c.flow_matching.sink_gap);
    SS_CHECK(c.flow_matching.sink_gap == 0 || c.flow_matching.chunked,
             "{}: flow_matching.sink_gap: needs chunked: true", path);
    o.finish();
  }
  if (r.has("rollout")) {
    ObjectReader o = r.child("rollout");
    o.boolean("enabled", c.rollout.enabled);
    o.number("weight", c.rollout.weight, 0, kInf, ">= 0");
    int64_t first = c.rollout.first_chunk, steps = c.rollout.steps;
    o.integer("first_chunk", first, 3, "of 3, 4 or 5");
    SS_CHECK(first <= 5, "{}: rollout.first_chunk: expected 3, 4 or 5, got {}", path, first);
    o.integer("steps", steps, 1, ">= 1");
    c.rollout.first_chunk = static_cast<int>(first);
    c.rollout.steps = static_cast<int>(steps);
    o.finish();
  }
  if (r.has("crr")) {
    ObjectReader o = r.child("crr");
    o.boolean("enabled", c.crr.enabled);
    o.number("weight", c.crr.weight, 0, kInf, ">= 0");
    o.finish();
  }
  SS_CHECK(r.has("data"), "{}: data: required key missing", path);
  {
    ObjectReader o = r.child("data");
    o.path("cache", c.data.cache, base);
    o.path("vae", c.data.vae, base);
    o.integer("width", c.data.width, 0, ">= 0");
    o.integer("height", c.data.height, 0, ">= 0");
    o.number("crop_min", c.data.crop_min, 1e-3, 1, "in (0, 1]");
    o.integer("batch", c.data.batch, 1, ">= 1");
    o.strings("edits", c.data.edits);
    o.path("long_cache", c.data.long_cache, base);
    o.finish();
    for (const std::string& e : c.data.edits) {
      bool known = false;
      for (const EditFamily& f : edit_families()) known = known || f.name == e;
      SS_CHECK(known, "{}: data.edits: unknown edit family '{}' (train/edit_families.h lists them)", path, e);
    }
    SS_CHECK(c.data.edits.empty() || (!c.vae.enabled && c.text_encoder.trainable && !c.data.vae.empty()),
             "{}: data.edits: expected the DiT mode with data.vae (decodes and encodes the clips) and "
             "text_encoder.trainable (encodes the families' prompts)",
             path);
    SS_CHECK(c.data.long_cache.empty() || (c.crr.enabled && !c.data.edits.empty()),
             "{}: data.long_cache: expected crr.enabled and data.edits (its clips have no target or prompts)", path);
    SS_CHECK(c.data.edits.empty() || (!c.rollout.enabled && (!c.crr.enabled || !c.data.long_cache.empty())),
             "{}: data.edits: its batch is one sample of data.batch clips, for flow matching; expected rollout off "
             "and CRR only on data.long_cache",
             path);
    SS_CHECK(!c.data.cache.empty(), "{}: data.cache: expected a data cache directory, got nothing", path);
    SS_CHECK(!c.vae.enabled || c.data.vae.empty(), "{}: data.vae: not used in the VAE mode (the trained VAE encodes)",
             path);
  }
  r.finish();
  SS_CHECK(c.vae.enabled || c.flow_matching.enabled || c.rollout.enabled || c.crr.enabled,
           "{}: expected at least one objective enabled (flow_matching, rollout, crr), got none", path);
  return c;
}

TrainConfig load_train_config(const std::string& path) {
  SS_CHECK(path_exists(path), "training config '{}' does not exist", path);
  json j;
  try {
    j = json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    SS_FAIL("{}: not valid JSON: {}", path, e.what());
  }
  return parse_train_config(j, path);
}

json TrainConfig::to_json() const {
  json j = {
      {"output", output},
      {"device", device},
      {"dtype", dtype},
      {"seed", seed},
      {"max_steps", max_steps},
      {"checkpoint_every", checkpoint_every},
      {"keep_checkpoints", keep_checkpoints},
      {"time_limit_s", time_limit_s},
      {"dit",
       {{"init", dit.init}, {"random", dit.random.has_value()}, {"seed", dit.seed}, {"trainable", dit.trainable}}},
      {"text_encoder",
       {{"trainable", text_encoder.trainable},
        {"init", text_encoder.init},
        {"trainable_keys", text_encoder.trainable_keys}}},
      {"optim",
       {{"lr", optim.lr},
        {"beta1", optim.beta1},
        {"beta2", optim.beta2},
        {"eps", optim.eps},
        {"weight_decay", optim.weight_decay},
        {"warmup_steps", optim.warmup_steps},
        {"grad_clip", optim.grad_clip}}},
      {"ema", {{"enabled", ema.enabled}, {"decay", ema.decay}}},
      {"flow_matching",
       {{"enabled", flow_matching.enabled},
        {"weight", flow_matching.weight},
        {"logit_mean", flow_matching.logit_mean},
        {"logit_std", flow_matching.logit_std},
        {"flow_shift", flow_matching.flow_shift},
        {"text_dropout", flow_matching.text_dropout},
        {"chunked", flow_matching.chunked},
        {"sink_gap", flow_matching.sink_gap}}},
      {"rollout",
       {{"enabled", rollout.enabled},
        {"weight", rollout.weight},
        {"first_chunk", rollout.first_chunk},
        {"steps", rollout.steps}}},
      {"crr", {{"enabled", crr.enabled}, {"weight", crr.weight}}},
      {"vae",
       {{"enabled", vae.enabled},
        {"init", vae.init},
        {"random", vae.random.has_value()},
        {"seed", vae.seed},
        {"trainable", vae.trainable},
        {"losses",
         {{"charbonnier", vae.losses.charbonnier},
          {"charbonnier_eps", vae.losses.charbonnier_eps},
          {"ssim", vae.losses.ssim},
          {"haar", vae.losses.haar}}},
        {"teacher", {{"init", vae.teacher}, {"weight", vae.losses.teacher}}}}},
      {"data",
       {{"cache", data.cache},
        {"vae", data.vae},
        {"width", data.width},
        {"height", data.height},
        {"crop_min", data.crop_min},
        {"batch", data.batch},
        {"edits", data.edits},
        {"long_cache", data.long_cache}}}};
  return j;
}

}  // namespace sanastream::train
