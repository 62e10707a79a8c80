// Streaming caches of the hybrid DiT (SPEC §3), preallocated once per stream and written in place:
//  GDN blocks      — the forward scan's state (fp32): `gdn_in` seeds a chunk's forward scan, every
//                    call leaves its final state in `gdn_out`;
//  softmax blocks  — post-RoPE keys/values in one buffer per block laid out
//                    [sink chunk | previous chunk | current chunk]; a call writes its own keys at
//                    `write_offset` and attends over [0, write_offset + N);
//  every block     — the FFN's left temporal context (`ffn_in`: the previous chunk's last point-conv
//                    frames) and this call's last frames (`ffn_out`).
// The sampler commits a chunk after its cache-writing call (commit_chunk), which is where the
// official code swaps cache lists.
#pragma once

#include <vector>

#include <ATen/ATen.h>

#include "model/dit_config.h"
#include "ops/gdn.h"
#include "ops/rope.h"

namespace sanastream::model {

class StreamCache {
 public:
  // batch B, latent grid H × W (cfg.patch divides both); sink_frames: the first chunk's frames; max_frames: the largest later chunk.
  StreamCache(const DitConfig& cfg, int64_t batch, int64_t height, int64_t width, int64_t sink_frames,
              int64_t max_frames, at::ScalarType dtype, at::Device device);

  // Per block (entries of the other block type are undefined).
  std::vector<ops::GdnState> gdn_in, gdn_out;  // [B, H, D, D], [B, H, D, 1] fp32
  std::vector<at::Tensor> ffn_in, ffn_out;     // [B, P, S, C] model dtype
  std::vector<at::Tensor> k, v;                // [B, H, capacity, D] model dtype

  int64_t tokens_per_frame() const { return S_; }
  int64_t cached_tokens() const { return cached_; }      // valid context before the current chunk
  int64_t write_offset() const { return cached_; }       // where the current chunk's keys go
  int64_t sink_tokens() const { return sink_; }
  int64_t chunks_committed() const { return chunks_; }

  // Makes the last call's outputs the context of the next chunk: GDN state and FFN frames move to
  // the inputs; the chunk's keys/values become the sink (chunk 0) or the previous chunk.
  void commit_chunk(int64_t chunk_frames);

  // RoPE rebasing between chunks (SPEC §3 "Positions"): rotates every cached key that follows the
  // sink by `shift` (make_temporal_shift, one row) — the softmax keys of the previous chunk and the
  // k side of the GDN forward states (gdn_in.kv, rows over k); z holds unrotated keys and the sink's
  // softmax keys keep their positions. In the table's precision (float64), rounded back in place.
  void rotate_keys(const ops::RopeTable& shift);

 private:
  int64_t S_, sink_ = 0, cached_ = 0, chunks_ = 0;
};

}  // namespace sanastream::model
