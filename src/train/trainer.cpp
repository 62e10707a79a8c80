#include "train/trainer.h"

#include <dirent.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <sstream>
#include <tuple>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>  // at::NoGradGuard (not in ATen.h of PyTorch 2.x)
#include <ATen/record_function.h>

#include "core/compare.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "core/op_profile.h"
#include "io/checkpoint.h"
#include "ops/device.h"
#include "pipeline/dit_loader.h"
#include "pipeline/model_package.h"
#include "train/edit_families.h"
#include "train/png.h"

namespace sanastream::train {

using json = nlohmann::json;

namespace {

const char* const kLogHeader = "step,lr,loss,flow_matching,rollout,crr,grad_norm,step_seconds";
const char* const kVaeLogHeader = "step,lr,loss,charbonnier,ssim,haar,teacher,grad_norm,step_seconds";
const char* const kVaeWeightsFile = "diffusion_pytorch_model.safetensors";
const std::string kTextPrefix = "text_encoder.";  // the text encoder's keys in trainable_, ema_ and the state

bool is_text_key(const std::string& key) { return key.rfind(kTextPrefix, 0) == 0; }

// The entries of m under kTextPrefix (text = true, the prefix removed) or the others; same tensors.
io::TensorMap split_text(const io::TensorMap& m, bool text) {
  io::TensorMap out;
  for (const auto& [k, t] : m)
    if (is_text_key(k) == text) out[text ? k.substr(kTextPrefix.size()) : k] = t;
  return out;
}

bool trainable_key(const std::vector<std::string>& prefixes, const std::string& key) {
  for (const auto& p : prefixes)
    if (key.rfind(p, 0) == 0) return true;
  return false;
}

io::TensorMap host_copy(const io::TensorMap& m) {
  io::TensorMap out;
  for (const auto& [k, t] : m) out[k] = t.detach().to(at::kCPU).contiguous();
  return out;
}

// Copies checkpoint tensors into `dst` in place; the key sets and shapes must agree.
void copy_into(io::TensorMap& dst, const io::TensorMap& src, const std::string& prefix, const std::string& file) {
  at::NoGradGuard no_grad;
  for (auto& [k, t] : dst) {
    auto it = src.find(prefix + k);
    SS_CHECK(it != src.end(), "{}: missing tensor '{}' (was the run's config changed?)", file, prefix + k);
    SS_CHECK(it->second.sizes() == t.sizes(), "{}: '{}' expected shape {}, got {}", file, prefix + k,
             shape_str(t.sizes()), shape_str(it->second.sizes()));
    t.copy_(it->second);
  }
}

// The training size in pixels: the config's, else the cache's; multiples of the VAE's spatial ratio.
std::pair<int64_t, int64_t> train_size(const DataConfig& d, const CacheHeader& h, int64_t ratio) {
  const int64_t W = d.width ? d.width : h.width, H = d.height ? d.height : h.height;
  SS_CHECK(W % ratio == 0 && H % ratio == 0 && W <= h.width && H <= h.height,
           "data: expected a training size of multiples of {} within the cache's {}x{}, got {}x{}", ratio, h.width,
           h.height, W, H);
  return {W, H};
}

// A generator seeded by one draw of `gen`.
at::Generator fork_generator(at::Generator& gen) { return at::make_generator<at::CPUGeneratorImpl>(draw_seed(gen)); }

// A VAE directory: config.json and the weights in the diffusers layout.
void save_vae_dir(const std::string& dir, const model::Ltx2VaeConfig& cfg, const io::TensorMap& weights) {
  make_directories(dir);
  write_text_file_atomic(dir + "/config.json", cfg.to_json().dump(2) + "\n");
  io::save_safetensors(dir + "/" + kVaeWeightsFile, host_copy(weights));
}

}  // namespace

json TrainReport::to_json() const {
  return {{"first_step", first_step},
          {"last_step", last_step},
          {"steps", last_step - first_step},
          {"resumed", resumed},
          {"finished", finished},
          {"seconds", seconds},
          {"steps_per_s", steps_per_s},
          {"peak_host_mib", peak_host_mib},
          {"peak_device_mib", peak_device_mib},
          {"parameters", parameters},
          {"trainable_parameters", trainable},
          {"loss", last.loss},
          {"flow_matching", last.flow_matching},
          {"rollout", last.rollout},
          {"crr", last.crr},
          {"charbonnier", last.charbonnier},
          {"ssim", last.ssim},
          {"haar", last.haar},
          {"teacher", last.teacher},
          {"grad_norm", last.grad_norm},
          {"lr", last.lr},
          {"checkpoint", checkpoint}};
}

std::pair<std::vector<double>, std::vector<double>> read_logged_losses(const std::string& log_csv) {
  std::istringstream in(read_text_file(log_csv));
  std::string line;
  std::getline(in, line);
  std::vector<double> steps, losses;
  while (std::getline(in, line)) {
    std::istringstream row(line);
    std::string step, lr, loss;
    std::getline(row, step, ',');
    std::getline(row, lr, ',');
    std::getline(row, loss, ',');
    steps.push_back(std::stod(step));
    losses.push_back(std::stod(loss));
  }
  return {steps, losses};
}

void check_data_parallel(const TrainConfig& cfg, int ranks) {
  SS_CHECK(ranks >= 1, "expected 1 or more ranks, got {}", ranks);
  const bool rows = cfg.vae.enabled || !cfg.data.edits.empty();
  SS_CHECK(!rows || cfg.data.batch % ranks == 0,
           "{}: data.batch {}: expected a multiple of the {} ranks (each computes an equal share of its rows)",
           cfg.path, cfg.data.batch, ranks);
}

Trainer::Trainer(TrainConfig cfg, dist::ProcessGroup* group) : cfg_(std::move(cfg)), group_(group) {
  if (group_) check_data_parallel(cfg_, group_->size());
  w_.rt = make_runtime(cfg_.device, cfg_.dtype);
  if (cfg_.vae.enabled) {
    vae_w_.rt = w_.rt;
    io::TensorMap weights;
    if (!cfg_.vae.init.empty()) {
      const std::string dir = path_exists(cfg_.vae.init + "/model.json")
                                  ? pipeline::load_model_package(cfg_.vae.init).vae.path
                                  : cfg_.vae.init;
      const model::Ltx2VaeSource src = model::resolve_ltx2_vae_source(dir);
      vae_w_.cfg = model::load_ltx2_vae_config(src.config_path);
      weights = io::load_weights(src.weights_path).tensors;
    } else {
      vae_w_.cfg = *cfg_.vae.random;
      weights = model::random_ltx2_vae_weights(vae_w_.cfg, cfg_.vae.seed);
    }
    init_weights(weights, vae_w_.params, cfg_.vae.trainable, "vae");
    vae_w_.build();  // checks the weights against the config
    if (!cfg_.vae.teacher.empty()) {
      teacher_ = pipeline::load_vae(cfg_.vae.teacher, w_.rt);
      const model::Ltx2VaeConfig& t = teacher_->config();
      SS_CHECK(t.latent_channels == vae_w_.cfg.latent_channels && t.spatial_ratio() == vae_w_.cfg.spatial_ratio() &&
                   t.temporal_ratio() == vae_w_.cfg.temporal_ratio() && t.out_channels == vae_w_.cfg.out_channels,
               "{}: vae.teacher: expected a VAE of the same latent space ({} channels, {}x{} compression), got {} "
               "channels, {}x{}",
               cfg_.path, vae_w_.cfg.latent_channels, vae_w_.cfg.temporal_ratio(), vae_w_.cfg.spatial_ratio(),
               t.latent_channels, t.temporal_ratio(), t.spatial_ratio());
    }
  } else {
    io::TensorMap weights;
    json overrides = json::object();
    if (!cfg_.dit.init.empty()) {
      const pipeline::DitSource src = pipeline::resolve_dit_source(cfg_.dit.init);
      weights = io::load_weights(src.weights_path).tensors;
      overrides = src.overrides;
    } else {
      weights = model::random_dit_weights(*cfg_.dit.random, cfg_.dit.seed, at::kFloat, at::kCPU);
      overrides["num_heads"] = cfg_.dit.random->heads;
    }
    w_.cfg = model::detect_dit_config(weights, overrides);
    init_weights(weights, w_.params, cfg_.dit.trainable, "dit");
  }
  data_ = std::make_unique<DataCache>(cfg_.data.cache);
  if (cfg_.text_encoder.trainable) {
    // The encoder that embedded the cache (its package) unless the config names one.
    const std::string init = !cfg_.text_encoder.init.empty() ? cfg_.text_encoder.init : data_->header().package;
    SS_CHECK(!init.empty(),
             "{}: text_encoder.init: expected a model package or text-encoder directory (the data cache records "
             "none)",
             cfg_.path);
    te_ = load_text_encoder_weights(init, w_.rt);
    SS_CHECK(te_.cfg.hidden == w_.cfg.caption_channels,
             "{}: text_encoder: expected a width of the DiT's caption_channels {}, got {}", cfg_.path,
             w_.cfg.caption_channels, te_.cfg.hidden);
    int64_t n = 0;
    for (auto& [k, p] : te_.params) {
      if (!trainable_key(cfg_.text_encoder.trainable_keys, k)) continue;
      p.set_requires_grad(true);
      trainable_[kTextPrefix + k] = p;
      if (cfg_.ema.enabled) ema_[kTextPrefix + k] = p.detach().clone();
      ++n;
    }
    SS_CHECK(n > 0, "{}: text_encoder.trainable_keys: no weight starts with any of the prefixes given", cfg_.path);
  }
  opt_ = std::make_unique<AdamW>(trainable_, cfg_.optim);

  order_ = std::make_unique<DataOrder>(data_->size(), cfg_.seed);
  if (!cfg_.data.long_cache.empty()) {
    long_data_ = std::make_unique<DataCache>(cfg_.data.long_cache);
    long_order_ = std::make_unique<DataOrder>(long_data_->size(), cfg_.seed + 1);
  }
  if (cfg_.vae.enabled) {
    const CacheHeader& h = data_->header();
    SS_CHECK(h.kind == CacheKind::kFrames, "{}: data.cache: the VAE mode trains on a frame cache, got a latent cache",
             cfg_.path);
    SS_CHECK((h.frames - 1) % vae_w_.cfg.temporal_ratio() == 0,
             "{}: data.cache: the VAE encodes 1 + {}k frames, the cache's clips have {}", cfg_.path,
             vae_w_.cfg.temporal_ratio(), h.frames);
    train_size(cfg_.data, h, vae_w_.cfg.spatial_ratio());
  } else {
    const bool frames = data_->header().kind == CacheKind::kFrames ||
                        (long_data_ && long_data_->header().kind == CacheKind::kFrames);
    SS_CHECK(!frames || !cfg_.data.vae.empty(),
             "{}: data.vae: a frame cache needs the VAE that encodes it (a model package or VAE "
             "directory)",
             cfg_.path);
    if (!cfg_.data.vae.empty()) vae_ = pipeline::load_vae(cfg_.data.vae, w_.rt);
    for (const DataCache* d : {data_.get(), long_data_.get()}) {
      if (d == nullptr) continue;
      const CacheHeader& h = d->header();
      SS_CHECK(!vae_ || h.kind == CacheKind::kFrames ||
                   (h.spatial_ratio == vae_->config().spatial_ratio() &&
                    h.temporal_ratio == vae_->config().temporal_ratio()),
               "{}: data.vae: compresses {}x{} (time x space), the latents of '{}' {}x{}", cfg_.path,
               vae_->config().temporal_ratio(), vae_->config().spatial_ratio(), d->dir(), h.temporal_ratio,
               h.spatial_ratio);
      train_size(cfg_.data, h, pixel_multiple(h));
    }
  }
  gen_ = at::make_generator<at::CPUGeneratorImpl>(cfg_.seed);

  resumed_ = resume();
  if (!writer()) return;
  make_directories(cfg_.output);
  make_directories(cfg_.output + "/checkpoints");
  // The log keeps the rows of the steps the weights hold (a command cut short may have logged more).
  const std::string log = cfg_.output + "/log.csv";
  std::string kept = std::string(cfg_.vae.enabled ? kVaeLogHeader : kLogHeader) + "\n";
  if (path_exists(log)) {
    std::istringstream in(read_text_file(log));
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line))
      if (!line.empty() && std::stoll(line.substr(0, line.find(','))) <= step_) kept += line + "\n";
  }
  write_text_file_atomic(log, kept);
}

