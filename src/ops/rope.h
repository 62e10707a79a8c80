// 3-D rotary position embedding, Wan style (SPEC §2): the head dim splits into t/h/w parts
// (40/36/36 at D = 112), each rotating interleaved pairs by position · θ^(−2i/d). Angles come from
// float64 tables, as in the official code; the rotation itself runs in float64 as well.
#pragma once

#include <vector>

#include <ATen/ATen.h>

namespace sanastream::ops {

struct RopeTable {
  at::Tensor cos;  // [N, D/2] float64 (exact, as the official code) or float32 (bf16 compute)
  at::Tensor sin;  // [N, D/2]
};

struct RopeDims {
  int64_t t = 0, h = 0, w = 0;  // sum = D
  double theta = 10000.0;
};

// The official table's per-axis cos/sin (`rows` positions per axis, angles in float64), held on a
// device at a precision (float64, or float32 for the bf16 path). table() assembles the rows of a
// call with device ops only, so it runs inside CUDA graphs.
class RopeCache {
 public:
  RopeCache(const RopeDims& dims, int64_t rows, at::Device device, at::ScalarType precision);
  // Tokens in (t, h, w) raster order for frames [first_frame, first_frame + frames), h and w from 0.
  RopeTable table(int64_t first_frame, int64_t frames, int64_t height, int64_t width) const;
  int64_t rows() const { return rows_; }
  const RopeDims& dims() const { return dims_; }

 private:
  RopeDims dims_;
  int64_t rows_;
  at::Tensor cos_[3], sin_[3];  // per axis t, h, w: [rows, part/2]
};

// Angles for tokens with explicit frame positions (absolute latent indices), h and w from 0, on the
// CPU in float64: the reference form of RopeCache::table(). Positions past `table_rows` are an error.
RopeTable make_rope_table(const RopeDims& dims, const std::vector<int64_t>& frames, int64_t height, int64_t width,
                          int64_t table_rows, at::Device device);

// The temporal-only rotation by a frame offset (used to rebase cached keys): [D/2] angles for
// the t part (0 for h and w).
RopeTable make_temporal_shift(const RopeDims& dims, int64_t frame_delta, at::Device device);

// Rotates interleaved pairs of the last dim in the table's precision. x: [B, N, H, D] (or any
// [..., N, H, D] whose token dim is -3); table: [N, D/2]. Returns x's dtype.
at::Tensor apply_rope(const at::Tensor& x, const RopeTable& table);

}  // namespace sanastream::ops
