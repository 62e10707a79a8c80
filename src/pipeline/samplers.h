// The two samplers of SPEC §3: the streaming chunked Euler sampler with sink + window caches, and
// the bidirectional DPM-Solver++(2M) with CFG. Both record, on request, every model call and the
// caches under the golden names so `latent-edit --dump` and `golden-check` can compare them.
#pragma once

#include <functional>
#include <memory>
#include <set>
#include <vector>

#include "io/safetensors.h"
#include "model/hybrid_dit.h"

namespace sanastream::pipeline {

// Chunk boundaries in latent frames. first_chunk = 0: the official rule for a clip of known length
// (3 + T mod 3, then 3; one chunk when T ≤ 3); else first_chunk frames (3, 4 or 5), then 3, and a
// shorter last chunk if T does not fill it.
std::vector<int64_t> chunk_boundaries(int64_t frames, int first_chunk);
// The longest chunk after the first of those boundaries, in latent frames (0 for a single chunk): with
// the first chunk's frames, what a StreamCache must hold.
int64_t longest_later_chunk(const std::vector<int64_t>& bounds);

// What to record while sampling (names as in the golden sets).
struct DumpSpec {
  io::TensorMap* out = nullptr;       // null: record nothing
  std::set<int> activation_calls;     // calls whose internals are captured as call{NN}.<name>
  std::string prefix;                 // prepended to every name (e.g. "effcache.", "dpm.")
  bool caches = true;                 // cache_after_chunk{K}.* and cache_view_chunk{K}.*
};

// RoPE rebasing (SPEC §3 "Positions"): the frames by which every non-sink position moves down before
// a chunk of `chunk` latent frames starting at position `first` — 0 when the chunk ends within
// `limit` positions, else the largest multiple of 3 that keeps the oldest non-sink frame (the cached
// previous chunk of `previous` frames at [first − previous, first), or the chunk itself when
// previous = 0) at a position ≥ `sink`, the sink's frames (for the sink chunk itself sink = previous =
// first = 0). An Error naming the limit when the chunk still ends past it.
int64_t rope_rebase_shift(int64_t sink, int64_t previous, int64_t first, int64_t chunk, int64_t limit);

struct StreamingOptions {
  int steps = 4;
  int first_chunk = 0;
  bool efficient_cache = false;
  bool cuda_graphs = true;  // replay each chunk shape's calls as a CUDA graph (CUDA, no activation dump)
  // Temporal RoPE positions the stream may use (0: the model's table, 1024 for the official
  // configuration; at most that). A chunk that would end past it rebases the non-sink positions.
  int64_t rope_limit = 0;
};

// Called after each chunk with its index and latent-frame boundaries [begin, end) (benchmarks,
// progress reporting).
using ChunkCallback = std::function<void(int64_t chunk, int64_t begin, int64_t end)>;

// The streaming sampler one chunk at a time, for inputs whose length is not known in advance (a live
// stream). Each step() denoises the next chunk with `steps` Euler calls against the caches. The t = 0
// pass that writes a chunk's caches (not with efficient_cache) is deferred to the start of the next
// step(), so a chunk's latents are out after its denoising calls and a chunk known to be the last
// costs no cache pass; the result is the same as running the pass right away.
class StreamingSampler {
 public:
  // batch × height × width latent grid; first_chunk: the frames of the first step() (the sink);
  // later_chunk: the most frames of any later step(). The caption is copied (set_caption replaces it).
  StreamingSampler(const model::HybridDit& dit, const model::CaptionState& caption, int64_t batch, int64_t height,
                   int64_t width, int64_t first_chunk, int64_t later_chunk, const StreamingOptions& opt,
                   const DumpSpec& dump = {});
  ~StreamingSampler();
  StreamingSampler(const StreamingSampler&) = delete;
  StreamingSampler& operator=(const StreamingSampler&) = delete;

  // Conditions the chunks from the next step() on with another caption of the same batch (a prompt
  // schedule); the caches are kept. One with another number of keys (a much longer or shorter
  // prompt) drops the captured CUDA graphs: the next calls capture theirs again.
  void set_caption(const model::CaptionState& caption);
  // noise: [B, Cl, n, H, W] fp32; src: [B, Cs, n, H, W] — the next n latent frames. `last`: no more
  // chunks follow (their caches are not written). Returns the chunk's latents, fp32 on the model's
  // device (rounded to the model dtype after every Euler step, as the official scheduler does).
  at::Tensor step(const at::Tensor& noise, const at::Tensor& src, bool last = false);

  int64_t chunks_done() const { return chunks_; }
  int64_t frames_done() const { return frames_; }
  // Latent frames the non-sink RoPE positions have moved down so far (rope_rebase_shift): the last
  // chunk's first position was its first frame's index minus this.
  int64_t rope_shift() const { return rope_shift_; }

 private:
  struct State;
  std::unique_ptr<State> s_;
  int64_t chunks_ = 0, frames_ = 0, rope_shift_ = 0;
};

// noise: [B, Cl, T, H, W] fp32; src: [B, Cs, T, H, W]. Returns the final latents (fp32; rounded to
// the model dtype after every Euler step, as the official scheduler does).
at::Tensor sample_streaming(const model::HybridDit& dit, const at::Tensor& noise, const at::Tensor& src,
                            const model::CaptionState& caption, const StreamingOptions& opt, const DumpSpec& dump = {},
                            const ChunkCallback& on_chunk = {});

struct DpmOptions {
  int steps = 50;
  double cfg = 6.0;
  double flow_shift = 8.0;
};

// cond/uncond: caption states of batch 1 (uncond may be null when cfg == 1). Returns fp32 latents.
at::Tensor sample_dpm(const model::HybridDit& dit, const at::Tensor& noise, const at::Tensor& src,
                      const model::CaptionState& cond, const model::CaptionState* uncond, const DpmOptions& opt,
                      const DumpSpec& dump = {});

// Concatenates two caption states along the batch ([uncond, cond]).
model::CaptionState concat_captions(const model::CaptionState& a, const model::CaptionState& b);

}  // namespace sanastream::pipeline
