// A rational number as FFmpeg uses them (frame rates, time bases), without FFmpeg's headers.
#pragma once

namespace sanastream::video {

struct Rational {
  int num = 0;
  int den = 1;
  double value() const { return den == 0 ? 0.0 : static_cast<double>(num) / den; }
};

}  // namespace sanastream::video
