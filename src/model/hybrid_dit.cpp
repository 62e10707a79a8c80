#include "model/hybrid_dit.h"

#include <cmath>
#include <tuple>

#include "core/compare.h"
#include "core/error.h"
#include "model/profile.h"
#include "ops/norm.h"
#include "ops/rope.h"

namespace sanastream::model {

namespace {
constexpr double kLayerNormEps = 1e-6;
constexpr double kCaptionNormEps = 1e-5;
constexpr double kMaskBias = -10000.0;
// The caption's keys are cut to its longest row of tokens rounded up to this: prompts of similar
// length share one shape, so a live prompt change replays the same CUDA graphs.
constexpr int64_t kCaptionKeyBucket = 128;

// The caption's tokens (mask ≠ 0) of each row moved to the front and the rows cut to `keys`; the
// bias masks each row's padding, undefined when no row has any.
std::pair<at::Tensor, at::Tensor> compact_caption(const at::Tensor& y, const at::Tensor& mask, int64_t keys) {
  const int64_t B = y.size(0), C = y.size(2);
  std::vector<at::Tensor> rows;
  at::Tensor valid = at::zeros({B, keys}, mask.options().dtype(at::kFloat));
  bool padded = false;
  for (int64_t b = 0; b < B; ++b) {
    const at::Tensor idx = mask[b].nonzero().squeeze(1);
    const int64_t n = idx.numel();
    rows.push_back(at::cat({y[b].index_select(0, idx.to(y.device())), at::zeros({keys - n, C}, y.options())}));
    valid[b].narrow(0, 0, n).fill_(1);
    padded = padded || n < keys;
  }
  at::Tensor bias;
  if (padded) bias = ((1 - valid) * kMaskBias).to(y.device(), y.scalar_type()).view({B, 1, 1, keys});
  return {at::stack(rows), bias};
}
}  // namespace

HybridDit::HybridDit(const io::TensorMap& weights, DitConfig cfg, const Runtime& rt, const QuantPlan& plan)
    : cfg_(std::move(cfg)),
      rt_(rt),
      // fp32 compute rotates in float64 as the official code does; bf16 compute in float32.
      rope_(ops::RopeDims{cfg_.rope_t, cfg_.rope_h, cfg_.rope_w, cfg_.rope_theta}, cfg_.rope_positions, rt.device,
            rt.dtype == at::kFloat ? at::kDouble : at::kFloat) {
  validate_dit_weights(cfg_, weights);
  plan.check_depth(cfg_.depth);
  for (const auto& [k, t] : weights) w_[k] = t.is_floating_point() ? t.to(rt_.device, rt_.dtype) : t.to(rt_.device);
  for (int64_t b = 0; b < cfg_.depth; ++b) {
    const std::string p = fmt::format("blocks.{}.", b);
    const BlockPrecisions prec = plan.block(b);
    Block blk;
    blk.scale_shift = weight(w_, p + "scale_shift_table");
    if (cfg_.is_softmax(b)) {
      blk.softmax = std::make_unique<SoftmaxAttention>(w_, p + "attn.", cfg_.heads, prec);
    } else {
      blk.gdn = std::make_unique<GdnAttention>(w_, p + "attn.", cfg_.heads, prec);
    }
    blk.cross = std::make_unique<CrossAttention>(w_, p + "cross_attn.", cfg_.cross_heads, prec);
    blk.ffn = std::make_unique<MixFfn>(w_, p + "mlp.", prec);
    blocks_.push_back(std::move(blk));
  }
  // The blocks hold what they use, some of it restacked (fused projections, the temporal taps): the
  // map's block entries go, so that no weight is held twice.
  for (auto it = w_.begin(); it != w_.end();) it = it->first.rfind("blocks.", 0) == 0 ? w_.erase(it) : std::next(it);
}

CaptionState HybridDit::encode_caption(const at::Tensor& embeds_in, const at::Tensor& mask,
                                       const Capture& capture) const {
  at::Tensor embeds = embeds_in.dim() == 4 ? embeds_in.squeeze(1) : embeds_in;
  SS_CHECK(embeds.dim() == 3 && embeds.size(1) == cfg_.caption_length && embeds.size(2) == cfg_.caption_channels,
           "prompt embeddings: expected [B, 1, {}, {}], got {}", cfg_.caption_length, cfg_.caption_channels,
           shape_str(embeds_in.sizes()));
  SS_CHECK(mask.dim() == 2 && mask.size(0) == embeds.size(0) && mask.size(1) == cfg_.caption_length,
           "prompt mask: expected [{}, {}], got {}", embeds.size(0), cfg_.caption_length, shape_str(mask.sizes()));
  at::Tensor y = embeds.to(rt_.device, rt_.dtype);
  y = dense(y, weight(w_, "y_embedder.y_proj.fc1.weight"), weight(w_, "y_embedder.y_proj.fc1.bias"));
  y = at::gelu(y, "tanh");
  y = dense(y, weight(w_, "y_embedder.y_proj.fc2.weight"), weight(w_, "y_embedder.y_proj.fc2.bias"));
  capture.put("y_embedder", y.unsqueeze(1));
  y = ops::rms_norm(y, weight(w_, "attention_y_norm.weight"), kCaptionNormEps);
  capture.put("attention_y_norm", y.unsqueeze(1));
  // Only the caption's tokens are attended to, as the official code's compacted caption: masked keys
  // (bias −10000) contribute exp(−10000 + s) = 0 anyway. A mask without tokens keeps every key (the
  // official softmax is then uniform over all of them).
  CaptionState cs;
  const at::Tensor m = mask.to(at::kCPU, at::kLong);
  const int64_t longest = m.ne(0).sum(1).max().item<int64_t>(), L = m.size(1);
  if (longest == 0) {
    cs.y = y;
    cs.bias = ((1 - m.to(rt_.device, rt_.dtype)) * kMaskBias).view({m.size(0), 1, 1, L});
  } else {
    const int64_t keys = std::min(L, (longest + kCaptionKeyBucket - 1) / kCaptionKeyBucket * kCaptionKeyBucket);
    std::tie(cs.y, cs.bias) = compact_caption(y, m, keys);
  }
  for (const auto& blk : blocks_) cs.kv.push_back(blk.cross->project_caption(cs.y));
  return cs;
}

CaptionState pad_caption_keys(const CaptionState& c, int64_t keys) {
  const int64_t B = c.y.size(0), K = c.y.size(1);
  SS_CHECK(keys >= K, "caption keys: cannot pad {} keys to {}", K, keys);
  if (keys == K) return c;
  auto pad = [&](const at::Tensor& t, int64_t dim) {
    std::vector<int64_t> sizes = t.sizes().vec();
    sizes[dim] = keys - K;
    return at::cat({t, at::zeros(sizes, t.options())}, dim);
  };
  CaptionState out;
  out.y = pad(c.y, 1);
  out.bias = at::cat({caption_bias(c), at::full({B, 1, 1, keys - K}, kMaskBias, c.y.options())}, 3);
  for (const auto& kv : c.kv) out.kv.push_back({pad(kv.k, 2), pad(kv.v, 2)});
  return out;
}

at::Tensor caption_bias(const CaptionState& c) {
  return c.bias.defined() ? c.bias : at::zeros({c.y.size(0), 1, 1, c.y.size(1)}, c.y.options());
}

at::Tensor HybridDit::timestep_embedding(const at::Tensor& timestep) const {
  // Sinusoid of the integer-truncated timestep, cos half first, max period 1e4, in fp32.
  const int64_t half = cfg_.freq_dim / 2;
  at::Tensor t = timestep.to(at::kLong).to(at::kFloat).to(rt_.device);
  at::Tensor freqs = at::exp(at::arange(half, rt_.f32()) * (-std::log(10000.0)) / static_cast<double>(half));
  at::Tensor args = t.unsqueeze(1) * freqs.unsqueeze(0);
  at::Tensor emb = at::cat({at::cos(args), at::sin(args)}, -1);
  if (cfg_.freq_dim % 2) emb = at::cat({emb, at::zeros_like(emb.narrow(1, 0, 1))}, -1);
  return emb.to(rt_.dtype);
}

TimestepState HybridDit::embed_timestep(const at::Tensor& timestep, const Capture& cap) const {
  at::Tensor t = timestep_embedding(timestep);
  t = dense(t, weight(w_, "t_embedder.mlp.0.weight"), weight(w_, "t_embedder.mlp.0.bias"));
  t = dense(at::silu(t), weight(w_, "t_embedder.mlp.2.weight"), weight(w_, "t_embedder.mlp.2.bias"));  // [B, C]
  cap.put("t_embedder", t);
  at::Tensor t0 = dense(at::silu(t), weight(w_, "t_block.1.weight"), weight(w_, "t_block.1.bias"));     // [B, 6C]
  cap.put("t_block", t0);
  const int64_t B = t.size(0), C = t.size(1);
  std::vector<at::Tensor> tables;
  for (const Block& blk : blocks_) tables.push_back(blk.scale_shift);
  at::Tensor block_mod = (at::stack(tables).unsqueeze(1) + t0.view({1, B, 6, C})).to(at::kFloat);
  at::Tensor final_mod = (weight(w_, "final_layer.scale_shift_table").unsqueeze(0) + t.unsqueeze(1)).to(at::kFloat);
  return {t, t0, block_mod, final_mod};
}

at::Tensor HybridDit::forward(const at::Tensor& x_in, const at::Tensor& src_in, const at::Tensor& timestep,
                              const CaptionState& caption, const DitCallOptions& opt) const {
  SS_CHECK(x_in.dim() == 5 && x_in.size(1) == cfg_.latent_channels,
           "noisy latent: expected [B, {}, T, H, W], got {}", cfg_.latent_channels, shape_str(x_in.sizes()));
  SS_CHECK(src_in.dim() == 5 && src_in.size(1) == cfg_.source_channels && src_in.size(0) == x_in.size(0) &&
               src_in.sizes().slice(2) == x_in.sizes().slice(2),
           "source latent: expected [{}, {}, {}, {}, {}], got {}", x_in.size(0), cfg_.source_channels, x_in.size(2),
           x_in.size(3), x_in.size(4), shape_str(src_in.sizes()));
  SS_CHECK(caption.y.size(0) == x_in.size(0), "caption batch {} != latent batch {}", caption.y.size(0), x_in.size(0));
  const int64_t B = x_in.size(0), p = cfg_.patch;
  const DitGrid g = token_grid(x_in.size(2), x_in.size(3), x_in.size(4));
  mark_region("outside_forward");
  const Capture& cap = opt.capture;

  // Patch embedding (a 1×p×p conv of stride p) on cat[x, src] → tokens in (t, h, w) order, each the
  // (channel, row, column) vector of its patch.
  at::Tensor xin = at::cat({x_in.to(rt_.device, rt_.dtype), src_in.to(rt_.device, rt_.dtype)}, 1);
  const int64_t Cin = xin.size(1);
  xin = xin.view({B, Cin, g.T, g.H, p, g.W, p}).permute({0, 2, 3, 5, 1, 4, 6}).reshape({B, g.N(), Cin * p * p});
  // The residual stream is kept in fp32 whatever the compute dtype; branches run in rt_.dtype.
  at::Tensor x = dense(xin, weight(w_, "x_embedder.proj.weight").flatten(1), weight(w_, "x_embedder.proj.bias"))
                     .to(at::kFloat);  // [B, N, C]
  cap.put("x_embedder", x);
  const at::ScalarType dt = rt_.dtype;

  const TimestepState ts = opt.timestep ? *opt.timestep : embed_timestep(timestep, cap);
  if (opt.timestep) {
    cap.put("t_embedder", ts.t);
    cap.put("t_block", ts.t0);
  }
  SS_CHECK(ts.t.size(0) == B, "timestep conditioning of batch {} for a call of batch {}", ts.t.size(0), B);

  const ops::RopeTable rope = opt.rope ? *opt.rope : rope_.table(opt.frame_offset, g.T, g.H, g.W);
  mark_region("embed");
  SS_CHECK(rope.cos.size(0) == g.N(), "RoPE rows: {} for a call of {} tokens", rope.cos.size(0), g.N());
  StreamCache* cache = opt.cache;
  SS_CHECK(!cache || (cache->tokens_per_frame() == g.S() && cache->ffn_in.size() == blocks_.size()),
           "stream cache made for another grid or model");

  // Each block's FFN residual update x += gate·mlp is made by the next LayerNorm's pass (the final
  // layer's after the last block). A LayerNorm feeding an FP8 GEMM also writes its output's FP8 rows
  // (fp8 non-null).
  at::Tensor mlp, gate_mlp;
  auto layer_norm = [&](const at::Tensor& shift, const at::Tensor& scale, at::ScalarType out_dtype, ops::QuantRows* fp8) {
    return mlp.defined()
               ? ops::add_layer_norm_modulate_(x, mlp, shift, scale, kLayerNormEps, out_dtype, gate_mlp, fp8)
               : ops::layer_norm_modulate(x, shift, scale, kLayerNormEps, out_dtype, fp8);
  };
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const Block& blk = blocks_[i];
    const std::string name = fmt::format("block{:02d}.", i);
    const std::vector<at::Tensor> mod = ts.block_mod[static_cast<int64_t>(i)].chunk(6, 1);  // each [B, 1, C]
    const at::Tensor &shift_msa = mod[0], &scale_msa = mod[1], &gate_msa = mod[2];
    const at::Tensor &shift_mlp = mod[3], &scale_mlp = mod[4];

    ops::QuantRows hq;
    const bool attn_fp8 = blk.gdn ? blk.gdn->fp8_input() : blk.softmax->fp8_input();
    at::Tensor h = layer_norm(shift_msa, scale_msa, dt, attn_fp8 ? &hq : nullptr);
    mark_region("norm_modulate");
    at::Tensor a;
    if (blk.gdn) {
      a = blk.gdn->forward(h, hq, g, rope, cache ? cache->gdn_in[i] : ops::GdnState{},
                           cache ? &cache->gdn_out[i] : nullptr);
    } else {
      a = blk.softmax->forward(h, hq, rope, cache ? cache->k[i] : at::Tensor(), cache ? cache->v[i] : at::Tensor(),
                               cache ? cache->write_offset() : 0);
    }
    cap.put(name + "attn", a);
    ops::QuantRows cq;
    const at::Tensor xc = ops::gate_residual_(x, gate_msa, a, dt,  // and the cross-attention's input
                                              blk.cross->fp8_input() ? &cq : nullptr);
    mark_region("gate_residual");

    at::Tensor c = blk.cross->forward(xc, cq, caption.kv[i], caption.bias);
    cap.put(name + "cross_attn", c);
    ops::QuantRows fq;
    h = ops::add_layer_norm_modulate_(x, c, shift_mlp, scale_mlp, kLayerNormEps, dt, {},  // x += c first
                                      blk.ffn->fp8_input() ? &fq : nullptr);
    mark_region("norm_modulate");
    mlp = blk.ffn->forward(h, fq, g, cache ? cache->ffn_in[i] : at::Tensor(),
                           cache ? &cache->ffn_out[i] : nullptr);
    gate_mlp = mod[5];
    cap.put(name + "mlp", mlp);
    if (cap.on()) {  // the block's output, as the next LayerNorm will make it
      at::Tensor out = x.clone();
      ops::gate_residual_(out, gate_mlp, mlp);
      cap.put(name + "out", out);
    }
  }

