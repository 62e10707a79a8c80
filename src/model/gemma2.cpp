#include "model/gemma2.h"

#include <cmath>
#include <limits>
#include <set>

#include "core/compare.h"
#include "core/error.h"
#include "core/fs.h"
#include "io/checkpoint.h"
#include "ops/attention.h"
#include "ops/norm.h"

namespace sanastream::model {

using nlohmann::json;

Gemma2Attention parse_gemma2_attention(const std::string& name) {
  if (name == "eager") return Gemma2Attention::kEager;
  if (name == "sdpa") return Gemma2Attention::kSdpa;
  SS_FAIL("text encoder attention: expected eager or sdpa, got '{}'", name);
}

const char* gemma2_attention_name(Gemma2Attention a) { return a == Gemma2Attention::kEager ? "eager" : "sdpa"; }

namespace {

bool has(const json& j, const char* key) { return j.contains(key) && !j[key].is_null(); }

int64_t need_int(const json& j, const char* key, const std::string& origin) {
  SS_CHECK(has(j, key) && j[key].is_number_integer(), "{}: expected an integer '{}', got {}", origin, key,
           has(j, key) ? j[key].dump() : "none");
  return j[key].get<int64_t>();
}

double number_or(const json& j, const char* key, double fallback, const std::string& origin) {
  if (!has(j, key)) return fallback;
  SS_CHECK(j[key].is_number(), "{}: expected a number '{}', got {}", origin, key, j[key].dump());
  return j[key].get<double>();
}

// The dtype's most negative finite value: transformers' additive mask for excluded keys.
double mask_value(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return std::numeric_limits<float>::lowest();
    case at::kBFloat16: return static_cast<float>(std::numeric_limits<c10::BFloat16>::lowest());
    case at::kHalf: return static_cast<float>(std::numeric_limits<c10::Half>::lowest());
    default: return std::numeric_limits<double>::lowest();
  }
}

// x: [B, H, L, D]; cos, sin: [L, D] → x·cos + rotate_half(x)·sin (halves, not interleaved pairs).
at::Tensor rotate(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  auto halves = x.chunk(2, -1);
  return x * cos + at::cat({-halves[1], halves[0]}, -1) * sin;
}

// [B, Hkv, L, D] → [B, Hkv·groups, L, D], each key/value head serving `groups` query heads.
at::Tensor repeat_kv(const at::Tensor& x, int64_t groups) {
  if (groups == 1) return x;
  const int64_t B = x.size(0), Hkv = x.size(1), L = x.size(2), D = x.size(3);
  return x.unsqueeze(2).expand({B, Hkv, groups, L, D}).reshape({B, Hkv * groups, L, D});
}

}  // namespace

