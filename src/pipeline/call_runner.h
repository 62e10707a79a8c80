// Runs the DiT's streaming calls: eagerly, or — on CUDA — by replaying one CUDA graph per call
// shape (chunk length × cache offset), captured the first time the shape occurs. Inputs are
// copied into the graph's static buffers; the caches are written in place either way.
#pragma once

#include <map>
#include <memory>
#include <utility>

#include "model/hybrid_dit.h"

namespace sanastream::pipeline {

class DitCallRunner {
 public:
  DitCallRunner(const model::HybridDit& dit, const model::CaptionState& caption, bool cuda_graphs);
  ~DitCallRunner();

  // x: [B, Cl, T, H, W] fp32; src: [B, Cs, T, H, W]; ts: the timestep's precomputed conditioning;
  // rope: the chunk's rows. Returns the velocity (fp32), valid until the next run(). A call with an
  // active capture, or with `graph` false (a shape that will not recur: capturing it would cost a
  // warm-up call and the capture for nothing), runs eagerly.
  at::Tensor run(const at::Tensor& x, const at::Tensor& src, const model::TimestepState& ts, const ops::RopeTable& rope,
                 model::StreamCache* cache, const model::Capture& capture = {}, bool graph = true);
  // Forgets the captured graphs (the caption they read was replaced); later calls capture anew.
  void drop_graphs();

 private:
  struct Graph;
  at::Tensor eager(const at::Tensor& x, const at::Tensor& src, const model::TimestepState& ts,
                   const ops::RopeTable& rope, model::StreamCache* cache, const model::Capture& capture) const;
#ifdef SANASTREAM_HAS_CUDA
  at::Tensor replay(const at::Tensor& x, const at::Tensor& src, const model::TimestepState& ts,
                    const ops::RopeTable& rope, model::StreamCache* cache);
#endif

  const model::HybridDit& dit_;
  const model::CaptionState& caption_;
  bool graphs_on_;
  std::map<std::pair<int64_t, int64_t>, std::unique_ptr<Graph>> graphs_;
};

}  // namespace sanastream::pipeline