Trainer::~Trainer() = default;

void Trainer::init_weights(const io::TensorMap& weights, io::TensorMap& params,
                           const std::vector<std::string>& prefixes, const char* section) {
  for (const auto& [k, t] : weights) {
    at::Tensor p = t.to(w_.rt.device, at::kFloat, /*non_blocking=*/false, /*copy=*/true);
    if (trainable_key(prefixes, k)) {
      p.set_requires_grad(true);
      trainable_[k] = p;
      if (cfg_.ema.enabled) ema_[k] = p.detach().clone();
    }
    params[k] = p;
  }
  SS_CHECK(!trainable_.empty(), "{}: {}.trainable: no weight starts with any of the prefixes given", cfg_.path,
           section);
}

std::pair<at::Tensor, at::Tensor> Trainer::next_clips(const CacheHeader& h, const CacheSample& cs, int64_t W,
                                                     int64_t H) {
  const double scale = cfg_.data.crop_min + (1.0 - cfg_.data.crop_min) * at::rand({1}, gen_).item<double>();
  const int64_t ch = std::max<int64_t>(H, std::llround(scale * h.height)),
                cw = std::max<int64_t>(W, std::llround(scale * h.width));
  const int64_t y = std::llround(at::rand({1}, gen_).item<double>() * (h.height - ch));
  const int64_t x = std::llround(at::rand({1}, gen_).item<double>() * (h.width - cw));
  auto crop = [&](const at::Tensor& frames) {  // [F, Hc, Wc, 3] uint8 → [1, 3, F, H, W] fp32
    at::Tensor f = frames.narrow(1, y, ch).narrow(2, x, cw).to(w_.rt.device).permute({0, 3, 1, 2}).to(at::kFloat);
    f = at::upsample_bilinear2d(f.div(127.5).sub(1), {H, W}, /*align_corners=*/false);  // [F, 3, H, W]
    return f.permute({1, 0, 2, 3}).unsqueeze(0);
  };
  return {crop(cs.source), cs.target.defined() ? crop(cs.target) : at::Tensor()};
}

