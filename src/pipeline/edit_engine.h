// The streaming edit on tensors, one chunk at a time (SPEC §1, §3): frames at the processing size →
// causal VAE encode (streamed, per-layer caches) → the DiT's streaming sampler (caches kept across
// chunks) → causal VAE decode (streamed) → edited frames. No I/O: `edit` and the session drive it.
//
// Chunks: the first takes 1 + 8·(first_chunk − 1) frames (first_chunk latent frames), every later one
// 24 (3 latent frames). The last may be shorter: it is padded by repeating its last frame to whole
// latent frames and its output trimmed, so every frame in gives one frame out.
// Noise comes from a CPU generator seeded once, drawn chunk by chunk, so a run is reproducible
// and its dump (the golden tensor names) feeds `latent-edit` for the same latents.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/hybrid_dit.h"
#include "model/ltx2_vae.h"
#include "ops/device.h"
#include "pipeline/samplers.h"

namespace sanastream::pipeline {

struct FrameSize {
  int64_t width = 0, height = 0;
  bool operator==(const FrameSize& o) const { return width == o.width && height == o.height; }
  std::string str() const;  // "1280x704"
};

// "WxH" → FrameSize; one clear error otherwise.
FrameSize parse_frame_size(const std::string& spec, const std::string& what);
// The resolution whose aspect ratio is closest to the source's (in log ratio; ties: the larger).
FrameSize closest_resolution(const FrameSize& source, const std::vector<FrameSize>& resolutions);
// Floors both sides to multiples of `multiple`; an Error (naming `what`) when a side becomes 0.
FrameSize floor_to_multiple(const FrameSize& size, int64_t multiple, const std::string& what);

// Frames scaled (bilinear) to cover `to` and centre-cropped to it.
//   to_model:  RGB24 [n, h, w, 3] (any device) → [1, 3, n, H, W] in [−1, 1], dtype on device.
//   to_rgb24:  [1, 3, n, H, W] in [−1, 1] → RGB24 [n, h, w, 3] on the same device.
at::Tensor rgb24_to_model(const at::Tensor& rgb, const FrameSize& to, at::ScalarType dtype, at::Device device);
at::Tensor model_to_rgb24(const at::Tensor& frames, const FrameSize& to);

struct EditEngineOptions {
  int steps = 4;
  int first_chunk = 3;           // latent frames of the first chunk (3, 4 or 5)
  bool efficient_cache = false;
  bool cuda_graphs = true;
  int64_t rope_limit = 0;        // temporal RoPE positions before rebasing (0: the model's table, 1024)
  uint64_t seed = 0;
  model::VaeTiling tiling;       // VAE spatial tiling (off: {})
  int64_t vae_call_latents = 0;  // latent frames a VAE call takes at most (0: a whole chunk): memory for speed
  bool dump = false;             // keep the golden-named tensors for --dump-latents
};

class EditEngine {
 public:
  // size: the processing size (multiples of the VAE's spatial ratio). The models outlive the engine.
  EditEngine(const model::HybridDit& dit, const model::Ltx2Vae& vae, const FrameSize& size,
             const EditEngineOptions& opt);
  ~EditEngine();

  // The caption of the chunks from the next process() on; embeds [1, 1, L, C] or [L, C], mask [1, L] or
  // [L]. The first call sets it; later ones (a prompt schedule) keep every cache.
  void set_prompt(const at::Tensor& embeds, const at::Tensor& mask);
  // Frames the next chunk takes (fewer only for the last); the chunk of index `index`.
  int64_t chunk_frames() const { return chunk_frames(encoded_); }
  int64_t chunk_frames(int64_t index) const;
  int64_t chunks_done() const { return chunks_; }
  // Milliseconds the last process() spent in the DiT (device events; waits for them to complete).
  double last_dit_ms() const;
  // frames: [1, 3, n, H, W] in [−1, 1] at the processing size, n = chunk_frames() (n < that only with
  // last). Returns the n edited frames, [1, 3, n, H, W] in [−1, 1], model dtype on the model's device.
  // After encode_ahead(), frames are the chunk's remaining ones and all its frames come back. With
  // `first_out` (live: the first frame sooner), the first chunk's first latent frame is decoded alone
  // and its frames handed to it before the rest are decoded; the rest come back.
  using FramesFn = std::function<void(const at::Tensor&)>;
  at::Tensor process(const at::Tensor& frames, bool last, const FramesFn& first_out = {});

  // process()'s three stages, for a caller that runs them concurrently (PipelinedEditEngine): each is
  // called in chunk order and from one thread at a time; the DiT and the VAE may be on different
  // devices (latents are moved between them).
  // frames as process() takes them → the chunk's normalised source latents, on the VAE's device.
  // After encode_ahead(), the chunk's remaining frames (at least one).
  at::Tensor encode(const at::Tensor& frames, bool last);
  // Encodes the chunk's next frames now, as they arrive (fewer than the chunk still takes; any number,
  // down to one: the causal encoder takes each layer as far as the frames allow), so that encode() of
  // the rest has only those left to do. The latents are the whole chunk's up to the convolutions'
  // rounding on other frame counts.
  void encode_ahead(const at::Tensor& frames);
  // Source latents → the edited latents, on the DiT's device (noise drawn, caches advanced).
  at::Tensor sample(const at::Tensor& src, bool last);
  // Edited latents → the chunk's first n frames, on the VAE's device.
  at::Tensor decode(const at::Tensor& latents, int64_t n);
  // The golden-named tensors of the chunks so far (EditEngineOptions::dump): inputs.noise,
  // inputs.src_latents, inputs.prompt_embeds, inputs.prompt_mask (the first prompt), output.latents.
  io::TensorMap dump() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
  int64_t encoded_ = 0, chunks_ = 0;  // chunks encoded, decoded
  std::unique_ptr<ops::DeviceClock> dit_clock_;  // marks around the last chunk's sampler step
};

// The bidirectional mode (SPEC §3): a whole clip at once. frames: [1, 3, n, H, W] in [−1, 1] at the
// processing size; padded by repeating the last frame to 1 + 8k, encoded (causal encoder, the
// clip's latents), denoised by DPM-Solver++(2M) with CFG against the negative prompt, decoded with
// `decoder`, trimmed to n. Noise from a CPU generator seeded with `seed`.
struct WholeClipOptions {
  DpmOptions dpm;
  model::VaeDecoderKind decoder = model::VaeDecoderKind::kCausal;
  model::VaeTiling tiling;
  uint64_t seed = 0;
};
at::Tensor edit_whole_clip(const model::HybridDit& dit, const model::Ltx2Vae& vae, const at::Tensor& frames,
                           const at::Tensor& embeds, const at::Tensor& mask, const at::Tensor& neg_embeds,
                           const at::Tensor& neg_mask, const WholeClipOptions& opt);

}  // namespace sanastream::pipeline
