// Source frame times → frames at a fixed model rate, by timestamp (SPEC §1): the sampling rule of
// `sanastream edit` (edit/edit_session.h) and `sanastream make-target`, and the pairing rule of
// `eval`. Plain arithmetic on presentation times; no FFmpeg or torch here.
#pragma once

#include <cstdint>

namespace sanastream::video {

// Model frame k (time t₀ + k/fps, t₀ the first source frame's time) takes the source frame nearest
// to it, and exists while one is within half a source frame interval. push() takes each source
// frame's time in presentation order and returns how many model frames the *previous* source frame
// covers; finish() those of the last one.
class RateSampler {
 public:
  explicit RateSampler(double fps) : fps_(fps) {}
  int64_t push(double time);
  int64_t finish();
  double model_time(int64_t k) const { return t0_ + k / fps_; }  // source clock

 private:
  int64_t emit_until(double limit);
  double fps_, t0_ = 0, last_ = 0, interval_ = 0;
  int64_t count_ = 0, emitted_ = 0;
};

}  // namespace sanastream::video
