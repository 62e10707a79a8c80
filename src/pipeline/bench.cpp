#include "pipeline/bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>

#include "core/error.h"
#include "core/runtime.h"
#include "model/dit_random.h"
#include "model/hybrid_dit.h"
#include "model/profile.h"
#include "pipeline/dit_loader.h"
#include "pipeline/samplers.h"

#ifdef SANASTREAM_HAS_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
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

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double idx = p * (v.size() - 1);
  const size_t lo = static_cast<size_t>(idx), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (idx - lo);
}

// Elapsed seconds between marks: CUDA events on the GPU, the host clock on the CPU.
class Clock {
 public:
  explicit Clock(bool cuda) : cuda_(cuda) {}
  void mark() {
#ifdef SANASTREAM_HAS_CUDA
    if (cuda_) {
      events_.emplace_back(std::make_unique<at::cuda::CUDAEvent>(cudaEventDefault));
      events_.back()->record();
      return;
    }
#endif
    host_.push_back(std::chrono::steady_clock::now());
  }
  // Seconds between mark i and i+1 (synchronises on the GPU).
  std::vector<double> intervals() {
    std::vector<double> out;
#ifdef SANASTREAM_HAS_CUDA
    if (cuda_) {
      if (!events_.empty()) events_.back()->synchronize();
      for (size_t i = 0; i + 1 < events_.size(); ++i) out.push_back(events_[i]->elapsed_time(*events_[i + 1]) / 1e3);
      return out;
    }
#endif
    for (size_t i = 0; i + 1 < host_.size(); ++i)
      out.push_back(std::chrono::duration<double>(host_[i + 1] - host_[i]).count());
    return out;
  }

 private:
  bool cuda_;
#ifdef SANASTREAM_HAS_CUDA
  std::vector<std::unique_ptr<at::cuda::CUDAEvent>> events_;
#endif
  std::vector<std::chrono::steady_clock::time_point> host_;
};

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

 private:
  Clock clock_;
  std::vector<std::string> names_;
};

double gemm_tflops(const Runtime& rt) {
  if (!rt.is_cuda()) return 0;
  const int64_t n = 8192;
  auto opts = rt.options().dtype(at::kBFloat16);
  at::Tensor a = at::randn({n, n}, opts), b = at::randn({n, n}, opts);
  for (int i = 0; i < 3; ++i) at::matmul(a, b);
  Clock clock(true);
  clock.mark();
  for (int i = 0; i < 10; ++i) at::matmul(a, b);
  clock.mark();
  return 2.0 * n * n * n * 10 / clock.intervals()[0] / 1e12;
}

}  // namespace

int64_t peak_gpu_bytes(const Runtime& rt, bool reset) {
#ifdef SANASTREAM_HAS_CUDA
  if (rt.is_cuda()) {
    const auto idx = rt.device.index() < 0 ? c10::cuda::current_device() : rt.device.index();
    if (reset) c10::cuda::CUDACachingAllocator::resetPeakStats(idx);
    return c10::cuda::CUDACachingAllocator::getDeviceStats(idx).allocated_bytes[0].peak;
  }
#endif
  return 0;
}

