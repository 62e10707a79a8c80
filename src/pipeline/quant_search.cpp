#include "pipeline/quant_search.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>

#include <ATen/CPUGeneratorImpl.h>

#include "core/compare.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "model/dit_common.h"
#include "model/hybrid_dit.h"
#include "model/quant_plan.h"
#include "ops/device.h"
#include "pipeline/latent_edit.h"
#include "pipeline/model_package.h"

namespace sanastream::pipeline {

using nlohmann::json;

namespace {

constexpr int kTimedCalls = 20;  // GEMM calls per group timing, after 3 untimed

// The layer groups a search decides on, with the GEMM each runs per block and forward: K inputs →
// N outputs. cross_attn.kv_linear runs once per prompt, not per chunk: there is nothing to gain per
// chunk, so it stays BF16.
struct Group {
  const char* name;
  std::vector<std::string> layers;
  bool input_fused;  // its input's producer (a LayerNorm, the residual add) writes the FP8 rows
};
const std::vector<Group>& layer_groups() {
  static const std::vector<Group> groups = {{"attn.qkv", {"attn.q", "attn.k", "attn.v"}, true},
                                            {"attn.proj", {"attn.proj"}, false},
                                            {"cross_attn.q_linear", {"cross_attn.q_linear"}, true},
                                            {"cross_attn.proj", {"cross_attn.proj"}, false},
                                            {"mlp.inverted_conv", {"mlp.inverted_conv"}, true},
                                            {"mlp.point_conv", {"mlp.point_conv"}, false},
                                            {"mlp.t_conv", {"mlp.t_conv"}, false}};
  return groups;
}
std::pair<int64_t, int64_t> group_shape(const std::string& group, const model::DitConfig& cfg) {
  const int64_t C = cfg.hidden, F = cfg.ffn_hidden;
  if (group == "attn.qkv") return {C, 3 * C};
  if (group == "mlp.inverted_conv") return {C, 2 * F};
  if (group == "mlp.point_conv") return {F, C};
  return {C, C};
}

using Candidate = QuantCandidate;

std::string plan_key(const std::vector<Candidate>& plan) {
  std::vector<std::string> keys;
  for (const Candidate& c : plan) keys.push_back(c.key());
  std::sort(keys.begin(), keys.end());
  std::string out;
  for (const std::string& k : keys) out += (out.empty() ? "" : "+") + k;
  return out.empty() ? "bf16" : out;
}
model::QuantPlan to_plan(const std::vector<Candidate>& cands) {
  model::QuantPlan plan;
  for (const Candidate& c : cands) {
    const auto& groups = layer_groups();
    auto g = std::find_if(groups.begin(), groups.end(), [&](const Group& x) { return c.group == x.name; });
    plan.groups.push_back({g->layers, c.first, c.last, c.precision});
  }
  return plan;
}

// The state file: the search's configuration and every figure measured so far.
class State {
 public:
  State(const std::string& path, const json& config) : path_(path) {
    j_ = {{"format", "sanastream-quant-search"}, {"version", 1}, {"config", config},
          {"group_ms", json::object()}, {"error", json::object()}, {"dit_fps", json::object()}};
    if (path_.empty() || !std::filesystem::exists(path_)) return;
    json old;
    try {
      old = json::parse(read_text_file(path_));
    } catch (const json::exception& e) {
      SS_FAIL("{}: not a search state file ({})", path_, e.what());
    }
    SS_CHECK(old.value("format", "") == "sanastream-quant-search", "{}: not a search state file", path_);
    SS_CHECK(old["config"] == config, "{}: made for another configuration ({}); remove it or use another --state",
             path_, old["config"].dump());
    j_ = old;
  }
  // The figure under table[key], measuring and saving it first when absent.
  template <typename Measure>
  double get(const char* table, const std::string& key, Measure measure, QuantSearchReport& report) {
    if (j_[table].contains(key)) {
      ++report.reused;
      return j_[table][key].get<double>();
    }
    const double v = measure();
    j_[table][key] = v;
    ++report.measured;
    if (!path_.empty()) write_text_file_atomic(path_, j_.dump(1) + "\n");
    return v;
  }
  bool has(const char* table, const std::string& key) const { return j_[table].contains(key); }
  const json& figures() const { return j_; }

