// The training loop of `sanastream train` (docs/TRAIN.md): fp32 master weights of the DiT, AdamW,
// EMA, the objectives of objectives.h on samples of a data cache, checkpoints with exact resume,
// a CSV log and a PNG loss plot. In the VAE mode (vae.enabled) the weights are the LTX-2 VAE's and the
// objective is vae_objectives.h's reconstruction on frame-cache clips; checkpoints hold vae/ and vae_ema/
// (config.json + diffusion_pytorch_model.safetensors, loadable as VAE directories) instead of dit*.
// A run lives in one output directory and is split across commands:
//   OUT/checkpoints/step_NNNNNNNN/dit.safetensors      the weights, official keys, fp32
//   OUT/checkpoints/step_NNNNNNNN/dit_ema.safetensors  their EMA (when enabled)
//   OUT/checkpoints/step_NNNNNNNN/state.safetensors    AdamW moments (exp_avg.KEY, exp_avg_sq.KEY),
//                                                      the generator state (rng); metadata: step,
//                                                      data epoch and position
//   OUT/checkpoints/step_NNNNNNNN/text_encoder.safetensors      a trainable text encoder's weights (official
//   OUT/checkpoints/step_NNNNNNNN/text_encoder_ema.safetensors  Gemma-2 keys, fp32) and their EMA; its moments
//                                                      are in state.safetensors as exp_avg.text_encoder.KEY
//   OUT/checkpoints/latest                             the newest complete checkpoint's directory name
//   OUT/log.csv, OUT/loss.png                          one row per step; the loss curve
// A checkpoint directory is written as NAME.part and renamed when complete; a command resumes from
// `latest` when there is one.
// Data-parallel (a dist::ProcessGroup of N ranks, `train --gpus N`, docs/MULTI_GPU.md): every rank
// draws the same batch (one data order and generator) and computes its share — rows
// [r·B/N, (r+1)·B/N) of a data.edits sample or of the VAE mode's clips, every N-th sample otherwise,
// CRR's long clip on rank step mod N — then the gradients and losses are averaged over the ranks, so
// the step is the one-process step's and the weights stay the same on every rank. Rank 0 alone writes
// the run directory; every rank resumes from it.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/op_profile.h"
#include "dist/process_group.h"
#include "model/ltx2_vae.h"
#include "train/data_cache.h"
#include "train/objectives.h"
#include "train/optimizer.h"
#include "train/text_encoder.h"
#include "train/train_config.h"
#include "train/vae_objectives.h"

namespace sanastream::train {

struct StepLosses {
  double loss = 0, flow_matching = 0, rollout = 0, crr = 0, grad_norm = 0, lr = 0;
  double charbonnier = 0, ssim = 0, haar = 0, teacher = 0;  // the VAE mode's (ssim: 1 − mean SSIM)
};

struct TrainReport {
  int64_t first_step = 0, last_step = 0;   // steps done by this command: (first_step, last_step]
  bool resumed = false, finished = false;  // finished: max_steps reached
  double seconds = 0, steps_per_s = 0;
  double peak_host_mib = 0, peak_device_mib = 0;
  int64_t parameters = 0, trainable = 0;
  StepLosses last;
  std::string checkpoint;  // the newest checkpoint
  nlohmann::json to_json() const;
};

// A run's OUT/log.csv: its steps and losses (the first and third columns).
std::pair<std::vector<double>, std::vector<double>> read_logged_losses(const std::string& log_csv);

// An Error unless a run of `ranks` data-parallel ranks can split cfg's batch evenly (data.edits and the
// VAE mode split rows: data.batch a multiple of ranks).
void check_data_parallel(const TrainConfig& cfg, int ranks);

class Trainer {
 public:
  // Builds the model from the config, or resumes the newest checkpoint of cfg.output. group: this
  // rank's process group for data-parallel training (outlives the trainer), or none.
  explicit Trainer(TrainConfig cfg, dist::ProcessGroup* group = nullptr);
  ~Trainer();

  // One optimiser step over data.batch samples.
  StepLosses step();
  // Steps until max_steps or the time limit, checkpointing every checkpoint_every steps and at the end.
  // profile_steps > 0: the last profile_steps steps before max_steps (never this command's first, which
  // warms up) are recorded by the op profiler; OUT/profile.txt gets its table (core/op_profile.h), with
  // the phases as rows named train::*.
  TrainReport run(int64_t profile_steps = 0);
  // Writes OUT/checkpoints/step_N (N = the current step) and points `latest` at it; returns its path.
  std::string save_checkpoint();