at::Tensor Trainer::edit_family_pixels(const std::vector<std::string>& families, const at::Tensor& clips) const {
  std::vector<at::Tensor> edited;
  for (size_t r = 0; r < families.size(); ++r) {
    const at::Tensor frames = clips[static_cast<int64_t>(r)].transpose(0, 1).add(1).div(2);  // [F, 3, H, W] in [0, 1]
    edited.push_back(apply_edit_family(families[r], frames).mul(2).sub(1).transpose(0, 1).unsqueeze(0));
  }
  return at::cat(edited, 0);
}

at::Tensor Trainer::edited_clip(const DataCache& data, int64_t index, const at::Tensor& clip,
                                const std::string& family) {
  const std::string key = fmt::format("{}#{}#{}", data.dir(), index, family);
  auto it = edited_.find(key);
  if (it != edited_.end()) return it->second;
  const at::Tensor z = clip.unsqueeze(0).to(w_.rt.device, w_.rt.dtype);
  const at::Tensor pixels =
      vae_->decode(vae_->denormalize(z), model::VaeDecoderKind::kCausal).to(at::kFloat).clamp(-1, 1);
  const at::Tensor edited = edit_family_pixels({family}, pixels);
  at::Tensor target = vae_->normalize(vae_->encode(edited.to(w_.rt.dtype))).to(at::kFloat)[0];  // [Cl, T, h, w]
  const int64_t bytes = target.numel() * 4;
  if (edited_bytes_ + bytes <= kEditedClipBytes) {
    edited_.emplace(key, target);
    edited_bytes_ += bytes;
  }
  return target;
}