 private:
  std::string path_;
  json j_;
};

// Stops the command between measurements once its time is spent.
struct OutOfTime {};

// `b` benchmarked with `plan` (written beside the search's output while it runs).
json bench_with_plan(BenchOptions b, const model::QuantPlan& plan, const std::string& out) {
  if (!plan.empty()) {
    b.plan = out + ".candidate.json";
    model::save_quant_plan(b.plan, plan);
  }
  const json r = run_bench(b);
  if (!plan.empty()) std::filesystem::remove(b.plan);
  return r;
}

// A seeded clip in [−1, 1] that varies smoothly in space and time, with a fine grain: coarse noise
// keyframes every 8 frames, interpolated, plus a little per-pixel noise, through tanh.
// [1, 3, frames, H, W] fp32 on `device`.
at::Tensor smooth_clip(int64_t frames, int64_t H, int64_t W, uint64_t seed, const at::Device& device) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const at::Tensor keys =
      at::randn({1, 3, frames / 8 + 2, std::max<int64_t>(H / 32, 2), std::max<int64_t>(W / 32, 2)}, gen);
  const std::vector<int64_t> size = {frames, H, W};
  const at::Tensor grain = at::randn({1, 3, frames, H, W}, gen);
  return at::upsample_trilinear3d(keys.to(device), size, false).add_(grain.to(device), 0.05).tanh_();
}

}  // namespace

std::string QuantCandidate::key() const {
  return fmt::format("{}:{}-{}:{}", group, first, last, ops::precision_name(precision));
}

std::vector<QuantCandidate> search_plan(std::vector<ScoredCandidate> scored, double max_error,
                                        const std::function<double(const std::vector<QuantCandidate>&)>& error_of) {
  scored.erase(std::remove_if(scored.begin(), scored.end(), [](const ScoredCandidate& s) { return s.saved_ms <= 0; }),
               scored.end());
  std::stable_sort(scored.begin(), scored.end(), [](const ScoredCandidate& a, const ScoredCandidate& b) {
    return a.error / a.saved_ms < b.error / b.saved_ms;
  });
  std::vector<QuantCandidate> plan;
  for (const ScoredCandidate& s : scored) {
    const bool taken = std::any_of(plan.begin(), plan.end(), [&](const QuantCandidate& c) {
      return c.group == s.candidate.group && c.first == s.candidate.first;
    });
    if (taken) continue;
    std::vector<QuantCandidate> trial = plan;
    trial.push_back(s.candidate);
    if (error_of(trial) <= max_error) plan = std::move(trial);
  }
  return plan;
}

std::vector<std::pair<int64_t, int64_t>> depth_bands(int64_t depth) {
  SS_CHECK(depth >= 1, "depth bands: expected a positive depth, got {}", depth);
  if (depth == 20) return {{0, 5}, {6, 13}, {14, 19}};
  std::vector<std::pair<int64_t, int64_t>> bands;
  for (int64_t i = 0; i < 3; ++i) {
    const int64_t first = depth * i / 3, last = depth * (i + 1) / 3 - 1;
    if (last >= first) bands.push_back({first, last});
  }
  return bands;
}

