// Pairing on the edited video's time grid: each edited frame is matched with the frame of another
// video (source or target) whose presentation time is nearest, within half that video's frame
// interval. Times count from each video's first frame; the video is read once, front to back.
#pragma once

#include <string>

#include "video/video_reader.h"

namespace sanastream::eval {

class NearestFrameStream {
 public:
  // role names the video in messages ("source", "target").
  NearestFrameStream(const std::string& path, std::string role);

  const video::VideoInfo& info() const { return reader_.info(); }
  // One frame interval of this video (1 / its frame rate), seconds.
  double interval() const { return interval_; }
  // Presentation time of the first frame (seconds): times count from it.
  double origin() const { return t0_; }

  // The frame nearest to time t (seconds from this video's first frame), the earlier one on a
  // tie. Requests must come in non-decreasing t. Throws when the nearest frame is further from t
  // than max_gap, naming the edited frame (edited_index) that has no partner. The reference stays
  // valid until the next call.
  const video::Frame& nearest(double t, double max_gap, int64_t edited_index);

 private:
  bool advance();  // moves next_ into cur_ and reads a new next_

  video::VideoReader reader_;
  std::string role_;
  double interval_ = 0;
  double t0_ = 0;        // presentation time of the first frame
  double last_t_ = 0;    // the previous request
  bool requested_ = false;
  video::Frame cur_, next_;  // cur_.time - t0_ ≤ last request < next_.time - t0_ (when present)
  bool has_cur_ = false, has_next_ = false;
};

}  // namespace sanastream::eval