int64_t Trainer::pixel_multiple(const CacheHeader& h) const {
  return (h.kind == CacheKind::kLatents ? h.spatial_ratio : vae_->config().spatial_ratio()) * w_.cfg.patch;
}

TrainSample Trainer::next_sample() {
  return make_sample(*data_, *order_, true, cfg_.data.edits.empty() ? 1 : cfg_.data.batch);
}

RowSlice Trainer::my_rows(int64_t total) const {
  const int64_t n = group_ ? group_->size() : 1, r = group_ ? group_->rank() : 0;
  return {r * total / n, total / n, total};
}

TrainSample Trainer::make_sample(const DataCache& data, DataOrder& order, bool with_target, int64_t rows,
                                 const RowSlice& share) {
  RECORD_USER_SCOPE("train::sample");
  const CacheHeader& h = data.header();
  const std::pair<int64_t, int64_t> size = train_size(cfg_.data, h, pixel_multiple(h));
  const int64_t W = size.first, H = size.second;
  const at::Device dev = w_.rt.device;
  auto encode = [&](const at::Tensor& clip) {  // [B, 3, F, H, W] in [−1, 1] → [B, Cl, T, h, w] fp32
    return vae_->normalize(vae_->encode(clip.to(w_.rt.dtype))).to(at::kFloat);
  };
  TrainSample s;
  std::vector<at::Tensor> sources, targets, pixels;  // per row
  std::vector<std::string> prompts, reverses, families;
  struct Window {
    int64_t index, y, x;
    at::Tensor clip;  // the whole clip's latents as loaded
  };
  std::vector<Window> windows;  // latent caches: each row's clip and window
  CacheSample cs;
  {
    at::NoGradGuard no_grad;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t index = order.next();
      cs = data.load(index);
      // The source clip: pixels (frame caches) or latents (a random window of the training size's tokens).
      if (h.kind == CacheKind::kFrames) {
        const std::pair<at::Tensor, at::Tensor> clips = next_clips(h, cs, W, H);
        pixels.push_back(clips.first);
        if (clips.second.defined()) targets.push_back(clips.second);
      } else {
        const int64_t lh = H / h.spatial_ratio, lw = W / h.spatial_ratio;
        const int64_t y = std::llround(at::rand({1}, gen_).item<double>() * (cs.source.size(2) - lh));
        const int64_t x = std::llround(at::rand({1}, gen_).item<double>() * (cs.source.size(3) - lw));
        auto crop = [&](const at::Tensor& z) {
          return z.narrow(2, y, lh).narrow(3, x, lw).unsqueeze(0).to(dev, at::kFloat);
        };
        windows.push_back({index, y, x, cs.source});
        sources.push_back(crop(cs.source));
        if (cs.target.defined()) targets.push_back(crop(cs.target));
      }
      prompts.push_back(cs.prompt);
      reverses.push_back(cs.reverse_prompt);
      if (!cfg_.data.edits.empty()) {
        // An edit family, a phrasing of its instruction and one of the reverse.
        const EditFamily& f =
            edit_family(cfg_.data.edits[uniform_index(static_cast<int64_t>(cfg_.data.edits.size()), gen_)]);
        families.push_back(f.name);
        prompts.back() = f.phrasings[uniform_index(static_cast<int64_t>(f.phrasings.size()), gen_)];
        reverses.back() = f.reverse_phrasings[uniform_index(static_cast<int64_t>(f.reverse_phrasings.size()), gen_)];
      }
    }
    if (share.total > 0) {
      // Every row was drawn (the data order and generator stay the same on every rank); this rank's kept.
      auto keep = [&](auto& v) {
        if (!v.empty()) v = std::decay_t<decltype(v)>(v.begin() + share.offset, v.begin() + share.offset + share.count);
      };
      keep(sources);
      keep(targets);
      keep(pixels);
      keep(prompts);
      keep(reverses);
      keep(families);
      keep(windows);
      rows = share.count;
    }
    if (h.kind == CacheKind::kFrames) {
      s.source = encode(at::cat(pixels, 0));
      if (static_cast<int64_t>(targets.size()) == rows) s.target = encode(at::cat(targets, 0));
    } else {
      s.source = at::cat(sources, 0);
      if (static_cast<int64_t>(targets.size()) == rows) s.target = at::cat(targets, 0);
    }
    SS_CHECK(rows == 1 || targets.empty() || static_cast<int64_t>(targets.size()) == rows,
             "{}: a batch of clips with and without targets", data.dir());
    if (!families.empty()) {
      // Each row's family applied to the clip's pixels: frame caches the crop's, latent caches the whole
      // clip's as the frozen VAE decodes it, re-encoded and cut to the source's window.
      s.target = at::Tensor();
      if (with_target && !pixels.empty()) {
        s.target = encode(edit_family_pixels(families, at::cat(pixels, 0)));
      } else if (with_target) {
        const int64_t lh = s.source.size(3), lw = s.source.size(4);
        std::vector<at::Tensor> rows_target;
        for (int64_t r = 0; r < rows; ++r) {
          const Window& w = windows[r];
          rows_target.push_back(
              edited_clip(data, w.index, w.clip, families[r]).narrow(2, w.y, lh).narrow(3, w.x, lw).unsqueeze(0));
        }
        s.target = at::cat(rows_target, 0);
      }
    }
  }
  if (!with_target) s.target = at::Tensor();
  if (cfg_.text_encoder.trainable) {
    // The current encoder's embeddings for the no-grad passes; every grad call re-encodes with autograd
    // (one row per clip, all rows in one encoder call; the null caption's row repeated).
    auto encode_rows = [this, prompts, reverses](const model::Gemma2Model& m, PromptKind kind) {
      if (kind == PromptKind::kNull) {
        const std::pair<at::Tensor, at::Tensor> e = te_.encode(m, "", kind);
        const int64_t n = static_cast<int64_t>(prompts.size());
        return std::make_pair(e.first.expand({n, -1, -1}), e.second.expand({n, -1}));
      }
      return te_.encode(m, kind == PromptKind::kReverse ? reverses : prompts, kind);
    };
    {
      at::NoGradGuard no_grad;
      const std::unique_ptr<model::Gemma2Model> m = te_.build(false);
      std::tie(s.prompt_embeds, s.prompt_mask) = encode_rows(*m, PromptKind::kPrompt);
      std::tie(s.reverse_embeds, s.reverse_mask) = encode_rows(*m, PromptKind::kReverse);
      std::tie(s.null_embeds, s.null_mask) = encode_rows(*m, PromptKind::kNull);
    }
    s.encode = [this, encode_rows](PromptKind kind) { return encode_rows(*te_.build(true), kind); };
  } else {
    SS_CHECK(rows == 1, "data.batch rows in one sample need the trainable text encoder");
    SS_CHECK(cs.prompt_embeds.defined(), "{}: a clip without prompts (data.edits gives them)", data.dir());
    auto dev1 = [&](const at::Tensor& t) { return t.unsqueeze(0).to(dev); };
    s.prompt_embeds = dev1(cs.prompt_embeds);
    s.prompt_mask = dev1(cs.prompt_mask);
    s.reverse_embeds = dev1(cs.reverse_embeds);
    s.reverse_mask = dev1(cs.reverse_mask);
    s.null_embeds = dev1(data.null_embeds());
    s.null_mask = dev1(data.null_mask());
  }
  return s;
}