QuantSearchReport quant_search(const QuantSearchOptions& opt) {
  SS_CHECK(opt.chunks >= 8, "--chunks: the error runs need at least 8 chunks, got {}", opt.chunks);
  const bool real = !opt.inputs.clips.empty() || !opt.inputs.prompts.empty();
  SS_CHECK(!real || (!opt.inputs.clips.empty() && !opt.inputs.prompts.empty()),
           "{}: expected clips and prompts, got {} clips and {} prompts", opt.inputs.name, opt.inputs.clips.size(),
           opt.inputs.prompts.size());
  const int prompts = real ? static_cast<int>(opt.inputs.prompts.size()) : opt.prompts;
  const int clips = real ? static_cast<int>(opt.inputs.clips.size()) : opt.clips;
  SS_CHECK(prompts >= 1 && clips >= 1, "--prompts and --clips: expected at least 1, got {} and {}", prompts, clips);
  SS_CHECK(opt.max_error > 0, "--max-error: expected a positive relative RMSE, got {}", opt.max_error);
  SS_CHECK(!opt.precisions.empty(), "--precisions: expected fp8 and/or int8");
  for (ops::Precision p : opt.precisions)
    SS_CHECK(p != ops::Precision::kBF16, "--precisions: expected fp8 and/or int8, got bf16");
  SS_CHECK(!opt.out.empty(), "--out: the plan file is required");
  SS_CHECK(opt.deploy.first_chunk >= 1, "--first-chunk: expected at least 1, got {}", opt.deploy.first_chunk);
  const auto t0 = std::chrono::steady_clock::now();
  auto spent = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };

  BenchOptions deploy = opt.deploy;
  deploy.part = "dit";
  deploy.plan.clear();
  const int first_chunk = deploy.first_chunk;
  deploy.latent_frames = first_chunk + 3 * (opt.chunks - 1);  // the error runs' stream
  std::vector<std::string> precision_names;
  for (ops::Precision p : opt.precisions) precision_names.push_back(ops::precision_name(p));
  // The VAE takes FP8 or BF16; DiT weights alone bring none.
  const bool has_vae = deploy.model.empty() || is_package(deploy.model);
  const bool search_vae =
      has_vae && std::count(opt.precisions.begin(), opt.precisions.end(), ops::Precision::kFP8) > 0;
  if (!search_vae)
    log_info("quantize: the VAE stays BF16 ({})",
             has_vae ? "fp8 is not among --precisions" : "--model names DiT weights, not a package");
  const json config = {{"model", deploy.model.empty() ? "2b-streaming-random" : deploy.model},
                       {"size", fmt::format("{}x{}", deploy.width, deploy.height)},
                       {"device", deploy.device},
                       {"dtype", deploy.dtype},
                       {"first_chunk", first_chunk},
                       {"steps", deploy.steps},
                       {"efficient_cache", deploy.efficient_cache},
                       {"seed", deploy.seed},
                       {"chunks", opt.chunks},
                       {"prompts", prompts},
                       {"clips", clips},
                       {"inputs", real ? opt.inputs.name : "seeded random"},
                       {"precisions", precision_names},
                       {"vae", search_vae}};
  State state(opt.state, config);
  QuantSearchReport report;

  BenchDit base = load_bench_dit(deploy, {});
  const model::DitConfig cfg = base.dit->config();
  const Runtime rt = base.dit->runtime();
  const int64_t T = deploy.latent_frames, H = base.latent_h, W = base.latent_w;
  const int64_t tokens = 3 * cfg.tokens_along(H, "height") * cfg.tokens_along(W, "width");  // a steady forward
  const int64_t forwards = deploy.steps + (deploy.efficient_cache ? 0 : 1);

  for (size_t c = 0; c < opt.inputs.clips.size(); ++c) {
    const at::Tensor& clip = opt.inputs.clips[c];
    SS_CHECK(clip.dim() == 4 && clip.size(0) == cfg.source_channels && clip.size(1) >= T && clip.size(2) == H &&
                 clip.size(3) == W,
             "{}: clip {} has latents {}; the error runs need [{}, ≥ {}, {}, {}] (--size, --chunks)", opt.inputs.name,
             c, shape_str(clip.sizes()), cfg.source_channels, T, H, W);
  }
  for (size_t p = 0; p < opt.inputs.prompts.size(); ++p) {
    const auto& [embeds, mask] = opt.inputs.prompts[p];
    SS_CHECK(embeds.dim() == 2 && embeds.size(0) == cfg.caption_length && embeds.size(1) == cfg.caption_channels &&
                 mask.dim() == 1 && mask.size(0) == cfg.caption_length,
             "{}: prompt {} has embeddings {} and mask {}; the DiT reads [{}, {}] and [{}]", opt.inputs.name, p,
             shape_str(embeds.sizes()), shape_str(mask.sizes()), cfg.caption_length, cfg.caption_channels,
             cfg.caption_length);
  }
  // The error runs' inputs: clip c's latents and prompt p's caption, the given ones or seeded; the same
  // noise for every plan.
  auto inputs = [&](int p, int c) {
    io::TensorMap in;
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(deploy.seed * 7919 + 1000 * p + c + 1);
    in["inputs.noise"] = at::randn({1, cfg.latent_channels, T, H, W}, gen);
    if (real) {
      in["inputs.src_latents"] = opt.inputs.clips[c].narrow(1, 0, T).unsqueeze(0).to(at::kFloat);
      in["inputs.prompt_embeds"] = opt.inputs.prompts[p].first.unsqueeze(0).to(at::kFloat);
      in["inputs.prompt_mask"] = opt.inputs.prompts[p].second.unsqueeze(0).to(at::kLong);
      return in;
    }
    at::Generator clip_gen = at::make_generator<at::CPUGeneratorImpl>(deploy.seed * 7919 + 500000 + c);
    in["inputs.src_latents"] = at::randn({1, cfg.source_channels, T, H, W}, clip_gen);
    at::Generator prompt_gen = at::make_generator<at::CPUGeneratorImpl>(deploy.seed * 7919 + 900000 + p);
    in["inputs.prompt_embeds"] = at::randn({1, cfg.caption_length, cfg.caption_channels}, prompt_gen);
    at::Tensor mask = at::zeros({1, cfg.caption_length}, at::kLong);
    mask.narrow(1, 0, std::min<int64_t>(20 + 17 * p, cfg.caption_length)).fill_(1);
    in["inputs.prompt_mask"] = mask;
    return in;
  };
  LatentEditOptions le;
  le.steps = deploy.steps;
  le.first_chunk = first_chunk;
  le.efficient_cache = deploy.efficient_cache;
  std::map<std::pair<int, int>, at::Tensor> reference;  // BF16 final latents per (prompt, clip)
  auto error_of = [&](const std::vector<Candidate>& plan) {
    return state.get("error", plan_key(plan), [&] {
      if (spent() > opt.budget_seconds) throw OutOfTime{};
      BenchDit q = load_bench_dit(deploy, to_plan(plan));
      double sum = 0;
      for (int p = 0; p < prompts; ++p)
        for (int c = 0; c < clips; ++c) {
          const io::TensorMap in = inputs(p, c);
          at::Tensor& ref = reference[{p, c}];
          if (!ref.defined()) ref = latent_edit(*base.dit, in, le).latents.cpu().to(at::kDouble);
          const at::Tensor got = latent_edit(*q.dit, in, le).latents.cpu().to(at::kDouble);
          sum += ((got - ref).pow(2).mean() / ref.pow(2).mean()).sqrt().item<double>();
        }
      const double e = sum / (prompts * clips);
      log_info("quantize: error of {} = {:.4g}", plan_key(plan), e);
      return e;
    }, report);
  };
  auto fps_of = [&](const std::vector<Candidate>& plan) {
    return state.get("dit_fps", plan_key(plan), [&] {
      if (spent() > opt.budget_seconds) throw OutOfTime{};
      BenchOptions b = deploy;
      b.latent_frames = opt.deploy.latent_frames;  // the deployment's stream, not the error runs'
      return bench_with_plan(b, to_plan(plan), opt.out)["dit_fps"].get<double>();
    }, report);
  };
  model::QuantPlan vae_fp8;
  vae_fp8.vae = ops::Precision::kFP8;
  // The VAE's streamed time per chunk of 24 frames (ms), encoding or decoding, BF16 or FP8 resnets.
  auto vae_chunk_ms = [&](const char* part, ops::Precision p) {
    return state.get("vae_chunk_ms", fmt::format("{}:{}", part, ops::precision_name(p)), [&] {
      if (spent() > opt.budget_seconds) throw OutOfTime{};
      BenchOptions b = deploy;
      b.part = part;
      b.latent_frames = opt.deploy.latent_frames;
      return bench_with_plan(b, p == ops::Precision::kFP8 ? vae_fp8 : model::QuantPlan{}, opt.out)["chunk_ms_p50"]
          .get<double>();
    }, report);
  };
  // The PSNR (dB) of a clip's frames streamed through the FP8 VAE (encode → decode) against the same
  // stream through the BF16 VAE; first chunk and 3 more. The clip: the first given clip's latents
  // decoded by the BF16 VAE (real content), else a smooth seeded one.
  auto vae_psnr = [&] {
    return state.get("vae_psnr", "fp8", [&] {
      if (spent() > opt.budget_seconds) throw OutOfTime{};
      BenchOptions b = deploy;
      b.part = "vae-decode";
      b.latent_frames = first_chunk + 9;
      const BenchVae ref = load_bench_vae(b, {}), q = load_bench_vae(b, vae_fp8);
      const int64_t tr = ref.vae->config().temporal_ratio();
      const Runtime& vrt = ref.vae->runtime();
      at::Tensor clip;
      if (real) {
        const at::Tensor z = ref.vae->denormalize(
            opt.inputs.clips[0].narrow(1, 0, b.latent_frames).unsqueeze(0).to(vrt.device, vrt.dtype));
        model::Ltx2VaeDecodeStream decode(*ref.vae, ref.tiling);
        std::vector<at::Tensor> parts;
        for (size_t c = 0; c + 1 < ref.bounds.size(); ++c)
          parts.push_back(decode.push(z.narrow(2, ref.bounds[c], ref.bounds[c + 1] - ref.bounds[c])).to(at::kFloat));
        clip = at::cat(parts, 2).clamp_(-1, 1);
      } else {
        clip = smooth_clip(chunk_video_frames(0, b.latent_frames, tr), ref.height, ref.width,
                           deploy.seed * 7919 + 700000, vrt.device);
      }
      model::Ltx2VaeEncodeStream enc_ref(*ref.vae, ref.tiling), enc_q(*q.vae, q.tiling);
      model::Ltx2VaeDecodeStream dec_ref(*ref.vae, ref.tiling), dec_q(*q.vae, q.tiling);
      double squared = 0;  // on the [0, 1] scale
      int64_t values = 0, frame = 0;
      for (size_t c = 0; c + 1 < ref.bounds.size(); ++c) {
        const int64_t n = chunk_video_frames(ref.bounds[c], ref.bounds[c + 1], tr);
        const at::Tensor frames = clip.narrow(2, frame, n).to(vrt.dtype);
        frame += n;
        const at::Tensor want = dec_ref.push(enc_ref.push(frames)).to(at::kFloat).clamp(-1, 1);
        const at::Tensor got = dec_q.push(enc_q.push(frames)).to(at::kFloat).clamp(-1, 1);
        squared += (got - want).div_(2).pow_(2).sum().item<double>();
        values += want.numel();
      }
      const double mse = squared / static_cast<double>(values);
      const double psnr = mse < 1e-10 ? 100.0 : -10 * std::log10(mse);
      log_info("quantize: the FP8 VAE's frames against BF16's: PSNR {:.2f} dB", psnr);
      return psnr;
    }, report);
  };
  // A group's GEMMs per block and forward at the deployment shapes (ms), at one precision.
  auto group_ms = [&](const Group& g, ops::Precision p) {
    return state.get("group_ms", fmt::format("{}:{}", g.name, ops::precision_name(p)), [&] {
      if (spent() > opt.budget_seconds) throw OutOfTime{};
      const auto [K, N] = group_shape(g.name, cfg);
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(K * 31 + N));
      auto randn = [&](at::IntArrayRef sizes) { return at::randn(sizes, gen).to(rt.device, rt.dtype); };
      const at::Tensor x = randn({tokens, K});
      std::function<at::Tensor()> call;
      if (std::string(g.name) == "mlp.t_conv") {  // as the FFN runs it: one C → C GEMM per tap on its frames
        std::vector<model::Projection> taps;
        for (int64_t k = 0; k < cfg.t_kernel; ++k)
          taps.emplace_back(randn({K, K}) / std::sqrt(double(K)), at::Tensor(), p);
        const int64_t S = tokens / 3, P = (cfg.t_kernel - 1) / 2;
        const at::Tensor frames = x.view({1, 3, S, K}), context = randn({1, P, S, K});
        call = [=] { return model::MixFfn::temporal(taps, frames, context); };
      } else {
        const model::Projection proj(randn({N, K}) / std::sqrt(double(K)), randn({N}), p);
        // Where the producer quantizes the rows in its own pass, the group's time is its GEMM's.
        const ops::QuantRows xq = g.input_fused && proj.fp8_gemm() ? ops::quantize_fp8_rows(x) : ops::QuantRows{};
        call = [=] { return proj(x, xq); };
      }
      for (int i = 0; i < 3; ++i) call();
      ops::synchronize(rt);
      ops::DeviceClock clock(rt.is_cuda());
      clock.mark();
      for (int i = 0; i < kTimedCalls; ++i) call();
      clock.mark();
      return clock.intervals()[0] / kTimedCalls * 1e3;
    }, report);
  };

  try {
    // 1. Per group: its time at each precision; per candidate: its error alone.
    const std::vector<std::pair<int64_t, int64_t>> bands = depth_bands(cfg.depth);
    std::vector<ScoredCandidate> scored;
    for (const Group& g : layer_groups()) {
      const double bf16 = group_ms(g, ops::Precision::kBF16);
      for (ops::Precision p : opt.precisions) {
        const double saved_per_block = (bf16 - group_ms(g, p)) * forwards;  // per chunk
        for (const auto& [first, last] : bands) {
          const Candidate c{g.name, first, last, p};
          scored.push_back({c, saved_per_block * (last - first + 1), error_of({c})});
        }
      }
    }
    const double bf16_fps = fps_of({});

    // The VAE: FP8 resnets when they save time and keep the frames within the PSNR bound.
    json vae = nullptr;
    bool vae_in_fp8 = false;
    if (search_vae) {
      vae = {{"min_psnr", opt.min_vae_psnr},
             {"psnr_clip", real ? opt.inputs.name + ": its first clip, decoded by the BF16 VAE" : "smooth seeded"}};
      double saved = 0;
      for (const char* part : {"vae-encode", "vae-decode"}) {
        const double bf16 = vae_chunk_ms(part, ops::Precision::kBF16), fp8 = vae_chunk_ms(part, ops::Precision::kFP8);
        vae[part] = {{"bf16_chunk_ms", bf16}, {"fp8_chunk_ms", fp8}};
        saved += bf16 - fp8;
      }
      const double psnr = vae_psnr();
      vae_in_fp8 = saved > 0 && psnr >= opt.min_vae_psnr;
      vae["saved_ms_per_chunk"] = saved;
      vae["psnr"] = psnr;
      vae["precision"] = vae_in_fp8 ? "fp8" : "bf16";
    }

    // 2. The search, each trial's error measured (and saved) as it goes.
    const std::vector<Candidate> plan = search_plan(scored, opt.max_error, error_of);
    double saved_ms = 0;
    for (const ScoredCandidate& s : scored)
      for (const Candidate& c : plan)
        if (c.key() == s.candidate.key()) saved_ms += s.saved_ms;
    const double plan_error = plan.empty() ? 0.0 : error_of(plan);
    const double plan_fps = fps_of(plan);
    // The speed-up the group timings predict: a chunk at BF16's rate less the time the plan saves.
    const double chunk_ms = 24.0 / bf16_fps * 1e3, predicted_fps = 24.0 / ((chunk_ms - saved_ms) / 1e3);
    // Group timings can promise what the whole model does not deliver (a small model, where the
    // quantization passes and launches outweigh the GEMMs): a plan measured slower than BF16 is dropped.
    const bool dropped = !plan.empty() && plan_fps < bf16_fps;
    if (dropped)
      log_warn("quantize: the searched plan ran at {:.1f} dit_fps, below BF16's {:.1f}: the DiT stays BF16", plan_fps,
               bf16_fps);
    SS_CHECK(std::max(plan_fps, bf16_fps) >= opt.min_fps,
             "no plan reaches --min-fps {} under --max-error {}: the best measured {:.1f} dit_fps (BF16 {:.1f}) at "
             "error {:.4g}",
             opt.min_fps, opt.max_error, plan_fps, bf16_fps, plan_error);

    model::QuantPlan out = to_plan(dropped ? std::vector<Candidate>{} : plan);
    if (vae_in_fp8) out.vae = ops::Precision::kFP8;
    json cands = json::array();
    for (const ScoredCandidate& s : scored)
      cands.push_back({{"candidate", s.candidate.key()}, {"saved_ms_per_chunk", s.saved_ms}, {"error", s.error}});
    out.measurements = {{"bf16_fps", bf16_fps},
                        {"plan_fps", plan_fps},
                        {"predicted_fps", predicted_fps},
                        {"dropped", dropped},
                        {"error", plan_error},
                        {"max_error", opt.max_error},
                        {"candidates", cands},
                        {"vae", vae},
                        {"search", state.figures()}};
    model::save_quant_plan(opt.out, out);
    report.complete = true;
    report.summary = out.measurements;
  } catch (const OutOfTime&) {
    report.complete = false;
  }
  return report;
}

}  // namespace sanastream::pipeline
