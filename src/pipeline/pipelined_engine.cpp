#include "pipeline/pipelined_engine.h"

#include <c10/core/DeviceGuard.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>

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

std::shared_ptr<c10::Event> PipelinedEditEngine::record_ready(const at::Tensor& t) {
  if (t.device().is_cpu()) return nullptr;
  auto ev = std::make_shared<c10::Event>(t.device().type());
  ev->record(c10::impl::VirtualGuardImpl(t.device().type()).getStream(t.device()));
  return ev;
}

void PipelinedEditEngine::await_ready(Chunk& c) {
  if (!c.ready) return;
  const c10::Stream here = c10::impl::VirtualGuardImpl(c.tensor.device().type()).getStream(c.tensor.device());
  c.ready->block(here);
  c.tensor.record_stream(here);
  c.ready.reset();
}

void PipelinedEditEngine::run_stage(BoundedQueue<Chunk>& in, BoundedQueue<Chunk>* out, at::Device device,
                                    at::Tensor (PipelinedEditEngine::*stage)(Chunk&)) {
  try {
    // The stage's device, and on a GPU a stream of its own.
    c10::OptionalDeviceGuard guard;
    std::optional<c10::StreamGuard> stream;
    if (!device.is_cpu()) {
      guard.reset_device(device);
      stream.emplace(c10::impl::VirtualGuardImpl(device.type()).getStreamFromGlobalPool(device));
    }
    while (std::optional<Chunk> c = in.pop()) {
      await_ready(*c);
      c->tensor = (this->*stage)(*c);
      c->ready = record_ready(c->tensor);
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
  Chunk c{frames, frames.size(2), last, embeds_, mask_, record_ready(frames)};
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
  await_ready(*c);
  return std::move(c->tensor);
}

}  // namespace sanastream::pipeline
