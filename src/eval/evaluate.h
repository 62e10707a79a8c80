// `sanastream eval` as a library call: pairs an edited video with its source (and a target),
// and measures temporal consistency (warp error, flicker index), fidelity (PSNR, SSIM against the
// target; SSIM of edge maps against the source). docs/METRICS.md defines every figure.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "video/video_reader.h"

namespace sanastream::eval {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct EvalInputs {
  std::string source;  // paths; "-" = stdin (for one of them at most)
  std::string edited;
  std::string target;  // empty: no target (no PSNR / SSIM)
  // safetensors with "flow" F32 [F − 1, H, W, 2] (pixels, pair i → i + 1, at the edited size)
  // and optionally "flow_bwd" (i + 1 → i); empty: DIS flow on the paired source frames.
  std::string flow;
};

struct EvalOptions {
  // Thumbnails for the report: evenly spaced pairs, between strip_frames and 2·strip_frames of
  // them (fewer for short videos); 0 = none.
  int strip_frames = 0;
  int thumbnail_height = 96;  // pixels (never enlarged)
};

// One edited frame, its partners and its figures. The transition fields describe the step from
// this pair to the next one and are NaN on the last pair (warp errors are NaN too when the mask
// keeps no pixel).
struct PairRecord {
  int64_t index = 0;             // edited frame
  double time = 0;               // seconds from the edited video's first frame
  int64_t source_index = 0;
  double source_time = 0;        // seconds from the source's first frame
  int64_t target_index = -1;     // -1 without a target
  double target_time = kNaN;
  double edge_ssim = kNaN;       // edge-map SSIM, source vs edited
  double psnr = kNaN;            // edited vs target (dB)
  double source_psnr = kNaN;     // source vs target (dB): what doing nothing scores
  double colour_error = kNaN;    // colour_distance, edited vs target
  double ssim = kNaN;            // edited vs target
  double warp_error = kNaN;      // edited, this pair → next
  double source_warp_error = kNaN;
  double target_warp_error = kNaN;
  double counted_fraction = kNaN;  // share of pixels the warp mask keeps
  double flicker = kNaN;         // mean |Δ low-pass luma|, edited, this pair → next
  double source_flicker = kNaN;
  double target_flicker = kNaN;
};

// JPEG thumbnails of one pair for the report's strips.
struct Thumbnail {
  int64_t pair = 0;
  std::vector<uint8_t> source, edited, target;  // target empty without a target
};

struct VideoFigures {
  video::VideoInfo info;
  double warp_error = kNaN;     // mean over transitions with counted pixels
  double flicker_index = kNaN;  // mean over transitions
};

struct EvalResult {
  int width = 0;   // the comparison size: the edited frames'
  int height = 0;
  VideoFigures edited, source;
  std::optional<VideoFigures> target;
  double edge_ssim = kNaN;  // mean over pairs
  double psnr = kNaN;       // mean over pairs (target only)
  double ssim = kNaN;       // mean over pairs (target only)
  double source_psnr = kNaN;   // mean over pairs (target only)
  double colour_error = kNaN;  // mean over pairs (target only)
  // How the colour error grows over the video: its mean over the last quarter of the pairs minus
  // its mean over the first quarter (target only; 8-bit units).
  double colour_drift = kNaN;
  std::string flow;         // "dis" or the flow file's path
  bool flow_backward = true;  // whether the occlusion check ran (DIS, or a file with flow_bwd)
  std::vector<PairRecord> pairs;
  std::vector<Thumbnail> thumbnails;
};

EvalResult evaluate(const EvalInputs& inputs, const EvalOptions& options = {});

}  // namespace sanastream::eval
