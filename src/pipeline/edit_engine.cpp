#include "pipeline/edit_engine.h"

#include <cmath>

#include "core/compare.h"
#include "core/error.h"
#include "ops/device.h"

namespace sanastream::pipeline {

std::string FrameSize::str() const { return fmt::format("{}x{}", width, height); }

FrameSize parse_frame_size(const std::string& spec, const std::string& what) {
  const auto x = spec.find('x');
  FrameSize s;
  try {
    SS_CHECK(x != std::string::npos, "");
    size_t used = 0;
    s.width = std::stoll(spec.substr(0, x), &used);
    SS_CHECK(used == x, "");
    s.height = std::stoll(spec.substr(x + 1), &used);
    SS_CHECK(used == spec.size() - x - 1, "");
  } catch (const std::exception&) {
    SS_FAIL("{}: expected WxH (e.g. 1280x704), got '{}'", what, spec);
  }
  SS_CHECK(s.width > 0 && s.height > 0 && s.width <= 16384 && s.height <= 16384,
           "{}: {} is not a possible frame size (1 … 16384 per side)", what, spec);
  return s;
}

FrameSize closest_resolution(const FrameSize& source, const std::vector<FrameSize>& resolutions) {
  SS_CHECK(!resolutions.empty(), "the model names no resolutions");
  const double aspect = std::log(static_cast<double>(source.width) / source.height);
  const FrameSize* best = nullptr;
  double best_d = 0;
  for (const FrameSize& r : resolutions) {
    const double d = std::abs(std::log(static_cast<double>(r.width) / r.height) - aspect);
    if (!best || d < best_d - 1e-12 || (std::abs(d - best_d) <= 1e-12 && r.width * r.height > best->width * best->height)) {
      best = &r;
      best_d = d;
    }
  }
  return *best;
}

FrameSize floor_to_multiple(const FrameSize& size, int64_t multiple, const std::string& what) {
  const FrameSize f{size.width / multiple * multiple, size.height / multiple * multiple};
  SS_CHECK(f.width > 0 && f.height > 0, "{} {}: smaller than {} pixels on a side, the model's smallest frame", what,
           size.str(), multiple);
  return f;
}

namespace {

// [n, 3, h, w] float → bilinear to cover `to`, centre-cropped.
at::Tensor cover_crop(const at::Tensor& x, const FrameSize& to) {
  const int64_t h = x.size(2), w = x.size(3);
  if (h == to.height && w == to.width) return x;
  const double scale = std::max(static_cast<double>(to.width) / w, static_cast<double>(to.height) / h);
  const int64_t sw = std::max<int64_t>(to.width, std::llround(w * scale));
  const int64_t sh = std::max<int64_t>(to.height, std::llround(h * scale));
  const at::Tensor scaled = at::upsample_bilinear2d(x, {sh, sw}, /*align_corners=*/false);
  return scaled.narrow(2, (sh - to.height) / 2, to.height).narrow(3, (sw - to.width) / 2, to.width);
}

}  // namespace

at::Tensor rgb24_to_model(const at::Tensor& rgb, const FrameSize& to, at::ScalarType dtype, at::Device device) {
  SS_CHECK(rgb.dim() == 4 && rgb.size(3) == 3 && rgb.scalar_type() == at::kByte, "expected RGB24 frames [n, h, w, 3], got {}",
           shape_str(rgb.sizes()));
  at::Tensor x = rgb.to(device, /*non_blocking=*/true).permute({0, 3, 1, 2}).to(at::kFloat).div_(127.5).sub_(1);
  return cover_crop(x, to).to(dtype).permute({1, 0, 2, 3}).unsqueeze(0).contiguous();
}

at::Tensor model_to_rgb24(const at::Tensor& frames, const FrameSize& to) {
  at::Tensor x = frames.squeeze(0).permute({1, 0, 2, 3}).to(at::kFloat);
  return cover_crop(x, to).add(1).mul_(127.5).round_().clamp_(0, 255).to(at::kByte).permute({0, 2, 3, 1}).contiguous();
}

struct EditEngine::State {
  State(const model::HybridDit& d, const model::Ltx2Vae& v, const FrameSize& sz, const EditEngineOptions& o)
      : dit(d), vae(v), size(sz), opt(o), gen(at::detail::createCPUGenerator(o.seed)), encoder(v, o.tiling),
        decoder(v, o.tiling) {}

