#include "model/dit_random.h"

#include <algorithm>
#include <cmath>
#include <mutex>

namespace sanastream::model {

DitShape dit_shape_2b() {
  DitShape s;
  s.depth = 20;
  s.hidden = 2240;
  s.heads = 20;
  s.ffn_hidden = 6720;
  return s;
}

io::TensorMap random_dit_weights(const DitShape& s, uint64_t seed, at::ScalarType dtype, at::Device device) {
  at::Generator gen = device.is_cpu() ? at::detail::createCPUGenerator(seed) : at::globalContext().defaultGenerator(device);
  if (!device.is_cpu()) {
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(seed);
  }
  const auto opts = at::TensorOptions().device(device);
  io::TensorMap w;
  const int64_t C = s.hidden, F = s.ffn_hidden, H = s.heads;
  auto normal = [&](std::vector<int64_t> shape, double mean, double std) {
    return at::empty(shape, opts).normal_(mean, std, gen);
  };
  auto uniform = [&](std::vector<int64_t> shape, double lo, double hi) {
    return at::empty(shape, opts).uniform_(lo, hi, gen);
  };
  auto mat = [&](const std::string& key, std::vector<int64_t> shape, int64_t fan_in, double gain = 1.0) {
    w[key] = normal(shape, 0.0, gain / std::sqrt(static_cast<double>(fan_in)));
  };
  auto bias = [&](const std::string& key, int64_t n) { w[key] = normal({n}, 0.0, 0.02); };
  auto norm = [&](const std::string& key, int64_t n) { w[key] = normal({n}, 1.0, 0.1); };

  const int64_t cin = s.latent_channels + s.source_channels, p = s.patch;
  mat("x_embedder.proj.weight", {C, cin, 1, p, p}, cin * p * p);
  bias("x_embedder.proj.bias", C);
  mat("t_embedder.mlp.0.weight", {C, 256}, 256);
  bias("t_embedder.mlp.0.bias", C);
  mat("t_embedder.mlp.2.weight", {C, C}, C);
  bias("t_embedder.mlp.2.bias", C);
  mat("t_block.1.weight", {6 * C, C}, C);
  bias("t_block.1.bias", 6 * C);
  w["y_embedder.y_embedding"] = normal({s.caption_length, s.caption_channels}, 0.0, 1.0 / std::sqrt(s.caption_channels));
  mat("y_embedder.y_proj.fc1.weight", {C, s.caption_channels}, s.caption_channels);
  bias("y_embedder.y_proj.fc1.bias", C);
  mat("y_embedder.y_proj.fc2.weight", {C, C}, C);
  bias("y_embedder.y_proj.fc2.bias", C);
  norm("attention_y_norm.weight", C);
  const std::vector<int64_t> softmax = softmax_layer_indices(s.depth, s.softmax_ratio);
  for (int64_t b = 0; b < s.depth; ++b) {
    const std::string p = "blocks." + std::to_string(b) + ".";
    w[p + "scale_shift_table"] = normal({6, C}, 0.0, 1.0 / std::sqrt(static_cast<double>(C)));
    mat(p + "cross_attn.q_linear.weight", {C, C}, C);
    bias(p + "cross_attn.q_linear.bias", C);
    mat(p + "cross_attn.kv_linear.weight", {2 * C, C}, C);
    bias(p + "cross_attn.kv_linear.bias", 2 * C);
    mat(p + "cross_attn.proj.weight", {C, C}, C);
    bias(p + "cross_attn.proj.bias", C);
    norm(p + "cross_attn.q_norm.weight", C);
    norm(p + "cross_attn.k_norm.weight", C);
    mat(p + "mlp.inverted_conv.conv.weight", {2 * F, C, 1, 1}, C);
    bias(p + "mlp.inverted_conv.conv.bias", 2 * F);
    mat(p + "mlp.depth_conv.conv.weight", {2 * F, 1, 3, 3}, 9);
    bias(p + "mlp.depth_conv.conv.bias", 2 * F);
    mat(p + "mlp.point_conv.conv.weight", {C, F, 1, 1}, F);
    mat(p + "mlp.t_conv.weight", {C, C, 3, 1}, 3 * C, 0.5);
    norm(p + "attn.q_norm.weight", C);
    norm(p + "attn.k_norm.weight", C);
    mat(p + "attn.v.weight", {C, C}, C);
    mat(p + "attn.output_gate.weight", {C, C}, C);
    w[p + "attn.output_gate.bias"] = normal({C}, 0.0, 0.5);
    mat(p + "attn.proj.weight", {C, C}, C);
    bias(p + "attn.proj.bias", C);
    const bool is_softmax = std::find(softmax.begin(), softmax.end(), b) != softmax.end();
    if (is_softmax) {
      if (s.variant == DitVariant::kStreaming) {
        mat(p + "attn.q.weight", {C, C, 3}, C);
        mat(p + "attn.k.weight", {C, C, 3}, C);
      } else {
        mat(p + "attn.q.weight", {C, C}, C);
        mat(p + "attn.k.weight", {C, C}, C);
      }
    } else {
      mat(p + "attn.q.weight", {C, C, 1}, C);
      mat(p + "attn.k.weight", {C, C, 1}, C);
      w[p + "attn.A_log"] = uniform({H}, 1.0, 16.0).log();
      w[p + "attn.dt_bias"] = uniform({H}, -5.0, -2.0);
      mat(p + "attn.beta_proj.weight", {H, C}, C);
      w[p + "attn.beta_proj.bias"] = uniform({H}, -1.5, 1.5);
      mat(p + "attn.gate_proj.weight", {H, C}, C);
      w[p + "attn.gate_proj.bias"] = normal({H}, 0.0, 0.5);
    }
  }
  w["final_layer.scale_shift_table"] = normal({2, C}, 0.0, 1.0 / std::sqrt(static_cast<double>(C)));
  mat("final_layer.linear.weight", {p * p * s.latent_channels, C}, C);
  bias("final_layer.linear.bias", p * p * s.latent_channels);
  for (auto& [k, t] : w) t = t.to(dtype);
  return w;
}

}  // namespace sanastream::model
