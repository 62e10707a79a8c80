// Training data on disk (docs/TRAIN.md): a manifest JSONL of {"source_video", "start"?, "prompt"?,
// "reverse_prompt"?, "target_video"?} is decoded once, on a machine with FFmpeg (cache_builder.h),
// into a data cache directory that the trainer reads anywhere (the GPU machine has no FFmpeg):
//   DIR/index.json                 format_version, kind (frames | latents), width, height, frames, package?,
//                                  spatial_ratio/temporal_ratio (latents), samples (file, target, prompt,
//                                  reverse_prompt: the texts, "" = none)
//   DIR/null_prompt.safetensors    prompt.embeds [L, Cc], prompt.mask [L]: the empty prompt (CFG dropout)
//   DIR/NNNNNN.safetensors         source, target? (frames [F, H, W, 3] uint8 RGB, or normalised latents
//                                  [Cl, T, h, w] fp32 or fp16), prompt.embeds/.mask, reverse_prompt.embeds/.mask
//                                  (absent for a clip without prompts: the trainer's edit families give them)
#pragma once

#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

namespace sanastream::train {

constexpr int64_t kDataCacheVersion = 1;

// mkdir -p (the cache and the run directories); an Error names the directory.
void make_directories(const std::string& dir);

enum class CacheKind { kFrames, kLatents };

struct ManifestRow {
  std::string source_video, target_video;  // resolved paths; target "" = none
  double start = 0;                        // seconds from the clip's first frame
  std::string prompt, reverse_prompt;      // both or neither ("" = a clip without prompts)
};

// Reads a manifest JSONL (one object per line, blank lines skipped); video paths are relative to the
// manifest's directory unless absolute. Errors name the file, the line and the key.
std::vector<ManifestRow> read_manifest(const std::string& path);

struct CacheSample {
  at::Tensor source, target;  // frames [F, H, W, 3] uint8 or latents [Cl, T, h, w] fp32/fp16; target may be undefined
  at::Tensor prompt_embeds, prompt_mask;    // [L, Cc] fp32, [L] int64; undefined for a clip without prompts
  at::Tensor reverse_embeds, reverse_mask;  // [L, Cc] fp32, [L] int64; likewise
  std::string prompt, reverse_prompt;
};

struct CacheHeader {
  CacheKind kind = CacheKind::kFrames;
  int64_t width = 0, height = 0;  // pixels of the cached frames (latents: of the frames they encode)
  int64_t frames = 0;             // frames per clip, 1 + k·(the VAE's temporal ratio)
  std::string package;            // the model package whose text encoder embedded the prompts ("" = not recorded)
  int64_t spatial_ratio = 32, temporal_ratio = 8;  // latents: the VAE's compression (LTX-2's by default)
};

// Writes a cache; index.json is written last (atomically), so a cache without it is incomplete.
class DataCacheWriter {
 public:
  DataCacheWriter(std::string dir, CacheHeader header);
  void set_null_prompt(const at::Tensor& embeds, const at::Tensor& mask);  // [L, Cc], [L]
  void add(const CacheSample& s);
  void finish();

 private:
  std::string dir_;
  CacheHeader header_;
  nlohmann::json samples_ = nlohmann::json::array();
  bool has_null_ = false;
};

class DataCache {
 public:
  explicit DataCache(std::string dir);
  const CacheHeader& header() const { return header_; }
  int64_t size() const { return static_cast<int64_t>(files_.size()); }
  CacheSample load(int64_t index) const;
  const at::Tensor& null_embeds() const { return null_embeds_; }  // [L, Cc] fp32
  const at::Tensor& null_mask() const { return null_mask_; }      // [L] int64
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  CacheHeader header_;
  std::vector<std::string> files_;
  std::vector<std::pair<std::string, std::string>> prompts_;  // (prompt, reverse_prompt) per sample
  at::Tensor null_embeds_, null_mask_;
};

// A latent cache of seeded random clips and prompts (benchmarks, smoke runs; the data is noise):
// `samples` clips of header.frames frames at header.width × header.height (latents [Cl, T, h/s, w/s] for
// the header's ratios),
// every other one without a target, prompts [caption_length, caption_channels] with half their mask set.
void write_random_latent_cache(const std::string& dir, const CacheHeader& header, int64_t samples,
                               int64_t latent_channels, int64_t caption_channels, int64_t caption_length,
                               uint64_t seed);

// The order samples are visited in: a permutation per epoch from (seed, epoch), so the position
// (epoch, index) is all a checkpoint needs to resume it.
class DataOrder {
 public:
  DataOrder(int64_t size, uint64_t seed);
  int64_t next();  // the next sample index; advances the position
  int64_t epoch() const { return epoch_; }
  int64_t position() const { return pos_; }
  void seek(int64_t epoch, int64_t position);

 private:
  void shuffle();
  int64_t size_;
  uint64_t seed_;
  int64_t epoch_ = 0, pos_ = 0;
  std::vector<int64_t> perm_;
};

}  // namespace sanastream::train
