#include "train/cache_builder.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>

#include <ATen/core/grad_mode.h>  // at::NoGradGuard (not in ATen.h of PyTorch 2.x)

#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "core/runtime.h"
#include "pipeline/edit_engine.h"
#include "pipeline/model_package.h"
#include "pipeline/prompt_encoder.h"
#include "train/model_frames.h"
#include "video/video_reader.h"

namespace sanastream::train {

namespace {

// `count` frames at `fps` from the first model frame at or after `start` seconds after the clip's first
// frame (read_model_frames) → RGB24 [count, H, W, 3] at the cache size.
at::Tensor read_clip(const std::string& path, double start, int64_t count, double fps,
                     const pipeline::FrameSize& size) {
  video::VideoReader reader;
  reader.open(path);
  std::vector<at::Tensor> frames;
  read_model_frames(reader, fps, size, static_cast<int64_t>(std::ceil(start * fps - 1e-6)), [&](const at::Tensor& f) {
    frames.push_back(f.unsqueeze(0));
    return static_cast<int64_t>(frames.size()) < count;
  });
  SS_CHECK(!frames.empty(), "{}: no video frames{}", path, start > 0 ? fmt::format(" after {} s", start) : "");
  if (static_cast<int64_t>(frames.size()) < count)
    log_warn("{}: {} frames at {} fps, padded to {} by repeating the last", path, frames.size(), fps, count);
  while (static_cast<int64_t>(frames.size()) < count) frames.push_back(frames.back());
  return at::cat(frames, 0);  // [count, H, W, 3] uint8
}

}  // namespace

nlohmann::json CacheBuildReport::to_json() const {
  return {{"samples", samples}, {"with_target", with_target}, {"seconds", seconds}};
}

CacheBuildReport build_data_cache(const CacheBuildOptions& opt) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<ManifestRow> rows = read_manifest(opt.manifest);
  const pipeline::ModelPackage pkg = pipeline::load_model_package(opt.model);
  const int64_t sr = pkg.vae.config.spatial_ratio(), tr = pkg.vae.config.temporal_ratio();
  SS_CHECK(opt.width % sr == 0 && opt.height % sr == 0 && opt.width > 0 && opt.height > 0,
           "--size: expected multiples of {} (the package's VAE), got {}x{}", sr, opt.width, opt.height);
  SS_CHECK(opt.frames >= 1 && (opt.frames - 1) % tr == 0, "--frames: expected 1 + {}k (the package's VAE), got {}", tr,
           opt.frames);
  SS_CHECK(opt.latent_dtype == "fp32" || opt.latent_dtype == "fp16", "--latent-dtype: expected fp32 or fp16, got '{}'",
           opt.latent_dtype);
  const double fps = opt.fps > 0 ? opt.fps : pkg.fps;
  const Runtime rt = make_runtime(opt.device, opt.dtype);
  pipeline::PromptEncoder prompts(pkg.text_encoder.path, rt, model::Gemma2Attention::kEager);
  std::unique_ptr<model::Ltx2Vae> vae;
  if (opt.latents) vae = pipeline::load_package_vae(pkg, rt);
  const pipeline::FrameSize size{opt.width, opt.height};

  DataCacheWriter writer(opt.out_dir,
                         {opt.latents ? CacheKind::kLatents : CacheKind::kFrames, opt.width, opt.height, opt.frames,
                          std::filesystem::absolute(opt.model).lexically_normal().string(), sr, tr});
  const at::ScalarType latent_dtype = opt.latent_dtype == "fp16" ? at::kHalf : at::kFloat;
  const pipeline::PromptEmbedding null = prompts.encode_negative("");
  writer.set_null_prompt(null.embeds, null.mask);
  CacheBuildReport r;
  for (const ManifestRow& row : rows) {
    check_interrupt();
    auto clip = [&](const std::string& path) {
      at::Tensor rgb = read_clip(path, row.start, opt.frames, fps, size);
      if (!vae) return rgb;
      at::NoGradGuard no_grad;
      const at::Tensor x = pipeline::rgb24_to_model(rgb, size, rt.dtype, rt.device);  // [1, 3, F, H, W]
      return vae->normalize(vae->encode(x)).squeeze(0).to(at::kCPU, latent_dtype);    // [Cl, T, h, w]
    };
    CacheSample s;
    s.source = clip(row.source_video);
    if (!row.target_video.empty()) s.target = clip(row.target_video);
    if (!row.prompt.empty()) {
      const pipeline::PromptEmbedding p = prompts.encode(row.prompt, pipeline::PromptMode::kStreaming);
      const pipeline::PromptEmbedding q = prompts.encode(row.reverse_prompt, pipeline::PromptMode::kStreaming);
      s.prompt_embeds = p.embeds;
      s.prompt_mask = p.mask;
      s.reverse_embeds = q.embeds;
      s.reverse_mask = q.mask;
      s.prompt = row.prompt;
      s.reverse_prompt = row.reverse_prompt;
    }
    writer.add(s);
    ++r.samples;
    r.with_target += s.target.defined();
  }
  writer.finish();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace sanastream::train