json run_bench(const BenchOptions& opt) {
  SS_CHECK(opt.part == "dit", "--part {}: only dit is available in this build (the VAE parts need the VAE)",
           opt.part);
  SS_CHECK(opt.width % 32 == 0 && opt.height % 32 == 0 && opt.width > 0 && opt.height > 0,
           "--size: expected multiples of 32, got {}x{}", opt.width, opt.height);
  SS_CHECK(opt.latent_frames >= 1, "--latent-frames: expected at least 1, got {}", opt.latent_frames);
  const Runtime rt = make_runtime(opt.device, opt.dtype);
  const int64_t H = opt.height / 32, W = opt.width / 32, T = opt.latent_frames;

  std::unique_ptr<model::HybridDit> dit;
  std::string model_name = opt.model;
  if (opt.model.empty()) {
    model_name = "2b-streaming-random";
    dit = model::load_hybrid_dit(model::random_dit_weights(model::dit_shape_2b(), opt.seed, rt.dtype, rt.device),
                                 json::object(), rt);
  } else {
    dit = load_dit(resolve_dit_source(opt.model), rt);
  }
  const model::DitConfig& cfg = dit->config();

  // Inputs: random latents and caption (never zeros), 37 valid caption tokens.
  auto f32 = rt.f32();
  at::Tensor noise = at::randn({1, cfg.latent_channels, T, H, W}, f32);
  at::Tensor src = at::randn({1, cfg.source_channels, T, H, W}, f32).to(rt.dtype);
  at::Tensor embeds = at::randn({1, 1, cfg.caption_length, cfg.caption_channels}, f32).to(rt.dtype);
  at::Tensor mask = at::zeros({1, cfg.caption_length}, f32.dtype(at::kLong));
  mask.narrow(1, 0, std::min<int64_t>(37, cfg.caption_length)).fill_(1);
  const model::CaptionState caption = dit->encode_caption(embeds, mask);

  StreamingOptions so;
  so.steps = opt.steps;
  so.first_chunk = opt.first_chunk;
  so.efficient_cache = opt.efficient_cache;
  so.cuda_graphs = opt.cuda_graphs;
  const std::vector<int64_t> bounds = chunk_boundaries(T, opt.first_chunk);
  const int64_t n_chunks = static_cast<int64_t>(bounds.size()) - 1;
  SS_CHECK(n_chunks >= 4, "--latent-frames {}: the benchmark needs at least 4 chunks (chunks 2 … last−1 are timed)", T);

  // Timed run: one clock mark per chunk.
  peak_gpu_bytes(rt, true);
  Clock clock(rt.is_cuda());
  clock.mark();
  sample_streaming(*dit, noise, src, caption, so, {}, [&](int64_t, int64_t, int64_t) { clock.mark(); });
  const std::vector<double> chunk_s = clock.intervals();
  const int64_t peak = peak_gpu_bytes(rt, false);
  std::vector<double> steady(chunk_s.begin() + 2, chunk_s.end() - 1);
  const double median_s = percentile(steady, 0.5);

  // FLOPs of a steady-state chunk (3 frames, window = sink + previous chunk).
  const int64_t S = H * W, n3 = 3 * S, sink = (bounds[1] - bounds[0]) * S;
  const int64_t calls = opt.steps + (opt.efficient_cache ? 0 : 1);
  const double chunk_flops =
      calls * dit_forward_flops(cfg.depth, static_cast<int64_t>(cfg.softmax_layers.size()), cfg.hidden,
                                cfg.ffn_hidden, cfg.head_dim, n3, sink + n3, cfg.caption_length);

  json r;
  r["dit_fps"] = 24.0 / median_s;
  r["vae_encode_fps"] = nullptr;
  r["vae_decode_fps"] = nullptr;
  r["e2e_fps"] = nullptr;
  r["first_frame_ms"] = nullptr;
  r["chunk_ms_p50"] = median_s * 1e3;
  r["chunk_ms_p99"] = percentile(steady, 0.99) * 1e3;
  r["peak_gpu_bytes"] = rt.is_cuda() ? json(peak) : json(nullptr);
  r["dit_tflops"] = chunk_flops / median_s / 1e12;
  r["gemm_bf16_tflops"] = rt.is_cuda() ? json(gemm_tflops(rt)) : json(nullptr);
  std::vector<double> chunk_ms;
  for (double v : chunk_s) chunk_ms.push_back(v * 1e3);
  r["chunks_ms"] = chunk_ms;
  r["config"] = {{"part", opt.part},
                 {"model", model_name},
                 {"size", fmt::format("{}x{}", opt.width, opt.height)},
                 {"latent_frames", T},
                 {"first_chunk", opt.first_chunk},
                 {"steps", opt.steps},
                 {"forwards_per_chunk", calls},
                 {"efficient_cache", opt.efficient_cache},
                 {"dtype", opt.dtype},
                 {"device", opt.device},
                 {"cuda_graphs", opt.cuda_graphs && rt.is_cuda()},
                 {"dit", cfg.to_json()},
                 {"flops_per_steady_chunk", chunk_flops}};

  std::printf("bench dit: %s, %s, %lld latent frames, first chunk %d, %lld forwards/chunk, %s, graphs %s\n",
              model_name.c_str(), r["config"]["size"].get<std::string>().c_str(), static_cast<long long>(T),
              opt.first_chunk, static_cast<long long>(calls), opt.dtype.c_str(),
              r["config"]["cuda_graphs"].get<bool>() ? "on" : "off");
  std::printf("  dit_fps %.1f   chunk p50 %.2f ms  p99 %.2f ms   %.0f TFLOP/s   peak %.2f GB   bf16 GEMM 8192^3 %.0f TFLOP/s\n",
              r["dit_fps"].get<double>(), r["chunk_ms_p50"].get<double>(), r["chunk_ms_p99"].get<double>(),
              r["dit_tflops"].get<double>(), peak / 1e9, r["gemm_bf16_tflops"].is_null() ? 0.0 : r["gemm_bf16_tflops"].get<double>());

  if (opt.profile) {
    // One more run without graphs; the regions of chunk 2's calls (steady-state shape) are timed.
    ProfileTimer timer(rt.is_cuda());
    StreamingOptions po = so;
    po.cuda_graphs = false;
    at::Tensor short_noise = noise.narrow(2, 0, bounds[3]);
    sample_streaming(*dit, short_noise, src.narrow(2, 0, bounds[3]), caption, po, {},
                     [&](int64_t c, int64_t, int64_t) { model::set_region_timer(c == 1 ? &timer : nullptr); });
    model::set_region_timer(nullptr);
    std::map<std::string, double> totals = timer.totals();
    std::vector<std::pair<double, std::string>> rows;
    double sum = 0;
    for (auto& [k, v] : totals) {
      rows.emplace_back(v / calls, k);
      sum += v / calls;
    }
    std::sort(rows.rbegin(), rows.rend());
    json prof = json::object();
    std::printf("  profile (chunk 2, ms per forward, eager):\n");
    for (auto& [ms, name] : rows) {
      std::printf("    %-20s %8.3f ms  %5.1f %%\n", name.c_str(), ms * 1e3, 100 * ms / sum);
      prof[name] = ms * 1e3;
    }
    std::printf("    %-20s %8.3f ms\n", "total", sum * 1e3);
    r["profile_ms_per_forward"] = prof;
  }
  return r;
}

}  // namespace sanastream::pipeline
