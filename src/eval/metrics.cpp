#include "eval/metrics.h"

#include <cmath>
#include <limits>

#include <opencv2/imgproc.hpp>

#include "core/error.h"

namespace sanastream::eval {

cv::Mat rgb24_to_float(const uint8_t* rgb, int width, int height) {
  cv::Mat bytes(height, width, CV_8UC3, const_cast<uint8_t*>(rgb));
  cv::Mat out;
  bytes.convertTo(out, CV_32FC3, 1.0 / 255.0);
  return out;
}

cv::Mat cover_crop(const cv::Mat& img, int width, int height) {
  if (img.cols == width && img.rows == height) return img;
  const double scale = std::max(static_cast<double>(width) / img.cols, static_cast<double>(height) / img.rows);
  const int rw = std::max(width, static_cast<int>(std::lround(img.cols * scale)));
  const int rh = std::max(height, static_cast<int>(std::lround(img.rows * scale)));
  cv::Mat resized;
  if (rw == img.cols && rh == img.rows)
    resized = img;
  else
    cv::resize(img, resized, cv::Size(rw, rh), 0, 0, cv::INTER_LINEAR);
  const int x0 = (rw - width) / 2, y0 = (rh - height) / 2;
  return resized(cv::Rect(x0, y0, width, height)).clone();
}

cv::Mat luma(const cv::Mat& rgb) {
  cv::Mat y;
  cv::cvtColor(rgb, y, cv::COLOR_RGB2GRAY);
  return y;
}

cv::Mat luma8(const cv::Mat& rgb) {
  cv::Mat y8;
  luma(rgb).convertTo(y8, CV_8UC1, 255.0);  // saturating, rounds to nearest
  return y8;
}

double mse(const cv::Mat& a, const cv::Mat& b) {
  SS_CHECK(a.size() == b.size() && a.type() == b.type(), "expected images of one size and type, got {}×{} and {}×{}",
           a.cols, a.rows, b.cols, b.rows);
  cv::Mat d;
  cv::subtract(a, b, d, cv::noArray(), CV_64F);
  const cv::Scalar s = cv::sum(d.mul(d));
  return (s[0] + s[1] + s[2] + s[3]) / (static_cast<double>(a.total()) * a.channels());
}

double psnr(const cv::Mat& a, const cv::Mat& b) {
  return 10.0 * std::log10(1.0 / std::max(mse(a, b), 1e-10));
}

double colour_distance(const cv::Mat& a, const cv::Mat& b) {
  cv::Scalar mean_a, std_a, mean_b, std_b;
  cv::meanStdDev(a, mean_a, std_a);
  cv::meanStdDev(b, mean_b, std_b);
  double sq = 0;
  for (int c = 0; c < 3; ++c) {
    sq += (mean_a[c] - mean_b[c]) * (mean_a[c] - mean_b[c]);
    sq += (std_a[c] - std_b[c]) * (std_a[c] - std_b[c]);
  }
  return 255.0 * std::sqrt(sq);
}

namespace {

cv::Mat gaussian_window(const cv::Mat& x) {
  cv::Mat out;
  cv::GaussianBlur(x, out, cv::Size(kSsimWindow, kSsimWindow), 1.5, 1.5, cv::BORDER_REFLECT_101);
  return out;
}

// SSIM of two single-channel CV_64F images.
double ssim_channel(const cv::Mat& x, const cv::Mat& y) {
  constexpr double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
  const cv::Mat mx = gaussian_window(x), my = gaussian_window(y);
  const cv::Mat sxx = gaussian_window(x.mul(x)) - mx.mul(mx);
  const cv::Mat syy = gaussian_window(y.mul(y)) - my.mul(my);
  const cv::Mat sxy = gaussian_window(x.mul(y)) - mx.mul(my);
  cv::Mat num = (2 * mx.mul(my) + c1).mul(2 * sxy + c2);
  cv::Mat den = (mx.mul(mx) + my.mul(my) + c1).mul(sxx + syy + c2);
  cv::Mat map;
  cv::divide(num, den, map);
  const int r = kSsimWindow / 2;
  return cv::mean(map(cv::Rect(r, r, x.cols - 2 * r, x.rows - 2 * r)))[0];
}

}  // namespace

double ssim(const cv::Mat& a, const cv::Mat& b) {
  SS_CHECK(a.size() == b.size() && a.type() == b.type(), "expected images of one size and type, got {}×{} and {}×{}",
           a.cols, a.rows, b.cols, b.rows);
  SS_CHECK(a.cols >= kSsimWindow && a.rows >= kSsimWindow, "expected frames of at least {}×{} for SSIM, got {}×{}",
           kSsimWindow, kSsimWindow, a.cols, a.rows);
  std::vector<cv::Mat> ca, cb;
  cv::split(a, ca);
  cv::split(b, cb);
  double sum = 0;
  for (size_t c = 0; c < ca.size(); ++c) {
    cv::Mat x, y;
    ca[c].convertTo(x, CV_64F);
    cb[c].convertTo(y, CV_64F);
    sum += ssim_channel(x, y);
  }
  return sum / static_cast<double>(ca.size());
}

cv::Mat edge_map(const cv::Mat& rgb) {
  const cv::Mat y = luma(rgb);
  cv::Mat gx, gy, mag;
  cv::Sobel(y, gx, CV_32F, 1, 0, 3, 1.0 / 8.0, 0, cv::BORDER_REFLECT_101);
  cv::Sobel(y, gy, CV_32F, 0, 1, 3, 1.0 / 8.0, 0, cv::BORDER_REFLECT_101);
  cv::magnitude(gx, gy, mag);
  return mag;
}

double edge_ssim(const cv::Mat& a, const cv::Mat& b) { return ssim(edge_map(a), edge_map(b)); }

double lowpass_sigma(int width, int height) { return std::max(1.0, std::min(width, height) / 32.0); }

cv::Mat lowpass_luma(const cv::Mat& rgb) {
  const double sigma = lowpass_sigma(rgb.cols, rgb.rows);
  const int k = 2 * static_cast<int>(std::ceil(3 * sigma)) + 1;
  cv::Mat out;
  cv::GaussianBlur(luma(rgb), out, cv::Size(k, k), sigma, sigma, cv::BORDER_REFLECT_101);
  return out;
}

double mean_abs_diff(const cv::Mat& a, const cv::Mat& b) {
  SS_CHECK(a.size() == b.size() && a.type() == b.type(), "expected maps of one size and type, got {}×{} and {}×{}",
           a.cols, a.rows, b.cols, b.rows);
  return cv::norm(a, b, cv::NORM_L1) / static_cast<double>(a.total() * a.channels());
}

cv::Ptr<cv::DISOpticalFlow> make_dis_flow() {
  auto dis = cv::DISOpticalFlow::create(cv::DISOpticalFlow::PRESET_MEDIUM);
  dis->setFinestScale(1);
  dis->setPatchSize(8);
  dis->setPatchStride(3);
  dis->setGradientDescentIterations(25);
  dis->setVariationalRefinementIterations(5);
  dis->setVariationalRefinementAlpha(20.f);
  dis->setVariationalRefinementDelta(5.f);
  dis->setVariationalRefinementGamma(10.f);
  dis->setUseMeanNormalization(true);
  dis->setUseSpatialPropagation(true);
  return dis;
}

void dis_flow(cv::DISOpticalFlow& dis, const cv::Mat& prev8, const cv::Mat& cur8, cv::Mat& fwd, cv::Mat& bwd) {
  fwd.release();
  bwd.release();
  dis.calc(prev8, cur8, fwd);
  dis.calc(cur8, prev8, bwd);
}

namespace {

// The sampling maps x + f(x), y + f(y) (CV_32FC1 each).
void sample_maps(const cv::Mat& fwd, cv::Mat& mx, cv::Mat& my) {
  mx.create(fwd.size(), CV_32FC1);
  my.create(fwd.size(), CV_32FC1);
  for (int y = 0; y < fwd.rows; ++y) {
    const cv::Vec2f* f = fwd.ptr<cv::Vec2f>(y);
    float* px = mx.ptr<float>(y);
    float* py = my.ptr<float>(y);
    for (int x = 0; x < fwd.cols; ++x) {
      px[x] = static_cast<float>(x) + f[x][0];
      py[x] = static_cast<float>(y) + f[x][1];
    }
  }
}

}  // namespace

cv::Mat warp_back(const cv::Mat& cur, const cv::Mat& fwd) {
  cv::Mat mx, my, out;
  sample_maps(fwd, mx, my);
  cv::remap(cur, out, mx, my, cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar::all(0));
  return out;
}

cv::Mat warp_mask(const cv::Mat& fwd, const cv::Mat& bwd) {
  SS_CHECK(fwd.type() == CV_32FC2, "expected a CV_32FC2 flow field, got type {}", fwd.type());
  SS_CHECK(bwd.empty() || (bwd.size() == fwd.size() && bwd.type() == CV_32FC2),
           "expected a backward flow of the forward flow's size and type, got {}×{}", bwd.cols, bwd.rows);
  cv::Mat mx, my, bw;
  sample_maps(fwd, mx, my);
  if (!bwd.empty()) cv::remap(bwd, bw, mx, my, cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar::all(0));
  cv::Mat mask(fwd.size(), CV_8UC1);
  const float max_x = static_cast<float>(fwd.cols - 1), max_y = static_cast<float>(fwd.rows - 1);
  for (int y = 0; y < fwd.rows; ++y) {
    const cv::Vec2f* f = fwd.ptr<cv::Vec2f>(y);
    const float* px = mx.ptr<float>(y);
    const float* py = my.ptr<float>(y);
    uint8_t* m = mask.ptr<uint8_t>(y);
    for (int x = 0; x < fwd.cols; ++x) {
      bool ok = px[x] >= 0.f && px[x] <= max_x && py[x] >= 0.f && py[x] <= max_y;
      if (ok && !bw.empty()) {
        const cv::Vec2f b = bw.at<cv::Vec2f>(y, x);
        const double sx = f[x][0] + b[0], sy = f[x][1] + b[1];
        const double ff = f[x][0] * f[x][0] + f[x][1] * f[x][1], bb = b[0] * b[0] + b[1] * b[1];
        ok = sx * sx + sy * sy <= kOcclusionAlpha * (ff + bb) + kOcclusionBeta;
      }
      m[x] = ok ? 1 : 0;
    }
  }
  return mask;
}

double warp_error(const cv::Mat& prev, const cv::Mat& warped_cur, const cv::Mat& mask) {
  SS_CHECK(prev.size() == warped_cur.size() && prev.type() == warped_cur.type() && mask.size() == prev.size(),
           "expected frames and mask of one size, got {}×{}, {}×{} and {}×{}", prev.cols, prev.rows, warped_cur.cols,
           warped_cur.rows, mask.cols, mask.rows);
  if (cv::countNonZero(mask) == 0) return std::numeric_limits<double>::quiet_NaN();
  cv::Mat d;
  cv::subtract(prev, warped_cur, d, cv::noArray(), CV_64F);
  const cv::Scalar m = cv::mean(d.mul(d), mask);  // per channel, over the counted pixels
  double sum = 0;
  for (int c = 0; c < prev.channels(); ++c) sum += m[c];
  return sum / prev.channels();
}

}  // namespace sanastream::eval
