#include "pipeline/samplers.h"

#include <algorithm>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "model/dit_cache.h"
#include "pipeline/call_runner.h"
#include "pipeline/schedule.h"

namespace sanastream::pipeline {


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

at::Tensor full_timestep(float t, int64_t batch, const model::HybridDit& dit) {
  return at::full({batch}, t, at::TensorOptions().dtype(at::kFloat).device(dit.runtime().device));
}

// Golden slot layouts: GDN slot0 [B, H, D, D], slot1 [B, H, D, 1]; softmax slot1/2 [B, H, D, n];
// slot5 [B, C, P, S]. `tokens` selects the softmax keys [first, first + count).
void dump_cache(const DumpSpec& d, const std::string& base, const model::StreamCache& cache, bool outputs,
                int64_t first, int64_t count) {
  for (size_t b = 0; b < cache.ffn_in.size(); ++b) {
    const std::string p = fmt::format("{}{}.block{:02d}.slot", d.prefix, base, b);
    auto put = [&](int slot, const at::Tensor& t) {
      (*d.out)[p + std::to_string(slot)] = t.detach().to(at::kCPU, at::kFloat, /*non_blocking=*/false, /*copy=*/true);
    };
    const ops::GdnState& gdn = outputs ? cache.gdn_out[b] : cache.gdn_in[b];
    if (gdn.defined()) {
      put(0, gdn.kv);
      put(1, gdn.z);
    } else {
      put(1, cache.k[b].narrow(2, first, count).transpose(2, 3));
      put(2, cache.v[b].narrow(2, first, count).transpose(2, 3));
    }
    put(5, (outputs ? cache.ffn_out[b] : cache.ffn_in[b]).permute({0, 3, 1, 2}));
  }
}

}  // namespace

at::Tensor sample_streaming(const model::HybridDit& dit, const at::Tensor& noise, const at::Tensor& src,
                            const model::CaptionState& caption, const StreamingOptions& opt, const DumpSpec& dump,
                            const ChunkCallback& on_chunk) {
  const auto& rt = dit.runtime();
  const std::vector<float> timesteps = streaming_timesteps(opt.steps);
  if (!is_distilled_step_count(opt.steps))
    log_warn("{} steps: the distilled streaming model was trained for 4 (or 2); using diffusers' shifted schedule",
             opt.steps);
  const int64_t B = noise.size(0), T = noise.size(2), H = noise.size(3), W = noise.size(4);
  const std::vector<int64_t> bounds = chunk_boundaries(T, opt.first_chunk);
  const int64_t n_chunks = static_cast<int64_t>(bounds.size()) - 1;
  int64_t longest_later = 0;
  for (int64_t c = 1; c < n_chunks; ++c) longest_later = std::max(longest_later, bounds[c + 1] - bounds[c]);
  model::StreamCache cache(dit.config(), B, H, W, bounds[1], longest_later, rt.dtype, rt.device);
  at::Tensor latents = noise.to(rt.device, at::kFloat).clone();
  at::Tensor src_dev = src.to(rt.device);
  const bool record = dump.out != nullptr;
  DitCallRunner runner(dit, caption, opt.cuda_graphs && !record);
  int call = 0;

  for (int64_t c = 0; c < n_chunks; ++c) {
    check_interrupt();
    const int64_t s = bounds[c], e = bounds[c + 1], n = e - s;
    const bool last_chunk = c == n_chunks - 1;
    if (record && dump.caches && c > 0)
      dump_cache(dump, fmt::format("cache_view_chunk{}", c), cache, false, 0, cache.cached_tokens());
    const ops::RopeTable rope = dit.rope_table(s, n, H, W);
    at::Tensor x = latents.narrow(2, s, n).clone();
    const at::Tensor src_chunk = src_dev.narrow(2, s, n);

    auto run_call = [&](const at::Tensor& xin, float t) {
      io::TensorMap acts;
      model::Capture capture;
      if (record && dump.activation_calls.count(call)) capture = {&acts, ""};
      at::Tensor v = runner.run(xin, src_chunk, t, rope, &cache, capture);
      if (record) {
        (*dump.out)[call_name(dump, call) + "x_in"] = xin.detach().to(at::kCPU, at::kFloat, /*non_blocking=*/false, /*copy=*/true);
        (*dump.out)[call_name(dump, call) + "v_out"] = v.detach().to(at::kCPU, at::kFloat, /*non_blocking=*/false, /*copy=*/true);
        for (auto& [name, t_] : acts) {
          (*dump.out)[call_name(dump, call) + name] = t_;
          if (call == 0) (*dump.out)[dump.prefix + "first_call." + name] = t_;
        }
      }
      ++call;
      return v;
    };
    // The call that just ran wrote this chunk's caches: make them the next chunk's context.
    auto commit = [&] {
      if (record && dump.caches)
        dump_cache(dump, fmt::format("cache_after_chunk{}", c), cache, true, cache.write_offset(),
                   n * cache.tokens_per_frame());
      cache.commit_chunk(n);
    };

    for (size_t i = 0; i < timesteps.size(); ++i) {
      const bool last_step = i + 1 == timesteps.size();
      at::Tensor v = run_call(x, timesteps[i]);
      if (opt.efficient_cache && last_step && !last_chunk) commit();
      // Euler step in fp32, rounded to the model's dtype as the official scheduler does.
      const float sigma = timesteps[i] / 1000.f;
      const float sigma_next = last_step ? 0.f : timesteps[i + 1] / 1000.f;
      x = (x + (sigma_next - sigma) * v).to(rt.dtype).to(at::kFloat);
    }
    if (!opt.efficient_cache && !last_chunk) {
      run_call(x, 0.f);  // the t = 0 pass on the clean chunk writes the caches
      commit();
    }
    latents.narrow(2, s, n).copy_(x);
    if (on_chunk) on_chunk(c, s, e);
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