StepLosses Trainer::step() {
  StepLosses l;
  const double scale = 1.0 / static_cast<double>(cfg_.data.batch);
  const int ranks = group_ ? group_->size() : 1, rank = group_ ? group_->rank() : 0;
  if (cfg_.vae.enabled) {
    // The VAE mode: the source clips of the batch's samples, reconstructed together (one batch through
    // the encoder and causal decoder: the losses are means over every frame, as the mean of per-sample means).
    const std::pair<int64_t, int64_t> size = train_size(cfg_.data, data_->header(), vae_w_.cfg.spatial_ratio());
    const RowSlice mine = my_rows(cfg_.data.batch);
    std::vector<at::Tensor> clips;
    for (int64_t b = 0; b < cfg_.data.batch; ++b) {
      at::Tensor clip = next_clips(data_->header(), data_->load(order_->next()), size.first, size.second).first;
      if (b >= mine.offset && b < mine.offset + mine.count) clips.push_back(clip);
    }
    const VaeLosses v = vae_step(vae_w_, at::cat(clips, 0), cfg_.vae.losses, 1.0, teacher_.get());
    l.loss = v.total.item<double>();
    l.charbonnier = v.charbonnier;
    l.ssim = v.ssim;
    l.haar = v.haar;
    l.teacher = v.teacher;
  } else {
    // With data.long_cache, CRR runs on one long target-free clip per step instead of the batch's clips.
    // With data.edits the batch is one sample of data.batch rows (flow matching only).
    // The objectives draw from a generator seeded by the run's (one per sample), which every rank
    // advances alike; a rank's share is computed with `ranks` times the weight, as the average over
    // the ranks divides by it.
    const CrrConfig batch_crr{cfg_.crr.enabled && !long_data_, cfg_.crr.weight};
    if (!cfg_.data.edits.empty()) {
      const RowSlice mine = my_rows(cfg_.data.batch);
      const TrainSample s = make_sample(*data_, *order_, true, cfg_.data.batch, mine);
      at::Generator g = fork_generator(gen_);
      if (cfg_.flow_matching.enabled)
        l.flow_matching = flow_matching_step(w_, s, cfg_.flow_matching, cfg_.rollout, g, 1.0, mine);
    } else {
      const double w = scale * ranks;
      for (int64_t b = 0; b < cfg_.data.batch; ++b) {
        const TrainSample s = next_sample();
        at::Generator g = fork_generator(gen_);
        if (b % ranks != rank) continue;
        if (cfg_.flow_matching.enabled)
          l.flow_matching += w * flow_matching_step(w_, s, cfg_.flow_matching, cfg_.rollout, g, w);
        const RolloutLosses r = rollout_step(w_, s, cfg_.rollout, batch_crr, g, w);
        l.rollout += w * r.rollout;
        l.crr += w * r.crr;
      }
    }
    if (long_data_) {
      const TrainSample s = make_sample(*long_data_, *long_order_, false, 1);
      at::Generator g = fork_generator(gen_);
      if (step_ % ranks == rank) l.crr += ranks * rollout_step(w_, s, cfg_.rollout, cfg_.crr, g, ranks).crr;
    }
  }
  if (group_) {
    // The ranks' gradients and losses averaged: every rank then takes the same optimiser step.
    std::vector<at::Tensor> grads;
    for (auto& [k, p] : trainable_) {
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
      grads.push_back(p.grad());
    }
    group_->average(grads);
    const std::vector<double*> fields{&l.loss, &l.flow_matching, &l.rollout, &l.crr,
                                      &l.charbonnier, &l.ssim, &l.haar, &l.teacher};
    std::vector<double> v;
    for (const double* f : fields) v.push_back(*f);
    group_->average(v);
    for (size_t i = 0; i < fields.size(); ++i) *fields[i] = v[i];
  }
  if (!cfg_.vae.enabled)
    l.loss = cfg_.flow_matching.weight * l.flow_matching + cfg_.rollout.weight * l.rollout + cfg_.crr.weight * l.crr;
  RECORD_USER_SCOPE("train::optimizer");
  l.grad_norm = clip_grad_norm(trainable_, cfg_.optim.grad_clip);
  ++step_;
  l.lr = learning_rate(cfg_.optim, step_);
  opt_->step(step_, l.lr);
  if (cfg_.ema.enabled) update_ema(ema_, trainable_, ema_decay(cfg_.ema.decay, step_));
  return l;
}

