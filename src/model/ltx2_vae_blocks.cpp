#include "model/ltx2_vae_blocks.h"

#include <cmath>

#include "core/compare.h"
#include "core/error.h"
#include "model/profile.h"
#include "ops/vae.h"

namespace sanastream::model {

namespace {

constexpr double kPixelNormEps = 1e-8;

int64_t prod(const std::array<int64_t, 3>& s) { return s[0] * s[1] * s[2]; }

ops::PadMode pad_mode(VaePadding p) {
  switch (p) {
    case VaePadding::kReplicate: return ops::PadMode::kReplicate;
    case VaePadding::kCircular: return ops::PadMode::kCircular;
    default: return ops::PadMode::kReflect;
  }
}

// A [B, C, T, H, W] tensor stored channels-last seen as its memory, [B, T, H, W, C], and back.
at::Tensor cl_view(const at::Tensor& x) { return x.permute({0, 2, 3, 4, 1}); }
at::Tensor from_cl(const at::Tensor& y) { return y.permute({0, 4, 1, 2, 3}); }
bool is_cl(at::MemoryFormat f) { return f == at::MemoryFormat::ChannelsLast3d; }

// [B, C, T·st, H·sh, W·sw] → [B, C·st·sh·sw, T, H, W] in `fmt`; channel (c, a, b, e) ↦ ((c·st + a)·sh + b)·sw + e.
at::Tensor space_to_channel(const at::Tensor& x, const std::array<int64_t, 3>& s, at::MemoryFormat fmt) {
  const int64_t B = x.size(0), C = x.size(1), T = x.size(2) / s[0], H = x.size(3) / s[1], W = x.size(4) / s[2];
  if (is_cl(fmt))
    return from_cl(cl_view(x).reshape({B, T, s[0], H, s[1], W, s[2], C})
                       .permute({0, 1, 3, 5, 7, 2, 4, 6})
                       .reshape({B, T, H, W, C * prod(s)}));
  return x.reshape({B, C, T, s[0], H, s[1], W, s[2]})
      .permute({0, 1, 3, 5, 7, 2, 4, 6})
      .reshape({B, C * prod(s), T, H, W});
}

// The inverse layout: [B, C·st·sh·sw, T, H, W] → [B, C, T·st, H·sh, W·sw] in `fmt`.
at::Tensor channel_to_space(const at::Tensor& x, const std::array<int64_t, 3>& s, at::MemoryFormat fmt) {
  const int64_t B = x.size(0), C = x.size(1) / prod(s), T = x.size(2), H = x.size(3), W = x.size(4);
  if (is_cl(fmt))
    return from_cl(cl_view(x).reshape({B, T, H, W, C, s[0], s[1], s[2]})
                       .permute({0, 1, 5, 2, 6, 3, 7, 4})
                       .reshape({B, T * s[0], H * s[1], W * s[2], C}));
  return x.reshape({B, C, s[0], s[1], s[2], T, H, W})
      .permute({0, 1, 5, 2, 6, 3, 7, 4})
      .reshape({B, C, T * s[0], H * s[1], W * s[2]});
}

// [B, n·g, T, H, W] → the mean of each run of g channels, [B, n, T, H, W] in `fmt`.
at::Tensor group_mean(const at::Tensor& x, int64_t n, int64_t g, at::MemoryFormat fmt) {
  if (is_cl(fmt)) {
    const at::Tensor v = cl_view(x);
    return from_cl(v.reshape({v.size(0), v.size(1), v.size(2), v.size(3), n, g}).mean(-1));
  }
  return x.reshape({x.size(0), n, g, x.size(2), x.size(3), x.size(4)}).mean(2);
}

// [B, C, T, H, W] → its channels repeated k times, [B, k·C, T, H, W] in `fmt`.
at::Tensor repeat_channels(const at::Tensor& x, int64_t k, at::MemoryFormat fmt) {
  if (is_cl(fmt)) return from_cl(cl_view(x).repeat({1, 1, 1, 1, k}));
  return x.repeat({1, k, 1, 1, 1});
}

// The first frame of x repeated n times: [B, C, n, H, W].
at::Tensor first_frames(const at::Tensor& x, int64_t n) {
  return x.narrow(2, 0, 1).expand({x.size(0), x.size(1), n, x.size(3), x.size(4)});
}

}  // namespace

// ---------------------------------------------------------------------------------------------------

VaeBuildContext::VaeBuildContext(const io::TensorMap& weights, at::TensorOptions options, at::MemoryFormat format)
    : weights_(&weights), options_(options), format_(format) {}

VaeBuildContext::VaeBuildContext(uint64_t seed, at::ScalarType dtype)
    : options_(at::TensorOptions().dtype(dtype)), gen_(at::detail::createCPUGenerator(seed)) {}

at::Tensor VaeBuildContext::take(const std::string& key, const std::vector<int64_t>& shape) {
  if (!weights_) {
    // Generated: the golden sets' distributions (conv weights N(0, 1/√fan_in), biases N(0, 0.02),
    // latents_mean N(0, 0.5), latents_std U(0.5, 2), LayerNorm weights N(1, 0.1)).
    auto ends = [&](const std::string& t) {
      return key.size() >= t.size() && key.compare(key.size() - t.size(), t.size(), t) == 0;
    };
    at::Tensor t;
    if (key == "latents_mean") t = at::normal(0.0, 0.5, shape, *gen_);
    else if (key == "latents_std") t = at::empty(shape).uniform_(0.5, 2.0, *gen_);
    else if (ends("norm3.weight")) t = at::normal(1.0, 0.1, shape, *gen_);
    else if (ends(".bias")) t = at::normal(0.0, 0.02, shape, *gen_);
    else {
      int64_t fan_in = 1;
      for (size_t i = 1; i < shape.size(); ++i) fan_in *= shape[i];
      t = at::normal(0.0, 1.0 / std::sqrt(static_cast<double>(fan_in)), shape, *gen_);
    }
    t = t.to(options_.dtype());
    generated_[key] = t;
    return t;
  }
  auto it = weights_->find(key);
  SS_CHECK(it != weights_->end(), "VAE weights: missing tensor '{}' (the config expects it; does config.json match "
           "the weights?)", key);
  SS_CHECK(it->second.sizes().vec() == shape, "VAE weights: '{}' expected shape {} from the config, got {}", key,
           shape_str(shape), shape_str(it->second.sizes()));
  used_.insert(key);
  const at::Tensor t = it->second.to(options_);
  return t.dim() == 5 ? t.contiguous(format_) : t;
}

void VaeBuildContext::check_all_used() const {
  if (!weights_) return;
  std::vector<std::string> extra;
  for (const auto& [k, _] : *weights_)
    if (!used_.count(k)) extra.push_back(k);
  if (extra.empty()) return;
  std::string list;
  for (size_t i = 0; i < extra.size() && i < 3; ++i) list += (i ? ", " : "") + extra[i];
  SS_FAIL("VAE weights: {} tensor(s) the config does not use ({}{}); does config.json match the weights?",
          extra.size(), list, extra.size() > 3 ? ", ..." : "");
}

// ---------------------------------------------------------------------------------------------------

VaeConv::VaeConv(VaeBuildContext& b, const std::string& key, int64_t in, int64_t out, VaePadding pad, int64_t stride)
    : in_(in), pad_(pad), stride_(stride), slot_(b.new_slot()), fmt_(b.format()) {
  w_ = b.take(key + ".conv.weight", {out, in, 3, 3, 3});
  b_ = b.take(key + ".conv.bias", {out});
}

void VaeConv::keep_outputs(int64_t n) {
  SS_CHECK(precision_ == ops::Precision::kBF16, "VAE: keep_outputs on a quantized convolution");
  w_ = w_.narrow(0, 0, n).contiguous(fmt_);
  b_ = b_.narrow(0, 0, n).contiguous();
}

void VaeConv::set_precision(ops::Precision p) {
  SS_CHECK(p != ops::Precision::kINT8, "VAE: the convolutions run in bf16 or fp8, not int8");
  if (p == precision_) return;
  SS_CHECK(precision_ == ops::Precision::kBF16, "VAE: a convolution's precision is set once");
  precision_ = p;
  const int64_t out = out_channels();
  if (ops::conv3d_fp8_available(w_.device(), w_.scalar_type()) && fmt_ == at::MemoryFormat::ChannelsLast3d &&
      in_ % 16 == 0 && out % 16 == 0) {
    w8_ = ops::quantize_conv_weight_fp8(w_);
    out_scale_ = w8_.scale * ops::vae_fp8_input_scale(in_);
    bias_f32_ = b_.to(at::kFloat);
    w_ = at::Tensor();
  } else {
    w_ = ops::fake_quant_conv_weight(w_);
  }
}

at::Tensor VaeConv::forward(const at::Tensor& x, bool causal, VaeCache* cache, bool norm_silu) const {
  SS_CHECK(precision_ != ops::Precision::kFP8 || norm_silu, "VAE: FP8 convolutions take the resnets' SiLU(norm) inputs");
  const int64_t kt = 3, kh = 3, kw = 3, ph = kh / 2, pw = kw / 2, s = stride_;
  auto empty = [&]() {
    return at::empty({x.size(0), out_channels(), 0, (x.size(3) + 2 * ph - kh) / s + 1, (x.size(4) + 2 * pw - kw) / s + 1},
                     x.options());
  };
  // The padded input sequence [B, in, T', H + 2·ph, W + 2·pw] (zero padding is the convolution's).
  ops::ConvInputSpec spec;
  spec.pad = pad_ == VaePadding::kZeros ? 0 : ph;
  spec.mode = pad_mode(pad_);
  spec.norm_silu = norm_silu;
  spec.eps = kPixelNormEps;
  const double fp8_scale = precision_ == ops::Precision::kFP8 ? ops::vae_fp8_input_scale(in_) : 0.0;
  if (w8_.q.defined()) spec.fp8_scale = fp8_scale;  // the conv-input kernel writes E4M3
  at::Tensor seq;
  if (causal) {
    VaeCacheSlot* slot = cache ? &cache->slots.at(slot_) : nullptr;
    const bool history = slot && slot->started;
    if (x.size(2) == 0 && !history) return empty();
    spec.lead = history ? 0 : kt - 1;
    seq = ops::vae_conv_input(x, history ? slot->frames : at::Tensor(), spec);
    // Output window j reads padded frames [j·s, j·s + kt); the next call starts at the first unused window.
    const int64_t n = seq.size(2) >= kt ? (seq.size(2) - kt) / s + 1 : 0;
    if (slot) {
      slot->frames = seq.narrow(2, n * s, seq.size(2) - n * s).clone(fmt_);
      slot->started = true;
    }
    if (n == 0) return empty();
    seq = seq.narrow(2, 0, (n - 1) * s + kt);
  } else {
    SS_CHECK(cache == nullptr, "VAE: the non-causal path keeps no streaming cache (expected a whole clip)");
    spec.lead = spec.trail = (kt - 1) / 2;
    seq = ops::vae_conv_input(x, at::Tensor(), spec);
  }
  mark_region(norm_silu ? "vae.norm_silu_pad" : "vae.pad");
  const int64_t zp = pad_ == VaePadding::kZeros ? ph : 0;
  at::Tensor y;
  if (w8_.q.defined()) {
    y = ops::conv3d_fp8(seq, w8_.q, out_scale_, bias_f32_, s, zp);
  } else {
    if (fp8_scale > 0) seq = ops::fake_quant_conv_input(seq, fp8_scale);  // the simulation
    y = at::conv3d(seq, w_, b_, {s, s, s}, {0, zp, zp});
  }
  mark_region("vae.conv");
  return y;
}

// ---------------------------------------------------------------------------------------------------

VaeResnet::VaeResnet(VaeBuildContext& b, const std::string& p, int64_t in, int64_t out, double eps, VaePadding pad)
    : conv1_(b, p + ".conv1", in, out, pad), conv2_(b, p + ".conv2", out, out, pad), eps_(eps) {
  if (in != out) {
    norm3_w_ = b.take(p + ".norm3.weight", {in});
    norm3_b_ = b.take(p + ".norm3.bias", {in});
    short_w_ = b.take(p + ".conv_shortcut.weight", {out, in, 1, 1, 1});
    short_b_ = b.take(p + ".conv_shortcut.bias", {out});
  }
}

void VaeResnet::set_precision(ops::Precision p) {
  conv1_.set_precision(p);
  conv2_.set_precision(p);
}

at::Tensor VaeResnet::forward(const at::Tensor& x, bool causal, VaeCache* cache) const {
  at::Tensor h = conv1_.forward(x, causal, cache, /*norm_silu=*/true);  // [B, out, T, H, W]
  h = conv2_.forward(h, causal, cache, /*norm_silu=*/true);
  at::Tensor shortcut = x;
  if (norm3_w_.defined()) {
    const at::Tensor xf = x.to(at::kFloat).movedim(1, -1);  // LayerNorm over channels, in fp32
    shortcut = at::layer_norm(xf, {x.size(1)}, norm3_w_.to(at::kFloat), norm3_b_.to(at::kFloat), eps_)
                   .movedim(-1, 1)
                   .to(x.scalar_type());
    shortcut = at::conv3d(shortcut, short_w_, short_b_);
  }
  h.add_(shortcut);
  mark_region("vae.residual");
  return h;
}

// ---------------------------------------------------------------------------------------------------

VaeDownsampler::VaeDownsampler(VaeBuildContext& b, const std::string& p, int64_t in, int64_t out, VaeResample kind,
                               VaePadding pad)
    : stride_(resample_stride(kind)),
      out_(out),
      group_(in * prod(stride_) / out),
      conv_(b, p + ".conv", in, out / prod(stride_), pad),
      slot_(b.new_slot()),
      fmt_(b.format()) {
  SS_CHECK(out % prod(stride_) == 0 && (in * prod(stride_)) % out == 0,
           "VAE config: {} downsampler {} → {} channels: the width must divide by {} and into {}·{}", p,
           resample_name(kind), out, prod(stride_), in, prod(stride_));
}

at::Tensor VaeDownsampler::forward(const at::Tensor& x, bool causal, VaeCache* cache) const {
  const int64_t st = stride_[0];
  at::Tensor seq = x;  // [B, in, T, H, W] grouped in whole runs of st frames
  if (st > 1) {
    if (cache) {
      VaeCacheSlot& slot = cache->slots.at(slot_);
      if (!slot.started && x.size(2) > 0) {
        seq = at::cat({first_frames(x, st - 1), seq}, 2);
        slot.started = true;
      }
      if (slot.frames.defined()) seq = at::cat({slot.frames, seq}, 2);
      const int64_t usable = seq.size(2) / st * st;
      slot.frames = usable < seq.size(2) ? seq.narrow(2, usable, seq.size(2) - usable).clone(fmt_)
                                         : at::Tensor();
      seq = seq.narrow(2, 0, usable);
    } else {
      seq = at::cat({first_frames(x, st - 1), x}, 2);
      SS_CHECK(seq.size(2) % st == 0, "VAE encoder: {} frames reach a temporal downsampler (expected 1 + k·{} frames "
               "at the input)", x.size(2), st);
    }
  }
  if (seq.size(2) == 0)
    return at::empty({x.size(0), out_, 0, x.size(3) / stride_[1], x.size(4) / stride_[2]}, x.options());
  const at::Tensor residual = group_mean(space_to_channel(seq, stride_, fmt_), out_, group_, fmt_);
  mark_region("vae.resample");
  at::Tensor y = conv_.forward(seq, causal, cache);
  y = space_to_channel(y, stride_, fmt_).add_(residual);
  mark_region("vae.resample");
  return y;
}

// ---------------------------------------------------------------------------------------------------

VaeUpsampler::VaeUpsampler(VaeBuildContext& b, const std::string& p, int64_t in, VaeResample kind, bool residual,
                           int64_t factor, VaePadding pad)
    : stride_(resample_stride(kind)),
      residual_(residual),
      factor_(factor),
      conv_(b, p + ".conv", in, in * prod(stride_) / factor, pad),
      slot_(b.new_slot()),
      fmt_(b.format()) {
  SS_CHECK((in * prod(stride_)) % factor == 0 && (!residual || (in % prod(stride_) == 0 && prod(stride_) % factor == 0)),
           "VAE config: {} upsampler ({}, factor {}) cannot map {} channels", p, resample_name(kind), factor, in);
}

at::Tensor VaeUpsampler::forward(const at::Tensor& x, bool causal, VaeCache* cache) const {
  int64_t trim = stride_[0] - 1;
  if (cache && trim > 0) {
    VaeCacheSlot& slot = cache->slots.at(slot_);
    if (slot.started) trim = 0;
    if (x.size(2) > 0) slot.started = true;
  }
  at::Tensor y = conv_.forward(x, causal, cache);
  y = channel_to_space(y, stride_, fmt_);  // [B, in/factor, T·st, H·sh, W·sw]
  y = y.narrow(2, trim, y.size(2) - trim);
  if (residual_) {
    const at::Tensor r = repeat_channels(channel_to_space(x, stride_, fmt_), prod(stride_) / factor_, fmt_);
    y.add_(r.narrow(2, trim, r.size(2) - trim));
  }
  mark_region("vae.resample");
  return y;
}

// ---------------------------------------------------------------------------------------------------

VaeEncoder::VaeEncoder(VaeBuildContext& b, const Ltx2VaeConfig& c) : patch_(c.patch_size), fmt_(b.format()) {
  const VaePadding pad = c.encoder_padding;
  int64_t ch = c.latent_channels;  // diffusers: conv_in maps the patches to latent_channels
  conv_in_ = std::make_unique<VaeConv>(b, "encoder.conv_in", c.in_channels * c.patch_size * c.patch_size, ch, pad);
  for (size_t i = 0; i < c.enc_channels.size(); ++i) {
    const std::string p = fmt::format("encoder.down_blocks.{}", i);
    Block blk;
    for (int64_t l = 0; l < c.enc_layers[i]; ++l)
      blk.resnets.emplace_back(b, fmt::format("{}.resnets.{}", p, l), ch, ch, c.resnet_eps, pad);
    int64_t flow = ch;
    if (c.enc_down[i] == VaeResample::kConv) {
      blk.conv_down = std::make_unique<VaeConv>(b, p + ".downsamplers.0", ch, ch, pad, 2);
    } else if (c.enc_down[i] != VaeResample::kNone) {
      blk.downsampler = std::make_unique<VaeDownsampler>(b, p + ".downsamplers.0", ch, c.enc_channels[i], c.enc_down[i], pad);
      flow = c.enc_channels[i];
    }
    // The next block is built for enc_channels[i] inputs whatever this block produced.
    SS_CHECK(flow == c.enc_channels[i], "VAE config: encoder down block {} produces {} channels but the next one "
             "expects block_out_channels[{}] = {}", i, flow, i, c.enc_channels[i]);
    ch = c.enc_channels[i];
    blocks_.push_back(std::move(blk));
  }
  for (int64_t l = 0; l < c.enc_layers.back(); ++l)
    mid_.emplace_back(b, fmt::format("encoder.mid_block.resnets.{}", l), ch, ch, c.resnet_eps, pad);
  conv_out_ = std::make_unique<VaeConv>(b, "encoder.conv_out", ch, c.latent_channels + 1, pad);
  conv_out_->keep_outputs(c.latent_channels);  // mode() = the mean = the first latent_channels channels
  slots_ = b.slots();
}

void VaeEncoder::set_resnet_precision(ops::Precision p) {
  for (Block& blk : blocks_)
    for (VaeResnet& r : blk.resnets) r.set_precision(p);
  for (VaeResnet& r : mid_) r.set_precision(p);
}

at::Tensor VaeEncoder::forward(const at::Tensor& video, bool causal, VaeCache* cache) const {
  // Patchify: [B, C, F, H, W] → [B, C·p·p, F, H/p, W/p], channel = (c·p + pw)·p + ph (diffusers' order).
  const int64_t B = video.size(0), C = video.size(1), F = video.size(2), p = patch_;
  const int64_t H = video.size(3) / p, W = video.size(4) / p;
  mark_region("vae.outside");
  at::Tensor h = is_cl(fmt_) ? from_cl(video.reshape({B, C, F, H, p, W, p})
                                           .permute({0, 2, 3, 5, 1, 6, 4})
                                           .reshape({B, F, H, W, C * p * p}))
                             : video.reshape({B, C, F, H, p, W, p})
                                   .permute({0, 1, 6, 4, 2, 3, 5})
                                   .reshape({B, C * p * p, F, H, W});
  mark_region("vae.patchify");
  h = conv_in_->forward(h, causal, cache);
  for (const auto& blk : blocks_) {
    for (const auto& r : blk.resnets) h = r.forward(h, causal, cache);
    if (blk.conv_down) h = blk.conv_down->forward(h, causal, cache);
    if (blk.downsampler) h = blk.downsampler->forward(h, causal, cache);
  }
  for (const auto& r : mid_) h = r.forward(h, causal, cache);
  return conv_out_->forward(h, causal, cache, /*norm_silu=*/true);  // [B, Cl, T, H/sr, W/sr]
}

// ---------------------------------------------------------------------------------------------------

VaeDecoder::VaeDecoder(VaeBuildContext& b, const Ltx2VaeConfig& c) : patch_(c.patch_size), fmt_(b.format()) {
  const VaePadding pad = c.decoder_padding;
  int64_t ch = c.decoder_mid_channels();
  conv_in_ = std::make_unique<VaeConv>(b, "decoder.conv_in", c.latent_channels, ch, pad);
  for (int64_t l = 0; l < c.dec_layers.back(); ++l)
    mid_.emplace_back(b, fmt::format("decoder.mid_block.resnets.{}", l), ch, ch, c.resnet_eps, pad);
  const auto specs = c.up_blocks();
  for (size_t i = 0; i < specs.size(); ++i) {
    const VaeUpBlockSpec& s = specs[i];
    const std::string p = fmt::format("decoder.up_blocks.{}", i);
    Block blk;
    if (s.in_channels != s.out_channels) {
      SS_CHECK(ch == s.in_channels, "VAE config: decoder up block {} expects {} input channels, the previous block "
               "produces {}", i, s.in_channels, ch);
      blk.conv_in = std::make_unique<VaeResnet>(b, p + ".conv_in", s.in_channels, s.out_channels, c.resnet_eps, pad);
      ch = s.out_channels;
    }
    if (s.upsample != VaeResample::kNone) {
      SS_CHECK(ch == s.out_channels * s.factor, "VAE config: decoder up block {}'s upsampler expects {} channels, the "
               "previous block produces {}", i, s.out_channels * s.factor, ch);
      blk.upsampler = std::make_unique<VaeUpsampler>(b, p + ".upsamplers.0", ch, s.upsample, s.residual, s.factor, pad);
      ch = s.out_channels;
    }
    SS_CHECK(ch == s.out_channels, "VAE config: decoder up block {}'s resnets expect {} channels, got {}", i,
             s.out_channels, ch);
    for (int64_t l = 0; l < s.layers; ++l)
      blk.resnets.emplace_back(b, fmt::format("{}.resnets.{}", p, l), ch, ch, c.resnet_eps, pad);
    blocks_.push_back(std::move(blk));
  }
  conv_out_ = std::make_unique<VaeConv>(b, "decoder.conv_out", ch, c.out_channels * c.patch_size * c.patch_size, pad);
  slots_ = b.slots();
}

void VaeDecoder::set_resnet_precision(ops::Precision p) {
  for (VaeResnet& r : mid_) r.set_precision(p);
  for (Block& blk : blocks_) {
    if (blk.conv_in) blk.conv_in->set_precision(p);
    for (VaeResnet& r : blk.resnets) r.set_precision(p);
  }
}

at::Tensor VaeDecoder::forward(const at::Tensor& latents, bool causal, VaeCache* cache) const {
  mark_region("vae.outside");
  at::Tensor h = conv_in_->forward(latents.contiguous(fmt_), causal, cache);
  for (const auto& r : mid_) h = r.forward(h, causal, cache);
  for (const auto& blk : blocks_) {
    if (blk.conv_in) h = blk.conv_in->forward(h, causal, cache);
    if (blk.upsampler) h = blk.upsampler->forward(h, causal, cache);
    for (const auto& r : blk.resnets) h = r.forward(h, causal, cache);
  }
  h = conv_out_->forward(h, causal, cache, /*norm_silu=*/true);  // [B, Cout·p·p, F, H, W]
  // Unpatchify, the inverse of the encoder's order: channel (c·p + pw)·p + ph.
  const int64_t B = h.size(0), p = patch_, C = h.size(1) / (p * p), F = h.size(2), H = h.size(3), W = h.size(4);
  at::Tensor y = is_cl(fmt_) ? cl_view(h).reshape({B, F, H, W, C, p, p}).permute({0, 4, 1, 2, 6, 3, 5})
                             : h.reshape({B, C, p, p, F, H, W}).permute({0, 1, 4, 5, 3, 6, 2});
  y = y.reshape({B, C, F, H * p, W * p});
  mark_region("vae.patchify");
  return y;
}

}  // namespace sanastream::model
