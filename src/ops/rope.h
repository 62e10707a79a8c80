// 3-D rotary position embedding, Wan style (SPEC §2): the head dim splits into t/h/w parts
// (40/36/36 at D = 112), each rotating interleaved pairs by position · θ^(−2i/d). Angles come from
// float64 tables, as in the official code; the rotation itself runs in float64 as well.
#pragma once

#include <vector>

#include <ATen/ATen.h>

namespace sanastream::ops {

struct RopeTable {
  at::Tensor cos;  // [N, D/2] float64
  at::Tensor sin;  // [N, D/2] float64
};

struct RopeDims {
  int64_t t = 0, h = 0, w = 0;  // sum = D
  double theta = 10000.0;
};

// Angles for tokens in (t, h, w) raster order with frame positions `frames` (absolute latent
// indices) and h, w from 0. The official table has `table_rows` rows per axis: positions past it
// are an error.
RopeTable make_rope_table(const RopeDims& dims, const std::vector<int64_t>& frames, int64_t height, int64_t width,
                          int64_t table_rows, at::Device device);

// The temporal-only rotation by a frame offset (used to rebase cached keys): [D/2] angles for
// the t part (0 for h and w).
RopeTable make_temporal_shift(const RopeDims& dims, int64_t frame_delta, at::Device device);

// Rotates interleaved pairs of the last dim. x: [B, N, H, D] (or any [..., N, H, D] whose token
// dim is -3); table: [N, D/2]. Returns x's dtype.
at::Tensor apply_rope(const at::Tensor& x, const RopeTable& table);

}  // namespace sanastream::ops
