#include "pipeline/samplers.h"

#include <algorithm>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "pipeline/schedule.h"

namespace sanastream::pipeline {

using model::BlockCacheEntry;
using model::BlockCacheView;
using model::CacheEntries;
using model::CacheView;

std::vector<int64_t> chunk_boundaries(int64_t frames, int first_chunk) {
  SS_CHECK(frames >= 1, "expected at least one latent frame, got {}", frames);
  std::vector<int64_t> b{0};
  if (first_chunk == 0) {
    b.push_back(frames <= 3 ? frames : 3 + frames % 3);
    while (b.back() < frames) b.push_back(b.back() + 3);
  } else {
    SS_CHECK(first_chunk >= 3 && first_chunk <= 5, "--first-chunk: expected 3, 4 or 5 latent frames, got {}",
             first_chunk);
    b.push_back(std::min<int64_t>(first_chunk, frames));
    while (b.back() < frames) b.push_back(std::min<int64_t>(b.back() + 3, frames));
  }
  return b;
}

namespace {

std::string call_name(const DumpSpec& d, int call) { return fmt::format("{}call{:02d}.", d.prefix, call); }

// Per-block streaming state across chunks: the sink chunk's and the latest chunk's softmax K/V, the
// latest GDN forward state and FFN context.
struct StreamState {
  std::vector<BlockCacheEntry> sink;    // chunk 0's entries (softmax K/V are read from here)
  std::vector<BlockCacheEntry> latest;  // the most recent chunk's entries

  void commit(int64_t chunk, CacheEntries&& e) {
    if (chunk == 0) sink = e;
    latest = std::move(e);
  }