std::string Trainer::save_checkpoint() {
  const std::string name = fmt::format("step_{:08d}", step_);
  const std::string dir = cfg_.output + "/checkpoints/" + name, tmp = dir + ".part";
  SS_CHECK(remove_tree(tmp).empty() && remove_tree(dir).empty(), "cannot replace '{}'", dir);
  make_directories(tmp);
  io::TensorMap ema = params();
  for (const auto& [k, e] : split_text(ema_, false)) ema[k] = e;
  if (cfg_.vae.enabled) {
    save_vae_dir(tmp + "/vae", vae_w_.cfg, vae_w_.params);
    if (cfg_.ema.enabled) save_vae_dir(tmp + "/vae_ema", vae_w_.cfg, ema);
  } else {
    io::save_safetensors(tmp + "/dit.safetensors", host_copy(w_.params));
    if (cfg_.ema.enabled) io::save_safetensors(tmp + "/dit_ema.safetensors", host_copy(ema));
  }
  if (cfg_.text_encoder.trainable) {
    io::save_safetensors(tmp + "/text_encoder.safetensors", host_copy(te_.params));
    if (cfg_.ema.enabled) {
      io::TensorMap te_ema = te_.params;
      for (const auto& [k, e] : split_text(ema_, true)) te_ema[k] = e;
      io::save_safetensors(tmp + "/text_encoder_ema.safetensors", host_copy(te_ema));
    }
  }
  io::TensorMap state;
  for (const auto& [k, m] : opt_->exp_avg()) state["exp_avg." + k] = m;
  for (const auto& [k, v] : opt_->exp_avg_sq()) state["exp_avg_sq." + k] = v;
  {
    std::lock_guard<std::mutex> lock(gen_.mutex());
    state["rng"] = gen_.get_state();
  }
  io::save_safetensors(tmp + "/state.safetensors", host_copy(state),
                       {{"format", "sanastream-train-state"},
                        {"step", std::to_string(step_)},
                        {"data_epoch", std::to_string(order_->epoch())},
                        {"data_position", std::to_string(order_->position())},
                        {"long_data_epoch", std::to_string(long_order_ ? long_order_->epoch() : 0)},
                        {"long_data_position", std::to_string(long_order_ ? long_order_->position() : 0)}});
  SS_CHECK(std::rename(tmp.c_str(), dir.c_str()) == 0, "cannot rename '{}' to '{}'", tmp, dir);
  write_text_file_atomic(cfg_.output + "/checkpoints/latest", name + "\n");
  checkpoint_ = dir;
  // Only the newest keep_checkpoints stay (names sort by step).
  std::vector<std::string> names;
  if (DIR* d = ::opendir((cfg_.output + "/checkpoints").c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n.rfind("step_", 0) == 0 && n.find('.') == std::string::npos) names.push_back(n);
    }
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  for (size_t i = 0; i + cfg_.keep_checkpoints < names.size(); ++i)
    if (names[i] < name) remove_tree(cfg_.output + "/checkpoints/" + names[i]);
  return dir;
}

