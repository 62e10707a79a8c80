#include "eval/pairing.h"

#include <cmath>
#include <utility>

#include "core/error.h"

namespace sanastream::eval {

NearestFrameStream::NearestFrameStream(const std::string& path, std::string role) : role_(std::move(role)) {
  reader_.open(path);
  const std::string name = path == "-" ? "stdin" : path;
  SS_CHECK(info().fps() > 0, "{} {}: expected a known frame rate, got none in the container", role_, name);
  interval_ = 1.0 / info().fps();
  has_next_ = reader_.read(next_);
  SS_CHECK(has_next_, "{} {}: expected video frames, got an empty video", role_, name);
  t0_ = next_.time;
}

bool NearestFrameStream::advance() {
  std::swap(cur_, next_);
  has_cur_ = true;
  has_next_ = reader_.read(next_);
  return has_next_;
}

const video::Frame& NearestFrameStream::nearest(double t, double max_gap, int64_t edited_index) {
  SS_CHECK(!requested_ || t >= last_t_,
           "expected edited frames in increasing presentation time, got edited frame {} at {:.4f} s after {:.4f} s",
           edited_index, t, last_t_);
  requested_ = true;
  last_t_ = t;
  while (has_next_ && next_.time - t0_ <= t) advance();
  const bool take_cur = has_cur_ && (!has_next_ || t - (cur_.time - t0_) <= (next_.time - t0_) - t);
  const video::Frame& best = take_cur ? cur_ : next_;
  const double gap = std::abs(best.time - t0_ - t);
  SS_CHECK(gap <= max_gap,
           "expected a {} frame within half a {} frame interval (±{:.4f} s) of every edited frame, got edited frame {} "
           "at {:.4f} s with none: the nearest, {} frame {}, is at {:.4f} s",
           role_, role_, max_gap, edited_index, t, role_, best.index, best.time - t0_);
  return best;
}

}  // namespace sanastream::eval