  // The final layer runs in fp32 (C → 128 is cheap) so the velocity is not rounded to bf16.
  const std::vector<at::Tensor> fmod = ts.final_mod.chunk(2, 1);
  at::Tensor out = layer_norm(fmod[0], fmod[1], at::kFloat, nullptr);
  out = dense(out, weight(w_, "final_layer.linear.weight").to(at::kFloat),
              weight(w_, "final_layer.linear.bias").to(at::kFloat));  // [B, N, p·p·Cl] fp32
  cap.put("final_layer", out);
  // Each token's (row, column, channel) values back to their latent pixels.
  out = out.view({B, g.T, g.H, g.W, p, p, cfg_.latent_channels})
            .permute({0, 6, 1, 2, 4, 3, 5})
            .reshape({B, cfg_.latent_channels, g.T, g.H * p, g.W * p});
  mark_region("final");
  return out;
}

DitGrid HybridDit::token_grid(int64_t frames, int64_t height, int64_t width) const {
  return {frames, cfg_.tokens_along(height, "height"), cfg_.tokens_along(width, "width")};
}

ops::RopeTable HybridDit::rope_table(int64_t first_frame, int64_t frames, int64_t height, int64_t width) const {
  const DitGrid g = token_grid(frames, height, width);
  return rope_.table(first_frame, g.T, g.H, g.W);
}

ops::RopeTable HybridDit::rope_shift(int64_t frame_delta) const {
  return ops::make_temporal_shift(rope_.dims(), frame_delta, rt_.device);
}

std::unique_ptr<HybridDit> load_hybrid_dit(const io::TensorMap& weights, const nlohmann::json& overrides,
                                           const Runtime& rt, const QuantPlan& plan) {
  return std::make_unique<HybridDit>(weights, detect_dit_config(weights, overrides), rt, plan);
}

}  // namespace sanastream::model