Gemma2Config parse_gemma2_config(const json& j, const std::string& origin) {
  SS_CHECK(j.is_object(), "{}: expected a JSON object", origin);
  if (has(j, "model_type"))
    SS_CHECK(j["model_type"] == "gemma2", "{}: expected model_type 'gemma2', got {}", origin, j["model_type"].dump());
  Gemma2Config c;
  c.vocab_size = need_int(j, "vocab_size", origin);
  c.hidden = need_int(j, "hidden_size", origin);
  c.intermediate = need_int(j, "intermediate_size", origin);
  c.layers = need_int(j, "num_hidden_layers", origin);
  c.heads = need_int(j, "num_attention_heads", origin);
  c.kv_heads = need_int(j, "num_key_value_heads", origin);
  c.head_dim = need_int(j, "head_dim", origin);
  SS_CHECK(c.vocab_size > 0 && c.hidden > 0 && c.intermediate > 0 && c.layers > 0 && c.heads > 0 && c.kv_heads > 0,
           "{}: expected positive sizes, got vocab {}, hidden {}, intermediate {}, {} layers, {}/{} heads", origin,
           c.vocab_size, c.hidden, c.intermediate, c.layers, c.heads, c.kv_heads);
  SS_CHECK(c.heads % c.kv_heads == 0, "{}: expected num_attention_heads a multiple of num_key_value_heads, got {} and {}",
           origin, c.heads, c.kv_heads);
  SS_CHECK(c.head_dim > 0 && c.head_dim % 2 == 0, "{}: expected an even head_dim (RoPE), got {}", origin, c.head_dim);
  // transformers' Gemma2Config defaults where a key is absent or null.
  c.rms_eps = number_or(j, "rms_norm_eps", 1e-6, origin);
  c.query_pre_attn_scalar = number_or(j, "query_pre_attn_scalar", 256, origin);
  SS_CHECK(c.query_pre_attn_scalar > 0, "{}: expected query_pre_attn_scalar > 0, got {}", origin,
           c.query_pre_attn_scalar);
  c.attn_softcap = j.contains("attn_logit_softcapping") ? number_or(j, "attn_logit_softcapping", 0, origin) : 50.0;
  c.sliding_window = has(j, "sliding_window") ? need_int(j, "sliding_window", origin) : 4096;
  c.pad_id = has(j, "pad_token_id") ? need_int(j, "pad_token_id", origin) : 0;
  c.bos_id = has(j, "bos_token_id") ? need_int(j, "bos_token_id", origin) : 2;
  c.eos_id = has(j, "eos_token_id") && j["eos_token_id"].is_number_integer() ? j["eos_token_id"].get<int64_t>() : 1;

  c.rope_theta = number_or(j, "rope_theta", 10000.0, origin);
  if (has(j, "rope_parameters")) {
    const json& rp = j["rope_parameters"];
    SS_CHECK(rp.is_object() && (!has(rp, "rope_type") || rp["rope_type"] == "default"),
             "{}: expected rope_parameters with rope_type 'default', got {}", origin, rp.dump());
    c.rope_theta = number_or(rp, "rope_theta", c.rope_theta, origin);
  }
  SS_CHECK(!has(j, "rope_scaling"), "{}: rope_scaling is not supported, got {}", origin, j["rope_scaling"].dump());
  const json act = has(j, "hidden_activation") ? j["hidden_activation"]
                   : has(j, "hidden_act")      ? j["hidden_act"]
                                               : json("gelu_pytorch_tanh");
  SS_CHECK(act == "gelu_pytorch_tanh", "{}: expected hidden_activation 'gelu_pytorch_tanh', got {}", origin, act.dump());
  auto flag = [&](const char* key) { return has(j, key) && j[key] != false; };
  SS_CHECK(!flag("attention_bias"), "{}: attention_bias is not supported (Gemma-2 has none)", origin);
  SS_CHECK(!flag("use_bidirectional_attention"),
           "{}: use_bidirectional_attention is not supported (the text encoder is causal)", origin);

  if (has(j, "layer_types")) {
    const json& lt = j["layer_types"];
    SS_CHECK(lt.is_array() && static_cast<int64_t>(lt.size()) == c.layers,
             "{}: expected layer_types with {} entries, got {}", origin, c.layers, lt.dump());
    for (const auto& t : lt) {
      SS_CHECK(t == "sliding_attention" || t == "full_attention",
               "{}: expected layer_types entries 'sliding_attention' or 'full_attention', got {}", origin, t.dump());
      c.sliding.push_back(t == "sliding_attention");
    }
  } else {
    for (int64_t i = 0; i < c.layers; ++i) c.sliding.push_back(i % 2 == 0);  // even layers slide (transformers 4.x)
  }
  for (bool s : c.sliding)
    SS_CHECK(!s || c.sliding_window > 0, "{}: expected sliding_window > 0 for sliding layers, got {}", origin,
             c.sliding_window);
  return c;
}

