#include "video/rate_sampler.h"

namespace sanastream::video {

int64_t RateSampler::emit_until(double limit) {
  int64_t n = 0;
  while (model_time(emitted_) < limit - 1e-6) {
    ++emitted_;
    ++n;
  }
  return n;
}

int64_t RateSampler::push(double time) {
  if (count_++ == 0) {
    t0_ = last_ = time;
    return 0;
  }
  if (time <= last_) time = last_ + 1e-6;  // timestamps that do not advance still order the frames
  interval_ = time - last_;
  const int64_t n = emit_until((last_ + time) / 2);
  last_ = time;
  return n;
}

int64_t RateSampler::finish() {
  if (count_ == 0) return 0;
  return emit_until(last_ + (interval_ > 0 ? interval_ : 1 / fps_) / 2);
}

}  // namespace sanastream::video
