#include "pipeline/bench.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <optional>
#include <cstdio>
#include <map>
#include <thread>

#include <c10/core/DeviceGuard.h>
#include <fmt/ranges.h>
#include <torch/cuda.h>

#include "core/bounded_queue.h"
#include "core/error.h"
#include "core/stats.h"
#include "core/runtime.h"
#include "model/dit_random.h"
#include "model/hybrid_dit.h"
#include "model/ltx2_vae.h"
#include "model/profile.h"
#include "model/quant_plan.h"
#include "ops/device.h"
#include "ops/gdn.h"
#include "ops/quant.h"
#include "ops/rope.h"
#include "pipeline/dit_loader.h"
#include "pipeline/edit_engine.h"
#include "pipeline/pipelined_engine.h"
#include "pipeline/model_package.h"
#include "pipeline/samplers.h"
#ifdef SANASTREAM_HAS_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif


namespace sanastream::pipeline {

using nlohmann::json;

double dit_forward_flops(int64_t depth, int64_t softmax_blocks, int64_t C, int64_t F, int64_t D, int64_t N,
                         int64_t context, int64_t L) {
  const double c = static_cast<double>(C), f = static_cast<double>(F), n = static_cast<double>(N);
  // Per token and block: q, k, v, output gate, proj (5·2C²); cross q and proj (2·2C²); FFN inverted
  // 1×1 (2·C·2F), depthwise 3×3 (2·9·2F), point 1×1 (2·F·C), temporal 3 taps (2·3C²).
  const double per_block = 5 * 2 * c * c + 2 * 2 * c * c + 2 * c * 2 * f + 2 * 9 * 2 * f + 2 * f * c + 2 * 3 * c * c;
  double flops = depth * per_block * n;
  flops += depth * 4.0 * L * c * n;                                          // cross-attention QKᵀ, AV
  flops += softmax_blocks * 4.0 * static_cast<double>(context + N) * c * n;  // softmax QKᵀ, AV
  flops += (depth - softmax_blocks) * 12.0 * static_cast<double>(D) * c * n;  // GDN: 3 D×D products per direction
  return flops;
}

namespace {

// The interval between two marks belongs to the second mark's region; the first mark only starts
// the clock.
class ProfileTimer : public model::RegionTimer {
 public:
  explicit ProfileTimer(bool cuda) : clock_(cuda) {}
  void mark(const char* region) override {
    clock_.mark();
    names_.push_back(region);
  }
  std::map<std::string, double> totals() {
    std::map<std::string, double> t;
    auto iv = clock_.intervals();
    for (size_t i = 0; i < iv.size(); ++i) t[names_[i + 1]] += iv[i];
    return t;
  }
  // Into the result: each region's time divided by `per` (ms per `unit`) and their sum.
  void report(json& r, double per, const char* unit) {
    json prof = json::object();
    double sum = 0;
    for (auto& [name, sec] : totals()) {
      prof[name] = sec / per * 1e3;
      sum += sec / per * 1e3;
    }
    r["profile_ms"] = prof;
    r["profile_unit"] = unit;
    r["profile_total_ms"] = sum;
  }

