// Streaming caches of the hybrid DiT (SPEC §3), per block:
//  GDN blocks      — the forward scan's final state (fp32) seeds the next chunk's forward scan;
//  softmax blocks  — post-RoPE keys/values of the sink chunk and of the previous chunk;
//  every block     — the FFN's left temporal context: the previous chunk's last point-conv frame.
#pragma once

#include <vector>

#include <ATen/ATen.h>

#include "ops/gdn.h"

namespace sanastream::model {

// What a chunk's calls read (constant across the chunk's denoising steps).
struct BlockCacheView {
  ops::GdnState gdn;     // undefined in chunk 0
  at::Tensor k, v;       // [B, H, M, D] cached keys/values (sink + window), undefined in chunk 0
  at::Tensor ffn_ctx;    // [B, S, C] previous chunk's last point-conv frame, undefined in chunk 0
};

// What a cache-writing call produces for its own chunk.
struct BlockCacheEntry {
  ops::GdnState gdn;     // forward state after this chunk (GDN blocks)
  at::Tensor k, v;       // [B, H, n, D] this chunk's post-RoPE keys/values (softmax blocks)
  at::Tensor ffn_ctx;    // [B, S, C] this chunk's last point-conv frame
};

using CacheView = std::vector<BlockCacheView>;
using CacheEntries = std::vector<BlockCacheEntry>;

}  // namespace sanastream::model
