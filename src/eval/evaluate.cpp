#include "eval/evaluate.h"

#include <cmath>
#include <memory>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "eval/metrics.h"
#include "eval/pairing.h"
#include "io/safetensors.h"

namespace sanastream::eval {

namespace {

std::string name_of(const std::string& path) { return path == "-" ? "stdin" : path; }

std::string shape_text(const at::Tensor& t) {
  std::string s = "(";
  for (int64_t d = 0; d < t.dim(); ++d) s += fmt::format("{}{}", d ? ", " : "", t.size(d));
  return s + ")";
}

// Precomputed flow from --flow: "flow" [F − 1, H, W, 2] F32 and optionally "flow_bwd".
class FlowFile {
 public:
  FlowFile(const std::string& path, int width, int height) : path_(path) {
    io::TensorMap m = io::load_safetensors(path);
    auto it = m.find("flow");
    SS_CHECK(it != m.end(), "--flow {}: expected a tensor named 'flow', got none", path);
    fwd_ = check(it->second, "flow", width, height);
    auto b = m.find("flow_bwd");
    if (b != m.end()) {
      bwd_ = check(b->second, "flow_bwd", width, height);
      SS_CHECK(bwd_.size(0) == fwd_.size(0), "--flow {}: expected flow_bwd of the shape of flow {}, got {}", path,
               shape_text(fwd_), shape_text(bwd_));
    }
  }
  bool has_backward() const { return bwd_.defined(); }
  int64_t transitions() const { return fwd_.size(0); }
  void get(int64_t t, cv::Mat& fwd, cv::Mat& bwd) const {
    SS_CHECK(t < transitions(),
             "--flow {}: expected flow for every transition between edited frames, got {} transitions for more "
             "than {} edited frames",
             path_, transitions(), transitions() + 1);
    fwd = to_mat(fwd_[t]);
    bwd = bwd_.defined() ? to_mat(bwd_[t]) : cv::Mat();
  }