 private:
  ops::DeviceClock clock_;
  std::vector<std::string> names_;
};

// Region timing and the CUDA profiler's range on (the chunk to profile) or off.
void profile_chunk(const Runtime& rt, ProfileTimer& timer, bool on) {
  model::set_region_timer(on ? &timer : nullptr);
  ops::profiler_range(rt, on);
}

double gemm_tflops(const Runtime& rt) {
  if (!rt.is_cuda()) return 0;
  const int64_t n = 8192;
  auto opts = rt.options().dtype(at::kBFloat16);
  at::Tensor a = at::randn({n, n}, opts), b = at::randn({n, n}, opts);
  for (int i = 0; i < 3; ++i) at::matmul(a, b);
  ops::DeviceClock clock(true);
  clock.mark();
  for (int i = 0; i < 10; ++i) at::matmul(a, b);
  clock.mark();
  return 2.0 * n * n * n * 10 / clock.intervals()[0] / 1e12;
}

// What every part shares: the runtime, the chunking and the latent grid.
struct BenchSetup {
  Runtime rt;
  int64_t spatial = 32;          // pixels per latent pixel (the VAE's spatial ratio)
  int64_t H = 0, W = 0, T = 0;   // latent grid and frames
  std::vector<int64_t> bounds;   // chunk boundaries in latent frames
  int64_t n_chunks = 0;
  model::QuantPlan plan;         // --plan, read once for every DiT the part builds
};

BenchSetup make_setup(const BenchOptions& opt) {
  SS_CHECK(opt.part == "dit" || opt.part == "vae-encode" || opt.part == "vae-decode" || opt.part == "e2e" ||
               opt.part == "gdn",
           "--part: expected dit, vae-encode, vae-decode, e2e or gdn, got '{}'", opt.part);
  SS_CHECK((opt.gpus == 1 && opt.streams == 1) || opt.part == "e2e", "--gpus and --streams: expected --part e2e, got {}",
           opt.part);
  SS_CHECK(opt.pace == 0 || opt.part == "e2e", "--pace feeds the whole pipeline: expected --part e2e, got {}", opt.part);
  SS_CHECK(opt.vae_call_latents == 0 || opt.part == "e2e", "--vae-call-latents: expected --part e2e, got {}",
           opt.part);
  SS_CHECK(!opt.text_encoder || opt.part == "e2e", "--text-encoder: expected --part e2e, got {}", opt.part);
  SS_CHECK(opt.plan.empty() || opt.part != "gdn",
           "--plan quantizes the DiT and the VAE: expected --part dit, e2e, vae-encode or vae-decode, got {}",
           opt.part);
  BenchSetup b;
  // A package's own compression (the VAE's ratio × the DiT's patch); LTX-2's 32 otherwise.
  int64_t multiple = b.spatial;
  if (is_package(opt.model)) {
    const ModelPackage pkg = load_model_package(opt.model);
    b.spatial = pkg.vae.config.spatial_ratio();
    multiple = pkg.pixel_multiple();
  }
  SS_CHECK(opt.width % multiple == 0 && opt.height % multiple == 0 && opt.width > 0 && opt.height > 0,
           "--size: expected multiples of {}, got {}x{}", multiple, opt.width, opt.height);
  SS_CHECK(opt.latent_frames >= 1, "--latent-frames: expected at least 1, got {}", opt.latent_frames);
  b.rt = make_runtime(opt.device, opt.dtype);
  b.H = opt.height / b.spatial;
  b.W = opt.width / b.spatial;
  b.T = opt.latent_frames;
  b.bounds = chunk_boundaries(b.T, opt.first_chunk);
  b.n_chunks = static_cast<int64_t>(b.bounds.size()) - 1;
  SS_CHECK(b.n_chunks >= 4, "--latent-frames {}: the benchmark needs at least 4 chunks (chunks 2 … last−1 are timed)",
           b.T);
  b.plan = model::load_quant_plan(opt.plan);
  return b;
}

std::unique_ptr<model::HybridDit> bench_dit_model(const BenchOptions& opt, const model::QuantPlan& plan,
                                                  const Runtime& rt, std::string* name) {
  if (is_package(opt.model)) {
    *name = opt.model;
    return load_package_dit(load_model_package(opt.model), model::DitVariant::kStreaming, rt, plan);
  }
  if (!opt.model.empty()) {
    SS_CHECK(opt.part == "dit", "--model {}: the {} part needs a model package (a directory with model.json)",
             opt.model, opt.part);
    *name = opt.model;
    return load_dit(resolve_dit_source(opt.model), rt, plan);
  }
  *name = "2b-streaming-random";
  return model::load_hybrid_dit(model::random_dit_weights(model::dit_shape_2b(), opt.seed, rt.dtype, rt.device),
                                json::object(), rt, plan);
}

// Without --model: the LTX-2 VAE's shapes (the diffusers defaults) with seeded random weights.
// The plan's "vae" precision applied to its resnets' convolutions.
std::unique_ptr<model::Ltx2Vae> bench_vae_model(const BenchOptions& opt, const model::QuantPlan& plan,
                                                const Runtime& rt, std::string* name) {
  const model::VaeLayout layout = model::parse_vae_layout(opt.vae_layout);
  std::unique_ptr<model::Ltx2Vae> vae;
  if (is_package(opt.model)) {
    *name = opt.model;
    vae = load_package_vae(load_model_package(opt.model), rt, layout);
  } else if (!opt.model.empty()) {
    *name = opt.model;
    vae = model::load_ltx2_vae(model::resolve_ltx2_vae_source(opt.model), rt, layout);
  } else {
    *name = "ltx2-vae-random";
    const model::Ltx2VaeConfig cfg;
    vae = std::make_unique<model::Ltx2Vae>(model::random_ltx2_vae_weights(cfg, opt.seed, rt.dtype), cfg, rt, layout);
  }
  vae->set_resnet_precision(plan.vae);
  return vae;
}

model::VaeTiling bench_tiling(const BenchOptions& opt, const Runtime& rt) {
  if (opt.tile == "auto") return rt.is_cuda() ? model::VaeTiling{} : model::default_vae_tiling();
  return model::parse_vae_tiling(opt.tile);
}

// Chunk statistics into the result: FPS = 24 / median of chunks 2 … last−1.
double fill_chunk_stats(json& r, const std::vector<double>& chunk_s, const char* fps_key) {
  std::vector<double> steady(chunk_s.begin() + 2, chunk_s.end() - 1);
  const double median_s = percentile(steady, 0.5);
  r[fps_key] = 24.0 / median_s;
  r["chunk_ms_p50"] = median_s * 1e3;
  r["chunk_ms_p99"] = percentile(steady, 0.99) * 1e3;
  std::vector<double> chunk_ms;
  for (double v : chunk_s) chunk_ms.push_back(v * 1e3);
  r["chunks_ms"] = chunk_ms;
  return median_s;
}

// A random caption (never zeros) with 37 valid tokens, as the golden sets' prompt mask.
model::CaptionState random_caption(const model::HybridDit& dit) {
  const auto& cfg = dit.config();
  const auto f32 = dit.runtime().f32();
  at::Tensor embeds = at::randn({1, 1, cfg.caption_length, cfg.caption_channels}, f32).to(dit.runtime().dtype);
  at::Tensor mask = at::zeros({1, cfg.caption_length}, f32.dtype(at::kLong));
  mask.narrow(1, 0, std::min<int64_t>(37, cfg.caption_length)).fill_(1);
  return dit.encode_caption(embeds, mask);
}

void bench_dit(const BenchOptions& opt, const BenchSetup& b, json& r) {
  const Runtime& rt = b.rt;
  std::string model_name;
  auto dit = bench_dit_model(opt, b.plan, rt, &model_name);
  const model::DitConfig& cfg = dit->config();

  // Inputs: random latents and caption (never zeros).
  auto f32 = rt.f32();
  at::Tensor noise = at::randn({1, cfg.latent_channels, b.T, b.H, b.W}, f32);
  at::Tensor src = at::randn({1, cfg.source_channels, b.T, b.H, b.W}, f32).to(rt.dtype);
  const model::CaptionState caption = random_caption(*dit);

  StreamingOptions so;
  so.steps = opt.steps;
  so.first_chunk = opt.first_chunk;
  so.efficient_cache = opt.efficient_cache;
  so.cuda_graphs = opt.cuda_graphs;

  // Timed run: one clock mark per chunk.
  ops::reset_peak_memory(rt);
  ops::DeviceClock clock(rt.is_cuda());
  clock.mark();
  sample_streaming(*dit, noise, src, caption, so, {}, [&](int64_t, int64_t, int64_t) { clock.mark(); });
  const std::vector<double> chunk_s = clock.intervals();
  const int64_t peak = ops::peak_memory(rt).device_bytes;
  const double median_s = fill_chunk_stats(r, chunk_s, "dit_fps");

  // FLOPs of a steady-state chunk (3 frames, window = sink + previous chunk).
  const int64_t S = b.H * b.W, n3 = 3 * S, sink = (b.bounds[1] - b.bounds[0]) * S;
  const int64_t calls = opt.steps + (opt.efficient_cache ? 0 : 1);
  const double chunk_flops =
      calls * dit_forward_flops(cfg.depth, static_cast<int64_t>(cfg.softmax_layers.size()), cfg.hidden,
                                cfg.ffn_hidden, cfg.head_dim, n3, sink + n3, cfg.caption_length);
  r["peak_gpu_bytes"] = rt.is_cuda() ? json(peak) : json(nullptr);
  r["dit_tflops"] = chunk_flops / median_s / 1e12;
  r["config"]["model"] = model_name;
  r["config"]["forwards_per_chunk"] = calls;
  r["config"]["dit"] = cfg.to_json();
  r["config"]["flops_per_steady_chunk"] = chunk_flops;

  if (opt.profile) {
    // One more run without graphs; the regions of chunk 2's calls (steady-state shape) are timed, and
    // only they run inside the CUDA profiler's range.
    ProfileTimer timer(rt.is_cuda());
    StreamingOptions po = so;
    po.cuda_graphs = false;
    const int64_t frames = b.bounds[3];
    sample_streaming(*dit, noise.narrow(2, 0, frames), src.narrow(2, 0, frames), caption, po, {},
                     [&](int64_t c, int64_t, int64_t) { profile_chunk(rt, timer, c == 1); });
    profile_chunk(rt, timer, false);
    timer.report(r, static_cast<double>(calls), "forward");
  }
}

// Random frames in [−1, 1] of latent chunk c, [1, 3, n, H, W] in the model dtype on the device.
at::Tensor random_frames(const BenchSetup& b, int64_t c, int64_t tr) {
  const int64_t n = chunk_video_frames(b.bounds[c], b.bounds[c + 1], tr);
  return at::rand({1, 3, n, b.H * b.spatial, b.W * b.spatial}, b.rt.f32()).mul_(2).sub_(1).to(b.rt.dtype);
}

void bench_vae(const BenchOptions& opt, const BenchSetup& b, json& r, bool encode) {
  const Runtime& rt = b.rt;
  std::string model_name;
  auto vae = bench_vae_model(opt, b.plan, rt, &model_name);
  const model::VaeTiling tiling = bench_tiling(opt, rt);
  const int64_t tr = vae->config().temporal_ratio();
  // Inputs made before the clock starts: frames (encode) or denormalised latents (decode).
  std::vector<at::Tensor> inputs;
  for (int64_t c = 0; c < b.n_chunks; ++c)
    inputs.push_back(encode ? random_frames(b, c, tr)
                            : at::randn({1, vae->config().latent_channels, b.bounds[c + 1] - b.bounds[c], b.H, b.W},
                                        rt.f32()).to(rt.dtype));
  ops::reset_peak_memory(rt);
  ops::DeviceClock clock(rt.is_cuda());
  clock.mark();
  // One streamed pass over the first `n` chunks: before(c) ahead of chunk c, after(c) behind it.
  using ChunkFn = std::function<void(size_t)>;
  auto pass = [&](size_t n, const ChunkFn& before, const ChunkFn& after) {
    std::optional<model::Ltx2VaeEncodeStream> enc;
    std::optional<model::Ltx2VaeDecodeStream> dec;
    encode ? (void)enc.emplace(*vae, tiling) : (void)dec.emplace(*vae, tiling);
    for (size_t c = 0; c < n; ++c) {
      before(c);
      encode ? enc->push(inputs[c]) : dec->push(inputs[c]);
      after(c);
    }
  };
  pass(inputs.size(), [](size_t) {}, [&](size_t) { clock.mark(); });
  const std::vector<double> chunk_s = clock.intervals();
  fill_chunk_stats(r, chunk_s, encode ? "vae_encode_fps" : "vae_decode_fps");
  r["peak_gpu_bytes"] = rt.is_cuda() ? json(ops::peak_memory(rt).device_bytes) : json(nullptr);
  r["config"]["model"] = model_name;
  r["config"]["vae"] = vae->config().to_json();
  r["config"]["tiling"] = model::describe(tiling);
  r["config"]["vae_layout"] = model::layout_name(vae->layout());
  if (opt.profile) {
    // One more pass; the regions of chunk 2 (steady-state shape) are timed.
    ProfileTimer timer(rt.is_cuda());
    pass(3, [&](size_t c) { profile_chunk(rt, timer, c == 2); }, [](size_t) {});
    profile_chunk(rt, timer, false);
    timer.report(r, 1.0, "chunk");
  }
}

// One e2e pass, as `edit` runs it: frames in host memory (RGB24, pinned on CUDA) → upload, [−1, 1] →
// causal encode → DiT chunk → causal decode → RGB24 → host memory, chunk by chunk; with `pipelined`,
// through PipelinedEditEngine (the models' devices may differ). The intervals between chunks reaching
// host memory (host clock; the first from the start) and the edited frames.
struct E2ePass {
  std::vector<double> chunk_s;
  at::Tensor out;
  // Sequential passes: each chunk's device time in the stages (input upload and conversion, encode,
  // DiT, decode, output: the conversion to RGB24 and the copy to host memory), seconds.
  std::vector<std::array<double, 5>> stage_s;
};
constexpr const char* kE2eStages[5] = {"input", "encode", "dit", "decode", "output"};

// The e2e passes' prompt: random embeddings from the run's seed (never zeros) with 37 valid tokens,
// as the golden sets' prompt mask.
struct BenchPrompt {
  at::Tensor embeds, mask;
};
BenchPrompt random_prompt(const model::DitConfig& cfg, uint64_t seed) {
  at::Tensor mask = at::zeros({1, cfg.caption_length}, at::kLong);
  mask.narrow(1, 0, std::min<int64_t>(37, cfg.caption_length)).fill_(1);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return {at::randn({1, 1, cfg.caption_length, cfg.caption_channels}, gen), mask};
}

// The e2e passes' frames on both sides of the engine: RGB24 input in host memory, converted on the
// way in, and the edited frames written back to host memory shaped (and pinned) like it.
struct HostFrames {
  HostFrames(const at::Tensor& rgb, const FrameSize& size, const model::Ltx2Vae& vae)
      : in(rgb), out(at::empty(rgb.sizes(), rgb.options().pinned_memory(rgb.is_pinned()))), size(size), vae(vae) {}
  // Input frames [first, first + n) as the engine takes them.
  at::Tensor input(int64_t first, int64_t n) const {
    return rgb24_to_model(in.narrow(0, first, n), size, vae.runtime().dtype, vae.runtime().device);
  }
  // Edited frames after those written so far.
  void write(const at::Tensor& video) {
    const at::Tensor rgb = model_to_rgb24(video, size);
    out.narrow(0, written, rgb.size(0)).copy_(rgb);
    written += rgb.size(0);
  }