  int64_t current_step() const { return step_; }
  const io::TensorMap& params() const { return cfg_.vae.enabled ? vae_w_.params : w_.params; }
  // The trainable weights' EMA; a trainable text encoder's under "text_encoder." + its keys.
  const io::TensorMap& ema() const { return ema_; }
  // The text encoder's master weights (empty unless text_encoder.trainable).
  const io::TensorMap& text_encoder_params() const { return te_.params; }
  const AdamW& optimizer() const { return *opt_; }
  // The next sample of data.cache on the device (advances the data order and the generator, as a
  // step does): latents of the source and target, the prompts' embeddings; with data.edits, data.batch
  // clips as rows of one sample, each with an edit family's target — the family of the source's pixels
  // (latent caches: as data.vae decodes them), encoded by data.vae — and a phrasing of its instruction
  // and of its reverse.
  TrainSample next_sample();

 private:
  void init_weights(const io::TensorMap& weights, io::TensorMap& params, const std::vector<std::string>& trainable,
                    const char* section);
  // A random crop of [crop_min, 1] of each side of a frame-cache sample, resized (bilinear) to the
  // training size: [1, 3, F, H, W] fp32 in [−1, 1] on the device (source, and target when present).
  std::pair<at::Tensor, at::Tensor> next_clips(const CacheHeader& h, const CacheSample& cs, int64_t W, int64_t H);
  // `rows` clips of `data` in `order` as one sample (rows > 1: data.edits and a trainable encoder).
  // `share`: the rows this rank computes (all rows are drawn); an empty share: all.
  TrainSample make_sample(const DataCache& data, DataOrder& order, bool with_target, int64_t rows,
                          const RowSlice& share = {});
  // This rank's rows of a batch of `total`: [r·total/N, (r+1)·total/N) (one process: all of them).
  RowSlice my_rows(int64_t total) const;
  // Whether any rank passed true (one process: flag).
  bool any_rank(bool flag) const { return group_ ? group_->any(flag) : flag; }
  bool writer() const { return !group_ || group_->rank() == 0; }  // rank 0 writes the run directory
  // Each clip's edit family of its pixels [B, 3, F, H, W] in [−1, 1].
  at::Tensor edit_family_pixels(const std::vector<std::string>& families, const at::Tensor& clips) const;
  // A latent cache's clip `index` (`clip`: its whole latents as loaded), decoded by data.vae, edited
  // by `family` and re-encoded: normalised latents [Cl, T, h, w] fp32 on the device. Kept for later
  // steps up to kEditedClipBytes in all (the demo's 41 clips x 8 families: 0.6 GB), recomputed beyond.
  at::Tensor edited_clip(const DataCache& data, int64_t index, const at::Tensor& clip, const std::string& family);
  int64_t pixel_multiple(const CacheHeader& h) const;  // pixels per DiT token of a cache's clips (VAE ratio x patch)
  bool resume();
  void append_log(const StepLosses& l, double seconds);
  void write_plot() const;
  // Stops and drops the profile; its table (`seconds` recorded) to OUT/profile.txt and the log.
  void write_profile(std::unique_ptr<OpProfile>& profile, double seconds);

  TrainConfig cfg_;
  dist::ProcessGroup* group_ = nullptr;
  DitWeights w_;
  VaeWeights vae_w_;                       // the VAE mode
  TextEncoderWeights te_;                  // text_encoder.trainable: its trainable ones are in trainable_ as
                                           // "text_encoder." + key
  std::unique_ptr<model::Ltx2Vae> teacher_;  // the VAE mode's distillation teacher (frozen)
  io::TensorMap trainable_, ema_;
  std::unique_ptr<AdamW> opt_;
  std::unique_ptr<DataCache> data_;
  std::unique_ptr<DataOrder> order_;
  std::unique_ptr<DataCache> long_data_;  // data.long_cache: CRR's target-free clips
  std::unique_ptr<DataOrder> long_order_;
  std::unique_ptr<model::Ltx2Vae> vae_;  // frame caches: the frozen encoder
  at::Generator gen_;
  int64_t step_ = 0;
  bool resumed_ = false;
  std::string checkpoint_;  // the newest checkpoint written or resumed
  static constexpr int64_t kEditedClipBytes = int64_t{2} << 30;
  std::map<std::string, at::Tensor> edited_;  // edited_clip's results by "cache#index#family"
  int64_t edited_bytes_ = 0;
};

}  // namespace sanastream::train