  const model::HybridDit& dit;
  const model::Ltx2Vae& vae;
  FrameSize size;
  EditEngineOptions opt;
  at::Generator gen;
  model::Ltx2VaeEncodeStream encoder;
  model::Ltx2VaeDecodeStream decoder;
  model::CaptionState caption;
  std::unique_ptr<StreamingSampler> sampler;
  std::vector<at::Tensor> ahead;  // posterior modes of the current chunk's frames encoded ahead
  int64_t ahead_frames = 0;

  // A VAE stream's push in pieces of `piece` frames along dim 2 (whole when 0): the same result, the
  // activations of one piece at a time (EditEngineOptions::vae_call_latents).
  template <typename Stream>
  static at::Tensor push_pieces(Stream& stream, const at::Tensor& x, int64_t piece) {
    const int64_t n = x.size(2);
    if (piece == 0 || n <= piece) return stream.push(x);
    std::vector<at::Tensor> out;
    for (int64_t i = 0; i < n; i += piece) out.push_back(stream.push(x.narrow(2, i, std::min(piece, n - i))));
    return at::cat(out, 2);
  }
  at::Tensor encode_frames(const at::Tensor& frames) {
    return push_pieces(encoder, frames, opt.vae_call_latents * vae.config().temporal_ratio());
  }
  at::Tensor decode_latents(const at::Tensor& latents) {
    return push_pieces(decoder, vae.denormalize(latents.to(vae.runtime().device)), opt.vae_call_latents);
  }
  // --dump-latents: per-chunk tensors on the host (fp32; the source latents in the model dtype).
  at::Tensor first_embeds, first_mask;
  std::vector<at::Tensor> noise, src, out;
};

EditEngine::EditEngine(const model::HybridDit& dit, const model::Ltx2Vae& vae, const FrameSize& size,
                       const EditEngineOptions& opt)
    : s_(std::make_unique<State>(dit, vae, size, opt)) {
  const int64_t multiple = vae.config().spatial_ratio() * dit.config().patch;
  SS_CHECK(size.width % multiple == 0 && size.height % multiple == 0,
           "processing size {}: not a multiple of {} pixels (the VAE's {} x the DiT's patch {})", size.str(), multiple,
           vae.config().spatial_ratio(), dit.config().patch);
  const auto& dc = dit.config();
  const auto& vc = vae.config();
  SS_CHECK(vc.latent_channels == dc.latent_channels && vc.latent_channels == dc.source_channels,
           "the VAE's {} latent channels do not fit the DiT's {} noisy + {} source channels", vc.latent_channels,
           dc.latent_channels, dc.source_channels);
  SS_CHECK(opt.first_chunk >= 3 && opt.first_chunk <= 5, "--first-chunk: expected 3, 4 or 5 latent frames, got {}",
           opt.first_chunk);
  SS_CHECK(opt.vae_call_latents >= 0, "--vae-call-latents: expected 0 (a whole chunk) or more, got {}",
           opt.vae_call_latents);
}

EditEngine::~EditEngine() = default;

double EditEngine::last_dit_ms() const { return dit_clock_ ? dit_clock_->intervals().at(0) * 1e3 : 0.0; }

void EditEngine::set_prompt(const at::Tensor& embeds, const at::Tensor& mask) {
  State& s = *s_;
  const auto& cfg = s.dit.config();
  const at::Tensor e = embeds.reshape({1, 1, -1, embeds.size(-1)});
  const at::Tensor m = mask.reshape({1, -1});
  SS_CHECK(e.size(2) == cfg.caption_length && e.size(3) == cfg.caption_channels,
           "prompt embeddings {}: the DiT reads {} tokens of width {}", shape_str(embeds.sizes()), cfg.caption_length,
           cfg.caption_channels);
  const auto& rt = s.dit.runtime();
  model::CaptionState c = s.dit.encode_caption(e.to(rt.device, rt.dtype), m.to(rt.device, at::kLong));
  if (s.opt.dump && !s.first_embeds.defined()) {
    s.first_embeds = e.to(at::kCPU).clone();
    s.first_mask = m.to(at::kCPU, at::kLong).clone();
  }
  if (s.sampler) {
    s.sampler->set_caption(c);
    return;
  }
  s.caption = std::move(c);
}

int64_t EditEngine::chunk_frames(int64_t index) const {
  const int64_t tr = s_->vae.config().temporal_ratio();
  return index == 0 ? 1 + (s_->opt.first_chunk - 1) * tr : 3 * tr;
}

at::Tensor EditEngine::process(const at::Tensor& frames, bool last, const FramesFn& first_out) {
  const int64_t n = s_->ahead_frames + frames.size(2);
  const at::Tensor latents = sample(encode(frames, last), last);
  if (!first_out || chunks_ > 0 || latents.size(2) == 1) return decode(latents, n);
  // The first chunk's first latent frame alone, its frames out before the rest are decoded.
  const at::Tensor head = s_->decode_latents(latents.narrow(2, 0, 1));
  first_out(head);
  return decode(latents.narrow(2, 1, latents.size(2) - 1), n - head.size(2));
}

namespace {
void check_frame_shape(const at::Tensor& frames, const FrameSize& size) {
  SS_CHECK(frames.dim() == 5 && frames.size(1) == 3 && frames.size(3) == size.height && frames.size(4) == size.width,
           "edit: expected frames [1, 3, n, {}, {}], got {}", size.height, size.width, shape_str(frames.sizes()));
}
}  // namespace

void EditEngine::encode_ahead(const at::Tensor& frames) {
  State& s = *s_;
  check_frame_shape(frames, s.size);
  const int64_t n = frames.size(2);
  SS_CHECK(n >= 1 && s.ahead_frames + n < chunk_frames(),
           "edit: encode_ahead takes fewer frames than chunk {} still takes ({} of {} encoded), got {}", encoded_,
           s.ahead_frames, chunk_frames(), n);
  s.ahead.push_back(s.encode_frames(frames));
  s.ahead_frames += n;
}

at::Tensor EditEngine::encode(const at::Tensor& frames, bool last) {
  State& s = *s_;
  check_frame_shape(frames, s.size);
  const int64_t want = chunk_frames(), rest = frames.size(2), n = s.ahead_frames + rest;
  const int64_t tr = s.vae.config().temporal_ratio();
  SS_CHECK(rest >= 1 && (n == want || (last && n < want)), "edit: chunk {} takes {} frames, got {}", encoded_, want, n);
  // Pad a short last chunk to whole latent frames by repeating its last frame.
  const int64_t whole = encoded_ == 0 ? 1 + (n - 1 + tr - 1) / tr * tr : (n + tr - 1) / tr * tr;
  at::Tensor x = frames;
  if (whole > n) x = at::cat({frames, frames.narrow(2, rest - 1, 1).expand({-1, -1, whole - n, -1, -1})}, 2);
  ++encoded_;
  s.ahead.push_back(s.encode_frames(x));
  const at::Tensor mode = s.ahead.size() == 1 ? s.ahead[0] : at::cat(s.ahead, 2);
  s.ahead.clear();
  s.ahead_frames = 0;
  return s.vae.normalize(mode);
}

at::Tensor EditEngine::sample(const at::Tensor& source, bool last) {
  State& s = *s_;
  SS_CHECK(s.sampler || s.caption.y.defined(), "edit: no prompt set before the first chunk");
  const at::Tensor src = source.to(s.dit.runtime().device);
  const int64_t t = src.size(2);
  const auto& dc = s.dit.config();
  const at::Tensor noise = at::randn({1, dc.latent_channels, t, src.size(3), src.size(4)}, s.gen, at::kFloat);
  if (!s.sampler) {
    s.sampler = std::make_unique<StreamingSampler>(
        s.dit, s.caption, 1, src.size(3), src.size(4), t, 3,
        StreamingOptions{s.opt.steps, s.opt.first_chunk, s.opt.efficient_cache, s.opt.cuda_graphs, s.opt.rope_limit});
  }
  dit_clock_ = std::make_unique<ops::DeviceClock>(s.dit.runtime().is_cuda());
  dit_clock_->mark();
  const at::Tensor latents = s.sampler->step(noise, src, last);
  dit_clock_->mark();
  if (s.opt.dump) {
    s.noise.push_back(noise);
    s.src.push_back(src.to(at::kCPU));
    s.out.push_back(latents.to(at::kCPU));
  }
  return latents;
}

at::Tensor EditEngine::decode(const at::Tensor& latents, int64_t n) {
  const at::Tensor video = s_->decode_latents(latents);
  ++chunks_;
  return video.narrow(2, 0, n);
}

io::TensorMap EditEngine::dump() const {
  const State& s = *s_;
  SS_CHECK(s.opt.dump, "edit: the engine keeps no dump (EditEngineOptions::dump is off)");
  SS_CHECK(!s.noise.empty(), "edit: nothing to dump, no chunk was processed");
  return {{"inputs.noise", at::cat(s.noise, 2)},
          {"inputs.src_latents", at::cat(s.src, 2)},
          {"inputs.prompt_embeds", s.first_embeds},
          {"inputs.prompt_mask", s.first_mask},
          {"output.latents", at::cat(s.out, 2)}};
}

at::Tensor edit_whole_clip(const model::HybridDit& dit, const model::Ltx2Vae& vae, const at::Tensor& frames,
                           const at::Tensor& embeds, const at::Tensor& mask, const at::Tensor& neg_embeds,
                           const at::Tensor& neg_mask, const WholeClipOptions& opt) {
  SS_CHECK(dit.config().variant == model::DitVariant::kBidirectional, "the whole-clip edit needs the bidirectional DiT");
  const int64_t n = frames.size(2), tr = vae.config().temporal_ratio();
  const int64_t whole = 1 + (n - 1 + tr - 1) / tr * tr;
  at::Tensor x = frames;
  if (whole > n) x = at::cat({frames, frames.narrow(2, n - 1, 1).expand({-1, -1, whole - n, -1, -1})}, 2);
  const at::Tensor src = vae.normalize(vae.encode(x, opt.tiling));
  const auto& rt = dit.runtime();
  auto caption = [&](const at::Tensor& e, const at::Tensor& m) {
    return dit.encode_caption(e.reshape({1, 1, -1, e.size(-1)}).to(rt.device, rt.dtype),
                              m.reshape({1, -1}).to(rt.device, at::kLong));
  };
  const model::CaptionState cond = caption(embeds, mask), uncond = caption(neg_embeds, neg_mask);
  at::Generator gen = at::detail::createCPUGenerator(opt.seed);
  const at::Tensor noise = at::randn({1, dit.config().latent_channels, src.size(2), src.size(3), src.size(4)}, gen,
                                     at::kFloat);
  const at::Tensor latents = sample_dpm(dit, noise, src, cond, &uncond, opt.dpm);
  return vae.decode(vae.denormalize(latents), opt.decoder, opt.tiling).narrow(2, 0, n);
}

}  // namespace sanastream::pipeline