  at::Tensor in, out;
  int64_t written = 0;
  FrameSize size;
  const model::Ltx2Vae& vae;
};

E2ePass e2e_pass(const model::HybridDit& dit, const model::Ltx2Vae& vae, const FrameSize& size,
                 const EditEngineOptions& eo, const at::Tensor& in, int64_t n_chunks, bool pipelined) {
  const BenchPrompt prompt = random_prompt(dit.config(), eo.seed);
  HostFrames io(in, size, vae);
  E2ePass p;
  const int64_t frames = in.size(0);
  int64_t frame_in = 0;
  auto start = std::chrono::steady_clock::now();
  auto deliver = [&](const at::Tensor& video) {  // a chunk's frames into host memory, timed
    io.write(video);
    const auto now = std::chrono::steady_clock::now();
    p.chunk_s.push_back(std::chrono::duration<double>(now - start).count());
    start = now;
  };
  auto next_input = [&](int64_t want) {
    const int64_t n = std::min(want, frames - frame_in);
    const at::Tensor x = io.input(frame_in, n);
    frame_in += n;
    return x;
  };
  if (pipelined) {
    PipelinedEditEngine engine(dit, vae, size, eo);
    engine.set_prompt(prompt.embeds, prompt.mask);
    std::exception_ptr feed_error;
    std::thread feeder([&] {
      try {
        for (int64_t c = 0; c < n_chunks; ++c) engine.push(next_input(engine.chunk_frames()), c + 1 == n_chunks);
      } catch (...) {
        feed_error = std::current_exception();
      }
    });
    try {
      while (std::optional<at::Tensor> video = engine.pop()) deliver(*video);
    } catch (...) {
      feeder.join();
      throw;
    }
    feeder.join();
    if (feed_error) std::rethrow_exception(feed_error);
  } else {
    EditEngine engine(dit, vae, size, eo);
    engine.set_prompt(prompt.embeds, prompt.mask);
    // process() in its three stages, with a device clock mark after each.
    ops::DeviceClock stages(vae.runtime().is_cuda());
    for (int64_t c = 0; c < n_chunks; ++c) {
      const bool last = c + 1 == n_chunks;
      stages.mark();
      const at::Tensor x = next_input(engine.chunk_frames());
      stages.mark();
      const at::Tensor src = engine.encode(x, last);
      stages.mark();
      const at::Tensor latents = engine.sample(src, last);
      stages.mark();
      const at::Tensor video = engine.decode(latents, x.size(2));
      stages.mark();
      deliver(video);
      stages.mark();
    }
    const std::vector<double> iv = stages.intervals();
    for (int64_t c = 0; c < n_chunks; ++c)
      p.stage_s.push_back({iv[6 * c], iv[6 * c + 1], iv[6 * c + 2], iv[6 * c + 3], iv[6 * c + 4]});
  }
  SS_CHECK(io.written == frames, "e2e: {} frames out of {} in", io.written, frames);
  p.out = io.out;
  return p;
}

// The paced pass (--pace FPS): frames arrive in real time at `fps` (a feeder thread stamps each one and
// queues it), and the engine works as they come, as a live session does: whenever no frame waits, the
// frames of the chunk that have arrived are encoded (EditEngine::encode_ahead), and the first chunk's
// first latent frame is decoded ahead, so its frame leaves before the rest are decoded. Latency: from
// a chunk's last frame's arrival to its first frame (the first chunk) or all its frames (every chunk)
// in host memory.
struct PacedPass {
  double first_frame_ms = 0;
  std::vector<double> chunk_latency_s;
  at::Tensor out;
};

PacedPass paced_pass(const model::HybridDit& dit, const model::Ltx2Vae& vae, const FrameSize& size,
                     const EditEngineOptions& eo, const at::Tensor& in, double fps) {
  using Clock = std::chrono::steady_clock;
  const BenchPrompt prompt = random_prompt(dit.config(), eo.seed);
  EditEngine engine(dit, vae, size, eo);
  engine.set_prompt(prompt.embeds, prompt.mask);
  HostFrames io(in, size, vae);
  PacedPass p;
  const int64_t frames = in.size(0);

  std::vector<Clock::time_point> arrival(static_cast<size_t>(frames));
  BoundedQueue<int64_t> arrived(static_cast<size_t>(frames));
  std::thread feeder([&] {
    const Clock::time_point t0 = Clock::now();
    for (int64_t i = 0; i < frames; ++i) {
      std::this_thread::sleep_until(t0 + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(static_cast<double>(i) / fps)));
      arrival[static_cast<size_t>(i)] = Clock::now();
      if (!arrived.push(i)) return;
    }
    arrived.close();
  });
  try {
    for (int64_t next = 0; next < frames;) {
      const int64_t want = std::min(engine.chunk_frames(), frames - next);
      const bool last = next + want == frames;
      // What has arrived is encoded whenever nothing else waits.
      int64_t ahead = 0;
      for (int64_t have = 1; have <= want; ++have) {
        SS_CHECK(arrived.pop().has_value(), "e2e --pace: the frame feeder stopped");
        if (arrived.size() == 0 && have < want) {
          engine.encode_ahead(io.input(next + ahead, have - ahead));
          ahead = have;
        }
      }
      const Clock::time_point complete = arrival[static_cast<size_t>(next + want - 1)];
      auto write = [&](const at::Tensor& video) {  // the first frames out give the first-frame latency
        const bool first = io.written == 0;
        io.write(video);
        if (first) p.first_frame_ms = std::chrono::duration<double, std::milli>(Clock::now() - complete).count();
      };
      write(engine.process(io.input(next + ahead, want - ahead), last, write));
      p.chunk_latency_s.push_back(std::chrono::duration<double>(Clock::now() - complete).count());
      next += want;
    }
  } catch (...) {
    arrived.close();
    feeder.join();
    throw;
  }
  feeder.join();
  p.out = io.out;
  return p;
}

// The e2e part. --gpus 2: the VAE on the second GPU, the DiT on the first, pipelined; the same run on
// one GPU first, for the speed-up and the check that the frames are the same. --streams K: K
// sessions at once in their own threads, each with its own models on GPU k mod the visible GPUs (on
// the CPU: all on it); one stream alone first, for the throughput ratio.
void bench_e2e(const BenchOptions& opt, const BenchSetup& b, json& r) {
  const Runtime& rt = b.rt;
  std::string dit_name, vae_name;
  auto dit = bench_dit_model(opt, b.plan, rt, &dit_name);
  auto vae = bench_vae_model(opt, b.plan, rt, &vae_name);
  const model::DitConfig& cfg = dit->config();
  const FrameSize size{b.W * b.spatial, b.H * b.spatial};
  const int64_t frames = 1 + (b.T - 1) * vae->config().temporal_ratio();
  auto host = at::TensorOptions().dtype(at::kByte).pinned_memory(rt.is_cuda());
  at::Generator gen = at::detail::createCPUGenerator(opt.seed + 1);
  // (Tensor::to() with only pinned_memory changed returns the tensor itself, unpinned: copy into one.)
  const std::vector<int64_t> shape = {frames, size.height, size.width, 3};
  const at::Tensor in = at::empty(shape, host).copy_(at::randint(0, 256, shape, gen, at::kByte));

  EditEngineOptions eo;
  eo.steps = opt.steps;
  eo.first_chunk = opt.first_chunk;
  eo.efficient_cache = opt.efficient_cache;
  eo.cuda_graphs = opt.cuda_graphs;
  eo.seed = opt.seed;
  eo.tiling = bench_tiling(opt, rt);
  eo.vae_call_latents = opt.vae_call_latents;
  r["config"]["vae_call_latents"] = opt.vae_call_latents;
  // The text encoder as `edit` holds it: resident through the run, so the peak counts it.
  std::unique_ptr<model::Gemma2Model> text_encoder;
  r["text_encoder_gpu_bytes"] = nullptr;
  if (opt.text_encoder) {
    ops::reset_peak_memory(rt);
    const int64_t before = ops::peak_memory(rt).device_bytes;
    text_encoder = load_resident_text_encoder(is_package(opt.model) ? opt.model : "", "2b", opt.seed, rt);
    if (rt.is_cuda()) r["text_encoder_gpu_bytes"] = ops::peak_memory(rt).device_bytes - before;
    r["config"]["text_encoder"] = text_encoder->config().summary();
  }
  ops::reset_peak_memory(rt);
  const E2ePass one = e2e_pass(*dit, *vae, size, eo, in, b.n_chunks, false);
  fill_chunk_stats(r, one.chunk_s, "e2e_fps");
  const double one_fps = r["e2e_fps"].get<double>();
  r["first_frame_ms"] = one.chunk_s[0] * 1e3;
  r["peak_gpu_bytes"] = rt.is_cuda() ? json(ops::peak_memory(rt).device_bytes) : json(nullptr);
  // The stages of the same run (steady chunks' medians), and the rate they allow run one after another.
  json stages = json::object();
  double inv_sum = 0;
  for (size_t k = 0; k < 5; ++k) {
    std::vector<double> v;
    for (size_t c = 2; c + 1 < one.stage_s.size(); ++c) v.push_back(one.stage_s[c][k]);
    const double ms = percentile(v, 0.5) * 1e3;
    stages[kE2eStages[k]] = {{"ms_p50", ms}, {"fps", 24e3 / ms}};
    inv_sum += ms / 24e3;
  }
  r["stages"] = stages;
  r["serial_bound_fps"] = 1.0 / inv_sum;
  if (opt.pace > 0) {
    const PacedPass paced = paced_pass(*dit, *vae, size, eo, in, opt.pace);
    std::vector<double> steady(paced.chunk_latency_s.begin() + 1, paced.chunk_latency_s.end());
    r["paced"] = {{"fps", opt.pace},
                  {"first_frame_latency_ms", paced.first_frame_ms},
                  {"chunk_latency_ms", json(paced.chunk_latency_s) },
                  {"later_chunk_latency_ms_p50", steady.empty() ? json(nullptr) : json(percentile(steady, 0.5) * 1e3)},
                  {"max_abs_diff", (one.out.to(at::kInt) - paced.out.to(at::kInt)).abs().max().item<int64_t>()}};
    for (auto& v : r["paced"]["chunk_latency_ms"]) v = v.get<double>() * 1e3;
  }
  if (opt.gpus == 1 && opt.streams == 1) {
    // The overlap: the stages in their own threads and streams on the same device (PipelinedEditEngine).
    ops::reset_peak_memory(rt);
    const E2ePass piped = e2e_pass(*dit, *vae, size, eo, in, b.n_chunks, true);
    json o;
    fill_chunk_stats(o, piped.chunk_s, "e2e_fps");
    o["first_frame_ms"] = piped.chunk_s[0] * 1e3;
    o["speedup"] = o["e2e_fps"].get<double>() / one_fps;
    o["frames_identical"] = at::equal(one.out, piped.out);
    o["peak_gpu_bytes"] = rt.is_cuda() ? json(ops::peak_memory(rt).device_bytes) : json(nullptr);
    r["overlapped"] = o;
  }
  r["e2e_vs_serial_bound"] = r["e2e_fps"].get<double>() * inv_sum;
  if (opt.gpus > 1) {
    // The split: this DiT on the first GPU, the VAE again on the second (the CPU: both on it).
    SS_CHECK(!rt.is_cuda() || torch::cuda::device_count() >= 2, "--gpus 2: expected 2 visible GPUs, got {}",
             torch::cuda::device_count());
    const Runtime vae_rt = rt.is_cuda() ? make_runtime("cuda:1", opt.dtype) : rt;
    std::string unused;
    auto vae2 = bench_vae_model(opt, b.plan, vae_rt, &unused);
    const E2ePass split = e2e_pass(*dit, *vae2, size, eo, in, b.n_chunks, true);
    fill_chunk_stats(r, split.chunk_s, "e2e_fps");
    r["first_frame_ms"] = split.chunk_s[0] * 1e3;
    r["gpus"] = {{"count", 2},
                 {"dit_device", rt.device.str()},
                 {"vae_device", vae_rt.device.str()},
                 {"one_gpu_e2e_fps", one_fps},
                 {"speedup", r["e2e_fps"].get<double>() / one_fps},
                 {"frames_identical", at::equal(one.out, split.out)},
                 {"max_abs_diff", (one.out.to(at::kInt) - split.out.to(at::kInt)).abs().max().item<int64_t>()}};
  }
  if (opt.streams > 1) {
    // K sessions at once, each with its own models and inputs' copy, on GPU k mod the visible ones.
    const int64_t gpus = rt.is_cuda() ? static_cast<int64_t>(torch::cuda::device_count()) : 1;
    std::vector<std::unique_ptr<model::HybridDit>> dits;
    std::vector<std::unique_ptr<model::Ltx2Vae>> vaes;
    std::vector<Runtime> rts;
    for (int k = 0; k < opt.streams; ++k) {
      const Runtime srt = rt.is_cuda() ? make_runtime(fmt::format("cuda:{}", k % gpus), opt.dtype) : rt;
      std::string unused;
      rts.push_back(srt);
      dits.push_back(bench_dit_model(opt, b.plan, srt, &unused));
      vaes.push_back(bench_vae_model(opt, b.plan, srt, &unused));
    }
    std::vector<E2ePass> passes(opt.streams);
    std::vector<std::exception_ptr> errors(opt.streams);
    std::vector<std::thread> threads;
    const auto start = std::chrono::steady_clock::now();
    for (int k = 0; k < opt.streams; ++k) {
      threads.emplace_back([&, k] {
        try {
          c10::OptionalDeviceGuard guard;
          if (rts[k].is_cuda()) guard.reset_device(rts[k].device);
          passes[k] = e2e_pass(*dits[k], *vaes[k], size, eo, in, b.n_chunks, false);
        } catch (...) {
          errors[k] = std::current_exception();
        }
      });
    }
    for (std::thread& t : threads) t.join();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (const std::exception_ptr& e : errors)
      if (e) std::rethrow_exception(e);
    json per_stream = json::array();
    double sum_fps = 0;
    for (int k = 0; k < opt.streams; ++k) {
      json s;
      fill_chunk_stats(s, passes[k].chunk_s, "e2e_fps");
      sum_fps += s["e2e_fps"].get<double>();
      per_stream.push_back({{"device", rts[k].device.str()},
                            {"e2e_fps", s["e2e_fps"]},
                            {"chunk_ms_p50", s["chunk_ms_p50"]},
                            {"chunk_ms_p99", s["chunk_ms_p99"]},
                            {"first_frame_ms", passes[k].chunk_s[0] * 1e3},
                            {"frames_identical", at::equal(passes[k].out, one.out)}});
    }
    r["streams"] = {{"count", opt.streams},
                    {"per_stream", per_stream},
                    {"total_e2e_fps", sum_fps},
                    {"one_stream_e2e_fps", one_fps},
                    {"throughput_ratio", sum_fps / one_fps},
                    {"wall_s", wall},
                    {"frames_per_s_wall", static_cast<double>(frames * opt.streams) / wall}};
  }
  r["config"]["model"] = dit_name + " + " + vae_name;
  r["config"]["dit"] = cfg.to_json();
  r["config"]["vae"] = vae->config().to_json();
  r["config"]["tiling"] = model::describe(eo.tiling);
  r["config"]["forwards_per_chunk"] = opt.steps + (opt.efficient_cache ? 0 : 1);
}

// --part gdn: the GDN block core (ops::gdn_gated) at the 2B shapes (20 heads × 112, S tokens per
// frame from --size), from the q/k/v/β/gate projections' outputs to the merged output, streaming
// (seeded by a cached state, written back in place), for 3- and 5-frame calls: the fused kernels
// and the ATen path. On CUDA each timing replays a graph of 10 calls alternating two input sets
// (each larger than the L2 cache at 880 tokens per frame); per call = median replay / 10.
void bench_gdn(const BenchOptions& opt, const BenchSetup& b, json& r) {
  const Runtime& rt = b.rt;
  const int64_t H = 20, D = 112, C = H * D, S = b.H * b.W;
  const at::TensorOptions dt = rt.options().dtype(rt.dtype), f32 = rt.f32();
  const ops::RopeCache rope_cache({40, 36, 36, 10000.0}, 1024, rt.device,
                                  rt.dtype == at::kFloat ? at::kDouble : at::kFloat);
  ops::GdnFeatureMaps fm;
  fm.q_norm = (1 + 0.2 * at::randn({C}, f32)).to(rt.dtype);
  fm.k_norm = (1 + 0.2 * at::randn({C}, f32)).to(rt.dtype);
  fm.k_scale = 1.0 / std::sqrt(static_cast<double>(D * S));
  fm.heads = H;
  json rows = json::array();
  std::printf("gdn core, %lld heads x %lld, %lld tokens per frame, %s (per call; floor bytes: q, k, v, gate, beta "
              "read once, output written once, state in and out)\n",
              static_cast<long long>(H), static_cast<long long>(D), static_cast<long long>(S), opt.dtype.c_str());
  for (int64_t T : {3, 5}) {
    const int64_t N = T * S;
    fm.frames = T;
    std::vector<ops::GdnProjections> sets(2);
    for (auto& p : sets) {
      p.q = at::randn({1, N, C}, dt);
      p.k = at::randn({1, N, C}, dt);
      p.v = at::randn({1, N, C}, dt);
      p.beta_logits = at::randn({1, N, H}, dt);
      p.decay = at::exp(-at::rand({1, T, H}, f32));
      p.gate = at::randn({1, N, C}, dt);
    }
    const ops::RopeTable rope = rope_cache.table(5, T, b.H, b.W);
    ops::GdnState cache{0.1 * at::randn({1, H, D, D}, f32), at::rand({1, H, D, 1}, f32)};
    const double elem = static_cast<double>(at::elementSize(rt.dtype));
    const double bytes = (5.0 * N * C + N * H) * elem + 2.0 * (H * D * D + H * D) * 4;
    const double flops = 8.0 * S * D * D * H * T + 2.0 * D * D * D * H * (2 * T - 1);
    for (bool fused : {true, false}) {
      auto call = [&](const ops::GdnProjections& p) { return ops::gdn_gated(p, fm, rope, cache, &cache, 1e-8, fused); };
      std::vector<double> per_call;
#ifdef SANASTREAM_HAS_CUDA
      if (rt.is_cuda()) {
        auto main = c10::cuda::getCurrentCUDAStream();
        auto side = c10::cuda::getStreamFromPool();
        at::cuda::CUDAEvent ready;
        ready.record(main);
        ready.block(side);
        at::cuda::CUDAGraph graph;
        {
          c10::cuda::CUDAStreamGuard guard(side);
          for (int i = 0; i < 3; ++i) call(sets[i % 2]);  // warm-up outside the graph
          graph.capture_begin();
          for (int i = 0; i < 10; ++i) call(sets[i % 2]);
          graph.capture_end();
        }
        at::cuda::CUDAEvent done;
        done.record(side);
        done.block(main);
        for (int i = 0; i < 3; ++i) graph.replay();
        ops::DeviceClock clock(true);
        clock.mark();
        for (int i = 0; i < 20; ++i) {
          graph.replay();
          clock.mark();
        }
        for (double s : clock.intervals()) per_call.push_back(s / 10);
      }
#endif
      if (per_call.empty()) {
        for (int i = 0; i < 2; ++i) call(sets[i % 2]);
        ops::DeviceClock clock(rt.is_cuda());
        clock.mark();
        for (int i = 0; i < 6; ++i) {
          call(sets[i % 2]);
          clock.mark();
        }
        per_call = clock.intervals();
      }
      const double t = percentile(per_call, 0.5);
      const char* path = fused ? "fused" : "aten";
      std::printf("  T=%lld %-5s %8.1f us  (p90 %.1f)  %7.1f GB/s  %6.1f TFLOP/s\n", static_cast<long long>(T), path,
                  t * 1e6, percentile(per_call, 0.9) * 1e6, bytes / t / 1e9, flops / t / 1e12);
      rows.push_back({{"frames", T}, {"path", path}, {"us_p50", t * 1e6}, {"us_p90", percentile(per_call, 0.9) * 1e6},
                      {"gbps", bytes / t / 1e9}, {"tflops", flops / t / 1e12}, {"bytes", bytes}, {"flops", flops}});
    }
  }
  r["gdn"] = rows;
  r["config"]["model"] = "gdn-2b-shapes-random";
}

// How a plan's quantized layers run here: each precision on its GEMMs where the GPU has them (layers
// whose dims are not multiples of 16 simulated), else simulated (ops/quant.h): "FP8 GEMMs",
// "FP8 GEMMs, INT8 simulated", "simulated", …
std::string plan_execution(const model::QuantPlan& plan, const Runtime& rt) {
  std::vector<std::string> parts;
  bool any_real = false;
  for (ops::Precision p : {ops::Precision::kFP8, ops::Precision::kINT8}) {
    const bool used = std::any_of(plan.groups.begin(), plan.groups.end(),
                                  [&](const model::QuantGroup& g) { return g.precision == p; });
    if (!used) continue;
    const bool real = p == ops::Precision::kFP8 ? ops::fp8_gemm_available(rt.device, rt.dtype)
                                                : ops::int8_gemm_available(rt.device, rt.dtype);
    any_real = any_real || real;
    parts.push_back(fmt::format("{} {}", p == ops::Precision::kFP8 ? "FP8" : "INT8", real ? "GEMMs" : "simulated"));
  }
  const std::string dit = parts.empty() ? "" : any_real ? fmt::format("{}", fmt::join(parts, ", ")) : "simulated";
  if (plan.vae != ops::Precision::kFP8) return dit;
  const std::string vae = ops::conv3d_fp8_available(rt.device, rt.dtype) ? "VAE FP8 convolutions" : "VAE simulated";
  return dit.empty() ? vae : dit + "; " + vae;
}

}  // namespace

