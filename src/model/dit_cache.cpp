#include "model/dit_cache.h"

#include "core/error.h"

namespace sanastream::model {

StreamCache::StreamCache(const DitConfig& cfg, int64_t batch, int64_t height, int64_t width, int64_t sink_frames,
                         int64_t max_frames, at::ScalarType dtype, at::Device device)
    : S_(cfg.tokens_along(height, "height") * cfg.tokens_along(width, "width")) {
  const int64_t B = batch, H = cfg.heads, D = cfg.head_dim, C = cfg.hidden, P = (cfg.t_kernel - 1) / 2;
  const int64_t capacity = (sink_frames + 2 * max_frames) * S_;
  const auto opts = at::TensorOptions().dtype(dtype).device(device);
  const auto f32 = opts.dtype(at::kFloat);
  for (int64_t b = 0; b < cfg.depth; ++b) {
    ffn_in.push_back(at::zeros({B, P, S_, C}, opts));
    ffn_out.push_back(at::zeros({B, P, S_, C}, opts));
    if (cfg.is_softmax(b)) {
      gdn_in.emplace_back();
      gdn_out.emplace_back();
      k.push_back(at::zeros({B, H, capacity, D}, opts));
      v.push_back(at::zeros({B, H, capacity, D}, opts));
    } else {
      gdn_in.push_back({at::zeros({B, H, D, D}, f32), at::zeros({B, H, D, 1}, f32)});
      gdn_out.push_back({at::zeros({B, H, D, D}, f32), at::zeros({B, H, D, 1}, f32)});
      k.emplace_back();
      v.emplace_back();
    }
  }
}

void StreamCache::commit_chunk(int64_t chunk_frames) {
  const int64_t n = chunk_frames * S_;
  for (size_t b = 0; b < ffn_in.size(); ++b) {
    ffn_in[b].copy_(ffn_out[b]);
    if (gdn_in[b].defined()) {
      gdn_in[b].kv.copy_(gdn_out[b].kv);
      gdn_in[b].z.copy_(gdn_out[b].z);
    }
  }
  if (chunks_ == 0) {
    sink_ = n;  // the first chunk stays as the sink
  } else if (cached_ != sink_) {
    // This chunk's keys become the previous chunk: [sink | this chunk], the old previous evicted.
    for (size_t b = 0; b < k.size(); ++b) {
      if (!k[b].defined()) continue;
      SS_CHECK(sink_ + n <= cached_, "stream cache: chunk of {} tokens overlaps its own slot", n);
      k[b].narrow(2, sink_, n).copy_(k[b].narrow(2, cached_, n));
      v[b].narrow(2, sink_, n).copy_(v[b].narrow(2, cached_, n));
    }
  }
  cached_ = chunks_ == 0 ? n : sink_ + n;
  ++chunks_;
}

void StreamCache::rotate_keys(const ops::RopeTable& shift) {
  SS_CHECK(shift.cos.size(0) == 1, "stream cache: expected a one-row temporal shift, got {} rows", shift.cos.size(0));
  const int64_t n = cached_ - sink_;  // the previous chunk's tokens
  for (size_t b = 0; b < k.size(); ++b) {
    if (k[b].defined() && n > 0) {
      at::Tensor previous = k[b].narrow(2, sink_, n);  // [B, H, n, D]
      previous.copy_(ops::apply_rope(previous, shift));
    }
    // M_f = g·M_{f−1}·(I − K̂BK̂ᵀ) + VBK̂ᵀ: rotating every K̂ by R turns M into M·Rᵀ (each row rotated).
    if (gdn_in[b].defined()) gdn_in[b].kv.copy_(ops::apply_rope(gdn_in[b].kv, shift));  // [B, H, D, D]
  }
}

}  // namespace sanastream::model
