// sanastream make-target: the exact target of an edit family (src/train/edit_families.h) for a window
// of a video, written losslessly, for the demo model's evaluation suite (docs/TRAIN.md "Edit families
// and the demo data"). The source is decoded, sampled at --fps by timestamp (video::RateSampler, the
// rule of `sanastream edit`), scaled to cover the processing size and centre-cropped (bilinear,
// pipeline::rgb24_to_model, as `edit` does), rounded to RGB24; the family's operation runs on those
// RGB24 frames / 255 and its result is rounded to RGB24. Both videos are FFV1 (bgr0) in Matroska, so
// what is read back is exactly what was computed, and --source-out's frames are the pixels the
// target was computed from.
//
// Outputs are written as OUT.part and renamed when complete (video::MediaWriter); on an error none
// is left. A Ctrl-C finalises what was written (shorter files) and exits 130.
//
// --vae DIR writes, instead, what a VAE (a model package or VAE directory) reconstructs of those frames
// (of the family's target with --family, else of the source): the whole window encoded and decoded
// causally at once (padded to 1 + k·its temporal ratio by repeating the last frame, then trimmed), on
// the CPU in fp32 — the VAE's share of an edit's error, PSNR(VAE(target), target) in the demo model's
// criteria.
//
// --list-families prints one line per family: NAME<TAB>its first phrasing (the suite's prompt).
// --probe decodes every frame of -i and prints FRAMES<TAB>WxH<TAB>SECONDS<TAB>PATH (SECONDS: from the
// first frame's time to the end of the last), without writing anything.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>

#include <ATen/core/grad_mode.h>  // at::NoGradGuard (not in ATen.h of PyTorch 2.x)

#include "command.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "core/json_report.h"
#include "core/log.h"
#include "pipeline/edit_engine.h"
#include "pipeline/model_package.h"
#include "train/edit_families.h"
#include "video/media_writer.h"
#include "train/model_frames.h"
#include "video/video_reader.h"

