#include "ops/rope.h"

#include "core/error.h"
#include "ops/ref/ref.h"
#ifdef SANASTREAM_HAS_CUDA
#include "ops/cuda_dispatch.h"
#endif

namespace sanastream::ops {

namespace {
// Inverse frequencies of one axis part of width `dim`: θ^(−(0, 2, 4, …)/dim), float64.
at::Tensor inv_freq(int64_t dim, double theta) {
  at::Tensor i = at::arange(0, dim, 2, at::kDouble);
  return at::pow(theta, i / static_cast<double>(dim)).reciprocal();
}
}  // namespace

RopeCache::RopeCache(const RopeDims& d, int64_t rows, at::Device device, at::ScalarType precision)
    : dims_(d), rows_(rows) {
  const int64_t parts[3] = {d.t, d.h, d.w};
  at::Tensor pos = at::arange(rows, at::kDouble);
  for (int a = 0; a < 3; ++a) {
    at::Tensor angles = at::outer(pos, inv_freq(parts[a], d.theta));  // [rows, part/2] float64
    cos_[a] = angles.cos().to(device, precision);
    sin_[a] = angles.sin().to(device, precision);
  }
}

RopeTable RopeCache::table(int64_t first_frame, int64_t frames, int64_t height, int64_t width) const {
  SS_CHECK(first_frame >= 0 && first_frame + frames <= rows_,
           "RoPE: frames [{}, {}) outside the table of {} positions", first_frame, first_frame + frames, rows_);
  SS_CHECK(height <= rows_ && width <= rows_, "RoPE: grid {}x{} exceeds the table of {} positions", height, width,
           rows_);
  const int64_t T = frames, H = height, W = width;
  auto assemble = [&](const at::Tensor* axis) {
    at::Tensor f = axis[0].narrow(0, first_frame, T), h = axis[1].narrow(0, 0, H), w = axis[2].narrow(0, 0, W);
    return at::cat({f.view({T, 1, 1, -1}).expand({T, H, W, f.size(1)}),
                    h.view({1, H, 1, -1}).expand({T, H, W, h.size(1)}),
                    w.view({1, 1, W, -1}).expand({T, H, W, w.size(1)})},
                   -1)
        .reshape({T * H * W, -1});
  };
  return {assemble(cos_), assemble(sin_)};
}

RopeTable make_rope_table(const RopeDims& d, const std::vector<int64_t>& frames, int64_t height, int64_t width,
                          int64_t table_rows, at::Device device) {
  SS_CHECK(!frames.empty() && height > 0 && width > 0, "RoPE: empty grid");
  for (int64_t f : frames)
    SS_CHECK(f >= 0 && f < table_rows, "RoPE: frame position {} outside the table of {} positions", f, table_rows);
  SS_CHECK(height <= table_rows && width <= table_rows, "RoPE: grid {}x{} exceeds the table of {} positions", height,
           width, table_rows);
  const int64_t T = static_cast<int64_t>(frames.size());
  at::Tensor pf = at::tensor(frames, at::kDouble);
  at::Tensor ph = at::arange(height, at::kDouble), pw = at::arange(width, at::kDouble);
  // Angles per axis, as torch.outer(pos, freqs) in float64.
  at::Tensor af = at::outer(pf, inv_freq(d.t, d.theta));  // [T, t/2]
  at::Tensor ah = at::outer(ph, inv_freq(d.h, d.theta));  // [H, h/2]
  at::Tensor aw = at::outer(pw, inv_freq(d.w, d.theta));  // [W, w/2]
  at::Tensor angles = at::cat({af.view({T, 1, 1, -1}).expand({T, height, width, af.size(1)}),
                               ah.view({1, height, 1, -1}).expand({T, height, width, ah.size(1)}),
                               aw.view({1, 1, width, -1}).expand({T, height, width, aw.size(1)})},
                              -1)
                           .reshape({T * height * width, -1});
  return {angles.cos().to(device), angles.sin().to(device)};
}

RopeTable make_temporal_shift(const RopeDims& d, int64_t frame_delta, at::Device device) {
  at::Tensor at_ = inv_freq(d.t, d.theta) * static_cast<double>(frame_delta);
  at::Tensor angles = at::cat({at_, at::zeros({(d.h + d.w) / 2}, at::kDouble)}).view({1, -1});
  return {angles.cos().to(device), angles.sin().to(device)};
}

at::Tensor apply_rope(const at::Tensor& x, const RopeTable& table) {
  SS_CHECK(x.dim() >= 3 && x.size(-1) % 2 == 0 && x.size(-1) / 2 == table.cos.size(1),
           "RoPE: head dim {} does not match the table ({} pairs)", x.size(-1), table.cos.size(1));
  SS_CHECK(table.cos.size(0) == 1 || table.cos.size(0) == x.size(-3), "RoPE: {} tokens but a table of {} rows",
           x.size(-3), table.cos.size(0));
#ifdef SANASTREAM_HAS_CUDA
  if (x.is_cuda() && !ref::reference_mode() && !ref::records_grad({x})) return cuda::apply_rope(x, table.cos, table.sin);
#endif
  return ref::apply_rope(x, table.cos, table.sin);
}

}  // namespace sanastream::ops