bool Trainer::resume() {
  const std::string latest = cfg_.output + "/checkpoints/latest";
  if (!path_exists(latest)) return false;
  std::string name = read_text_file(latest);
  name.erase(name.find_last_not_of(" \n\r\t") + 1);
  const std::string dir = cfg_.output + "/checkpoints/" + name;
  const std::string weights = dir + (cfg_.vae.enabled ? std::string("/vae/") + kVaeWeightsFile : "/dit.safetensors");
  const std::string ema = dir + (cfg_.vae.enabled ? std::string("/vae_ema/") + kVaeWeightsFile : "/dit_ema.safetensors");
  copy_into(cfg_.vae.enabled ? vae_w_.params : w_.params, io::load_safetensors(weights), "", weights);
  if (cfg_.ema.enabled) {
    io::TensorMap dit_ema = split_text(ema_, false);  // same tensors: copied into in place
    copy_into(dit_ema, io::load_safetensors(ema), "", ema);
  }
  if (cfg_.text_encoder.trainable) {
    const std::string te = dir + "/text_encoder.safetensors", te_ema = dir + "/text_encoder_ema.safetensors";
    copy_into(te_.params, io::load_safetensors(te), "", te);
    if (cfg_.ema.enabled) {
      io::TensorMap e = split_text(ema_, true);
      copy_into(e, io::load_safetensors(te_ema), "", te_ema);
    }
  }
  const std::string state_path = dir + "/state.safetensors";
  const io::TensorMap state = io::load_safetensors(state_path);
  copy_into(opt_->exp_avg(), state, "exp_avg.", state_path);
  copy_into(opt_->exp_avg_sq(), state, "exp_avg_sq.", state_path);
  SS_CHECK(state.count("rng"), "{}: missing tensor 'rng'", state_path);
  {
    std::lock_guard<std::mutex> lock(gen_.mutex());
    gen_.set_state(state.at("rng"));
  }
  const auto meta = io::SafetensorsFile::open(state_path)->metadata();
  auto number = [&](const char* key) {
    auto it = meta.find(key);
    SS_CHECK(it != meta.end(), "{}: metadata '{}' missing", state_path, key);
    return std::stoll(it->second);
  };
  step_ = number("step");
  order_->seek(number("data_epoch"), number("data_position"));
  if (long_order_) long_order_->seek(number("long_data_epoch"), number("long_data_position"));
  checkpoint_ = dir;
  log_info("resumed {} at step {}", dir, step_);
  return true;
}

