#include "pipeline/call_runner.h"

#ifdef SANASTREAM_HAS_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace sanastream::pipeline {

#ifdef SANASTREAM_HAS_CUDA
struct DitCallRunner::Graph {
  at::cuda::CUDAGraph graph;
  at::Tensor x, src, temb, t0, block_mod, final_mod, cos, sin;  // static inputs
  at::Tensor v;                    // static output
};
#else
struct DitCallRunner::Graph {};
#endif

DitCallRunner::DitCallRunner(const model::HybridDit& dit, const model::CaptionState& caption, bool cuda_graphs)
    : dit_(dit), caption_(caption), graphs_on_(cuda_graphs && dit.runtime().is_cuda()) {
#ifndef SANASTREAM_HAS_CUDA
  graphs_on_ = false;
#endif
}

DitCallRunner::~DitCallRunner() = default;

void DitCallRunner::drop_graphs() { graphs_.clear(); }

at::Tensor DitCallRunner::eager(const at::Tensor& x, const at::Tensor& src, const model::TimestepState& ts,
                                const ops::RopeTable& rope, model::StreamCache* cache,
                                const model::Capture& capture) const {
  model::DitCallOptions o;
  o.timestep = &ts;
  o.rope = &rope;
  o.cache = cache;
  o.capture = capture;
  return dit_.forward(x, src, at::Tensor(), caption_, o);
}

at::Tensor DitCallRunner::run(const at::Tensor& x, const at::Tensor& src, const model::TimestepState& ts,
                              const ops::RopeTable& rope, model::StreamCache* cache, const model::Capture& capture,
                              bool graph) {
#ifdef SANASTREAM_HAS_CUDA
  if (graphs_on_ && graph && !capture.on()) return replay(x, src, ts, rope, cache);
#else
  (void)graph;
#endif
  return eager(x, src, ts, rope, cache, capture);
}

#ifdef SANASTREAM_HAS_CUDA
at::Tensor DitCallRunner::replay(const at::Tensor& x, const at::Tensor& src, const model::TimestepState& ts,
                                 const ops::RopeTable& rope, model::StreamCache* cache) {
  const std::pair<int64_t, int64_t> key{x.size(2), cache ? cache->write_offset() : -1};
  auto it = graphs_.find(key);
  if (it == graphs_.end()) {
    // First call of this shape: run it eagerly, then warm up on a side stream and capture there.
    at::Tensor v = eager(x, src, ts, rope, cache, {}).clone();
    auto g = std::make_unique<Graph>();
    g->x = x.clone();
    g->src = src.clone();
    g->temb = ts.t.clone();
    g->t0 = ts.t0.clone();
    g->block_mod = ts.block_mod.clone();
    g->final_mod = ts.final_mod.clone();
    g->cos = rope.cos.clone();
    g->sin = rope.sin.clone();
    const ops::RopeTable static_rope{g->cos, g->sin};
    const model::TimestepState static_ts{g->temb, g->t0, g->block_mod, g->final_mod};
    auto main = c10::cuda::getCurrentCUDAStream();
    auto side = c10::cuda::getStreamFromPool();
    at::cuda::CUDAEvent ready;
    ready.record(main);
    ready.block(side);
    {
      c10::cuda::CUDAStreamGuard guard(side);
      eager(g->x, g->src, static_ts, static_rope, cache, {});  // warm-up: same inputs, same cache writes
      // Thread-local capture: other threads (the VAE stages of a pipelined engine, other streams'
      // sessions) may allocate meanwhile.
      g->graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
      g->v = eager(g->x, g->src, static_ts, static_rope, cache, {});
      g->graph.capture_end();
    }
    at::cuda::CUDAEvent done;
    done.record(side);
    done.block(main);
    graphs_.emplace(key, std::move(g));
    return v;
  }
  Graph& g = *it->second;
  g.x.copy_(x);
  g.src.copy_(src);
  g.temb.copy_(ts.t);
  g.t0.copy_(ts.t0);
  g.block_mod.copy_(ts.block_mod);
  g.final_mod.copy_(ts.final_mod);
  g.cos.copy_(rope.cos);
  g.sin.copy_(rope.sin);
  g.graph.replay();
  return g.v;
}
#endif

}  // namespace sanastream::pipeline