  // The view handed to chunk c: GDN state and FFN context of chunk c−1; softmax K/V of
  // [sink chunk 0] + [chunk c−1] (just the sink for chunk 1).
  CacheView view(int64_t chunk) const {
    CacheView v(latest.size());
    if (chunk == 0) return v;
    for (size_t i = 0; i < latest.size(); ++i) {
      v[i].gdn = latest[i].gdn;
      v[i].ffn_ctx = latest[i].ffn_ctx;
      if (sink[i].k.defined()) {
        v[i].k = chunk == 1 ? sink[i].k : at::cat({sink[i].k, latest[i].k}, 2);
        v[i].v = chunk == 1 ? sink[i].v : at::cat({sink[i].v, latest[i].v}, 2);
      }
    }
    return v;
  }
};

// Golden slot layouts: GDN slot0 [B, H, D, D], slot1 [B, H, D, 1]; softmax slot1/2 [B, H, D, n];
// slot5 [B, C, P, S].
void dump_slots(const DumpSpec& d, const std::string& base, size_t block, const ops::GdnState& gdn,
                const at::Tensor& k, const at::Tensor& v, const at::Tensor& ffn_ctx) {
  if (!d.out) return;
  const std::string p = fmt::format("{}{}.block{:02d}.slot", d.prefix, base, block);
  auto put = [&](int slot, const at::Tensor& t) {
    if (t.defined()) (*d.out)[p + std::to_string(slot)] = t.detach().to(at::kCPU, at::kFloat).contiguous();
  };
  put(0, gdn.kv);
  put(1, gdn.z);
  if (k.defined()) {
    put(1, k.transpose(2, 3));
    put(2, v.transpose(2, 3));
  }
  if (ffn_ctx.defined()) put(5, ffn_ctx.permute({0, 3, 1, 2}));
}

at::Tensor full_timestep(float t, int64_t batch, const model::HybridDit& dit) {
  return at::full({batch}, t, at::TensorOptions().dtype(at::kFloat).device(dit.runtime().device));
}

}  // namespace

at::Tensor sample_streaming(const model::HybridDit& dit, const at::Tensor& noise, const at::Tensor& src,
                            const model::CaptionState& caption, const StreamingOptions& opt, const DumpSpec& dump) {
  const auto& rt = dit.runtime();
  const std::vector<float> timesteps = streaming_timesteps(opt.steps);
  if (!is_distilled_step_count(opt.steps))
    log_warn("{} steps: the distilled streaming model was trained for 4 (or 2); using diffusers' shifted schedule",
             opt.steps);
  const int64_t T = noise.size(2), B = noise.size(0);
  const std::vector<int64_t> bounds = chunk_boundaries(T, opt.first_chunk);
  const int64_t n_chunks = static_cast<int64_t>(bounds.size()) - 1;
  at::Tensor latents = noise.to(rt.device, at::kFloat).clone();
  at::Tensor src_dev = src.to(rt.device);
  StreamState state;
  int call = 0;
  const bool record = dump.out != nullptr;

  for (int64_t c = 0; c < n_chunks; ++c) {
    check_interrupt();
    const int64_t s = bounds[c], e = bounds[c + 1];
    const bool last_chunk = c == n_chunks - 1;
    const CacheView view = state.view(c);
    if (record && dump.caches && c > 0)
      for (size_t i = 0; i < view.size(); ++i)
        dump_slots(dump, fmt::format("cache_view_chunk{}", c), i, view[i].gdn, view[i].k, view[i].v, view[i].ffn_ctx);
    at::Tensor x = latents.narrow(2, s, e - s).clone();
    at::Tensor src_chunk = src_dev.narrow(2, s, e - s);

    // One model call; `write` set when it produces this chunk's caches.
    auto run_call = [&](const at::Tensor& xin, float t, CacheEntries* write) {
      model::DitCallOptions o;
      o.frame_offset = s;
      o.cache = view.empty() ? nullptr : &view;
      o.write_cache = write;
      io::TensorMap acts;
      const bool capture = record && dump.activation_calls.count(call);
      if (capture) o.capture = {&acts, ""};
      at::Tensor v = dit.forward(xin, src_chunk, full_timestep(t, B, dit), caption, o);
      if (record) {
        (*dump.out)[call_name(dump, call) + "x_in"] = xin.detach().to(at::kCPU, at::kFloat);
        (*dump.out)[call_name(dump, call) + "v_out"] = v.detach().to(at::kCPU, at::kFloat);
        for (auto& [name, t_] : acts) {
          (*dump.out)[call_name(dump, call) + name] = t_;
          if (call == 0) (*dump.out)[dump.prefix + "first_call." + name] = t_;
        }
      }
      ++call;
      return v;
    };
    auto commit = [&](CacheEntries&& entries) {
      if (record && dump.caches)
        for (size_t i = 0; i < entries.size(); ++i)
          dump_slots(dump, fmt::format("cache_after_chunk{}", c), i, entries[i].gdn, entries[i].k, entries[i].v,
                     entries[i].ffn_ctx);
      state.commit(c, std::move(entries));
    };

    for (size_t i = 0; i < timesteps.size(); ++i) {
      const bool last_step = i + 1 == timesteps.size();
      CacheEntries entries;
      const bool write = opt.efficient_cache && last_step && !last_chunk;
      at::Tensor v = run_call(x, timesteps[i], write ? &entries : nullptr);
      if (write) commit(std::move(entries));
      // Euler step in fp32, rounded to the model's dtype as the official scheduler does.
      const float sigma = timesteps[i] / 1000.f;
      const float sigma_next = last_step ? 0.f : timesteps[i + 1] / 1000.f;
      x = (x + (sigma_next - sigma) * v).to(rt.dtype).to(at::kFloat);
    }
    if (!opt.efficient_cache && !last_chunk) {
      CacheEntries entries;
      run_call(x, 0.f, &entries);  // the t = 0 pass on the clean chunk writes the caches
      commit(std::move(entries));
    }
    latents.narrow(2, s, e - s).copy_(x);
  }
  if (record) (*dump.out)[dump.prefix + "output.latents"] = latents.to(at::kCPU);
  return latents;
}

model::CaptionState concat_captions(const model::CaptionState& a, const model::CaptionState& b) {
  model::CaptionState out;
  out.y = at::cat({a.y, b.y}, 0);
  out.bias = at::cat({a.bias, b.bias}, 0);
  for (size_t i = 0; i < a.kv.size(); ++i)
    out.kv.push_back({at::cat({a.kv[i].k, b.kv[i].k}, 0), at::cat({a.kv[i].v, b.kv[i].v}, 0)});
  return out;
}

at::Tensor sample_dpm(const model::HybridDit& dit, const at::Tensor& noise, const at::Tensor& src,
                      const model::CaptionState& cond, const model::CaptionState* uncond, const DpmOptions& opt,
                      const DumpSpec& dump) {
  const auto& rt = dit.runtime();
  const bool cfg = uncond != nullptr && opt.cfg != 1.0;
  SS_CHECK(opt.cfg == 1.0 || uncond != nullptr, "CFG scale {} needs negative prompt embeddings", opt.cfg);
  const std::vector<float> grid = dpm_time_grid(opt.steps, opt.flow_shift);
  const int N = opt.steps;
  const int order = std::min(2, N);
  at::Tensor x = noise.to(rt.device, at::kFloat).clone();
  at::Tensor src_dev = src.to(rt.device);
  const model::CaptionState batch_caption = cfg ? concat_captions(*uncond, cond) : model::CaptionState{};
  const at::Tensor src_in = cfg ? at::cat({src_dev, src_dev}, 0) : src_dev;
  const bool record = dump.out != nullptr;
  int call = 0;
  // Scalars in float32 through ATen, as the official solver computes them.
  auto f32 = [](double v) { return at::scalar_tensor(v, at::kFloat); };
  auto lambda = [&](float t) { return (at::log(1 - f32(t)) - at::log(f32(t))); };

  // Data prediction x0 at time t (CFG in the official float32 operation order).
  auto model_x0 = [&](const at::Tensor& xt, float t) {
    check_interrupt();
    const float t_in = (f32(t) * 1000).item<float>();
    const int64_t batch = cfg ? 2 * xt.size(0) : xt.size(0);
    at::Tensor xin = cfg ? at::cat({xt, xt}, 0) : xt;
    at::Tensor v = dit.forward(xin, src_in, full_timestep(t_in, batch, dit), cfg ? batch_caption : cond).to(at::kFloat);
    const double one_minus_t = (1 - f32(t)).item<float>();
    at::Tensor n;
    if (cfg) {
      auto vs = v.chunk(2, 0);
      at::Tensor n_u = one_minus_t * vs[0] + xt;
      at::Tensor n_c = one_minus_t * vs[1] + xt;
      n = n_u + opt.cfg * (n_c - n_u);
      if (record) {
        const std::string p = fmt::format("{}call{:02d}.", dump.prefix, call);
        (*dump.out)[p + "x_in"] = xt.to(at::kCPU);
        (*dump.out)[p + "timestep"] = at::full({2}, t_in, at::kFloat);
        (*dump.out)[p + "v_uncond"] = vs[0].to(at::kCPU);
        (*dump.out)[p + "v_cond"] = vs[1].to(at::kCPU);
      }
    } else {
      n = one_minus_t * v + xt;
      if (record) {
        const std::string p = fmt::format("{}call{:02d}.", dump.prefix, call);
        (*dump.out)[p + "x_in"] = xt.to(at::kCPU);
        (*dump.out)[p + "timestep"] = at::full({1}, t_in, at::kFloat);
        (*dump.out)[p + "v_cond"] = v.to(at::kCPU);
      }
    }
    ++call;
    return (xt - static_cast<double>(t) * n) / one_minus_t;
  };
  // x_t = (σ_t/σ_s)·x − (α_t·φ)·m, φ = expm1(−h), α_t = exp(log(1 − t)).
  auto first_update = [&](const at::Tensor& xs, float s, float t, const at::Tensor& m) {
    at::Tensor h = lambda(t) - lambda(s);
    at::Tensor alpha_phi = at::exp(at::log(1 - f32(t))) * at::expm1(-h);
    return (f32(t) / f32(s)).item<float>() * xs - alpha_phi.item<float>() * m;
  };
  auto second_update = [&](const at::Tensor& xs, const std::vector<at::Tensor>& m, const std::vector<float>& tp,
                           float t) {
    at::Tensor h0 = lambda(tp[1]) - lambda(tp[0]);
    at::Tensor h = lambda(t) - lambda(tp[1]);
    at::Tensor r0 = h0 / h;
    at::Tensor d1 = (1.0 / r0).item<float>() * (m[1] - m[0]);
    at::Tensor alpha_phi = at::exp(at::log(1 - f32(t))) * at::expm1(-h);
    return (f32(t) / f32(tp[1])).item<float>() * xs - alpha_phi.item<float>() * m[1] -
           (0.5 * alpha_phi).item<float>() * d1;
  };

  std::vector<float> t_prev{grid[0]};
  std::vector<at::Tensor> m_prev{model_x0(x, grid[0])};
  for (int step = 1; step < order; ++step) {
    x = first_update(x, t_prev.back(), grid[step], m_prev.back());
    t_prev.push_back(grid[step]);
    m_prev.push_back(model_x0(x, grid[step]));
  }
  for (int step = order; step <= N; ++step) {
    const float t = grid[step];
    const int step_order = std::min(order, N + 1 - step);
    x = step_order == 1 ? first_update(x, t_prev.back(), t, m_prev.back()) : second_update(x, m_prev, t_prev, t);
    for (int i = 0; i + 1 < order; ++i) {
      t_prev[i] = t_prev[i + 1];
      m_prev[i] = m_prev[i + 1];
    }
    t_prev.back() = t;
    if (step < N) m_prev.back() = model_x0(x, t);
  }
  if (record) {
    (*dump.out)[dump.prefix + "output.latents"] = x.to(at::kCPU);
    (*dump.out)[dump.prefix + "time_grid"] = at::tensor(grid, at::kFloat);
  }
  return x;
}

}  // namespace sanastream::pipeline
