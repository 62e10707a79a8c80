// RoPE rebasing past the positional table (SPEC §3 "Positions"): rotated caches equal caches built
// at the shifted positions, the position rule, invariance without softmax blocks, and a long stream
// with flat memory: fp32 (one cache test also fp64) on the CPU; one test, graphs vs eager, on CUDA.
#include <chrono>
#include <cmath>
#include <iostream>
#include <map>
#include <string>

#include "core/error.h"
#include "core/runtime.h"
#include "model/dit_cache.h"
#include "model/dit_random.h"
#include "model/hybrid_dit.h"
#include "ops/device.h"
#include "ops/gdn.h"
#include "ops/rope.h"
#include "pipeline/samplers.h"

using namespace sanastream;

namespace {

const ops::RopeDims kDims{40, 36, 36, 10000.0};  // D = 112, the official split

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kCPU, at::kDouble) - b.to(at::kCPU, at::kDouble)).abs().max().item<double>();
}

// frames consecutive positions from `first`.
std::vector<int64_t> positions(int64_t first, int64_t frames) {
  std::vector<int64_t> p;
  for (int64_t f = 0; f < frames; ++f) p.push_back(first + f);
  return p;
}

// Two blocks (GDN, softmax) of 2 heads × 112 for a StreamCache.
model::DitConfig cache_config() {
  model::DitConfig c;
  c.depth = 2;
  c.heads = 2;
  c.head_dim = 112;
  c.hidden = 224;
  c.softmax_layers = {1};
  return c;
}

model::DitShape tiny_shape(int64_t depth, double softmax_ratio) {
  model::DitShape s;
  s.depth = depth;
  s.hidden = 48;  // 2 heads × 24: RoPE t/h/w 8/8/8
  s.heads = 2;
  s.ffn_hidden = 32;
  s.latent_channels = 4;
  s.source_channels = 4;
  s.caption_channels = 16;
  s.caption_length = 4;
  s.softmax_ratio = softmax_ratio;
  return s;
}

struct TinyStream {
  std::unique_ptr<model::HybridDit> dit;
  model::CaptionState caption;
};

TinyStream tiny_stream(int64_t depth, double softmax_ratio, uint64_t seed, const std::string& device = "cpu") {
  const model::DitShape s = tiny_shape(depth, softmax_ratio);
  TinyStream t;
  t.dit = model::load_hybrid_dit(model::random_dit_weights(s, seed, at::kFloat), {{"num_heads", s.heads}},
                                 make_runtime(device, "fp32"));
  at::manual_seed(seed);
  at::Tensor mask = at::zeros({1, s.caption_length}, at::kLong);
  mask.narrow(1, 0, 3).fill_(1);
  t.caption = t.dit->encode_caption(at::randn({1, 1, s.caption_length, s.caption_channels}), mask);
  return t;
}

struct StreamRun {
  at::Tensor latents;                   // [1, Cl, T, H, W] fp32 on the model's device
  std::vector<int64_t> first_position;  // per chunk: the RoPE position of its first frame
};

// noise/src: [1, C, T, H, W]; chunks of `first`, then 3.
StreamRun run_stream(const TinyStream& t, const at::Tensor& noise, const at::Tensor& src, int first,
                     pipeline::StreamingOptions opt) {
  opt.first_chunk = first;
  const std::vector<int64_t> bounds = pipeline::chunk_boundaries(noise.size(2), first);
  pipeline::StreamingSampler sampler(*t.dit, t.caption, 1, noise.size(3), noise.size(4), first, 3, opt);
  StreamRun r;
  r.latents = at::empty(noise.sizes(), noise.options().device(t.dit->runtime().device));
  for (size_t c = 0; c + 1 < bounds.size(); ++c) {
    const int64_t b = bounds[c], n = bounds[c + 1] - b;
    r.latents.narrow(2, b, n).copy_(sampler.step(noise.narrow(2, b, n), src.narrow(2, b, n), c + 2 == bounds.size()));
    r.first_position.push_back(b - sampler.rope_shift());
  }
  return r;
}

int64_t rebases(const StreamRun& r) {
  int64_t n = 0;
  for (size_t c = 1; c < r.first_position.size(); ++c) n += r.first_position[c] < r.first_position[c - 1];
  return n;
}

}  // namespace

