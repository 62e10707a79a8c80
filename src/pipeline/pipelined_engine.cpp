#include "pipeline/pipelined_engine.h"

#include <c10/core/DeviceGuard.h>

#include "core/error.h"

namespace sanastream::pipeline {

PipelinedEditEngine::PipelinedEditEngine(const model::HybridDit& dit, const model::Ltx2Vae& vae,
                                         const FrameSize& size, const EditEngineOptions& opt)
    : engine_(dit, vae, size, opt), dit_device_(dit.runtime().device), vae_device_(vae.runtime().device) {
  encoder_ = std::thread([this] { run_stage(frames_, &sources_, vae_device_, &PipelinedEditEngine::encode); });
  sampler_ = std::thread([this] { run_stage(sources_, &latents_, dit_device_, &PipelinedEditEngine::sample); });
  decoder_ = std::thread([this] { run_stage(latents_, &done_, vae_device_, &PipelinedEditEngine::decode); });
}

PipelinedEditEngine::~PipelinedEditEngine() {
  for (BoundedQueue<Chunk>* q : {&frames_, &sources_, &latents_, &done_}) q->close();
  for (std::thread* t : {&encoder_, &sampler_, &decoder_})
    if (t->joinable()) t->join();
}

void PipelinedEditEngine::run_stage(BoundedQueue<Chunk>& in, BoundedQueue<Chunk>* out, at::Device device,
                                    at::Tensor (PipelinedEditEngine::*stage)(Chunk&)) {
  try {
    c10::OptionalDeviceGuard guard;
    if (!device.is_cpu()) guard.reset_device(device);
    while (std::optional<Chunk> c = in.pop()) {
      c->tensor = (this->*stage)(*c);
      const bool last = c->last;
      if (!out->push(std::move(*c)) || last) break;
    }
  } catch (...) {
    fail(std::current_exception());
  }
  out->close();
}

at::Tensor PipelinedEditEngine::encode(Chunk& c) { return engine_.encode(c.tensor.to(vae_device_), c.last); }

at::Tensor PipelinedEditEngine::sample(Chunk& c) {
  if (c.embeds.defined()) engine_.set_prompt(c.embeds, c.mask);
  return engine_.sample(c.tensor, c.last);
}

at::Tensor PipelinedEditEngine::decode(Chunk& c) { return engine_.decode(c.tensor, c.frames); }

void PipelinedEditEngine::fail(std::exception_ptr e) {
  {
    std::lock_guard<std::mutex> lock(error_mu_);
    if (!error_) error_ = e;
  }
  for (BoundedQueue<Chunk>* q : {&frames_, &sources_, &latents_, &done_}) q->close();
}

void PipelinedEditEngine::rethrow() {
  std::lock_guard<std::mutex> lock(error_mu_);
  if (error_) std::rethrow_exception(error_);
}

void PipelinedEditEngine::set_prompt(const at::Tensor& embeds, const at::Tensor& mask) {
  embeds_ = embeds;
  mask_ = mask;
}

int64_t PipelinedEditEngine::chunk_frames() const { return engine_.chunk_frames(pushed_); }

void PipelinedEditEngine::push(const at::Tensor& frames, bool last) {
  SS_CHECK(!ended_, "edit: a chunk pushed after the last");
  SS_CHECK(pushed_ > 0 || embeds_.defined(), "edit: no prompt set before the first chunk");
  Chunk c{frames, frames.size(2), last, embeds_, mask_};
  embeds_ = mask_ = at::Tensor();
  ++pushed_;
  ended_ = last;
  if (!frames_.push(std::move(c))) rethrow();
  if (last) frames_.close();
}

std::optional<at::Tensor> PipelinedEditEngine::pop() {
  std::optional<Chunk> c = done_.pop();
  if (!c) {
    rethrow();
    return std::nullopt;
  }
  return std::move(c->tensor);
}

}  // namespace sanastream::pipeline