json Gemma2Config::to_json() const {
  std::vector<std::string> types;
  for (bool s : sliding) types.push_back(s ? "sliding" : "full");
  return {{"kind", "gemma2"},         {"vocab_size", vocab_size},
          {"hidden", hidden},         {"intermediate", intermediate},
          {"layers", layers},         {"heads", heads},
          {"kv_heads", kv_heads},     {"head_dim", head_dim},
          {"sliding_window", sliding_window}, {"layer_types", types},
          {"attn_logit_softcapping", attn_softcap}, {"query_pre_attn_scalar", query_pre_attn_scalar}};
}

std::string Gemma2Config::summary() const {
  return fmt::format("Gemma-2 decoder, {} layers, width {}, {} heads ({} kv) x {}, MLP {}, vocab {}, window {}",
                     layers, hidden, heads, kv_heads, head_dim, intermediate, vocab_size, sliding_window);
}

void validate_gemma2_weights(const Gemma2Config& c, const io::TensorMap& w) {
  const std::string cfg = fmt::format("hidden_size {}, intermediate_size {}, {} heads / {} kv x head_dim {}, vocab {}",
                                      c.hidden, c.intermediate, c.heads, c.kv_heads, c.head_dim, c.vocab_size);
  std::set<int64_t> layer_ids;
  for (const auto& [k, _] : w)
    if (k.rfind("layers.", 0) == 0) layer_ids.insert(std::stoll(k.substr(7, k.find('.', 7) - 7)));
  SS_CHECK(static_cast<int64_t>(layer_ids.size()) == c.layers &&
               (layer_ids.empty() || *layer_ids.rbegin() == c.layers - 1),
           "text encoder: config.json num_hidden_layers {} but the weights hold {} layers", c.layers,
           layer_ids.size());
  std::set<std::string> expected;
  auto expect = [&](const std::string& key, std::vector<int64_t> shape) {
    expected.insert(key);
    auto it = w.find(key);
    SS_CHECK(it != w.end(), "text encoder: weights lack '{}' (config.json: {})", key, cfg);
    SS_CHECK(it->second.sizes().vec() == shape,
             "text encoder: config.json ({}) expects '{}' of shape {}, the weights have {}", cfg, key,
             shape_str(shape), shape_str(it->second.sizes()));
  };
  const int64_t C = c.hidden, F = c.intermediate, QD = c.heads * c.head_dim, KD = c.kv_heads * c.head_dim;
  expect("embed_tokens.weight", {c.vocab_size, C});
  expect("norm.weight", {C});
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string p = fmt::format("layers.{}.", i);
    expect(p + "self_attn.q_proj.weight", {QD, C});
    expect(p + "self_attn.k_proj.weight", {KD, C});
    expect(p + "self_attn.v_proj.weight", {KD, C});
    expect(p + "self_attn.o_proj.weight", {C, QD});
    expect(p + "mlp.gate_proj.weight", {F, C});
    expect(p + "mlp.up_proj.weight", {F, C});
    expect(p + "mlp.down_proj.weight", {C, F});
    for (const char* n : {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                          "post_feedforward_layernorm"})
      expect(p + n + ".weight", {C});
  }
  for (const auto& [k, _] : w)
    SS_CHECK(expected.count(k) || k.rfind("lm_head.", 0) == 0,
             "text encoder: unexpected tensor '{}' (not part of a Gemma-2 decoder)", k);
}