void Trainer::append_log(const StepLosses& l, double seconds) {
  std::FILE* f = std::fopen((cfg_.output + "/log.csv").c_str(), "a");
  SS_CHECK(f != nullptr, "cannot append to '{}/log.csv'", cfg_.output);
  if (cfg_.vae.enabled)
    std::fprintf(f, "%lld,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.6f\n", static_cast<long long>(step_), l.lr, l.loss,
                 l.charbonnier, l.ssim, l.haar, l.teacher, l.grad_norm, seconds);
  else
    std::fprintf(f, "%lld,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.6f\n", static_cast<long long>(step_), l.lr, l.loss,
                 l.flow_matching, l.rollout, l.crr, l.grad_norm, seconds);
  std::fclose(f);
}

void Trainer::write_profile(std::unique_ptr<OpProfile>& profile, double seconds) {
  ops::synchronize(w_.rt);
  const std::string table = format_op_table(profile->stop(), seconds * 1e3, 25, "train::");
  profile.reset();
  write_text_file_atomic(cfg_.output + "/profile.txt", table);
  log_info("op profile of the steps up to step {} ({}/profile.txt):\n{}", step_, cfg_.output, table);
}

void Trainer::write_plot() const {
  const auto [steps, losses] = read_logged_losses(cfg_.output + "/log.csv");
  plot_loss_png(cfg_.output + "/loss.png", steps, losses);
}

TrainReport Trainer::run(int64_t profile_steps) {
  TrainReport r;
  r.first_step = step_;
  r.resumed = resumed_;
  for (const auto& [k, p] : params()) r.parameters += p.numel();
  for (const auto& [k, p] : te_.params) r.parameters += p.numel();
  for (const auto& [k, p] : trainable_) r.trainable += p.numel();
  ops::reset_peak_memory(w_.rt);
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  int64_t saved = step_;
  double slowest = 0;
  std::unique_ptr<OpProfile> profile;
  double profile_start = 0;
  while (step_ < cfg_.max_steps) {
    // Ctrl-C, or no time left for another step (as slow as the slowest so far); any rank's stop is all's.
    const bool out_of_time = cfg_.time_limit_s > 0 && elapsed() + slowest > cfg_.time_limit_s;
    if (any_rank(interrupt_requested() || out_of_time)) break;
    if (writer() && profile_steps > 0 && !profile &&
        step_ >= std::max(r.first_step + 1, cfg_.max_steps - profile_steps)) {
      profile = std::make_unique<OpProfile>(w_.rt.device.is_cuda());
      profile_start = elapsed();
    }
    const double t0 = elapsed();
    r.last = step();
    const double dt = elapsed() - t0;
    slowest = std::max(slowest, dt);
    if (!writer()) continue;
    append_log(r.last, dt);
    if (cfg_.vae.enabled)
      log_info(
          "step {}/{}: loss {:.5g} (charbonnier {:.4g}, ssim {:.4g}, haar {:.4g}, teacher {:.4g}), |g| {:.3g}, lr "
          "{:.3g}, {:.2f} s",
          step_, cfg_.max_steps, r.last.loss, r.last.charbonnier, r.last.ssim, r.last.haar, r.last.teacher,
          r.last.grad_norm, r.last.lr, dt);
    else
      log_info("step {}/{}: loss {:.5g} (fm {:.4g}, rollout {:.4g}, crr {:.4g}), |g| {:.3g}, lr {:.3g}, {:.2f} s",
               step_, cfg_.max_steps, r.last.loss, r.last.flow_matching, r.last.rollout, r.last.crr,
               r.last.grad_norm, r.last.lr, dt);
    if (cfg_.checkpoint_every > 0 && step_ % cfg_.checkpoint_every == 0) {
      save_checkpoint();
      saved = step_;
    }
  }
  if (profile) write_profile(profile, elapsed() - profile_start);
  r.seconds = elapsed();
  r.last_step = step_;
  r.steps_per_s = r.seconds > 0 ? static_cast<double>(step_ - r.first_step) / r.seconds : 0;
  const ops::PeakMemory peak = ops::peak_memory(w_.rt);
  r.peak_host_mib = peak.host_rss_mib;
  r.peak_device_mib = peak.device_mib;
  if (writer()) {
    if (saved != step_) save_checkpoint();
    write_plot();
  }
  r.checkpoint = checkpoint_;
  r.finished = step_ >= cfg_.max_steps;
  return r;
}

}  // namespace sanastream::train