// A cached softmax key rotated by −Δ equals the key rotated at its position − Δ; the sink is untouched.
TEST(RebaseCache, SoftmaxKeysMatchKeysAtTheShiftedPosition) {
  for (at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    const int64_t B = 1, H = 2, D = 112, Hg = 2, Wg = 3, frames = 3, N = frames * Hg * Wg, delta = 693;
    model::StreamCache cache(cache_config(), B, Hg, Wg, frames, frames, dtype, at::kCPU);
    at::Tensor& k = cache.k[1];  // [B, H, capacity, D]
    k.narrow(2, 0, N).normal_();
    cache.commit_chunk(frames);  // the sink
    const at::Tensor sink = k.narrow(2, 0, N).clone();
    at::Tensor raw = at::randn({B, N, H, D}, dtype);
    auto rotated_at = [&](int64_t first) {  // [B, H, N, D]
      return ops::apply_rope(raw, ops::make_rope_table(kDims, positions(first, frames), Hg, Wg, 1024, at::kCPU))
          .transpose(1, 2);
    };
    k.narrow(2, cache.write_offset(), N).copy_(rotated_at(700));
    cache.commit_chunk(frames);  // now the previous chunk, at positions 700..702
    cache.rotate_keys(ops::make_temporal_shift(kDims, -delta, at::kCPU));
    EXPECT_LE(max_abs_diff(k.narrow(2, N, N), rotated_at(700 - delta)), 1e-6) << c10::toString(dtype);
    EXPECT_TRUE(at::equal(k.narrow(2, 0, N), sink));
  }
}

// A GDN state scanned from keys at p + Δ and rotated by −Δ equals the state scanned at p (k side);
// z holds unrotated keys and does not change.
TEST(RebaseCache, GdnStateKeySideMatchesStateAtTheShiftedPosition) {
  const int64_t B = 1, H = 2, D = 112, Hg = 2, Wg = 3, T = 3, S = Hg * Wg, N = T * S, delta = 501;
  at::manual_seed(3);
  auto to_scan = [&](const at::Tensor& t) { return t.reshape({B, T, S, H, D}).permute({0, 3, 1, 2, 4}).contiguous(); };
  const at::Tensor q = at::relu(at::randn({B, N, H, D})), k = at::relu(at::randn({B, N, H, D})) / std::sqrt(D * S);
  ops::GdnInputs in;
  in.q = to_scan(q);
  in.k = to_scan(k);
  in.v = to_scan(at::randn({B, N, H, D}));
  in.beta = at::sigmoid(at::randn({B, H, T, S}));
  in.decay = at::rand({B, H, T}) * 0.5 + 0.5;
  auto final_state_at = [&](int64_t first) {
    const ops::RopeTable table = ops::make_rope_table(kDims, positions(first, T), Hg, Wg, 1024, at::kCPU);
    ops::GdnInputs r = in;
    r.q_rot = to_scan(ops::apply_rope(q, table));
    r.k_rot = to_scan(ops::apply_rope(k, table));
    return ops::gdn_bidirectional(r, {}, 1e-8).final_state;
  };
  const ops::GdnState far = final_state_at(40 + delta), near = final_state_at(40);
  model::StreamCache cache(cache_config(), B, Hg, Wg, T, T, at::kFloat, at::kCPU);
  cache.gdn_in[0].kv.copy_(far.kv);
  cache.gdn_in[0].z.copy_(far.z);
  cache.rotate_keys(ops::make_temporal_shift(kDims, -delta, at::kCPU));
  EXPECT_GT(near.kv.abs().max().item<double>(), 1e-2);
  EXPECT_LE(max_abs_diff(cache.gdn_in[0].kv, near.kv), 1e-6);
  EXPECT_TRUE(at::equal(cache.gdn_in[0].z, far.z));
  EXPECT_LE(max_abs_diff(near.z, far.z), 1e-6);
}

