// `sanastream train-cache`: a manifest JSONL → a data cache (data_cache.h), on a machine with FFmpeg
// and the text encoder. Clips are read at the model's frame rate (by timestamp) from the row's start,
// `frames` frames each (a shorter clip repeats its last frame), scaled to cover the cache size and
// centre-cropped; prompts, reverse prompts (where the row has them) and the empty prompt are encoded
// once each.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "train/data_cache.h"

namespace sanastream::train {

struct CacheBuildOptions {
  std::string manifest, out_dir;
  std::string model;              // the model package: its text encoder (and VAE for latents)
  int64_t width = 0, height = 0;  // cache frame size (≥ the training size: room for random crops)
  int64_t frames = 17;            // frames per clip, 1 + k·(the package VAE's temporal ratio)
  double fps = 0;                 // 0: the package's
  bool latents = false;           // store VAE latents (the package's VAE) instead of frames
  std::string latent_dtype = "fp32";  // or "fp16" (half the size; the trainer reads either)
  std::string device = "cpu", dtype = "fp32";
};

struct CacheBuildReport {
  int64_t samples = 0, with_target = 0;
  double seconds = 0;
  nlohmann::json to_json() const;
};

CacheBuildReport build_data_cache(const CacheBuildOptions& opt);

}  // namespace sanastream::train
