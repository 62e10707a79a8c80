#include "model/dit_config.h"

#include <algorithm>
#include <set>

#include "core/compare.h"
#include "core/error.h"
#include "core/fs.h"

namespace sanastream::model {

using nlohmann::json;

const char* variant_name(DitVariant v) { return v == DitVariant::kStreaming ? "streaming" : "bidirectional"; }

bool DitConfig::is_softmax(int64_t block) const {
  return std::find(softmax_layers.begin(), softmax_layers.end(), block) != softmax_layers.end();
}

std::vector<int64_t> softmax_layer_indices(int64_t depth, double ratio) {
  if (ratio == 0) return {};
  const int64_t n = std::max<int64_t>(1, static_cast<int64_t>(depth * ratio));
  const double step = static_cast<double>(depth) / n;
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(static_cast<int64_t>((i + 1) * step) - 1);
  return out;
}

bool looks_like_dit(const io::TensorMap& w) {
  return w.count("x_embedder.proj.weight") && w.count("final_layer.linear.weight");
}

namespace {
const at::Tensor& need(const io::TensorMap& w, const std::string& key) {
  auto it = w.find(key);
  SS_CHECK(it != w.end(), "DiT weights: missing tensor '{}'", key);
  return it->second;
}

std::optional<int64_t> opt_int(const json& j, const char* key) {
  if (j.contains(key) && j[key].is_number_integer()) return j[key].get<int64_t>();
  return std::nullopt;
}
}  // namespace

json load_model_config_overrides(const std::string& path) {
  json j = json::parse(read_text_file(path), nullptr, false);
  SS_CHECK(j.is_object(), "{}: expected a JSON object", path);
  json out = json::object();
  for (const char* section : {"model_kwargs", "model"})
    if (j.contains(section) && j[section].is_object())
      for (auto it = j[section].begin(); it != j[section].end(); ++it) out[it.key()] = it.value();
  if (out.empty()) out = j;  // a file of bare override keys
  return out;
}

DitConfig detect_dit_config(const io::TensorMap& w, const json& ov) {
  DitConfig c;
  SS_CHECK(looks_like_dit(w), "not DiT weights (expected x_embedder.proj.weight and final_layer.linear.weight)");
  const at::Tensor& xe = need(w, "x_embedder.proj.weight");
  SS_CHECK(xe.dim() == 5 && xe.size(2) == 1 && xe.size(3) == xe.size(4),
           "x_embedder.proj.weight: expected a 1 x p x p patch embedding [C, Cin, 1, p, p], got {}",
           shape_str(xe.sizes()));
  c.hidden = xe.size(0);
  c.patch = xe.size(3);
  if (auto v = opt_int(ov, "patch_size"))
    SS_CHECK(*v == c.patch, "config: patch_size {} but the weights embed {}x{} patches", *v, c.patch, c.patch);
  const at::Tensor& fl = need(w, "final_layer.linear.weight");
  const int64_t pp = c.patch * c.patch;
  SS_CHECK(fl.dim() == 2 && fl.size(0) % pp == 0,
           "final_layer.linear.weight: expected [{} x latent channels, C] for {}x{} patches, got {}", pp, c.patch,
           c.patch, shape_str(fl.sizes()));
  c.latent_channels = fl.size(0) / pp;
  c.source_channels = xe.size(1) - c.latent_channels;
  SS_CHECK(c.source_channels >= 0, "x_embedder takes {} channels but the model outputs {}", xe.size(1),
           c.latent_channels);
  if (auto v = opt_int(ov, "additional_inchannels")) {
    SS_CHECK(*v == c.source_channels, "config: additional_inchannels {} disagrees with the weights ({})", *v,
             c.source_channels);
  }

  std::set<int64_t> blocks;
  for (const auto& [k, _] : w) {
    if (k.rfind("blocks.", 0) != 0) continue;
    const size_t dot = k.find('.', 7);
    blocks.insert(std::stoll(k.substr(7, dot - 7)));
  }
  SS_CHECK(!blocks.empty(), "DiT weights: no blocks.N.* tensors");
  c.depth = *blocks.rbegin() + 1;
  SS_CHECK(static_cast<int64_t>(blocks.size()) == c.depth, "DiT weights: block indices are not contiguous 0..{}",
           c.depth - 1);
  if (auto v = opt_int(ov, "depth")) SS_CHECK(*v == c.depth, "config: depth {} but the weights hold {} blocks", *v, c.depth);
  if (auto v = opt_int(ov, "hidden_size"))
    SS_CHECK(*v == c.hidden, "config: hidden_size {} but the weights have width {}", *v, c.hidden);

  int64_t head_dim = opt_int(ov, "linear_head_dim").value_or(112);
  if (auto v = opt_int(ov, "num_heads")) {
    c.heads = *v;
  } else {
    SS_CHECK(head_dim > 0 && c.hidden % head_dim == 0,
             "cannot derive the head count: width {} is not a multiple of the head dim {} (give --model-config)",
             c.hidden, head_dim);
    c.heads = c.hidden / head_dim;
  }
  SS_CHECK(c.heads > 0 && c.hidden % c.heads == 0, "width {} does not divide into {} heads", c.hidden, c.heads);
  c.head_dim = c.hidden / c.heads;
  c.cross_heads = c.heads;
  SS_CHECK(c.head_dim % 2 == 0 && c.head_dim >= 6, "head dim {} cannot carry 3-D RoPE", c.head_dim);
  c.rope_h = c.rope_w = 2 * (c.head_dim / 6);
  c.rope_t = c.head_dim - c.rope_h - c.rope_w;

  c.ffn_hidden = need(w, "blocks.0.mlp.point_conv.conv.weight").size(1);
  c.t_kernel = need(w, "blocks.0.mlp.t_conv.weight").size(2);
  const at::Tensor& fc1 = need(w, "y_embedder.y_proj.fc1.weight");
  c.caption_channels = fc1.size(1);
  auto ye = w.find("y_embedder.y_embedding");
  c.caption_length = ye != w.end() ? ye->second.size(0) : opt_int(ov, "model_max_length").value_or(300);
  c.freq_dim = need(w, "t_embedder.mlp.0.weight").size(1);

  for (int64_t b = 0; b < c.depth; ++b)
    if (!w.count(fmt::format("blocks.{}.attn.A_log", b))) c.softmax_layers.push_back(b);
  if (ov.contains("softmax_layer_indices") && ov["softmax_layer_indices"].is_array()) {
    auto given = ov["softmax_layer_indices"].get<std::vector<int64_t>>();
    SS_CHECK(given == c.softmax_layers, "config: softmax_layer_indices disagree with the weights (blocks without attn.A_log)");
  }
  c.variant = DitVariant::kStreaming;
  if (!c.softmax_layers.empty()) {
    const at::Tensor& q = need(w, fmt::format("blocks.{}.attn.q.weight", c.softmax_layers[0]));
    c.variant = q.dim() == 3 ? DitVariant::kStreaming : DitVariant::kBidirectional;
  }
  if (ov.contains("pos_embed_type") && ov["pos_embed_type"].is_string()) {
    const std::string pe = ov["pos_embed_type"];
    if (pe == "wan_rope") c.variant = DitVariant::kBidirectional;
    if (pe == "casual_wan_rope") c.variant = DitVariant::kStreaming;
  }
  validate_dit_weights(c, w);
  return c;
}

void validate_dit_weights(const DitConfig& c, const io::TensorMap& w) {
  const int64_t C = c.hidden, F = c.ffn_hidden, H = c.heads;
  auto expect = [&](const std::string& key, std::vector<int64_t> shape) {
    const at::Tensor& t = need(w, key);
    SS_CHECK(t.sizes().vec() == shape, "DiT weights: '{}' expected shape {}, got {}", key, shape_str(shape),
             shape_str(t.sizes()));
  };
  const int64_t p = c.patch;
  expect("x_embedder.proj.weight", {C, c.latent_channels + c.source_channels, 1, p, p});
  expect("x_embedder.proj.bias", {C});
  expect("t_embedder.mlp.0.weight", {C, c.freq_dim});
  expect("t_embedder.mlp.0.bias", {C});
  expect("t_embedder.mlp.2.weight", {C, C});
  expect("t_embedder.mlp.2.bias", {C});
  expect("t_block.1.weight", {6 * C, C});
  expect("t_block.1.bias", {6 * C});
  expect("y_embedder.y_proj.fc1.weight", {C, c.caption_channels});
  expect("y_embedder.y_proj.fc1.bias", {C});
  expect("y_embedder.y_proj.fc2.weight", {C, C});
  expect("y_embedder.y_proj.fc2.bias", {C});
  expect("attention_y_norm.weight", {C});
  expect("final_layer.scale_shift_table", {2, C});
  expect("final_layer.linear.weight", {p * p * c.latent_channels, C});
  expect("final_layer.linear.bias", {p * p * c.latent_channels});
  for (int64_t b = 0; b < c.depth; ++b) {
    const std::string pre = fmt::format("blocks.{}.", b);
    expect(pre + "scale_shift_table", {6, C});
    expect(pre + "cross_attn.q_linear.weight", {C, C});
    expect(pre + "cross_attn.q_linear.bias", {C});
    expect(pre + "cross_attn.kv_linear.weight", {2 * C, C});
    expect(pre + "cross_attn.kv_linear.bias", {2 * C});
    expect(pre + "cross_attn.proj.weight", {C, C});
    expect(pre + "cross_attn.proj.bias", {C});
    expect(pre + "cross_attn.q_norm.weight", {C});
    expect(pre + "cross_attn.k_norm.weight", {C});
    expect(pre + "mlp.inverted_conv.conv.weight", {2 * F, C, 1, 1});
    expect(pre + "mlp.inverted_conv.conv.bias", {2 * F});
    expect(pre + "mlp.depth_conv.conv.weight", {2 * F, 1, 3, 3});
    expect(pre + "mlp.depth_conv.conv.bias", {2 * F});
    expect(pre + "mlp.point_conv.conv.weight", {C, F, 1, 1});
    expect(pre + "mlp.t_conv.weight", {C, C, c.t_kernel, 1});
    expect(pre + "attn.q_norm.weight", {C});
    expect(pre + "attn.k_norm.weight", {C});
    expect(pre + "attn.v.weight", {C, C});
    expect(pre + "attn.output_gate.weight", {C, C});
    expect(pre + "attn.output_gate.bias", {C});
    expect(pre + "attn.proj.weight", {C, C});
    expect(pre + "attn.proj.bias", {C});
    if (c.is_softmax(b)) {
      const at::Tensor& q = need(w, pre + "attn.q.weight");
      SS_CHECK((q.dim() == 3 && q.size(0) == C && q.size(1) == C && q.size(2) % 2 == 1) ||
                   (q.dim() == 2 && q.size(0) == C && q.size(1) == C),
               "DiT weights: '{}' expected [C, C] or [C, C, odd k] with C = {}, got {}", pre + "attn.q.weight", C,
               shape_str(q.sizes()));
      expect(pre + "attn.k.weight", q.sizes().vec());
    } else {
      expect(pre + "attn.q.weight", {C, C, 1});
      expect(pre + "attn.k.weight", {C, C, 1});
      expect(pre + "attn.A_log", {H});
      expect(pre + "attn.dt_bias", {H});
      expect(pre + "attn.beta_proj.weight", {H, C});
      expect(pre + "attn.beta_proj.bias", {H});
      expect(pre + "attn.gate_proj.weight", {H, C});
      expect(pre + "attn.gate_proj.bias", {H});
    }
  }
}

json DitConfig::to_json() const {
  return {{"kind", "dit"},          {"variant", variant_name(variant)}, {"depth", depth},
          {"hidden", hidden},       {"heads", heads},                   {"head_dim", head_dim},
          {"ffn_hidden", ffn_hidden}, {"patch", patch}, {"latent_channels", latent_channels}, {"source_channels", source_channels},
          {"caption_channels", caption_channels}, {"caption_length", caption_length},
          {"softmax_layers", softmax_layers}, {"rope_thw", {rope_t, rope_h, rope_w}}};
}

int64_t DitConfig::tokens_along(int64_t latent_extent, const char* axis) const {
  SS_CHECK(latent_extent > 0 && latent_extent % patch == 0,
           "latent {} {}: not a positive multiple of the DiT's {}x{} patch", axis, latent_extent, patch, patch);
  return latent_extent / patch;
}

std::string DitConfig::summary() const {
  std::string sm;
  for (auto i : softmax_layers) sm += fmt::format("{}{}", sm.empty() ? "" : ",", i);
  return fmt::format(
      "hybrid DiT ({}), depth {}, width {}, {} heads x {}, FFN {}, softmax blocks [{}], caption {}x{}{}",
      variant_name(variant), depth, hidden, heads, head_dim, ffn_hidden, sm, caption_length, caption_channels,
      patch > 1 ? fmt::format(", {}x{} patches", patch, patch) : "");
}

}  // namespace sanastream::model
