// A video's frames at the model rate, scaled to the processing size, as `sanastream edit` sees them:
// the rule shared by `train-cache` (train/cache_builder.cpp) and `make-target`. Header-only: it needs
// FFmpeg (video) and the pipeline's scaling, which only the FFmpeg builds of those two link.
#pragma once

#include <functional>

#include <ATen/ATen.h>

#include "core/interrupt.h"
#include "pipeline/edit_engine.h"
#include "video/rate_sampler.h"
#include "video/video_reader.h"

namespace sanastream::train {

// Reads `reader` to its end, sampling model frames at `fps` by timestamp (video::RateSampler, the rule
// of `edit`), and calls `take` with each model frame k ≥ `first`: RGB24 [H, W, 3] uint8, scaled to cover
// `size` and centre-cropped (bilinear, as `edit`), until `take` returns false. Returns the model frames
// passed (k of the last one + 1).
inline int64_t read_model_frames(video::VideoReader& reader, double fps, const pipeline::FrameSize& size,
                                 int64_t first, const std::function<bool(const at::Tensor&)>& take) {
  video::RateSampler sampler(fps);
  at::Tensor held, held_small;  // the last source frame: as decoded, and at the processing size
  int64_t next = 0;
  bool more = true;
  auto emit = [&](int64_t n) {  // the held frame covers n model frames
    for (int64_t i = 0; i < n && more; ++i, ++next) {
      if (next < first) continue;
      if (!held_small.defined())
        held_small =
            pipeline::model_to_rgb24(pipeline::rgb24_to_model(held.unsqueeze(0), size, at::kFloat, at::kCPU), size)[0];
      more = take(held_small);
    }
  };
  video::Frame f;
  while (more && reader.read(f)) {
    check_interrupt();
    emit(sampler.push(f.time));
    held = at::from_blob(f.rgb.data(), {f.height, f.width, 3}, at::kByte).clone();
    held_small = at::Tensor();
  }
  if (more && held.defined()) emit(sampler.finish());
  return next;
}

}  // namespace sanastream::train