// The pure position rule: no shift while the chunk fits, else the largest multiple of 3 that keeps
// the oldest non-sink frame at or after the sink; an Error naming the limit when nothing fits.
TEST(RebasePositions, LargestMultipleOfThreeKeepingTheSink) {
  using pipeline::rope_rebase_shift;
  // Fits (the chunk may end exactly at the limit).
  EXPECT_EQ(rope_rebase_shift(3, 3, 9, 3, 16), 0);
  EXPECT_EQ(rope_rebase_shift(4, 3, 13, 3, 16), 0);
  EXPECT_EQ(rope_rebase_shift(0, 0, 0, 5, 5), 0);  // the sink chunk: sink = previous = first = 0
  // First chunks of 3, 4 and 5 frames: the previous chunk moves right after the sink.
  EXPECT_EQ(rope_rebase_shift(3, 3, 15, 3, 16), 9);
  EXPECT_EQ(rope_rebase_shift(4, 3, 16, 3, 16), 9);
  EXPECT_EQ(rope_rebase_shift(5, 3, 14, 3, 16), 6);
  // The official table: the stream's chunk ending past 1024 goes back to just after the sink.
  EXPECT_EQ(rope_rebase_shift(3, 3, 1023, 3, 1024), 1017);
  EXPECT_EQ(rope_rebase_shift(5, 3, 1022, 3, 1024), 1014);
  // Oldest frame not a multiple of 3 past the sink: rounded down, the oldest stays ≥ the sink.
  EXPECT_EQ(rope_rebase_shift(3, 3, 14, 3, 16), 6);
  EXPECT_EQ(rope_rebase_shift(3, 2, 15, 2, 16), 9);
  // A shorter last chunk that fits needs no shift.
  EXPECT_EQ(rope_rebase_shift(3, 3, 12, 1, 13), 0);
  // Nothing to move: the chunk right after the sink, or the sink itself, past the limit.
  EXPECT_THROW(rope_rebase_shift(3, 0, 3, 3, 5), Error);
  EXPECT_THROW(rope_rebase_shift(0, 0, 0, 5, 4), Error);
  // A limit too small to ever hold [sink | previous | chunk] names the limit and what it needs.
  try {
    rope_rebase_shift(3, 3, 6, 3, 8);
    ADD_FAILURE() << "expected an Error";
  } catch (const Error& e) {
    const std::string m = e.message();
    EXPECT_NE(m.find("at least 9 positions, got 8"), std::string::npos) << m;
  }
  EXPECT_THROW(rope_rebase_shift(3, 3, 5, 3, 16), Error);  // a position inside the previous chunk's span
}

// Without softmax blocks every position moves together (GDN states rotated with them), so outputs
// equal those of a stream that never rebases.
TEST(RebaseStream, GdnOnlyModelGivesTheSameOutputs) {
  const TinyStream t = tiny_stream(3, 0.0, 11);
  ASSERT_TRUE(t.dit->config().softmax_layers.empty());
  at::manual_seed(12);
  const int64_t T = 40;
  const at::Tensor noise = at::randn({1, 4, T, 2, 3}), src = at::randn({1, 4, T, 2, 3});
  for (int first : {3, 4, 5}) {
    for (bool eff : {false, true}) {
      pipeline::StreamingOptions o;
      o.efficient_cache = eff;
      const StreamRun plain = run_stream(t, noise, src, first, o);
      o.rope_limit = 16;
      const StreamRun rebased = run_stream(t, noise, src, first, o);
      EXPECT_EQ(rebases(plain), 0);
      EXPECT_GE(rebases(rebased), 3) << "first " << first;
      EXPECT_LE(max_abs_diff(plain.latents, rebased.latents), 1e-5) << "first " << first << " eff " << eff;
    }
  }
}

// With softmax blocks (the sink keeps its positions) the stream stays finite and the chunks' first
// positions follow the rule; a limit too small fails with an Error naming it.
TEST(RebaseStream, SoftmaxModelFollowsThePositionRule) {
  const TinyStream t = tiny_stream(4, 0.25, 21);
  ASSERT_EQ(t.dit->config().softmax_layers, (std::vector<int64_t>{3}));
  at::manual_seed(22);
  const int64_t T = 32;
  const at::Tensor noise = at::randn({1, 4, T, 2, 2}), src = at::randn({1, 4, T, 2, 2});
  const std::map<int, std::vector<int64_t>> want = {
      {3, {0, 3, 6, 9, 12, 6, 9, 12, 6, 9, 12}},
      {4, {0, 4, 7, 10, 13, 7, 10, 13, 7, 10, 13}},
      {5, {0, 5, 8, 11, 8, 11, 8, 11, 8, 11}}};
  for (const auto& [first, positions] : want) {
    pipeline::StreamingOptions o;
    o.rope_limit = 16;
    const StreamRun r = run_stream(t, noise, src, first, o);
    EXPECT_TRUE(at::isfinite(r.latents).all().item<bool>()) << "first " << first;
    EXPECT_EQ(r.first_position, positions) << "first " << first;
  }
  pipeline::StreamingOptions o;
  o.rope_limit = 8;
  try {
    run_stream(t, noise, src, 3, o);
    ADD_FAILURE() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("got 8"), std::string::npos) << e.message();
  }
  o.rope_limit = 1025;
  EXPECT_THROW(run_stream(t, noise, src, 3, o), Error);
}