Gemma2Model::Gemma2Model(const io::TensorMap& w, Gemma2Config cfg, const Runtime& rt, Gemma2Attention attn)
    : cfg_(std::move(cfg)), rt_(rt), attn_(attn) {
  validate_gemma2_weights(cfg_, w);
  auto mat = [&](const std::string& key) { return w.at(key).to(rt_.device, rt_.dtype).contiguous(); };
  // Gemma's norms scale by (1 + w), formed in fp32.
  auto norm = [&](const std::string& key) { return (w.at(key).to(at::kFloat) + 1.0).to(rt_.device); };
  embed_ = mat("embed_tokens.weight");
  final_norm_ = norm("norm.weight");
  for (int64_t i = 0; i < cfg_.layers; ++i) {
    const std::string p = fmt::format("layers.{}.", i);
    Layer l;
    l.q = mat(p + "self_attn.q_proj.weight");
    l.k = mat(p + "self_attn.k_proj.weight");
    l.v = mat(p + "self_attn.v_proj.weight");
    l.o = mat(p + "self_attn.o_proj.weight");
    l.gate = mat(p + "mlp.gate_proj.weight");
    l.up = mat(p + "mlp.up_proj.weight");
    l.down = mat(p + "mlp.down_proj.weight");
    l.input_norm = norm(p + "input_layernorm.weight");
    l.post_attn_norm = norm(p + "post_attention_layernorm.weight");
    l.pre_ffn_norm = norm(p + "pre_feedforward_layernorm.weight");
    l.post_ffn_norm = norm(p + "post_feedforward_layernorm.weight");
    l.sliding = cfg_.sliding[i];
    layers_.push_back(std::move(l));
  }
}

at::Tensor Gemma2Model::attend(const Layer& l, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                               const at::Tensor& bias) const {
  const int64_t B = x.size(0), L = x.size(1), H = cfg_.heads, Hkv = cfg_.kv_heads, D = cfg_.head_dim;
  at::Tensor q = rotate(at::linear(x, l.q).view({B, L, H, D}).transpose(1, 2), cos, sin);    // [B, H, L, D]
  at::Tensor k = rotate(at::linear(x, l.k).view({B, L, Hkv, D}).transpose(1, 2), cos, sin);  // [B, Hkv, L, D]
  at::Tensor v = at::linear(x, l.v).view({B, L, Hkv, D}).transpose(1, 2);                    // [B, Hkv, L, D]
  k = repeat_kv(k, H / Hkv);  // [B, H, L, D]
  v = repeat_kv(v, H / Hkv);
  const double scaling = std::pow(cfg_.query_pre_attn_scalar, -0.5);
  at::Tensor o;  // [B, H, L, D]
  if (attn_ == Gemma2Attention::kEager) {
    // transformers' eager path: logits in the model dtype, soft-capped, masked, softmax in fp32.
    at::Tensor s = at::matmul(q, k.transpose(2, 3)) * scaling;  // [B, H, L, L]
    if (cfg_.attn_softcap > 0) s = at::tanh(s / cfg_.attn_softcap) * cfg_.attn_softcap;
    // fp64 (gradient checks) keeps its softmax in fp64: its mask value, cast to fp32, would be −inf and a
    // fully masked row (a padding query past the sliding window) NaN instead of uniform.
    const at::ScalarType softmax_dtype = q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    o = at::matmul(at::softmax(s + bias, -1, softmax_dtype).to(q.scalar_type()), v);
  } else {
    // The sdpa path: no soft-capping. ops::attention scales by 1/sqrt(D); fold the difference into q.
    const double pre = scaling * std::sqrt(static_cast<double>(D));
    o = ops::attention(pre == 1.0 ? q.contiguous() : (q * pre).contiguous(), k, v, bias);
  }
  return at::linear(o.transpose(1, 2).reshape({B, L, H * D}), l.o);
}

