#include "model/ltx2_vae.h"

#include <algorithm>
#include <functional>

#include "core/compare.h"
#include "core/error.h"
#include "core/fs.h"
#include "io/checkpoint.h"

namespace sanastream::model {

const char* decoder_kind_name(VaeDecoderKind k) {
  switch (k) {
    case VaeDecoderKind::kNonCausal: return "noncausal";
    case VaeDecoderKind::kCausal: return "causal";
    case VaeDecoderKind::kChunkTile: return "chunk-tile";
  }
  return "?";
}

VaeDecoderKind parse_decoder_kind(const std::string& name) {
  if (name == "noncausal" || name == "non-causal") return VaeDecoderKind::kNonCausal;
  if (name == "causal") return VaeDecoderKind::kCausal;
  if (name == "chunk-tile" || name == "chunk_tile") return VaeDecoderKind::kChunkTile;
  SS_FAIL("--decoder: expected causal, noncausal or chunk-tile, got '{}'", name);
}

VaeLayout parse_vae_layout(const std::string& name) {
  if (name == "auto") return VaeLayout::kAuto;
  if (name == "ncdhw") return VaeLayout::kChannelsFirst;
  if (name == "ndhwc") return VaeLayout::kChannelsLast;
  SS_FAIL("--vae-layout: expected auto, ncdhw or ndhwc, got '{}'", name);
}

const char* layout_name(VaeLayout l) {
  switch (l) {
    case VaeLayout::kAuto: return "auto";
    case VaeLayout::kChannelsFirst: return "ncdhw";
    case VaeLayout::kChannelsLast: return "ndhwc";
  }
  return "?";
}

VaeTiling default_vae_tiling() { return {768, 384}; }

VaeTiling parse_vae_tiling(const std::string& spec) {
  if (spec == "0" || spec == "off") return {};
  VaeTiling t;
  const size_t colon = spec.find(':');
  try {
    size_t used = 0;
    const std::string a = spec.substr(0, colon);
    t.size = std::stoll(a, &used);
    SS_CHECK(used == a.size(), "");
    t.overlap = t.size / 2;  // the default's proportion
    if (colon != std::string::npos) {
      const std::string b = spec.substr(colon + 1);
      t.overlap = std::stoll(b, &used);
      SS_CHECK(used == b.size(), "");
    }
  } catch (const std::exception&) {
    SS_FAIL("--tile: expected SIZE[:OVERLAP] in pixels or 0, got '{}'", spec);
  }
  SS_CHECK(t.size > 0 && t.overlap >= 0 && t.overlap < t.size,
           "--tile: expected SIZE > OVERLAP >= 0, got size {} and overlap {}", t.size, t.overlap);
  return t;
}

std::string describe(const VaeTiling& t) {
  return t.size == 0 ? "off" : fmt::format("{}:{} px", t.size, t.overlap);
}

namespace {

// One tile along an axis, in latent pixels.
struct Span {
  int64_t start = 0, size = 0;
  int64_t end() const { return start + size; }
};

// Tiles of `tile` with at least `overlap` in common covering [0, length); the last one ends at length.
std::vector<Span> tile_spans(int64_t length, int64_t tile, int64_t overlap) {
  if (tile <= 0 || length <= tile) return {{0, length}};
  std::vector<Span> out;
  for (int64_t s = 0; s + tile < length; s += tile - overlap) out.push_back({s, tile});
  if (out.back().end() < length) out.push_back({length - tile, tile});
  return out;
}

// Blend weights of tile k along one axis, in output pixels (unit per latent pixel). In the overlap with a
// neighbour, the outer kContext of it on each side is context only (weight 0 near this tile's edge, where
// the padding it sees instead of its neighbours' pixels disturbs it, 1 near the neighbour's) and the middle
// is a linear cross-fade; 1 elsewhere.
constexpr double kContext = 0.375;

at::Tensor axis_weights(const std::vector<Span>& spans, size_t k, int64_t unit, const at::TensorOptions& opt) {
  const int64_t n = spans[k].size * unit;
  at::Tensor w = at::ones({n}, opt.dtype(at::kFloat));
  auto rising = [&](int64_t ov) {  // over an overlap of ov output pixels: 0…0, (i + 1)/(r + 1), 1…1
    const int64_t m = static_cast<int64_t>(kContext * static_cast<double>(ov)), r = ov - 2 * m;
    at::Tensor x = at::zeros({ov}, w.options());
    x.narrow(0, m, r).copy_(at::arange(1, r + 1, w.options()) / static_cast<double>(r + 1));
    x.narrow(0, m + r, m).fill_(1.0);
    return x;
  };
  if (k > 0) {
    const int64_t lo = (spans[k - 1].end() - spans[k].start) * unit;
    w.narrow(0, 0, lo).mul_(rising(lo));
  }
  if (k + 1 < spans.size()) {
    const int64_t hi = (spans[k].end() - spans[k + 1].start) * unit;
    w.narrow(0, n - hi, hi).mul_(rising(hi).flip({0}));
  }
  return w;
}

struct TileGrid {
  std::vector<Span> rows, cols;  // latent pixels
  size_t count() const { return rows.size() * cols.size(); }
};

TileGrid make_grid(int64_t lat_h, int64_t lat_w, const VaeTiling& t, int64_t sr) {
  SS_CHECK(t.size % sr == 0 && t.overlap % sr == 0,
           "tiling: tile size and overlap must be multiples of {} pixels, got {}", sr, describe(t));
  if (t.size == 0 || (lat_h * sr <= t.size && lat_w * sr <= t.size)) return {{{0, lat_h}}, {{0, lat_w}}};
  return {tile_spans(lat_h, t.size / sr, t.overlap / sr), tile_spans(lat_w, t.size / sr, t.overlap / sr)};
}

// Runs fn on every spatial tile of x (tile index, input tile) and blends the outputs. x's H, W are
// in_unit pixels per latent pixel, the outputs out_unit. One tile: fn's output unchanged.
at::Tensor run_tiled(const at::Tensor& x, const TileGrid& g, int64_t in_unit, int64_t out_unit,
                     const std::function<at::Tensor(size_t, const at::Tensor&)>& fn) {
  if (g.count() == 1) return fn(0, x);
  at::Tensor out, wsum;  // fp32 accumulators [B, C, T, H, W], [H, W]
  at::ScalarType dtype = x.scalar_type();
  size_t idx = 0;
  for (size_t r = 0; r < g.rows.size(); ++r) {
    for (size_t c = 0; c < g.cols.size(); ++c, ++idx) {
      const Span& rs = g.rows[r];
      const Span& cs = g.cols[c];
      at::Tensor tile = x.narrow(3, rs.start * in_unit, rs.size * in_unit).narrow(4, cs.start * in_unit, cs.size * in_unit);
      at::Tensor y = fn(idx, tile);  // [B, C, T, rs.size·out_unit, cs.size·out_unit]
      dtype = y.scalar_type();
      if (!out.defined()) {
        out = at::zeros({y.size(0), y.size(1), y.size(2), g.rows.back().end() * out_unit, g.cols.back().end() * out_unit},
                        y.options().dtype(at::kFloat));
        wsum = at::zeros({out.size(3), out.size(4)}, out.options());
      }
      if (y.size(2) == 0) continue;
      const at::Tensor w = at::outer(axis_weights(g.rows, r, out_unit, y.options()),
                                     axis_weights(g.cols, c, out_unit, y.options()));  // [h, w]
      out.narrow(3, rs.start * out_unit, rs.size * out_unit)
          .narrow(4, cs.start * out_unit, cs.size * out_unit)
          .add_(y.to(at::kFloat) * w);
      wsum.narrow(0, rs.start * out_unit, rs.size * out_unit).narrow(1, cs.start * out_unit, cs.size * out_unit).add_(w);
    }
  }
  if (out.size(2) == 0) return out.to(dtype);
  return (out / wsum).to(dtype);
}

std::vector<VaeCache> make_caches(size_t n, int slots) {
  std::vector<VaeCache> c(n);
  for (auto& x : c) x.slots.resize(static_cast<size_t>(slots));
  return c;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------

Ltx2Vae::Ltx2Vae(const io::TensorMap& weights, Ltx2VaeConfig cfg, const Runtime& rt, VaeLayout layout)
    : cfg_(std::move(cfg)),
      rt_(rt),
      layout_(layout != VaeLayout::kAuto ? layout : rt.is_cuda() ? VaeLayout::kChannelsLast : VaeLayout::kChannelsFirst) {
  int64_t dec_t = cfg_.patch_size_t, dec_s = cfg_.patch_size;
  for (const auto& b : cfg_.up_blocks()) {
    dec_t *= resample_stride(b.upsample)[0];
    dec_s *= resample_stride(b.upsample)[1];
  }
  SS_CHECK(dec_t == cfg_.temporal_ratio() && dec_s == cfg_.spatial_ratio(),
           "VAE config: the decoder expands {}x{} but the encoder compresses {}x{} (time x space)", dec_t, dec_s,
           cfg_.temporal_ratio(), cfg_.spatial_ratio());
  VaeBuildContext b(weights, rt.options(),
                    layout_ == VaeLayout::kChannelsLast ? at::MemoryFormat::ChannelsLast3d : at::MemoryFormat::Contiguous);
  enc_ = std::make_unique<VaeEncoder>(b, cfg_);
  b.reset_slots();
  dec_ = std::make_unique<VaeDecoder>(b, cfg_);
  mean_ = b.take("latents_mean", {cfg_.latent_channels}).view({1, -1, 1, 1, 1});
  std_ = b.take("latents_std", {cfg_.latent_channels}).view({1, -1, 1, 1, 1});
  b.check_all_used();
}

void Ltx2Vae::set_resnet_precision(ops::Precision p) {
  enc_->set_resnet_precision(p);
  dec_->set_resnet_precision(p);
  resnet_precision_ = p;
}

void Ltx2Vae::check_frames(const at::Tensor& v, bool whole_clip) const {
  const int64_t sr = cfg_.spatial_ratio(), tr = cfg_.temporal_ratio();
  SS_CHECK(v.dim() == 5 && v.size(1) == cfg_.in_channels,
           "VAE encode: expected frames [B, {}, F, H, W], got {}", cfg_.in_channels, shape_str(v.sizes()));
  SS_CHECK(v.size(2) >= 1, "VAE encode: expected at least one frame, got 0");
  SS_CHECK(v.size(3) > 0 && v.size(4) > 0 && v.size(3) % sr == 0 && v.size(4) % sr == 0,
           "VAE encode: expected a frame height and width that are multiples of {}, got {}x{}", sr, v.size(3),
           v.size(4));
  SS_CHECK(!whole_clip || (v.size(2) - 1) % tr == 0,
           "VAE encode: expected 1 + {}k frames (whole latent frames), got {}", tr, v.size(2));
}

void Ltx2Vae::check_latents(const at::Tensor& z) const {
  SS_CHECK(z.dim() == 5 && z.size(1) == cfg_.latent_channels,
           "VAE decode: expected latents [B, {}, T, h, w], got {}", cfg_.latent_channels, shape_str(z.sizes()));
  SS_CHECK(z.size(2) >= 1, "VAE decode: expected at least one latent frame, got 0");
  SS_CHECK(z.size(3) > 0 && z.size(4) > 0, "VAE decode: expected a non-empty latent grid, got {}x{}", z.size(3),
           z.size(4));
}

at::Tensor Ltx2Vae::encode(const at::Tensor& video, const VaeTiling& tiling) const {
  check_frames(video, /*whole_clip=*/true);
  const int64_t sr = cfg_.spatial_ratio();
  const TileGrid g = make_grid(video.size(3) / sr, video.size(4) / sr, tiling, sr);
  const at::Tensor x = video.to(rt_.options());
  return run_tiled(x, g, sr, 1, [&](size_t, const at::Tensor& t) { return enc_->forward(t, cfg_.encoder_causal, nullptr); });
}

at::Tensor Ltx2Vae::normalize(const at::Tensor& mode) const {
  return (mode.to(rt_.options()) - mean_) * cfg_.scaling_factor / std_;
}

at::Tensor Ltx2Vae::denormalize(const at::Tensor& latents) const {
  return latents.to(rt_.options()) * std_ / cfg_.scaling_factor + mean_;
}

at::Tensor Ltx2Vae::decode_whole(const at::Tensor& z, bool causal, const VaeTiling& tiling) const {
  const int64_t sr = cfg_.spatial_ratio();
  const TileGrid g = make_grid(z.size(3), z.size(4), tiling, sr);
  return run_tiled(z, g, 1, sr, [&](size_t, const at::Tensor& t) { return dec_->forward(t, causal, nullptr); });
}

at::Tensor Ltx2Vae::decode(const at::Tensor& latents, VaeDecoderKind kind, const VaeTiling& tiling,
                           const VaeChunkTile& ct) const {
  check_latents(latents);
  const at::Tensor z = latents.to(rt_.options());
  if (kind != VaeDecoderKind::kChunkTile) return decode_whole(z, kind == VaeDecoderKind::kCausal, tiling);

  // Chunk-tile (the release's decode_chunk_tile, non-causal): latent tiles z[i : i + L + 1] every S latent
  // frames, each decoded alone; later tiles drop their first frame and are blended linearly over
  // tile_frames − stride_frames frames with the (already blended) previous tile.
  const int64_t tr = cfg_.temporal_ratio(), T = z.size(2);
  SS_CHECK(ct.tile_frames % tr == 0 && ct.stride_frames % tr == 0 && ct.stride_frames > 0 &&
               ct.stride_frames <= ct.tile_frames,
           "chunk-tile: expected tile and stride frames that are multiples of {} with stride <= tile, got {} and {}", tr,
           ct.tile_frames, ct.stride_frames);
  const int64_t L = ct.tile_frames / tr, S = ct.stride_frames / tr, blend = ct.tile_frames - ct.stride_frames;
  std::vector<at::Tensor> pieces;
  at::Tensor prev;
  for (int64_t i = 0; i < T; i += S) {
    const int64_t n = std::min(L + 1, T - i);
    if (i > 0 && n == 1) break;  // a one-latent tile without its first frame is empty (and so are later ones)
    at::Tensor tile = decode_whole(z.narrow(2, i, n), /*causal=*/false, tiling);  // [B, C, 1 + (n − 1)·tr, H, W]
    if (i == 0) {
      pieces.push_back(tile.narrow(2, 0, std::min(ct.stride_frames + 1, tile.size(2))));
    } else {
      tile = tile.narrow(2, 1, tile.size(2) - 1);
      const int64_t e = std::min({prev.size(2), tile.size(2), blend});
      for (int64_t x = 0; x < e; ++x) {
        const double f = static_cast<double>(x) / static_cast<double>(e);
        tile.select(2, x).copy_(prev.select(2, prev.size(2) - e + x) * (1.0 - f) + tile.select(2, x) * f);
      }
      pieces.push_back(tile.narrow(2, 0, std::min(ct.stride_frames, tile.size(2))));
    }
    prev = tile;
  }
  return at::cat(pieces, 2).narrow(2, 0, 1 + (T - 1) * tr);
}

// ---------------------------------------------------------------------------------------------------

Ltx2VaeEncodeStream::Ltx2VaeEncodeStream(const Ltx2Vae& vae, const VaeTiling& tiling) : vae_(vae), tiling_(tiling) {
  SS_CHECK(vae.config().encoder_causal, "VAE: streaming encode needs the causal encoder (config encoder_causal true)");
}

at::Tensor Ltx2VaeEncodeStream::push(const at::Tensor& frames) {
  vae_.check_frames(frames, /*whole_clip=*/false);
  const std::vector<int64_t> shape = {frames.size(0), frames.size(1), frames.size(3), frames.size(4)};
  if (shape_.empty()) shape_ = shape;
  SS_CHECK(shape == shape_, "VAE encode stream: frames changed size from {} to {} (B, C, H, W)", shape_str(shape_),
           shape_str(shape));
  const int64_t sr = vae_.config().spatial_ratio();
  const TileGrid g = make_grid(frames.size(3) / sr, frames.size(4) / sr, tiling_, sr);
  if (caches_.empty()) caches_ = make_caches(g.count(), vae_.encoder().cache_slots());
  frames_ += frames.size(2);
  const at::Tensor x = frames.to(vae_.runtime().options());
  return run_tiled(x, g, sr, 1, [&](size_t i, const at::Tensor& t) { return vae_.encoder().forward(t, true, &caches_[i]); });
}

void Ltx2VaeEncodeStream::finish() const {
  const int64_t tr = vae_.config().temporal_ratio();
  SS_CHECK(frames_ > 0 && (frames_ - 1) % tr == 0,
           "VAE encode stream: ended after {} frames, expected 1 + {}k (the last latent frame is incomplete)", frames_,
           tr);
}

Ltx2VaeDecodeStream::Ltx2VaeDecodeStream(const Ltx2Vae& vae, const VaeTiling& tiling) : vae_(vae), tiling_(tiling) {}

at::Tensor Ltx2VaeDecodeStream::push(const at::Tensor& latents) {
  vae_.check_latents(latents);
  const std::vector<int64_t> shape = {latents.size(0), latents.size(3), latents.size(4)};
  if (shape_.empty()) shape_ = shape;
  SS_CHECK(shape == shape_, "VAE decode stream: latents changed size from {} to {} (B, h, w)", shape_str(shape_),
           shape_str(shape));
  const int64_t sr = vae_.config().spatial_ratio();
  const TileGrid g = make_grid(latents.size(3), latents.size(4), tiling_, sr);
  if (caches_.empty()) caches_ = make_caches(g.count(), vae_.decoder().cache_slots());
  const at::Tensor z = latents.to(vae_.runtime().options());
  return run_tiled(z, g, 1, sr, [&](size_t i, const at::Tensor& t) { return vae_.decoder().forward(t, true, &caches_[i]); });
}

// ---------------------------------------------------------------------------------------------------

Ltx2VaeSource resolve_ltx2_vae_source(const std::string& path, const std::string& config_path) {
  SS_CHECK(!path.empty(), "no VAE given (expected --vae DIR)");
  SS_CHECK(path_exists(path), "VAE '{}' does not exist", path);
  Ltx2VaeSource s;
  std::string dir = path;
  if (is_directory(path)) {
    if (!path_exists(dir + "/config.json") && path_exists(dir + "/vae/config.json")) dir += "/vae";
    s.weights_path = path_exists(dir + "/diffusion_pytorch_model.safetensors.index.json")
                         ? dir + "/diffusion_pytorch_model.safetensors.index.json"
                     : path_exists(dir + "/diffusion_pytorch_model.safetensors")
                         ? dir + "/diffusion_pytorch_model.safetensors"
                         : io::resolve_weights_path(dir, "VAE");
  } else {
    s.weights_path = path;
    dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.find_last_of('/'));
  }
  s.config_path = config_path.empty() ? dir + "/config.json" : config_path;
  SS_CHECK(path_exists(s.config_path), "VAE config '{}' does not exist (expected config.json beside the weights, or "
           "--vae-config FILE)", s.config_path);
  return s;
}

std::unique_ptr<Ltx2Vae> load_ltx2_vae(const Ltx2VaeSource& src, const Runtime& rt, VaeLayout layout) {
  Ltx2VaeConfig cfg = load_ltx2_vae_config(src.config_path);
  io::WeightSet ws = io::load_weights(src.weights_path);
  try {
    return std::make_unique<Ltx2Vae>(ws.tensors, std::move(cfg), rt, layout);
  } catch (const Error& e) {
    SS_FAIL("{}: {}", src.weights_path, e.message());
  }
}

io::TensorMap random_ltx2_vae_weights(const Ltx2VaeConfig& cfg, uint64_t seed, at::ScalarType dtype) {
  VaeBuildContext b(seed, dtype);
  VaeEncoder enc(b, cfg);
  b.reset_slots();
  VaeDecoder dec(b, cfg);
  b.take("latents_mean", {cfg.latent_channels});
  b.take("latents_std", {cfg.latent_channels});
  return b.generated();
}

}  // namespace sanastream::model