BenchDit load_bench_dit(const BenchOptions& opt, const model::QuantPlan& plan) {
  const BenchSetup b = make_setup(opt);
  BenchDit d;
  d.dit = bench_dit_model(opt, plan, b.rt, &d.name);
  d.latent_h = b.H;
  d.latent_w = b.W;
  return d;
}

int64_t chunk_video_frames(int64_t s, int64_t e, int64_t tr) { return s == 0 ? 1 + (e - 1) * tr : (e - s) * tr; }

BenchVae load_bench_vae(const BenchOptions& opt, const model::QuantPlan& plan) {
  const BenchSetup b = make_setup(opt);
  BenchVae v;
  v.vae = bench_vae_model(opt, plan, b.rt, &v.name);
  v.tiling = bench_tiling(opt, b.rt);
  v.height = b.H * b.spatial;
  v.width = b.W * b.spatial;
  v.bounds = b.bounds;
  return v;
}

json run_bench(const BenchOptions& opt) {
  const BenchSetup b = make_setup(opt);
  json r;
  for (const char* k : {"dit_fps", "vae_encode_fps", "vae_decode_fps", "e2e_fps", "first_frame_ms", "chunk_ms_p50",
                        "chunk_ms_p99", "peak_gpu_bytes", "dit_tflops", "gemm_bf16_tflops"})
    r[k] = nullptr;
  r["config"] = {{"part", opt.part},
                 {"size", fmt::format("{}x{}", opt.width, opt.height)},
                 {"latent_frames", b.T},
                 {"first_chunk", opt.first_chunk},
                 {"steps", opt.steps},
                 {"efficient_cache", opt.efficient_cache},
                 {"dtype", opt.dtype},
                 {"device", opt.device},
                 {"cuda_graphs", opt.cuda_graphs && b.rt.is_cuda()},
                 {"gpus", opt.gpus},
                 {"streams", opt.streams},
                 {"plan", opt.plan.empty() ? json(nullptr) : json(opt.plan)},
                 {"plan_execution", opt.plan.empty() ? json(nullptr) : json(plan_execution(b.plan, b.rt))}};
  if (opt.part == "dit") bench_dit(opt, b, r);
  if (opt.part == "vae-encode" || opt.part == "vae-decode") bench_vae(opt, b, r, opt.part == "vae-encode");
  if (opt.part == "e2e") bench_e2e(opt, b, r);
  if (opt.part == "gdn") bench_gdn(opt, b, r);
  if (b.rt.is_cuda()) r["gemm_bf16_tflops"] = gemm_tflops(b.rt);

  const json& c = r["config"];
  std::printf("bench %s: %s, %s, %lld latent frames, first chunk %d, %s, graphs %s%s\n", opt.part.c_str(),
              c["model"].get<std::string>().c_str(), c["size"].get<std::string>().c_str(),
              static_cast<long long>(b.T), opt.first_chunk, opt.dtype.c_str(), c["cuda_graphs"].get<bool>() ? "on" : "off",
              opt.plan.empty()
                  ? ""
                  : fmt::format(", plan {} ({})", opt.plan, c["plan_execution"].get<std::string>()).c_str());
  std::string line;
  for (const char* k : {"dit_fps", "vae_encode_fps", "vae_decode_fps", "e2e_fps", "first_frame_ms", "chunk_ms_p50",
                        "chunk_ms_p99", "dit_tflops", "gemm_bf16_tflops"})
    if (!r[k].is_null()) line += fmt::format("  {} {:.1f}", k, r[k].get<double>());
  if (!r["peak_gpu_bytes"].is_null()) line += fmt::format("  peak_gpu {:.2f} GB", r["peak_gpu_bytes"].get<double>() / 1e9);
  if (r.contains("text_encoder_gpu_bytes") && !r["text_encoder_gpu_bytes"].is_null())
    line += fmt::format(" (text encoder resident: {:.2f} GB of it)", r["text_encoder_gpu_bytes"].get<double>() / 1e9);
  std::printf("%s\n", line.c_str());
  if (r.contains("stages")) {
    std::string st;
    for (const char* k : kE2eStages)
      st += fmt::format("  {} {:.1f} ms ({:.0f} fps)", k, r["stages"][k]["ms_p50"].get<double>(),
                        r["stages"][k]["fps"].get<double>());
    std::printf("  stages:%s; serial bound %.1f fps, e2e %.2f of it\n", st.c_str(), r["serial_bound_fps"].get<double>(),
                r["e2e_vs_serial_bound"].get<double>());
  }
  if (r.contains("paced")) {
    const json& pc = r["paced"];
    std::printf("  paced at %.1f fps: first frame %.1f ms after the first chunk's last frame arrived; later chunks done "
                "%s ms after their last frame (p50); frames vs the unpaced run: max diff %lld\n",
                pc["fps"].get<double>(), pc["first_frame_latency_ms"].get<double>(),
                pc["later_chunk_latency_ms_p50"].is_null()
                    ? "-"
                    : fmt::format("{:.1f}", pc["later_chunk_latency_ms_p50"].get<double>()).c_str(),
                static_cast<long long>(pc["max_abs_diff"].get<int64_t>()));
  }
  if (r.contains("overlapped")) {
    const json& o = r["overlapped"];
    std::printf("  overlapped (stages on their own streams): e2e_fps %.1f  chunk_ms_p50 %.1f  first_frame_ms %.1f  "
                "speed-up %.2f  frames identical %s%s\n",
                o["e2e_fps"].get<double>(), o["chunk_ms_p50"].get<double>(), o["first_frame_ms"].get<double>(),
                o["speedup"].get<double>(), o["frames_identical"].get<bool>() ? "yes" : "no",
                o["peak_gpu_bytes"].is_null()
                    ? ""
                    : fmt::format("  peak_gpu {:.2f} GB", o["peak_gpu_bytes"].get<double>() / 1e9).c_str());
  }
  if (r.contains("profile_ms")) {
    std::vector<std::pair<double, std::string>> rows;
    for (auto& [k, v] : r["profile_ms"].items()) rows.emplace_back(v.get<double>(), k);
    std::sort(rows.rbegin(), rows.rend());
    const double total = r["profile_total_ms"].get<double>();
    std::printf("  profile (chunk 2, ms per %s, eager):\n", r["profile_unit"].get<std::string>().c_str());
    for (auto& [ms, name] : rows) std::printf("    %-20s %8.3f ms  %5.1f %%\n", name.c_str(), ms, 100 * ms / total);
    std::printf("    %-20s %8.3f ms\n", "total", total);
  }
  return r;
}

}  // namespace sanastream::pipeline