at::Tensor Gemma2Model::forward(const at::Tensor& ids_in, const at::Tensor& mask_in,
                                std::vector<at::Tensor>* hidden_states) const {
  SS_CHECK(ids_in.dim() == 2 && ids_in.scalar_type() == at::kLong && ids_in.size(1) > 0,
           "text encoder: expected token ids [B, L] int64 with L > 0, got {} {}", shape_str(ids_in.sizes()),
           c10::toString(ids_in.scalar_type()));
  SS_CHECK(mask_in.sizes() == ids_in.sizes(), "text encoder: expected an attention mask of shape {}, got {}",
           shape_str(ids_in.sizes()), shape_str(mask_in.sizes()));
  const int64_t lo = ids_in.min().item<int64_t>(), hi = ids_in.max().item<int64_t>();
  SS_CHECK(lo >= 0 && hi < cfg_.vocab_size, "text encoder: expected token ids in [0, {}), got ids from {} to {}",
           cfg_.vocab_size, lo, hi);
  const at::Tensor ids = ids_in.to(rt_.device);
  const at::Tensor valid = mask_in.to(rt_.device).ne(0);  // [B, L]
  const int64_t B = ids.size(0), L = ids.size(1), C = cfg_.hidden, D = cfg_.head_dim;

  // Embeddings times sqrt(C), the factor rounded to the model dtype first (transformers' normalizer).
  at::Tensor h = at::embedding(embed_, ids) * at::scalar_tensor(std::sqrt(static_cast<double>(C)), rt_.options());

  // RoPE (rotate-half layout): angles position · θ^(−2i/D) in fp32, cos/sin cast to the model dtype.
  at::Tensor inv_freq = at::reciprocal(
      at::pow(cfg_.rope_theta, at::arange(0, D, 2, rt_.f32()) / static_cast<double>(D)));  // [D/2]
  at::Tensor freqs = at::outer(at::arange(L, rt_.f32()), inv_freq);                        // [L, D/2]
  at::Tensor angles = at::cat({freqs, freqs}, -1);                                          // [L, D]
  const at::Tensor cos = angles.cos().to(rt_.dtype), sin = angles.sin().to(rt_.dtype);

  // Additive masks [B, 1, L, L]: key k is visible to query q when k ≤ q and k is a token; sliding
  // layers also need q − k < window. Padding queries are computed like any other.
  const at::Tensor pos = at::arange(L, ids.options());
  const at::Tensor causal = pos.unsqueeze(0) <= pos.unsqueeze(1);  // [Lq, Lk]
  const at::Tensor keep = causal.unsqueeze(0).logical_and(valid.unsqueeze(1)).unsqueeze(1);  // [B, 1, Lq, Lk]
  const double lowest = mask_value(rt_.dtype);
  auto to_bias = [&](const at::Tensor& k) { return at::zeros({B, 1, L, L}, rt_.options()).masked_fill(k.logical_not(), lowest); };
  const at::Tensor full_bias = to_bias(keep);
  at::Tensor sliding_bias;
  if (cfg_.sliding_window > 0)
    sliding_bias = to_bias(keep.logical_and((pos.unsqueeze(1) - pos.unsqueeze(0)).lt(cfg_.sliding_window)));

  const double eps = cfg_.rms_eps;
  for (const Layer& l : layers_) {
    if (hidden_states) hidden_states->push_back(h);
    at::Tensor a = attend(l, ops::rms_norm(h, l.input_norm, eps), cos, sin, l.sliding ? sliding_bias : full_bias);
    h = h + ops::rms_norm(a, l.post_attn_norm, eps);
    at::Tensor m = ops::rms_norm(h, l.pre_ffn_norm, eps);                                      // [B, L, C]
    m = at::linear(at::gelu(at::linear(m, l.gate), "tanh") * at::linear(m, l.up), l.down);   // GeGLU
    h = h + ops::rms_norm(m, l.post_ffn_norm, eps);
  }
  h = ops::rms_norm(h, final_norm_, eps);
  if (hidden_states) hidden_states->push_back(h);
  return h;
}

std::unique_ptr<Gemma2Model> load_gemma2(const std::string& config_path, const std::string& weights_path,
                                         const Runtime& rt, Gemma2Attention attn) {
  SS_CHECK(path_exists(config_path), "text encoder config '{}' does not exist", config_path);
  const json j = json::parse(read_text_file(config_path), nullptr, false);
  Gemma2Config cfg = parse_gemma2_config(j, config_path);
  io::WeightSet ws = io::load_weights(io::resolve_weights_path(weights_path, "text encoder"));
  return std::make_unique<Gemma2Model>(ws.tensors, std::move(cfg), rt, attn);
}

}  // namespace sanastream::model
