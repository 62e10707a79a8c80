// The image and temporal metrics of `sanastream eval`, on OpenCV matrices. Every definition here
// is written out in docs/METRICS.md; change both together.
//
// Images are CV_32FC3 RGB in [0, 1] ([H, W, 3]); luminance, edge and low-pass maps are CV_32FC1;
// flow fields are CV_32FC2 in pixels ([H, W, 2]: x then y), frame i → i + 1.
#pragma once

#include <cstdint>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/video/tracking.hpp>

namespace sanastream::eval {

// --- frames ---------------------------------------------------------------------------------------
// RGB24 bytes ([height, width, 3]) → CV_32FC3 in [0, 1] (value / 255).
cv::Mat rgb24_to_float(const uint8_t* rgb, int width, int height);
// Scales img (CV_32FC3) to cover width × height (bilinear, cv::resize INTER_LINEAR) and crops the
// centre. A frame already at that size is returned as is.
cv::Mat cover_crop(const cv::Mat& img, int width, int height);
// Luma Y = 0.299 R + 0.587 G + 0.114 B (CV_32FC1).
cv::Mat luma(const cv::Mat& rgb);
// 8-bit luma round(255 · Y): the input of the optical flow.
cv::Mat luma8(const cv::Mat& rgb);

// --- fidelity -------------------------------------------------------------------------------------
// PSNR reports at most this (dB): identical frames (MSE below 1e-10) give kPsnrCap.
constexpr double kPsnrCap = 100.0;
// Mean squared difference over every pixel and channel.
double mse(const cv::Mat& a, const cv::Mat& b);
// 10·log10(1 / max(MSE, 1e-10)) dB.
double psnr(const cv::Mat& a, const cv::Mat& b);
// The smallest side SSIM accepts (its window).
constexpr int kSsimWindow = 11;
// Distance of two frames' colour statistics, in 8-bit units: the L2 norm over the three channels
// of (mean_a − mean_b) and (std_a − std_b), × 255.
double colour_distance(const cv::Mat& a, const cv::Mat& b);
// SSIM (Wang et al. 2004): 11×11 Gaussian window σ = 1.5, C1 = 0.01², C2 = 0.03² (data range 1),
// averaged over the window positions that lie inside the image, then over channels.
double ssim(const cv::Mat& a, const cv::Mat& b);
// Sobel gradient magnitude of luma: sqrt(Gx² + Gy²), the 3×3 Sobel kernels scaled by 1/8 (so a
// ramp of slope s gives s), borders reflected (OpenCV BORDER_REFLECT_101).
cv::Mat edge_map(const cv::Mat& rgb);
// SSIM of the edge maps of a and b (one channel).
double edge_ssim(const cv::Mat& a, const cv::Mat& b);

// --- temporal -------------------------------------------------------------------------------------
// σ (pixels) of the low-pass filter of the flicker index for a width × height frame:
// max(1, min(width, height) / 32).
double lowpass_sigma(int width, int height);
// Low-pass luminance: Gaussian blur of luma with lowpass_sigma, kernel 2·ceil(3σ) + 1, borders
// reflected (BORDER_REFLECT_101).
cv::Mat lowpass_luma(const cv::Mat& rgb);
// Mean over pixels of |a − b| (one channel): one step of the flicker index.
double mean_abs_diff(const cv::Mat& a, const cv::Mat& b);

// The fixed DIS optical flow of the metrics: OpenCV's PRESET_MEDIUM (as of OpenCV 4.6) with every
// parameter pinned, so another OpenCV version computes the same thing.
cv::Ptr<cv::DISOpticalFlow> make_dis_flow();
// Forward (prev → cur) and backward (cur → prev) DIS flow between two 8-bit luma frames.
void dis_flow(cv::DISOpticalFlow& dis, const cv::Mat& prev8, const cv::Mat& cur8, cv::Mat& fwd, cv::Mat& bwd);

// Forward–backward consistency (Sundaram et al. 2010): a pixel x is occluded when
// |f(x) + b(x + f(x))|² > 0.01 (|f(x)|² + |b(x + f(x))|²) + 0.5, b sampled bilinearly.
constexpr double kOcclusionAlpha = 0.01;
constexpr double kOcclusionBeta = 0.5;
// The pixels of frame i that count (CV_8UC1, 1 = counted): those whose x + f(x) lies inside the
// frame ([0, W − 1] × [0, H − 1]) and, when bwd is not empty, that pass the consistency check.
cv::Mat warp_mask(const cv::Mat& fwd, const cv::Mat& bwd);
// Frame i + 1 warped back onto frame i's grid: cur sampled bilinearly at x + f(x).
cv::Mat warp_back(const cv::Mat& cur, const cv::Mat& fwd);

// One transition's warp error: Σ over counted pixels of Σ_c (prev − warped cur)² / (C · count), C channels.
// count = 0 gives NaN (the transition has no counted pixel).
double warp_error(const cv::Mat& prev, const cv::Mat& warped_cur, const cv::Mat& mask);

}  // namespace sanastream::eval