// 2,000 latent frames (past the official 1024-position table, one rebase) run to the end on the
// CPU with finite outputs and a flat resident set.
TEST(RebaseStream, TwoThousandFramesWithFlatMemory) {
  const TinyStream t = tiny_stream(2, 0.5, 31);
  ASSERT_EQ(t.dit->config().softmax_layers, (std::vector<int64_t>{1}));
  const int64_t T = 2000, first = 5;
  pipeline::StreamingOptions o;
  pipeline::StreamingSampler sampler(*t.dit, t.caption, 1, 2, 2, first, 3, o);
  const std::vector<int64_t> bounds = pipeline::chunk_boundaries(T, first);
  const size_t chunks = bounds.size() - 1;
  at::manual_seed(32);
  double rss_at_10 = 0, rss_last = 0;
  bool finite = true;
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t c = 0; c < chunks; ++c) {
    const int64_t n = bounds[c + 1] - bounds[c];
    const at::Tensor x = sampler.step(at::randn({1, 4, n, 2, 2}), at::randn({1, 4, n, 2, 2}), c + 1 == chunks);
    finite = finite && at::isfinite(x).all().item<bool>();
    if (c == 10) rss_at_10 = ops::current_rss_mib();
  }
  rss_last = ops::current_rss_mib();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "[ rebase   ] " << T << " latent frames, " << chunks << " chunks in " << seconds
            << " s; RSS at chunk 10 " << rss_at_10 << " MiB, at the end " << rss_last << " MiB; RoPE shift "
            << sampler.rope_shift() << "\n";
  EXPECT_TRUE(finite);
  EXPECT_EQ(sampler.frames_done(), T);
  EXPECT_EQ(sampler.rope_shift(), 1014);  // one rebase, at frame 1022: back to position 8 after [sink 5 | 3]
  EXPECT_LE(std::abs(rss_last - rss_at_10), 4.0);
}

// On CUDA (skipped elsewhere): the rebased stream through CUDA graphs (captured per chunk length ×
// cache offset, RoPE rows copied in at every replay) equals the eager calls and the CPU, and the
// GDN-only invariance holds on the device's GDN path.
TEST(RebaseStream, CudaGraphsAcrossRebasesMatchEagerAndCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  at::manual_seed(41);
  const int64_t T = 32;
  const at::Tensor noise = at::randn({1, 4, T, 2, 3}), src = at::randn({1, 4, T, 2, 3});
  pipeline::StreamingOptions o;
  o.rope_limit = 16;
  for (bool eff : {false, true}) {
    o.efficient_cache = eff;
    const TinyStream gpu = tiny_stream(4, 0.25, 42, "cuda"), cpu = tiny_stream(4, 0.25, 42);
    o.cuda_graphs = false;
    const StreamRun eager = run_stream(gpu, noise, src, 5, o);
    o.cuda_graphs = true;
    const StreamRun graphs = run_stream(gpu, noise, src, 5, o);
    const StreamRun host = run_stream(cpu, noise, src, 5, o);
    EXPECT_GE(rebases(graphs), 3);
    EXPECT_EQ(graphs.first_position, host.first_position);
    EXPECT_LE(max_abs_diff(graphs.latents, eager.latents), 1e-6) << "eff " << eff;
    EXPECT_LE(max_abs_diff(graphs.latents, host.latents), 1e-4) << "eff " << eff;
  }
  const TinyStream gdn = tiny_stream(3, 0.0, 43, "cuda");
  o.efficient_cache = false;
  const StreamRun rebased = run_stream(gdn, noise, src, 3, o);
  o.rope_limit = 0;
  const StreamRun plain = run_stream(gdn, noise, src, 3, o);
  EXPECT_LE(max_abs_diff(plain.latents, rebased.latents), 1e-5);
}