namespace sanastream::cli {

namespace {

using pipeline::FrameSize;

struct MakeTargetCli {
  std::string family, input, output, source_out, size, json, vae;
  int64_t short_side = 0;
  int64_t frames = 0;  // 0 = to the end of the video
  double fps = 16;
  double start = 0;    // seconds after the source's first frame
  bool list_families = false, probe = false;
};

constexpr int64_t kBatch = 16;  // frames per apply_edit_family call: memory stays constant

// --short-side N: the source scaled so that its short side is N, each side then rounded to the
// nearest multiple of 8 (at least 8), e.g. 640×480 → 344×256 and 1280×720 → 456×256 for N = 256.
FrameSize short_side_size(const FrameSize& source, int64_t n) {
  const double s = static_cast<double>(n) / static_cast<double>(std::min(source.width, source.height));
  auto side = [&](int64_t v) { return std::max<int64_t>(8, std::llround(static_cast<double>(v) * s / 8.0) * 8); };
  return {side(source.width), side(source.height)};
}

void check_mkv(const std::string& path, const char* what) {
  const std::string ext = ".mkv";
  SS_CHECK(path.size() > ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0,
           "{}: expected a path ending in .mkv (FFV1 in Matroska, lossless), got '{}'", what, path);
}

void list_families() {
  for (const train::EditFamily& f : train::edit_families())
    std::printf("%s\t%s\n", f.name.c_str(), f.phrasings.front().c_str());
}

void probe(const MakeTargetCli& o) {
  video::VideoReader reader;
  reader.open(o.input);
  video::Frame f;
  int64_t n = 0;
  double first = 0, last = 0, interval = 0;
  while (reader.read(f)) {
    check_interrupt();
    if (n == 0) first = f.time;
    if (n > 0 && f.time > last) interval = f.time - last;
    last = f.time;
    ++n;
  }
  const video::VideoInfo& info = reader.info();
  const double fps = info.fps();
  const double seconds = n == 0 ? 0.0 : last - first + (interval > 0 ? interval : fps > 0 ? 1 / fps : 0.0);
  std::printf("%lld\t%dx%d\t%.3f\t%s\n", static_cast<long long>(n), info.width, info.height, seconds, o.input.c_str());
  if (!o.json.empty())
    write_json_report(o.json, {{"input", o.input},
                               {"frames", n},
                               {"size", FrameSize{info.width, info.height}.str()},
                               {"seconds", seconds},
                               {"summary", info.summary()}});
}

// The VAE's causal reconstruction of frames [n, 3, H, W] in [0, 1], as one clip.
at::Tensor reconstruct(const model::Ltx2Vae& vae, const at::Tensor& frames) {
  at::NoGradGuard no_grad;
  const int64_t n = frames.size(0), tr = vae.config().temporal_ratio();
  const int64_t padded = 1 + (n - 1 + tr - 1) / tr * tr;
  at::Tensor x = frames.mul(2).sub(1).transpose(0, 1).unsqueeze(0);  // [1, 3, n, H, W] in [−1, 1]
  if (padded > n) x = at::cat({x, x.narrow(2, n - 1, 1).expand({1, 3, padded - n, x.size(3), x.size(4)})}, 2);
  const at::Tensor y = vae.decode(vae.encode(x), model::VaeDecoderKind::kCausal);
  return y.narrow(2, 0, n).squeeze(0).transpose(0, 1).add(1).div(2).clamp(0, 1);
}

void make_target(const MakeTargetCli& o) {
  // Everything that can fail cheaply, before any file is created.
  if (!o.family.empty()) train::edit_family(o.family);  // an unknown name: one line listing the names
  SS_CHECK(o.fps > 0 && o.fps <= 240 && std::isfinite(o.fps), "--fps {}: expected a frame rate in (0, 240]", o.fps);
  SS_CHECK(o.frames >= 0, "--frames {}: expected a number of frames ≥ 0 (0 = all)", o.frames);
  SS_CHECK(o.start >= 0 && std::isfinite(o.start), "--start {}: expected seconds ≥ 0", o.start);
  check_mkv(o.output, "-o");
  SS_CHECK(o.output != o.input, "-o {}: the same path as the input", o.output);
  if (!o.source_out.empty()) {
    check_mkv(o.source_out, "--source-out");
    SS_CHECK(o.source_out != o.output && o.source_out != o.input, "--source-out {}: the same path as -i or -o",
             o.source_out);
  }
  std::optional<FrameSize> size;
  if (!o.size.empty()) size = pipeline::parse_frame_size(o.size, "--size");

  std::unique_ptr<model::Ltx2Vae> vae;
  if (!o.vae.empty()) vae = pipeline::load_vae(o.vae, make_runtime("cpu", "fp32"));

  video::VideoReader reader;
  reader.open(o.input);
  const video::VideoInfo info = reader.info();
  const FrameSize proc = size ? *size : short_side_size({info.width, info.height}, o.short_side);

  video::WriterOptions wo;
  wo.width = static_cast<int>(proc.width);
  wo.height = static_cast<int>(proc.height);
  wo.frame_rate = std::abs(o.fps - std::round(o.fps)) < 1e-9
                      ? video::Rational{static_cast<int>(std::lround(o.fps)), 1}
                      : video::Rational{static_cast<int>(std::lround(o.fps * 1000)), 1000};
  wo.format = "mkv";
  wo.video_codec = "ffv1";
  video::MediaWriter target, source;
  target.open(o.output, wo);
  if (!o.source_out.empty()) source.open(o.source_out, wo);

  // The window: model frames k (time t₀ + k/fps) with k/fps ≥ --start, --frames of them (0: all).
  const auto first = static_cast<int64_t>(std::ceil(o.start * o.fps - 1e-6));
  std::vector<at::Tensor> batch;  // RGB24 [H, W, 3] at the processing size, the window's next frames
  int64_t written = 0;
  auto full = [&] { return o.frames > 0 && written + static_cast<int64_t>(batch.size()) >= o.frames; };
  auto flush = [&] {
    if (batch.empty()) return;
    const at::Tensor src = at::stack(batch);                                          // [n, H, W, 3] uint8
    const at::Tensor x = src.permute({0, 3, 1, 2}).to(at::kFloat).div(255);           // [n, 3, H, W] in [0, 1]
    at::Tensor y = o.family.empty() ? x : train::apply_edit_family(o.family, x);      // [n, 3, H, W] in [0, 1]
    if (vae) y = reconstruct(*vae, y);
    y = y.mul(255).round().clamp(0, 255).to(at::kByte).permute({0, 2, 3, 1}).contiguous();
    video::Frame f;
    f.width = wo.width;
    f.height = wo.height;
    auto put = [&](video::MediaWriter& w, const at::Tensor& img) {  // img: [H, W, 3] uint8
      f.rgb.assign(img.data_ptr<uint8_t>(), img.data_ptr<uint8_t>() + img.numel());
      w.write(f);
    };
    for (int64_t i = 0; i < src.size(0); ++i) {
      f.time = static_cast<double>(written + i) / o.fps;  // the window starts at 0
      put(target, y[i]);
      if (source.is_open()) put(source, src[i]);
    }
    written += src.size(0);
    batch.clear();
  };
  auto finish = [&] {
    flush();
    if (source.is_open()) source.finish();
    target.finish();
  };

  int64_t next = 0;  // model frames passed
  try {
    next = train::read_model_frames(reader, o.fps, proc, first, [&](const at::Tensor& frame) {
      batch.push_back(frame);
      if (!vae && static_cast<int64_t>(batch.size()) == kBatch) flush();
      return !full();
    });
  } catch (const Interrupted&) {
    finish();
    throw;
  }
  SS_CHECK(written + static_cast<int64_t>(batch.size()) > 0,
           "{}: expected frames at or after --start {} s, got a video of {} model frames at {} fps", o.input, o.start,
           next, o.fps);
  finish();
  if (o.frames > 0 && written < o.frames)
    log_warn("{}: {} frames at {} fps from {} s, fewer than the {} asked for", o.input, written, o.fps, o.start,
             o.frames);

  const std::string what = (o.family.empty() ? std::string("source") : o.family) + (vae ? " through " + o.vae : "");
  std::printf("%s: %s of %s, %lld frames %s at %g fps from %.3f s%s\n", o.output.c_str(), what.c_str(),
              o.input.c_str(), static_cast<long long>(written), proc.str().c_str(), o.fps, o.start,
              o.source_out.empty() ? "" : (", source → " + o.source_out).c_str());
  if (!o.json.empty())
    write_json_report(o.json, {{"family", o.family.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.family)},
                               {"vae", o.vae.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.vae)},
                               {"input", o.input},
                               {"output", o.output},
                               {"source_out", o.source_out.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.source_out)},
                               {"source", {{"size", FrameSize{info.width, info.height}.str()}, {"summary", info.summary()}}},
                               {"size", proc.str()},
                               {"fps", o.fps},
                               {"start", o.start},
                               {"frames", written}});
}

}  // namespace

