#include "pipeline/samplers.h"

#include <algorithm>
#include <map>
#include <optional>

#include "core/compare.h"
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

int64_t longest_later_chunk(const std::vector<int64_t>& bounds) {
  int64_t longest = 0;
  for (size_t c = 2; c < bounds.size(); ++c) longest = std::max(longest, bounds[c] - bounds[c - 1]);
  return longest;
}

int64_t rope_rebase_shift(int64_t sink, int64_t previous, int64_t first, int64_t chunk, int64_t limit) {
  SS_CHECK(sink >= 0 && previous >= 0 && chunk >= 1 && first >= sink + previous,
           "RoPE rebase: expected a chunk after the sink ({} frames) and the previous chunk ({}), got position {}",
           sink, previous, first);
  if (first + chunk <= limit) return 0;
  const int64_t oldest = first - previous;  // the oldest non-sink frame
  const int64_t shift = (oldest - sink) / 3 * 3;
  SS_CHECK(first - shift + chunk <= limit,
           "RoPE positions: a chunk of {} latent frames after a sink of {} and a previous chunk of {}: expected a "
           "limit of at least {} positions, got {}",
           chunk, sink, previous, first - shift + chunk, limit);
  return shift;
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

struct StreamingSampler::State {
  State(const model::HybridDit& d, const model::CaptionState& c, int64_t B, int64_t H, int64_t W, int64_t first,
        int64_t later, const StreamingOptions& o, const DumpSpec& ds)
      : dit(d),
        opt(o),
        dump(ds),
        timesteps(streaming_timesteps(o.steps)),
        caption(clone_caption(c)),
        cache(d.config(), B, H, W, first, later, d.runtime().dtype, d.runtime().device),
        runner(d, caption, o.cuda_graphs && ds.out == nullptr),
        rope_limit(o.rope_limit == 0 ? d.config().rope_positions : o.rope_limit) {
    SS_CHECK(rope_limit >= 1 && rope_limit <= d.config().rope_positions,
             "--rope-limit: expected 1 to the table's {} positions, got {}", d.config().rope_positions, o.rope_limit);
  }

  static model::CaptionState clone_caption(const model::CaptionState& c) {
    model::CaptionState out{c.y.clone(), c.bias.defined() ? c.bias.clone() : at::Tensor(), {}};
    for (const auto& kv : c.kv) out.kv.push_back({kv.k.clone(), kv.v.clone()});
    return out;
  }
  bool record() const { return dump.out != nullptr; }

  // One model call of chunk `chunk`; records its inputs, output and (on request) activations under the
  // golden names. The first chunk's calls run eagerly: they write the sink (cache offset 0), a shape no
  // later call has, so a CUDA graph of it would only delay the first frames.
  at::Tensor call(const at::Tensor& x, const at::Tensor& src, float t, const ops::RopeTable& rope, int64_t chunk) {
    io::TensorMap acts;
    model::Capture capture;
    if (record() && dump.activation_calls.count(calls)) capture = {&acts, ""};
    at::Tensor v = runner.run(x, src, timestep(t, x.size(0)), rope, &cache, capture, /*graph=*/chunk > 0);
    if (record()) {
      auto host = [](const at::Tensor& a) {
        return a.detach().to(at::kCPU, at::kFloat, /*non_blocking=*/false, /*copy=*/true);
      };
      (*dump.out)[call_name(dump, calls) + "x_in"] = host(x);
      (*dump.out)[call_name(dump, calls) + "v_out"] = host(v);
      for (auto& [name, a] : acts) {
        (*dump.out)[call_name(dump, calls) + name] = a;
        if (calls == 0) (*dump.out)[dump.prefix + "first_call." + name] = a;
      }
    }
    ++calls;
    return v;
  }
  // The conditioning of a timestep of the fixed schedule (or t = 0), computed once.
  const model::TimestepState& timestep(float t, int64_t batch) {
    auto it = timesteps_embedded.find(t);
    if (it == timesteps_embedded.end())
      it = timesteps_embedded.emplace(t, dit.embed_timestep(full_timestep(t, batch, dit))).first;
    return it->second;
  }
  // The call that just ran wrote chunk `chunk`'s caches: make them the next chunk's context.
  void commit(int64_t chunk, int64_t frames) {
    if (record() && dump.caches)
      dump_cache(dump, fmt::format("cache_after_chunk{}", chunk), cache, true, cache.write_offset(),
                 frames * cache.tokens_per_frame());
    cache.commit_chunk(frames);
  }

  const model::HybridDit& dit;
  StreamingOptions opt;
  DumpSpec dump;
  std::vector<float> timesteps;
  model::CaptionState caption;  // the runner reads it; set_caption writes it in place
  model::StreamCache cache;
  DitCallRunner runner;
  std::map<float, model::TimestepState> timesteps_embedded;
  int64_t rope_limit;  // temporal positions the stream may use
  int calls = 0;
  // The deferred t = 0 pass of the previous chunk: its clean latents, source and RoPE rows.
  struct Pending {
    at::Tensor x, src;
    ops::RopeTable rope;
    int64_t chunk = 0, frames = 0;
  };
  std::optional<Pending> pending;
};

StreamingSampler::StreamingSampler(const model::HybridDit& dit, const model::CaptionState& caption, int64_t batch,
                                   int64_t height, int64_t width, int64_t first_chunk, int64_t later_chunk,
                                   const StreamingOptions& opt, const DumpSpec& dump)
    : s_(std::make_unique<State>(dit, caption, batch, height, width, first_chunk, later_chunk, opt, dump)) {
  if (!is_distilled_step_count(opt.steps))
    log_warn("{} steps: the distilled streaming model was trained for 4 (or 2); using diffusers' shifted schedule",
             opt.steps);
}

StreamingSampler::~StreamingSampler() = default;

void StreamingSampler::set_caption(const model::CaptionState& caption) {
  model::CaptionState& c = s_->caption;
  SS_CHECK(caption.y.size(0) == c.y.size(0) && caption.kv.size() == c.kv.size(),
           "a new caption must have the batch and depth of the first: {} vs {}", shape_str(caption.y.sizes()),
           shape_str(c.y.sizes()));
  if (caption.y.sizes() != c.y.sizes() || caption.bias.defined() != c.bias.defined()) {
    // Another number of keys: the captured calls read the old tensors, so they go with them.
    c = State::clone_caption(caption);
    s_->runner.drop_graphs();
    return;
  }
  c.y.copy_(caption.y);
  if (c.bias.defined()) c.bias.copy_(caption.bias);
  for (size_t i = 0; i < c.kv.size(); ++i) {
    c.kv[i].k.copy_(caption.kv[i].k);
    c.kv[i].v.copy_(caption.kv[i].v);
  }
}

at::Tensor StreamingSampler::step(const at::Tensor& noise, const at::Tensor& src, bool last) {
  State& s = *s_;
  const auto& rt = s.dit.runtime();
  check_interrupt();
  const int64_t c = chunks_, n = noise.size(2), H = noise.size(3), W = noise.size(4);
  if (s.pending) {
    s.call(s.pending->x, s.pending->src, 0.f, s.pending->rope, s.pending->chunk);  // the t = 0 pass on the clean chunk
    s.commit(s.pending->chunk, s.pending->frames);
    s.pending.reset();
  }
  // RoPE rebasing: past the limit, every non-sink position moves down (cached keys rotated with it).
  const int64_t S = s.cache.tokens_per_frame(), sink = s.cache.sink_tokens() / S;
  const int64_t previous = s.cache.cached_tokens() / S - sink;
  const int64_t shift = rope_rebase_shift(sink, previous, frames_ - rope_shift_, n, s.rope_limit);
  if (shift > 0) {
    s.cache.rotate_keys(s.dit.rope_shift(-shift));
    rope_shift_ += shift;
    log_debug("chunk {}: RoPE positions of non-sink frames rebased by -{} (limit {})", c, shift, s.rope_limit);
  }
  if (s.record() && s.dump.caches && c > 0)
    dump_cache(s.dump, fmt::format("cache_view_chunk{}", c), s.cache, false, 0, s.cache.cached_tokens());
  const ops::RopeTable rope = s.dit.rope_table(frames_ - rope_shift_, n, H, W);
  const at::Tensor src_chunk = src.to(rt.device);
  at::Tensor x = noise.to(rt.device, at::kFloat, /*non_blocking=*/false, /*copy=*/true);
  for (size_t i = 0; i < s.timesteps.size(); ++i) {
    const bool last_step = i + 1 == s.timesteps.size();
    at::Tensor v = s.call(x, src_chunk, s.timesteps[i], rope, c);
    if (s.opt.efficient_cache && last_step && !last) s.commit(c, n);
    // Euler step in fp32, rounded to the model's dtype as the official scheduler does.
    const float sigma = s.timesteps[i] / 1000.f;
    const float sigma_next = last_step ? 0.f : s.timesteps[i + 1] / 1000.f;
    x = (x + (sigma_next - sigma) * v).to(rt.dtype).to(at::kFloat);
  }
  if (!s.opt.efficient_cache && !last) s.pending = State::Pending{x.clone(), src_chunk, rope, c, n};
  ++chunks_;
  frames_ += n;
  return x;
}

at::Tensor sample_streaming(const model::HybridDit& dit, const at::Tensor& noise, const at::Tensor& src,
                            const model::CaptionState& caption, const StreamingOptions& opt, const DumpSpec& dump,
                            const ChunkCallback& on_chunk) {
  const int64_t B = noise.size(0), T = noise.size(2), H = noise.size(3), W = noise.size(4);
  const std::vector<int64_t> bounds = chunk_boundaries(T, opt.first_chunk);
  const int64_t n_chunks = static_cast<int64_t>(bounds.size()) - 1;
  StreamingSampler sampler(dit, caption, B, H, W, bounds[1], longest_later_chunk(bounds), opt, dump);
  at::Tensor latents = at::empty(noise.sizes(), noise.options().dtype(at::kFloat).device(dit.runtime().device));
  for (int64_t c = 0; c < n_chunks; ++c) {
    const int64_t s = bounds[c], n = bounds[c + 1] - s;
    latents.narrow(2, s, n).copy_(sampler.step(noise.narrow(2, s, n), src.narrow(2, s, n), c + 1 == n_chunks));
    if (on_chunk) on_chunk(c, s, s + n);
  }
  if (dump.out) (*dump.out)[dump.prefix + "output.latents"] = latents.to(at::kCPU);
  return latents;
}

model::CaptionState concat_captions(const model::CaptionState& a_in, const model::CaptionState& b_in) {
  const int64_t keys = std::max(a_in.y.size(1), b_in.y.size(1));
  const model::CaptionState a = model::pad_caption_keys(a_in, keys), b = model::pad_caption_keys(b_in, keys);
  model::CaptionState out;
  out.y = at::cat({a.y, b.y}, 0);
  if (a.bias.defined() || b.bias.defined()) out.bias = at::cat({model::caption_bias(a), model::caption_bias(b)}, 0);
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