 private:
  at::Tensor check(const at::Tensor& t, const char* name, int width, int height) const {
    SS_CHECK(t.scalar_type() == at::kFloat, "--flow {}: expected '{}' in F32, got {}", path_, name,
             std::string(c10::toString(t.scalar_type())));
    SS_CHECK(t.dim() == 4 && t.size(1) == height && t.size(2) == width && t.size(3) == 2,
             "--flow {}: expected '{}' of shape (F−1, {}, {}, 2) (pixels at the edited size), got {}", path_, name,
             height, width, shape_text(t));
    return t.contiguous();
  }
  static cv::Mat to_mat(const at::Tensor& t) {  // [H, W, 2] F32
    return cv::Mat(static_cast<int>(t.size(0)), static_cast<int>(t.size(1)), CV_32FC2, t.data_ptr<float>()).clone();
  }
  std::string path_;
  at::Tensor fwd_, bwd_;
};

// The processed frames of one pair at the comparison size.
struct PairFrames {
  cv::Mat edited, source, target;     // CV_32FC3 RGB [0, 1]
  cv::Mat source8;                    // 8-bit luma of the source frame (flow input)
  cv::Mat lp_edited, lp_source, lp_target;  // low-pass luma
  int64_t source_index = -1, target_index = -1;
};

std::vector<uint8_t> jpeg_thumbnail(const cv::Mat& rgb, int max_height) {
  cv::Mat bgr8, small;
  rgb.convertTo(bgr8, CV_8UC3, 255.0);
  cv::cvtColor(bgr8, bgr8, cv::COLOR_RGB2BGR);
  if (bgr8.rows > max_height) {
    const int w = std::max(1, static_cast<int>(std::lround(bgr8.cols * static_cast<double>(max_height) / bgr8.rows)));
    cv::resize(bgr8, small, cv::Size(w, max_height), 0, 0, cv::INTER_AREA);
  } else {
    small = bgr8;
  }
  std::vector<uint8_t> out;
  SS_CHECK(cv::imencode(".jpg", small, out, {cv::IMWRITE_JPEG_QUALITY, 85}), "cannot encode a JPEG thumbnail");
  return out;
}

double mean_defined(const std::vector<PairRecord>& pairs, double PairRecord::*field) {
  double sum = 0;
  int64_t n = 0;
  for (const PairRecord& p : pairs) {
    const double v = p.*field;
    if (std::isnan(v)) continue;
    sum += v;
    ++n;
  }
  return n ? sum / n : kNaN;
}

}  // namespace

EvalResult evaluate(const EvalInputs& in, const EvalOptions& options) {
  EvalResult r;
  video::VideoReader edited;
  edited.open(in.edited);
  r.edited.info = edited.info();
  r.width = r.edited.info.width;
  r.height = r.edited.info.height;
  SS_CHECK(r.width >= kSsimWindow && r.height >= kSsimWindow,
           "edited {}: expected frames of at least {}×{} pixels (the SSIM window), got {}×{}", name_of(in.edited),
           kSsimWindow, kSsimWindow, r.width, r.height);

  NearestFrameStream source(in.source, "source");
  r.source.info = source.info();
  std::unique_ptr<NearestFrameStream> target;
  if (!in.target.empty()) {
    target = std::make_unique<NearestFrameStream>(in.target, "target");
    r.target = VideoFigures{target->info()};
  }
  std::unique_ptr<FlowFile> flow_file;
  cv::Ptr<cv::DISOpticalFlow> dis;
  if (!in.flow.empty()) {
    flow_file = std::make_unique<FlowFile>(in.flow, r.width, r.height);
    r.flow = in.flow;
    r.flow_backward = flow_file->has_backward();
  } else {
    dis = make_dis_flow();
    r.flow = "dis";
  }
  // Half a frame interval of the partner, plus half a tick of each time base (stored timestamps
  // are rounded to their time base).
  const double edited_tick = r.edited.info.time_base.value();
  const double source_gap =
      0.5 * source.interval() + 0.5 * r.source.info.time_base.value() + 0.5 * edited_tick;
  const double target_gap =
      target ? 0.5 * target->interval() + 0.5 * target->info().time_base.value() + 0.5 * edited_tick : 0.0;

  PairFrames prev;
  video::Frame ef;
  double t0 = 0;
  int64_t stride = 1;  // thumbnails are kept for pairs that are multiples of stride
  while (edited.read(ef)) {
    check_interrupt();
    if (r.pairs.empty()) t0 = ef.time;
    const int64_t i = static_cast<int64_t>(r.pairs.size());
    PairRecord rec;
    rec.index = ef.index;
    rec.time = ef.time - t0;
    PairFrames cur;
    cur.edited = rgb24_to_float(ef.rgb.data(), ef.width, ef.height);
    cur.lp_edited = lowpass_luma(cur.edited);

    const video::Frame& sf = source.nearest(rec.time, source_gap, ef.index);
    rec.source_index = sf.index;
    rec.source_time = sf.time - source.origin();
    cur.source_index = sf.index;
    if (i > 0 && sf.index == prev.source_index) {
      cur.source = prev.source;
      cur.source8 = prev.source8;
      cur.lp_source = prev.lp_source;
    } else {
      cur.source = cover_crop(rgb24_to_float(sf.rgb.data(), sf.width, sf.height), r.width, r.height);
      cur.source8 = luma8(cur.source);
      cur.lp_source = lowpass_luma(cur.source);
    }
    rec.edge_ssim = edge_ssim(cur.source, cur.edited);

    if (target) {
      const video::Frame& tf = target->nearest(rec.time, target_gap, ef.index);
      rec.target_index = tf.index;
      cur.target_index = tf.index;
      if (i > 0 && tf.index == prev.target_index) {
        cur.target = prev.target;
        cur.lp_target = prev.lp_target;
      } else {
        cur.target = cover_crop(rgb24_to_float(tf.rgb.data(), tf.width, tf.height), r.width, r.height);
        cur.lp_target = lowpass_luma(cur.target);
      }
      rec.target_time = tf.time - target->origin();
      rec.psnr = psnr(cur.edited, cur.target);
      rec.ssim = ssim(cur.edited, cur.target);
      rec.source_psnr = psnr(cur.source, cur.target);
      rec.colour_error = colour_distance(cur.edited, cur.target);
    }

    if (i > 0) {
      PairRecord& p = r.pairs.back();
      cv::Mat fwd, bwd;
      if (flow_file)
        flow_file->get(i - 1, fwd, bwd);
      else
        dis_flow(*dis, prev.source8, cur.source8, fwd, bwd);
      const cv::Mat mask = warp_mask(fwd, bwd);
      p.counted_fraction = cv::countNonZero(mask) / static_cast<double>(mask.total());
      p.warp_error = warp_error(prev.edited, warp_back(cur.edited, fwd), mask);
      p.source_warp_error = warp_error(prev.source, warp_back(cur.source, fwd), mask);
      p.flicker = mean_abs_diff(prev.lp_edited, cur.lp_edited);
      p.source_flicker = mean_abs_diff(prev.lp_source, cur.lp_source);
      if (target) {
        p.target_warp_error = warp_error(prev.target, warp_back(cur.target, fwd), mask);
        p.target_flicker = mean_abs_diff(prev.lp_target, cur.lp_target);
      }
    }

    if (options.strip_frames > 0 && i % stride == 0) {
      Thumbnail th;
      th.pair = i;
      th.source = jpeg_thumbnail(cur.source, options.thumbnail_height);
      th.edited = jpeg_thumbnail(cur.edited, options.thumbnail_height);
      if (target) th.target = jpeg_thumbnail(cur.target, options.thumbnail_height);
      r.thumbnails.push_back(std::move(th));
      if (static_cast<int>(r.thumbnails.size()) > 2 * options.strip_frames) {
        stride *= 2;
        std::vector<Thumbnail> kept;
        for (Thumbnail& t : r.thumbnails)
          if (t.pair % stride == 0) kept.push_back(std::move(t));
        r.thumbnails = std::move(kept);
      }
    }
    r.pairs.push_back(rec);
    prev = std::move(cur);
    if (i % 100 == 99) log_info("eval: {} pairs", i + 1);
  }
  SS_CHECK(r.pairs.size() >= 2,
           "edited {}: expected at least 2 frames (temporal metrics compare consecutive frames), got {}",
           name_of(in.edited), r.pairs.size());
  if (flow_file)
    SS_CHECK(flow_file->transitions() == static_cast<int64_t>(r.pairs.size()) - 1,
             "--flow {}: expected flow of shape (F−1, H, W, 2) with F = {} edited frames, got {} transitions",
             in.flow, r.pairs.size(), flow_file->transitions());

  r.edited.warp_error = mean_defined(r.pairs, &PairRecord::warp_error);
  SS_CHECK(!std::isnan(r.edited.warp_error),
           "expected some pixel to stay in frame and unoccluded across some transition, got none: the warp error is "
           "undefined");
  r.edited.flicker_index = mean_defined(r.pairs, &PairRecord::flicker);
  r.source.warp_error = mean_defined(r.pairs, &PairRecord::source_warp_error);
  r.source.flicker_index = mean_defined(r.pairs, &PairRecord::source_flicker);
  if (r.target) {
    r.target->warp_error = mean_defined(r.pairs, &PairRecord::target_warp_error);
    r.target->flicker_index = mean_defined(r.pairs, &PairRecord::target_flicker);
    r.psnr = mean_defined(r.pairs, &PairRecord::psnr);
    r.ssim = mean_defined(r.pairs, &PairRecord::ssim);
    r.source_psnr = mean_defined(r.pairs, &PairRecord::source_psnr);
    r.colour_error = mean_defined(r.pairs, &PairRecord::colour_error);
    const size_t quarter = r.pairs.size() / 4;
    if (quarter > 0) {
      const std::vector<PairRecord> first(r.pairs.begin(), r.pairs.begin() + quarter);
      const std::vector<PairRecord> last(r.pairs.end() - quarter, r.pairs.end());
      r.colour_drift = mean_defined(last, &PairRecord::colour_error) - mean_defined(first, &PairRecord::colour_error);
    }
  }
  r.edge_ssim = mean_defined(r.pairs, &PairRecord::edge_ssim);
  return r;
}

}  // namespace sanastream::eval
