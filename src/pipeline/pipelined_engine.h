// The streaming edit split across devices (docs/MULTI_GPU.md, `--gpus 2`): the VAE on one GPU, the DiT
// on another, EditEngine's three stages in their own threads joined by bounded queues — the VAE's GPU
// encodes chunk k+1 and decodes chunk k−1 while the DiT's samples chunk k — so a chunk costs the
// slowest stage's time instead of the sum. The arithmetic is EditEngine's (the same chunks, noise,
// caches, devices' kernels), so the frames are the one-device engine's bit for bit when each model
// runs on the same kind of device.
// On a GPU each stage queues its work on a stream of its own, and a chunk carries an event of the
// stream that produced it: the next stage waits for exactly that work (not for everything queued
// on the device's default stream, such as the other VAE stage's chunk), and the two VAE stages
// may overlap on their GPU.
#pragma once

#include <c10/core/Event.h>

#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "core/bounded_queue.h"
#include "pipeline/edit_engine.h"

namespace sanastream::pipeline {

class PipelinedEditEngine {
 public:
  // dit and vae on their own runtimes (devices); size, opt as EditEngine's. The models outlive it.
  PipelinedEditEngine(const model::HybridDit& dit, const model::Ltx2Vae& vae, const FrameSize& size,
                      const EditEngineOptions& opt);
  // Stops the stages (what is queued is dropped) and joins them.
  ~PipelinedEditEngine();
  PipelinedEditEngine(const PipelinedEditEngine&) = delete;
  PipelinedEditEngine& operator=(const PipelinedEditEngine&) = delete;

  // The caption of the chunks pushed from now on (as EditEngine::set_prompt; the first before the
  // first push).
  void set_prompt(const at::Tensor& embeds, const at::Tensor& mask);
  // Frames the next push takes (fewer only for the last).
  int64_t chunk_frames() const;
  // Queues a chunk: frames [1, 3, n, H, W] in [−1, 1] at the processing size (any device). Blocks
  // while the stages are full; a stage's error is rethrown here or by pop().
  void push(const at::Tensor& frames, bool last);
  // The next edited chunk in order, [1, 3, n, H, W] on the VAE's device; nothing after the last.
  std::optional<at::Tensor> pop();
  // After the last chunk was popped: EditEngine's.
  int64_t chunks_done() const { return engine_.chunks_done(); }
  io::TensorMap dump() const { return engine_.dump(); }

 private:
  struct Chunk {
    at::Tensor tensor;  // frames, then source latents, then edited latents, then frames
    int64_t frames = 0;
    bool last = false;
    at::Tensor embeds, mask;  // a caption taking effect at this chunk
    std::shared_ptr<c10::Event> ready;  // GPU tensors: recorded after the work that made `tensor`
  };
  // GPU tensors: an event recorded on the calling thread's current stream of the tensor's device.
  static std::shared_ptr<c10::Event> record_ready(const at::Tensor& t);
  // Makes the calling thread's current stream of c.tensor's device wait for c.ready, and tells the
  // allocator the tensor is used there.
  static void await_ready(Chunk& c);
  void run_stage(BoundedQueue<Chunk>& in, BoundedQueue<Chunk>* out, at::Device device,
                 at::Tensor (PipelinedEditEngine::*stage)(Chunk&));
  at::Tensor encode(Chunk& c);
  at::Tensor sample(Chunk& c);
  at::Tensor decode(Chunk& c);
  void fail(std::exception_ptr e);
  void rethrow();

  EditEngine engine_;
  at::Device dit_device_, vae_device_;
  int64_t pushed_ = 0;
  bool ended_ = false;
  at::Tensor embeds_, mask_;  // set_prompt's, until the next push carries it
  BoundedQueue<Chunk> frames_{1}, sources_{1}, latents_{1}, done_{2};
  std::mutex error_mu_;
  std::exception_ptr error_;
  std::thread encoder_, sampler_, decoder_;
};

}  // namespace sanastream::pipeline
