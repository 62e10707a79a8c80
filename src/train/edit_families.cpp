#include "train/edit_families.h"

#include <cmath>

#include "core/compare.h"
#include "core/error.h"

namespace sanastream::train {
namespace {

// Rec. 601 luma of [N, 3, H, W] → [N, 1, H, W].
at::Tensor luma(const at::Tensor& x) {
  return x.select(1, 0).mul(0.299).add_(x.select(1, 1), 0.587).add_(x.select(1, 2), 0.114).unsqueeze(1);
}

at::Tensor gray3(const at::Tensor& g) { return g.expand({g.size(0), 3, g.size(2), g.size(3)}).contiguous(); }

// A 3 × 3 colour matrix: out_c = Σ m[c][k] · x_k.
at::Tensor colour_matrix(const at::Tensor& x, const float (&m)[3][3]) {
  const at::Tensor w = at::tensor({m[0][0], m[0][1], m[0][2], m[1][0], m[1][1], m[1][2], m[2][0], m[2][1], m[2][2]},
                                  x.options())
                           .view({3, 3, 1, 1});
  return at::conv2d(x, w);
}

// Separable Gaussian blur of every channel, radius ⌈3σ⌉, edges replicated.
at::Tensor gaussian_blur(const at::Tensor& x, double sigma) {
  const int64_t r = static_cast<int64_t>(std::ceil(3.0 * sigma)), C = x.size(1);
  at::Tensor k = at::arange(-r, r + 1, x.options()).div(sigma).pow(2).mul(-0.5).exp();
  k.div_(k.sum());
  const at::Tensor kh = k.view({1, 1, 1, 2 * r + 1}).expand({C, 1, 1, 2 * r + 1}).contiguous();
  const at::Tensor kv = k.view({1, 1, 2 * r + 1, 1}).expand({C, 1, 2 * r + 1, 1}).contiguous();
  const std::vector<int64_t> one{1, 1}, zero{0, 0};
  at::Tensor y = at::replication_pad2d(x, {r, r, r, r});
  y = at::conv2d(y, kh, at::Tensor(), at::IntArrayRef(one), at::IntArrayRef(zero), at::IntArrayRef(one), C);
  return at::conv2d(y, kv, at::Tensor(), at::IntArrayRef(one), at::IntArrayRef(zero), at::IntArrayRef(one), C);
}

// Sobel gradient magnitude of [N, 1, H, W], edges replicated.
at::Tensor sobel_magnitude(const at::Tensor& g) {
  const at::Tensor gx = at::tensor({-1.f, 0.f, 1.f, -2.f, 0.f, 2.f, -1.f, 0.f, 1.f}, g.options()).view({1, 1, 3, 3}).div(8);
  const at::Tensor gy = gx.transpose(2, 3).contiguous();
  const at::Tensor p = at::replication_pad2d(g, {1, 1, 1, 1});
  return (at::conv2d(p, gx).pow(2) + at::conv2d(p, gy).pow(2)).sqrt();
}

// Piecewise-linear colour map of t ∈ [0, 1] through evenly spaced stops [S, 3].
at::Tensor colour_map(const at::Tensor& t, const at::Tensor& stops) {
  const int64_t segments = stops.size(0) - 1;
  const at::Tensor s = t.squeeze(1).mul(segments);                       // [N, H, W]
  const at::Tensor i = s.floor().clamp(0, segments - 1).to(at::kLong);
  const at::Tensor f = (s - i.to(s.scalar_type())).clamp(0, 1).unsqueeze(-1);
  const at::Tensor lo = stops.index({i}), hi = stops.index({i + 1});     // [N, H, W, 3]
  return (lo + (hi - lo) * f).permute({0, 3, 1, 2}).contiguous();
}

at::Tensor apply_fp32(const std::string& name, const at::Tensor& x) {
  if (name == "bw") return gray3(luma(x));
  if (name == "sepia") {
    static const float m[3][3] = {{0.393f, 0.769f, 0.189f}, {0.349f, 0.686f, 0.168f}, {0.272f, 0.534f, 0.131f}};
    return colour_matrix(x, m);
  }
  if (name == "night") {
    // Desaturated, darker with a steeper tone curve, and blue.
    const at::Tensor d = x.mul(0.6).add_(luma(x), 0.4).clamp(0, 1).pow(1.5);
    return d * at::tensor({0.35f, 0.45f, 0.80f}, x.options()).view({1, 3, 1, 1});
  }
  if (name == "thermal") {
    const at::Tensor stops = at::tensor({0.00f, 0.00f, 0.05f, 0.35f, 0.00f, 0.55f, 0.85f, 0.15f, 0.25f, 1.00f, 0.60f,
                                         0.00f, 1.00f, 1.00f, 0.80f},
                                        x.options())
                                 .view({5, 3});
    return colour_map(luma(x).clamp(0, 1), stops);
  }
  if (name == "sketch") {
    // Colour dodge of the grey image by its blurred negative: flat areas go white, edges stay grey.
    const at::Tensor g = luma(x);
    const at::Tensor b = gaussian_blur(1 - g, 4.0);
    return gray3(g.div((1 - b).clamp_min(1.0 / 255)));
  }
  if (name == "cartoon") {
    // Smoothed colours in 6 levels per channel, darkened along strong edges.
    const at::Tensor s = gaussian_blur(x, 1.5);
    const at::Tensor q = s.mul(5).round().div(5);
    const at::Tensor e = sobel_magnitude(luma(s)).sub(0.05).mul(8).clamp(0, 1);
    return q * (1 - e);
  }
  if (name == "posterise") return x.mul(3).round().div(3);
  if (name == "blur") return gaussian_blur(x, 2.5);
  edit_family(name);  // throws, listing the names
  return {};
}

}  // namespace

const std::vector<EditFamily>& edit_families() {
  static const std::vector<EditFamily> families = {
      {"bw",
       {"make it black and white", "convert the video to grayscale", "remove all the colour",
        "turn it into a black-and-white film"},
       {"bring the colours back", "make it colourful again", "restore the original colour"}},
      {"sepia",
       {"give it a sepia tone", "make it look like an old sepia photograph", "apply a warm brown vintage sepia filter"},
       {"remove the sepia tone", "restore the natural colours"}},
      {"night",
       {"make it look like night", "turn day into night", "make it a dark night scene",
        "change the time of day to night"},
       {"make it look like day", "turn night into day", "brighten it to daylight"}},
      {"thermal",
       {"make it look like a thermal camera", "apply a heat map colour map", "show it in thermal imaging colours"},
       {"remove the thermal colours", "turn it back into a normal camera view"}},
      {"sketch",
       {"turn it into a pencil sketch", "make it look like a pencil drawing", "draw it as a graphite sketch"},
       {"turn the sketch back into a photo", "make it photographic again"}},
      {"cartoon",
       {"make it look like a cartoon", "turn it into a cartoon with bold outlines", "give it a comic book style"},
       {"make it realistic again", "remove the cartoon style"}},
      {"posterise",
       {"posterise it", "reduce it to a few flat colours", "apply a poster effect with flat colour bands"},
       {"restore the smooth colours", "remove the poster effect"}},
      {"blur",
       {"blur it", "make it blurry", "apply a soft gaussian blur", "make it out of focus"},
       {"sharpen it", "bring it back into focus"}},
  };
  return families;
}

const EditFamily& edit_family(const std::string& name) {
  std::string names;
  for (const EditFamily& f : edit_families()) {
    if (f.name == name) return f;
    names += (names.empty() ? "" : ", ") + f.name;
  }
  SS_FAIL("edit family: expected one of {}, got '{}'", names, name);
}

at::Tensor apply_edit_family(const std::string& name, const at::Tensor& frames) {
  SS_CHECK(frames.dim() == 4 && frames.size(1) == 3 && at::isFloatingType(frames.scalar_type()),
           "edit family {}: expected float frames [N, 3, H, W], got {} {}", name, c10::toString(frames.scalar_type()),
           shape_str(frames.sizes()));
  return apply_fp32(name, frames.to(at::kFloat)).clamp(0, 1).to(frames.scalar_type());
}

std::vector<std::string> edit_family_texts() {
  std::vector<std::string> texts;
  for (const EditFamily& f : edit_families()) {
    texts.insert(texts.end(), f.phrasings.begin(), f.phrasings.end());
    texts.insert(texts.end(), f.reverse_phrasings.begin(), f.reverse_phrasings.end());
  }
  return texts;
}

}  // namespace sanastream::train
