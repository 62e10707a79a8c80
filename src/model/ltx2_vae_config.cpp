#include "model/ltx2_vae_config.h"

#include <algorithm>
#include <set>

#include "core/error.h"
#include "core/fs.h"

namespace sanastream::model {

using nlohmann::json;

const char* resample_name(VaeResample r) {
  switch (r) {
    case VaeResample::kNone: return "none";
    case VaeResample::kConv: return "conv";
    case VaeResample::kSpatial: return "spatial";
    case VaeResample::kTemporal: return "temporal";
    case VaeResample::kSpatioTemporal: return "spatiotemporal";
  }
  return "?";
}

std::array<int64_t, 3> resample_stride(VaeResample r) {
  switch (r) {
    case VaeResample::kNone: return {1, 1, 1};
    case VaeResample::kSpatial: return {1, 2, 2};
    case VaeResample::kTemporal: return {2, 1, 1};
    case VaeResample::kConv:
    case VaeResample::kSpatioTemporal: return {2, 2, 2};
  }
  return {1, 1, 1};
}

const char* padding_name(VaePadding p) {
  switch (p) {
    case VaePadding::kZeros: return "zeros";
    case VaePadding::kReflect: return "reflect";
    case VaePadding::kReplicate: return "replicate";
    case VaePadding::kCircular: return "circular";
  }
  return "?";
}

namespace {

VaeResample parse_resample(const json& v, const std::string& key, bool decoder) {
  SS_CHECK(v.is_string(), "VAE config: {} entries: expected strings, got {}", key, v.dump());
  const std::string s = v.get<std::string>();
  if (s == "spatial") return VaeResample::kSpatial;
  if (s == "temporal") return VaeResample::kTemporal;
  if (s == "spatiotemporal") return VaeResample::kSpatioTemporal;
  if (s == "conv" && !decoder) return VaeResample::kConv;
  SS_FAIL("VAE config: {}: expected {}spatial, temporal or spatiotemporal, got '{}'", key, decoder ? "" : "conv, ",
          s);
}

VaePadding parse_padding(const json& v, const std::string& key) {
  SS_CHECK(v.is_string(), "VAE config: {}: expected a string, got {}", key, v.dump());
  const std::string s = v.get<std::string>();
  if (s == "zeros") return VaePadding::kZeros;
  if (s == "reflect") return VaePadding::kReflect;
  if (s == "replicate") return VaePadding::kReplicate;
  if (s == "circular") return VaePadding::kCircular;
  SS_FAIL("VAE config: {}: expected zeros, reflect, replicate or circular, got '{}'", key, s);
}

std::vector<int64_t> int_list(const json& v, const std::string& key) {
  SS_CHECK(v.is_array() && !v.empty(), "VAE config: {}: expected a non-empty list of integers, got {}", key, v.dump());
  std::vector<int64_t> out;
  for (const auto& e : v) {
    SS_CHECK(e.is_number_integer() && e.get<int64_t>() > 0, "VAE config: {}: expected positive integers, got {}",
             key, v.dump());
    out.push_back(e.get<int64_t>());
  }
  return out;
}

// A bool, or a list of bools (diffusers accepts both for these keys).
std::vector<bool> bool_list(const json& v, const std::string& key, size_t n) {
  if (v.is_boolean()) return std::vector<bool>(n, v.get<bool>());
  SS_CHECK(v.is_array(), "VAE config: {}: expected a bool or a list of bools, got {}", key, v.dump());
  std::vector<bool> out;
  for (const auto& e : v) {
    SS_CHECK(e.is_boolean(), "VAE config: {}: expected bools, got {}", key, v.dump());
    out.push_back(e.get<bool>());
  }
  return out;
}

void check_len(size_t got, size_t want, const std::string& key, const std::string& why) {
  SS_CHECK(got == want, "VAE config: {} has {} entries, expected {} ({})", key, got, want, why);
}

int64_t positive_int(const json& v, const std::string& key) {
  SS_CHECK(v.is_number_integer() && v.get<int64_t>() > 0, "VAE config: {}: expected a positive integer, got {}", key,
           v.dump());
  return v.get<int64_t>();
}

bool boolean(const json& v, const std::string& key) {
  SS_CHECK(v.is_boolean(), "VAE config: {}: expected true or false, got {}", key, v.dump());
  return v.get<bool>();
}

double number(const json& v, const std::string& key) {
  SS_CHECK(v.is_number(), "VAE config: {}: expected a number, got {}", key, v.dump());
  return v.get<double>();
}

}  // namespace

int64_t Ltx2VaeConfig::temporal_ratio() const {
  int64_t r = patch_size_t;
  for (auto d : enc_down) r *= resample_stride(d)[0];
  return r;
}

int64_t Ltx2VaeConfig::spatial_ratio() const {
  int64_t r = patch_size;
  for (auto d : enc_down) r *= resample_stride(d)[1];
  return r;
}

std::vector<VaeUpBlockSpec> Ltx2VaeConfig::up_blocks() const {
  const size_t n = dec_channels.size();
  std::vector<VaeUpBlockSpec> out;
  int64_t output = dec_channels[n - 1];
  for (size_t i = 0; i < n; ++i) {  // decode order: config index n − 1 − i
    const size_t c = n - 1 - i;
    VaeUpBlockSpec b;
    b.factor = dec_factor[c];
    b.in_channels = output / b.factor;
    b.out_channels = dec_channels[c] / b.factor;
    output = b.out_channels;
    b.layers = dec_layers[c];
    b.upsample = dec_up[i];
    b.residual = dec_residual[c];
    out.push_back(b);
  }
  return out;
}

Ltx2VaeConfig parse_ltx2_vae_config(const json& j) {
  SS_CHECK(j.is_object(), "VAE config: expected a JSON object");
  Ltx2VaeConfig c;
  const std::set<std::string> ignored = {"gradient_checkpointing"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    if (!k.empty() && k[0] == '_') continue;  // _class_name, _diffusers_version, _use_default_values
    if (ignored.count(k)) continue;
    static const std::set<std::string> known = {
        "in_channels", "out_channels", "latent_channels", "block_out_channels", "down_block_types",
        "decoder_block_out_channels", "layers_per_block", "decoder_layers_per_block", "spatio_temporal_scaling",
        "decoder_spatio_temporal_scaling", "decoder_inject_noise", "downsample_type", "upsample_type",
        "decoder_upsample_type", "upsample_residual", "upsample_factor", "timestep_conditioning", "patch_size",
        "patch_size_t", "resnet_norm_eps", "scaling_factor", "encoder_causal", "decoder_causal",
        "encoder_spatial_padding_mode", "decoder_spatial_padding_mode", "spatial_compression_ratio",
        "temporal_compression_ratio"};
    SS_CHECK(known.count(k), "VAE config: key '{}' is not supported (expected AutoencoderKLLTX2Video keys)", k);
  }
  auto has = [&](const char* k) { return j.contains(k) && !j[k].is_null(); };
  if (has("in_channels")) c.in_channels = positive_int(j["in_channels"], "in_channels");
  if (has("out_channels")) c.out_channels = positive_int(j["out_channels"], "out_channels");
  if (has("latent_channels")) c.latent_channels = positive_int(j["latent_channels"], "latent_channels");
  if (has("patch_size")) c.patch_size = positive_int(j["patch_size"], "patch_size");
  if (has("patch_size_t")) c.patch_size_t = positive_int(j["patch_size_t"], "patch_size_t");
  SS_CHECK(c.patch_size_t == 1,
           "VAE config: patch_size_t {} is not supported (the diffusers layout sizes conv_in/conv_out for 1)",
           c.patch_size_t);
  if (has("resnet_norm_eps")) c.resnet_eps = number(j["resnet_norm_eps"], "resnet_norm_eps");
  if (has("scaling_factor")) c.scaling_factor = number(j["scaling_factor"], "scaling_factor");
  SS_CHECK(c.scaling_factor != 0, "VAE config: scaling_factor must not be 0");
  if (has("timestep_conditioning"))
    SS_CHECK(!boolean(j["timestep_conditioning"], "timestep_conditioning"),
             "VAE config: timestep_conditioning true is not supported (expected false: the LTX-2 video VAE decodes "
             "without a timestep)");
  if (has("encoder_causal")) c.encoder_causal = boolean(j["encoder_causal"], "encoder_causal");
  if (has("decoder_causal")) c.decoder_causal = boolean(j["decoder_causal"], "decoder_causal");
  if (has("encoder_spatial_padding_mode"))
    c.encoder_padding = parse_padding(j["encoder_spatial_padding_mode"], "encoder_spatial_padding_mode");
  if (has("decoder_spatial_padding_mode"))
    c.decoder_padding = parse_padding(j["decoder_spatial_padding_mode"], "decoder_spatial_padding_mode");

  // Encoder.
  if (has("block_out_channels")) c.enc_channels = int_list(j["block_out_channels"], "block_out_channels");
  const size_t ne = c.enc_channels.size();
  if (has("layers_per_block")) c.enc_layers = int_list(j["layers_per_block"], "layers_per_block");
  check_len(c.enc_layers.size(), ne + 1, "layers_per_block", "one per down block, then the mid block");
  if (has("down_block_types")) {
    SS_CHECK(j["down_block_types"].is_array(), "VAE config: down_block_types: expected a list");
    check_len(j["down_block_types"].size(), ne, "down_block_types", "one per block_out_channels entry");
    for (const auto& t : j["down_block_types"])
      SS_CHECK(t == "LTX2VideoDownBlock3D", "VAE config: down_block_types: only LTX2VideoDownBlock3D is supported, got {}",
               t.dump());
  }
  std::vector<bool> enc_scale(ne, true);
  if (has("spatio_temporal_scaling")) enc_scale = bool_list(j["spatio_temporal_scaling"], "spatio_temporal_scaling", ne);
  check_len(enc_scale.size(), ne, "spatio_temporal_scaling", "one per down block");
  std::vector<VaeResample> down = c.enc_down;
  if (has("downsample_type")) {
    SS_CHECK(j["downsample_type"].is_array(), "VAE config: downsample_type: expected a list");
    down.clear();
    for (const auto& v : j["downsample_type"]) down.push_back(parse_resample(v, "downsample_type", false));
  }
  check_len(down.size(), ne, "downsample_type", "one per down block");
  for (size_t i = 0; i < ne; ++i) down[i] = enc_scale[i] ? down[i] : VaeResample::kNone;
  c.enc_down = down;

  // Decoder.
  if (has("decoder_block_out_channels"))
    c.dec_channels = int_list(j["decoder_block_out_channels"], "decoder_block_out_channels");
  const size_t nd = c.dec_channels.size();
  if (has("decoder_layers_per_block"))
    c.dec_layers = int_list(j["decoder_layers_per_block"], "decoder_layers_per_block");
  check_len(c.dec_layers.size(), nd + 1, "decoder_layers_per_block", "one per up block, then the mid block");
  std::vector<bool> dec_scale(nd, true);
  if (has("decoder_spatio_temporal_scaling"))
    dec_scale = bool_list(j["decoder_spatio_temporal_scaling"], "decoder_spatio_temporal_scaling", nd);
  check_len(dec_scale.size(), nd, "decoder_spatio_temporal_scaling", "one per up block");
  if (has("decoder_inject_noise")) {
    auto noise = bool_list(j["decoder_inject_noise"], "decoder_inject_noise", nd + 1);
    check_len(noise.size(), nd + 1, "decoder_inject_noise", "one per up block and the mid block");
    SS_CHECK(std::none_of(noise.begin(), noise.end(), [](bool b) { return b; }),
             "VAE config: decoder_inject_noise true is not supported (expected all false: decoding must be "
             "deterministic)");
  }
  c.dec_residual.assign(nd, true);
  if (has("upsample_residual")) c.dec_residual = bool_list(j["upsample_residual"], "upsample_residual", nd);
  check_len(c.dec_residual.size(), nd, "upsample_residual", "one per up block");
  c.dec_factor.assign(nd, 2);
  if (has("upsample_factor")) c.dec_factor = int_list(j["upsample_factor"], "upsample_factor");
  check_len(c.dec_factor.size(), nd, "upsample_factor", "one per up block");
  // diffusers' upsample_type is in decode order; the causal class's decoder_upsample_type is in config
  // order and reversed by its constructor. null means spatiotemporal everywhere.
  std::vector<VaeResample> up(nd, VaeResample::kSpatioTemporal);
  if (has("upsample_type")) {
    SS_CHECK(j["upsample_type"].is_array(), "VAE config: upsample_type: expected a list");
    up.clear();
    for (const auto& v : j["upsample_type"]) up.push_back(parse_resample(v, "upsample_type", true));
    check_len(up.size(), nd, "upsample_type", "one per up block");
  }
  if (has("decoder_upsample_type")) {
    SS_CHECK(j["decoder_upsample_type"].is_array(), "VAE config: decoder_upsample_type: expected a list or null");
    std::vector<VaeResample> rev;
    for (const auto& v : j["decoder_upsample_type"]) rev.push_back(parse_resample(v, "decoder_upsample_type", true));
    check_len(rev.size(), nd, "decoder_upsample_type", "one per up block");
    std::reverse(rev.begin(), rev.end());
    SS_CHECK(!has("upsample_type") || rev == up,
             "VAE config: upsample_type and decoder_upsample_type name different samplers");
    up = rev;
  }
  for (size_t i = 0; i < nd; ++i) up[i] = dec_scale[nd - 1 - i] ? up[i] : VaeResample::kNone;
  c.dec_up = up;

  if (has("spatial_compression_ratio"))
    SS_CHECK(positive_int(j["spatial_compression_ratio"], "spatial_compression_ratio") == c.spatial_ratio(),
             "VAE config: spatial_compression_ratio {} disagrees with patch_size and downsample_type ({})",
             j["spatial_compression_ratio"].get<int64_t>(), c.spatial_ratio());
  if (has("temporal_compression_ratio"))
    SS_CHECK(positive_int(j["temporal_compression_ratio"], "temporal_compression_ratio") == c.temporal_ratio(),
             "VAE config: temporal_compression_ratio {} disagrees with patch_size_t and downsample_type ({})",
             j["temporal_compression_ratio"].get<int64_t>(), c.temporal_ratio());
  for (const auto& b : c.up_blocks())
    SS_CHECK(b.in_channels > 0 && b.out_channels > 0,
             "VAE config: decoder_block_out_channels are too narrow for upsample_factor");
  return c;
}

Ltx2VaeConfig load_ltx2_vae_config(const std::string& path) {
  json j = json::parse(read_text_file(path), nullptr, false);
  SS_CHECK(j.is_object(), "{}: expected a JSON object (a diffusers VAE config.json)", path);
  try {
    return parse_ltx2_vae_config(j);
  } catch (const Error& e) {
    SS_FAIL("{}: {}", path, e.message());
  }
}

json Ltx2VaeConfig::to_json() const {
  json down = json::array(), up = json::array(), scale = json::array(), dscale = json::array();
  for (auto d : enc_down) {
    down.push_back(d == VaeResample::kNone ? "spatiotemporal" : resample_name(d));
    scale.push_back(d != VaeResample::kNone);
  }
  for (auto u : dec_up) up.push_back(u == VaeResample::kNone ? "spatiotemporal" : resample_name(u));
  for (size_t i = 0; i < dec_up.size(); ++i) dscale.push_back(dec_up[dec_up.size() - 1 - i] != VaeResample::kNone);
  json residual = json::array();
  for (bool r : dec_residual) residual.push_back(r);
  return {{"_class_name", "AutoencoderKLLTX2Video"},
          {"in_channels", in_channels},
          {"out_channels", out_channels},
          {"latent_channels", latent_channels},
          {"block_out_channels", enc_channels},
          {"layers_per_block", enc_layers},
          {"spatio_temporal_scaling", scale},
          {"downsample_type", down},
          {"decoder_block_out_channels", dec_channels},
          {"decoder_layers_per_block", dec_layers},
          {"decoder_spatio_temporal_scaling", dscale},
          {"upsample_type", up},
          {"upsample_residual", residual},
          {"upsample_factor", dec_factor},
          {"patch_size", patch_size},
          {"patch_size_t", patch_size_t},
          {"resnet_norm_eps", resnet_eps},
          {"scaling_factor", scaling_factor},
          {"encoder_causal", encoder_causal},
          {"decoder_causal", decoder_causal},
          {"encoder_spatial_padding_mode", padding_name(encoder_padding)},
          {"decoder_spatial_padding_mode", padding_name(decoder_padding)},
          {"spatial_compression_ratio", spatial_ratio()},
          {"temporal_compression_ratio", temporal_ratio()}};
}

std::string Ltx2VaeConfig::summary() const {
  auto list = [](const std::vector<int64_t>& v) {
    std::string s;
    for (auto x : v) s += fmt::format("{}{}", s.empty() ? "" : ",", x);
    return s;
  };
  return fmt::format(
      "LTX-2 video VAE: latent {}, {}x{}x{} compression, encoder ({}) x ({}) {} {}-padded, decoder ({}) x ({}) {} "
      "{}-padded",
      latent_channels, temporal_ratio(), spatial_ratio(), spatial_ratio(), list(enc_channels), list(enc_layers),
      encoder_causal ? "causal" : "non-causal", padding_name(encoder_padding), list(dec_channels), list(dec_layers),
      decoder_causal ? "causal" : "non-causal", padding_name(decoder_padding));
}

}  // namespace sanastream::model
