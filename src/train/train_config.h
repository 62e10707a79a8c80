// `sanastream train --config train.json`: the configuration of a training run (docs/TRAIN.md has
// the schema). Parsing is strict: unknown keys, wrong types and out-of-range values are one Error
// naming the file and the key ("train.json: optim.lr: expected a number > 0, got -1").
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/dit_random.h"
#include "model/ltx2_vae_config.h"

namespace sanastream::train {

// Where the DiT's weights come from: a model package / weights file (init), or seeded random
// weights of a shape (random) — tests, smoke runs and benchmarks.
struct DitInit {
  std::string init;                       // package dir, .safetensors, shard index or .pth ("" = random)
  std::optional<model::DitShape> random;  // the shape of random weights
  uint64_t seed = 0;
  std::vector<std::string> trainable{""};  // key prefixes that train ("" = every tensor); the rest is frozen
};

// The Gemma-2 text encoder (DiT mode): frozen by default (the cache's embeddings are used as they are);
// trainable, it re-encodes each sample's prompts with autograd and trains with the DiT.
struct TextEncoderTrainConfig {
  bool trainable = false;
  std::string init;                        // model package or text-encoder dir ("" = the data cache's package)
  std::vector<std::string> trainable_keys{""};  // key prefixes (official Gemma-2 keys) that train ("" = every tensor)
};

struct OptimConfig {
  double lr = 1e-4;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.0;
  int64_t warmup_steps = 0;  // linear warm-up from 0 to lr
  double grad_clip = 1.0;    // max global L2 norm (0 = off)
};

struct EmaConfig {
  bool enabled = true;
  double decay = 0.999;
};

// (a) flow matching on (source, target) pairs over whole clips, no caches.
struct FlowMatchingConfig {
  bool enabled = true;
  double weight = 1.0;
  double logit_mean = 0.0, logit_std = 1.0;  // σ = sigmoid(mean + std·N(0, 1)), then shifted
  double flow_shift = 8.0;                   // σ ← shift·σ / (1 + (shift − 1)·σ)
  double text_dropout = 0.1;                 // probability of the null caption (CFG)
  bool chunked = false;                      // the streaming regime: chunks against the target's caches
  int64_t sink_gap = 0;                      // chunked: a random gap of 0 … sink_gap latent positions per step
                                             // between the first chunk and the rest (the first chunk is the
                                             // softmax sink, far behind in a long stream)
};

// (b) streaming self-rollout and (c) Cycle-Reverse Regularization on its edits.
struct RolloutConfig {
  bool enabled = false;
  double weight = 1.0;
  int first_chunk = 3;  // latent frames of the first chunk (3, 4 or 5), then 3
  int steps = 4;        // Euler steps of the rollout (the distilled schedule)
};
struct CrrConfig {
  bool enabled = false;
  double weight = 0.5;
};

// The VAE trainer mode: the LTX-2 VAE (encoder + causal decoder) trained on frame reconstruction.
struct VaeLossConfig {
  double charbonnier = 1.0;       // weight of mean sqrt((x − y)² + eps²)
  double charbonnier_eps = 1e-3;
  double ssim = 0.2;              // weight of 1 − mean SSIM (11×11 Gaussian window, σ 1.5, per frame and channel)
  double haar = 0.5;              // weight of the L1 between the LH, HL, HH bands of a one-level Haar transform
  double teacher = 0.0;           // weight of the L1 to the teacher decoder's frames (distillation; 0 = none)
};
struct VaeTrainConfig {
  bool enabled = false;
  std::string init;                               // package, VAE directory or weights file ("" = random)
  std::optional<model::Ltx2VaeConfig> random;     // the structure of seeded random weights (diffusers config.json)
  uint64_t seed = 0;
  std::vector<std::string> trainable{""};         // key prefixes that train ("" = every tensor)
  VaeLossConfig losses;
  std::string teacher;  // package or VAE directory whose frozen causal decoder is distilled ("" = none)
};

struct DataConfig {
  std::string cache;              // a data cache directory (`sanastream train-cache`)
  std::string vae;                // model package or VAE directory: encodes frame caches (frozen)
  int64_t width = 0, height = 0;  // training size in pixels (0 = the cache's)
  double crop_min = 1.0;          // random crops of [crop_min, 1] of the side, resized to the training size
  int64_t batch = 1;              // samples per optimiser step (gradients accumulated)
  // Edit families (train/edit_families.h) whose target and prompts the trainer makes from each clip
  // (empty: the cache's own targets and prompts). Needs data.vae and a trainable text encoder.
  std::vector<std::string> edits;
  // Target-free long clips (a data cache) for CRR: one per step, its prompts from `edits`.
  std::string long_cache;
};

struct TrainConfig {
  std::string path;                            // the config file (errors and relative paths)
  std::string output;                          // run directory: checkpoints/, log.csv, loss.png
  std::string device = "cpu", dtype = "fp32";  // bf16: bf16 compute, fp32 master weights and states
  uint64_t seed = 0;
  int64_t max_steps = 100;
  int64_t checkpoint_every = 0;  // steps (0 = only at the end of a command)
  int64_t keep_checkpoints = 2;  // the newest checkpoints kept (older ones are removed)
  double time_limit_s = 0;       // stop (with a checkpoint) after this much wall time (0 = no limit)
  DitInit dit;
  OptimConfig optim;
  EmaConfig ema;
  FlowMatchingConfig flow_matching;
  RolloutConfig rollout;
  CrrConfig crr;
  TextEncoderTrainConfig text_encoder;
  VaeTrainConfig vae;  // enabled: the VAE mode (dit and the DiT objectives are absent)
  DataConfig data;
  nlohmann::json to_json() const;
};

// Parses a config; `path` names it in errors and anchors relative paths (its directory).
TrainConfig parse_train_config(const nlohmann::json& j, const std::string& path);
TrainConfig load_train_config(const std::string& path);

}  // namespace sanastream::train