void register_make_target(CLI::App& app) {
  auto o = std::make_shared<MakeTargetCli>();
  auto* sub = app.add_subcommand(
      "make-target",
      "Write an edit family's exact target for a window of a video, lossless (FFV1 in Matroska): "
      "--family NAME -i SRC -o OUT.mkv (--size WxH | --short-side N)");
  sub->add_option("--family", o->family, "Edit family (--list-families shows them)")->type_name("NAME");
  sub->add_option("--vae", o->vae,
                  "Write what this VAE (model package or VAE directory) reconstructs of the target (of the "
                  "source without --family), whole window at once, CPU fp32")
      ->type_name("DIR");
  sub->add_option("-i,--input", o->input, "Source video")->type_name("FILE");
  sub->add_option("-o,--output", o->output, "The target video (.mkv)")->type_name("OUT.mkv");
  sub->add_option("--source-out", o->source_out,
                  "Also write the source at the same size, rate and window (.mkv): the pixels the target is "
                  "computed from")
      ->type_name("PATH.mkv");
  auto* size = sub->add_option("--size", o->size, "Processing size WxH (scale to cover, centre-crop)")->type_name("WxH");
  auto* short_side = sub->add_option("--short-side", o->short_side,
                                     "Processing size: the source scaled so its short side is N, each side rounded "
                                     "to the nearest multiple of 8")
                         ->type_name("N")
                         ->check(CLI::PositiveNumber);
  size->excludes(short_side);
  sub->add_option("--fps", o->fps, "Frame rate the source is sampled at, by timestamp")->capture_default_str();
  sub->add_option("--frames", o->frames, "Frames to write (0 = to the end)")->capture_default_str();
  sub->add_option("--start", o->start, "Seconds after the source's first frame where the window starts")
      ->capture_default_str();
  sub->add_flag("--list-families", o->list_families, "Print NAME<TAB>first phrasing for every family and exit");
  sub->add_flag("--probe", o->probe,
                "Decode every frame of -i, print FRAMES<TAB>WxH<TAB>SECONDS<TAB>PATH and exit (writes nothing)");
  add_json_option(sub, &o->json);
  sub->callback([o] {
    // Usage errors (exit 2) like CLI11's own.
    if (o->list_families) return set_runner([] { list_families(); });
    if (o->input.empty()) throw CLI::RequiredError("--input");
    if (o->probe) return set_runner([o] { probe(*o); });
    if (o->family.empty() && o->vae.empty()) throw CLI::RequiredError("--family or --vae");
    if (o->output.empty()) throw CLI::RequiredError("--output");
    if (o->size.empty() && o->short_side == 0) throw CLI::RequiredError("--size or --short-side");
    set_runner([o] { make_target(*o); });
  });
}

}  // namespace sanastream::cli
