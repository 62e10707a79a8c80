// The edit families of the demo model (src/train/edit_families.h) and `sanastream make-target`
// (docs/TRAIN.md "Edit families and the demo data"). One file, two test programs:
//   - sanastream_tests (no FFmpeg): every family's formula on hand-computed pixels, range, dtype,
//     the names' error and the phrasings (EditFamilies.*);
//   - sanastream_train_media_tests (FFmpeg; SANASTREAM_TEST_MEDIA is defined there): make-target on
//     a Debian clip of the test_media fixture, read back and compared with apply_edit_family of the
//     --source-out frames (MakeTarget.*).
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "support/test_env.h"
#include "train/edit_families.h"

#ifdef SANASTREAM_TEST_MEDIA
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "video/video_reader.h"
#endif

namespace {

using sanastream::train::apply_edit_family;
using sanastream::train::edit_families;
using sanastream::train::EditFamily;

#ifndef SANASTREAM_TEST_MEDIA

// A constant image [1, 3, h, w] of colour (r, g, b).
at::Tensor flat(double r, double g, double b, int64_t h = 6, int64_t w = 5) {
  return at::tensor({r, g, b}, at::kFloat).view({1, 3, 1, 1}).expand({1, 3, h, w}).contiguous();
}

// Every pixel of y [1, 3, h, w] equals (r, g, b) within tol.
void expect_flat(const at::Tensor& y, double r, double g, double b, double tol, const std::string& what) {
  ASSERT_EQ(y.dim(), 4) << what;
  const double want[3] = {r, g, b};
  for (int c = 0; c < 3; ++c) {
    const at::Tensor ch = y.select(1, c).to(at::kDouble);
    EXPECT_NEAR(ch.min().item<double>(), want[c], tol) << what << " channel " << c;
    EXPECT_NEAR(ch.max().item<double>(), want[c], tol) << what << " channel " << c;
  }
}

TEST(EditFamilies, NamesInTheirFixedOrder) {
  std::vector<std::string> names;
  for (const EditFamily& f : edit_families()) names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{"bw", "sepia", "night", "thermal", "sketch", "cartoon", "posterise", "blur"}));
}

TEST(EditFamilies, BwIsRec601Luma) {
  expect_flat(apply_edit_family("bw", flat(1, 0, 0)), 0.299, 0.299, 0.299, 1e-6, "red");
  const double l = 0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6;  // 0.363
  expect_flat(apply_edit_family("bw", flat(0.2, 0.4, 0.6)), l, l, l, 1e-6, "(0.2, 0.4, 0.6)");
}

TEST(EditFamilies, SepiaIsTheClassicMatrixClamped) {
  // r = .393·.5 + .769·.25 + .189·1, g = .349·.5 + .686·.25 + .168·1, b = .272·.5 + .534·.25 + .131·1
  expect_flat(apply_edit_family("sepia", flat(0.5, 0.25, 1)), 0.57775, 0.514, 0.4005, 1e-6, "(0.5, 0.25, 1)");
  // White: rows sum to 1.351, 1.203, 0.937 → clamped to 1.
  expect_flat(apply_edit_family("sepia", flat(1, 1, 1)), 1, 1, 0.937, 1e-6, "white");
}

TEST(EditFamilies, NightDesaturatesDarkensAndTurnsBlue) {
  // d = clamp(0.6·x + 0.4·luma)^1.5, times (0.35, 0.45, 0.80); red: luma 0.299.
  const double l = 0.299;
  const double r = std::pow(0.6 + 0.4 * l, 1.5) * 0.35, gb = std::pow(0.4 * l, 1.5);
  expect_flat(apply_edit_family("night", flat(1, 0, 0)), r, gb * 0.45, gb * 0.80, 1e-6, "red");
  expect_flat(apply_edit_family("night", flat(1, 1, 1)), 0.35, 0.45, 0.80, 1e-6, "white");
}

TEST(EditFamilies, ThermalFollowsItsStops) {
  // Grey t has luma t; stops at t = 0, 0.25, 0.5, 0.75, 1, linear between.
  expect_flat(apply_edit_family("thermal", flat(0, 0, 0)), 0.00, 0.00, 0.05, 1e-6, "t = 0");
  expect_flat(apply_edit_family("thermal", flat(0.25, 0.25, 0.25)), 0.35, 0.00, 0.55, 1e-5, "t = 0.25");
  expect_flat(apply_edit_family("thermal", flat(0.5, 0.5, 0.5)), 0.85, 0.15, 0.25, 1e-5, "t = 0.5");
  expect_flat(apply_edit_family("thermal", flat(0.75, 0.75, 0.75)), 1.00, 0.60, 0.00, 1e-5, "t = 0.75");
  expect_flat(apply_edit_family("thermal", flat(1, 1, 1)), 1.00, 1.00, 0.80, 1e-5, "t = 1");
  expect_flat(apply_edit_family("thermal", flat(0.125, 0.125, 0.125)), 0.175, 0.00, 0.30, 1e-5, "t = 0.125");
}

TEST(EditFamilies, PosteriseHasFourLevelsPerChannel) {
  // round(3x) / 3: 0.1 → 0, 0.2 → 1/3, 0.6 → 2/3, 0.9 → 1.
  expect_flat(apply_edit_family("posterise", flat(0.1, 0.2, 0.6)), 0, 1.0 / 3, 2.0 / 3, 1e-6, "(0.1, 0.2, 0.6)");
  expect_flat(apply_edit_family("posterise", flat(0.9, 0.9, 0.1)), 1, 1, 0, 1e-6, "(0.9, 0.9, 0.1)");
}

TEST(EditFamilies, BlurKeepsAConstantAndAnImpulsesMass) {
  // σ 2.5, radius 8, edges replicated: a constant stays (borders included).
  expect_flat(apply_edit_family("blur", flat(0.3, 0.6, 0.9, 12, 10)), 0.3, 0.6, 0.9, 1e-6, "constant");
  // An impulse far from the borders: mass 1 in every channel, the peak k(0)² with k the normalised
  // 17-tap Gaussian, symmetric.
  at::Tensor x = at::zeros({1, 3, 33, 33});
  x.index_put_({0, at::indexing::Slice(), 16, 16}, 1.0);
  const at::Tensor y = apply_edit_family("blur", x);
  double norm = 0;
  for (int i = -8; i <= 8; ++i) norm += std::exp(-0.5 * (i / 2.5) * (i / 2.5));
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(y[0][c].sum().item<double>(), 1.0, 1e-5) << "channel " << c;
    EXPECT_NEAR(y[0][c][16][16].item<double>(), 1 / (norm * norm), 1e-6);
    EXPECT_TRUE(at::allclose(y[0][c], y[0][c].flip({0}), 0, 1e-7));
    EXPECT_TRUE(at::allclose(y[0][c], y[0][c].t(), 0, 1e-7));
  }
}

TEST(EditFamilies, SketchOfAFlatImageIsWhiteAndAnEdgeIsGrey) {
  // g / (1 − blur(1 − g)) = g / g = 1 on a flat image.
  expect_flat(apply_edit_family("sketch", flat(0.3, 0.5, 0.7)), 1, 1, 1, 1e-5, "flat");
  // A dark half next to a light half: grey on the dark side of the edge, white far from it.
  at::Tensor x = at::full({1, 3, 24, 40}, 0.8);
  x.narrow(3, 0, 20).fill_(0.2);
  const at::Tensor y = apply_edit_family("sketch", x);
  EXPECT_LT(y[0][0][12][19].item<double>(), 0.9);
  EXPECT_NEAR(y[0][0][12][39].item<double>(), 1.0, 1e-5);
  EXPECT_TRUE(at::equal(y.select(1, 0), y.select(1, 2)));  // grey
}

TEST(EditFamilies, CartoonOfAFlatImageIsItsQuantisedColour) {
  // round(5x) / 5 of the (unchanged) blurred colour, no edges: 0.33 → 0.4, 0.52 → 0.6, 0.91 → 1.
  expect_flat(apply_edit_family("cartoon", flat(0.33, 0.52, 0.91)), 0.4, 0.6, 1.0, 1e-6, "flat");
  // A strong edge is darkened; far from it, 0.95 → 1.
  at::Tensor x = at::full({1, 3, 16, 32}, 0.95);
  x.narrow(3, 0, 16).fill_(0.05);
  const at::Tensor y = apply_edit_family("cartoon", x);
  EXPECT_LT(y[0][0][8][16].item<double>(), 0.5);
  EXPECT_NEAR(y[0][0][8][31].item<double>(), 1.0, 1e-6);
}

TEST(EditFamilies, OutputsStayInRangePerFrameAndKeepTheDtype) {
  at::manual_seed(0);
  const at::Tensor x = at::rand({3, 3, 17, 23});
  for (const EditFamily& f : edit_families()) {
    const at::Tensor y = apply_edit_family(f.name, x);
    EXPECT_EQ(y.scalar_type(), at::kFloat) << f.name;
    EXPECT_EQ(y.sizes(), x.sizes()) << f.name;
    EXPECT_GE(y.min().item<double>(), 0.0) << f.name;
    EXPECT_LE(y.max().item<double>(), 1.0) << f.name;
    // Per frame: a frame's target does not depend on the others.
    EXPECT_TRUE(at::allclose(apply_edit_family(f.name, x.narrow(0, 1, 1)), y.narrow(0, 1, 1), 0, 1e-6)) << f.name;
    // bf16 in → bf16 out, the fp32 result rounded (computed in fp32 from the bf16 input).
    const at::Tensor xb = x.to(at::kBFloat16);
    const at::Tensor yb = apply_edit_family(f.name, xb);
    EXPECT_EQ(yb.scalar_type(), at::kBFloat16) << f.name;
    EXPECT_TRUE(at::equal(yb, apply_edit_family(f.name, xb.to(at::kFloat)).to(at::kBFloat16))) << f.name;
    EXPECT_EQ(apply_edit_family(f.name, x.to(at::kDouble)).scalar_type(), at::kDouble) << f.name;
  }
}

TEST(EditFamilies, UnknownNameIsOneErrorListingTheNames) {
  try {
    apply_edit_family("snowy", at::rand({1, 3, 4, 4}));
    FAIL() << "expected an Error";
  } catch (const sanastream::Error& e) {
    const std::string m = e.message();
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    EXPECT_NE(m.find("'snowy'"), std::string::npos) << m;
    for (const EditFamily& f : edit_families()) EXPECT_NE(m.find(f.name), std::string::npos) << m;
  }
  EXPECT_THROW(sanastream::train::edit_family("Bw"), sanastream::Error);
  // Frames must be float [N, 3, H, W].
  EXPECT_THROW(apply_edit_family("bw", at::zeros({1, 3, 4, 4}, at::kByte)), sanastream::Error);
  EXPECT_THROW(apply_edit_family("bw", at::rand({3, 4, 4})), sanastream::Error);
  EXPECT_THROW(apply_edit_family("bw", at::rand({1, 4, 4, 4})), sanastream::Error);
}

TEST(EditFamilies, PhrasingsAreSeveralAndNoneIsShared) {
  std::set<std::string> seen;
  size_t total = 0;
  for (const EditFamily& f : edit_families()) {
    EXPECT_EQ(&sanastream::train::edit_family(f.name), &f);
    EXPECT_GE(f.phrasings.size(), 3u) << f.name;
    EXPECT_GE(f.reverse_phrasings.size(), 2u) << f.name;
    for (const auto* list : {&f.phrasings, &f.reverse_phrasings})
      for (const std::string& p : *list) {
        EXPECT_FALSE(p.empty()) << f.name;
        EXPECT_TRUE(seen.insert(p).second) << "'" << p << "' appears twice (" << f.name << ")";
        ++total;
      }
  }
  EXPECT_EQ(sanastream::train::edit_family_texts().size(), total);
}

#else  // SANASTREAM_TEST_MEDIA: make-target on real footage

using sanastream::test::run_cli;
using sanastream::test::temp_dir;

const std::string kMedia = SANASTREAM_TEST_MEDIA;

struct Decoded {
  sanastream::video::VideoInfo info;
  at::Tensor rgb;  // [n, H, W, 3] uint8
};

Decoded decode(const std::string& path) {
  sanastream::video::VideoReader reader;
  reader.open(path);
  Decoded d{reader.info(), {}};
  std::vector<at::Tensor> frames;
  sanastream::video::Frame f;
  while (reader.read(f)) frames.push_back(at::from_blob(f.rgb.data(), {f.height, f.width, 3}, at::kByte).clone());
  d.rgb = frames.empty() ? at::Tensor() : at::stack(frames);
  return d;
}

bool exists(const std::string& p) { return sanastream::path_exists(p); }

// realshort.mp4: 320×240 at ~30 fps, 36 frames (1.2 s). Short side 64: 85.3 × 64 → 88 × 64.
TEST(MakeTarget, TargetsAreTheFamilyOfTheSourceOutFrames) {
  const std::string dir = temp_dir("make_target");
  const std::string src = kMedia + "/realshort.mp4";
  at::Tensor first_source;
  for (const EditFamily& f : edit_families()) {
    const std::string out = dir + "/" + f.name + ".mkv", source_out = dir + "/" + f.name + ".source.mkv";
    const auto r = run_cli({"make-target", "--family", f.name, "-i", src, "-o", out, "--source-out", source_out,
                            "--short-side", "64", "--fps", "16", "--frames", "18", "--start", "0.0625", "--json",
                            dir + "/" + f.name + ".json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const Decoded t = decode(out), s = decode(source_out);
    EXPECT_EQ(t.info.codec, "ffv1");
    EXPECT_EQ(s.info.codec, "ffv1");
    ASSERT_TRUE(t.rgb.defined() && s.rgb.defined());
    EXPECT_EQ(t.rgb.sizes(), at::IntArrayRef({18, 64, 88, 3})) << f.name;
    EXPECT_EQ(s.rgb.sizes(), at::IntArrayRef({18, 64, 88, 3})) << f.name;
    EXPECT_NEAR(t.info.fps(), 16, 1e-9);
    const nlohmann::json j = nlohmann::json::parse(sanastream::read_text_file(dir + "/" + f.name + ".json"));
    EXPECT_EQ(j["frames"], 18);
    EXPECT_EQ(j["size"], "88x64");
    // FFV1 stores bgr0: RGB24 in, the same RGB24 out, no YUV step. The target is apply_edit_family
    // of the source frames / 255, rounded: the same fp32 code on the same CPU. make-target runs it
    // in batches of 16 frames (16 + 2 here), this test on all 18 at once: the families are per
    // frame, and measured here the pixels are identical (0 of 304128 differ). Allowed: 1 level of 255
    // at no more than 2 pixels, a rounding tie that another CPU's convolution blocking for a
    // different batch size could turn the other way.
    const at::Tensor x = s.rgb.permute({0, 3, 1, 2}).to(at::kFloat).div(255);
    const at::Tensor want =
        apply_edit_family(f.name, x).mul(255).round().clamp(0, 255).to(at::kByte).permute({0, 2, 3, 1});
    const at::Tensor diff = (t.rgb.to(at::kInt) - want.to(at::kInt)).abs();
    EXPECT_LE(diff.max().item<int>(), 1) << f.name;
    EXPECT_LE(diff.gt(0).sum().item<int64_t>(), 2) << f.name;
    // Every family sees the same source window.
    if (!first_source.defined()) first_source = s.rgb;
    EXPECT_TRUE(at::equal(s.rgb, first_source)) << f.name;
  }
  // --start 0.0625 at 16 fps starts at model frame 1: the same frames as 1.. of the whole clip
  // (19 frames at 16 fps, see SizeAndWholeClip).
  const auto r = run_cli({"make-target", "--family", "bw", "-i", src, "-o", dir + "/all.mkv", "--source-out",
                          dir + "/all.source.mkv", "--short-side", "64"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Decoded all = decode(dir + "/all.source.mkv");
  ASSERT_EQ(all.rgb.size(0), 19);
  EXPECT_TRUE(at::equal(all.rgb.narrow(0, 1, 18), first_source));
  // The source's frames differ over time (the window moves through the clip).
  EXPECT_FALSE(at::equal(all.rgb[0], all.rgb[18]));
}

TEST(MakeTarget, SizeAndWholeClip) {
  const std::string dir = temp_dir("make_target_size");
  const auto r = run_cli({"make-target", "--family", "posterise", "-i", kMedia + "/realshort.mp4", "-o",
                          dir + "/p.mkv", "--size", "96x40"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Decoded t = decode(dir + "/p.mkv");
  // 36 frames at 45000/1499 fps (1.2 s) → 19 frames at 16 fps (k/16 < 1.1993 + half an interval).
  EXPECT_EQ(t.rgb.sizes(), at::IntArrayRef({19, 40, 96, 3}));
  // Posterised: 4 levels per channel, 0, 85, 170, 255.
  EXPECT_TRUE(at::isin(t.rgb, at::tensor({0, 85, 170, 255}, at::kByte)).all().item<bool>());
}

TEST(MakeTarget, ErrorsAreOneLineAndLeaveNoOutput) {
  const std::string dir = temp_dir("make_target_errors");
  const std::string src = kMedia + "/realshort.mp4", out = dir + "/out.mkv", so = dir + "/src.mkv";
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"--family", "snowy", "-i", src, "-o", out, "--short-side", "64"}, 1, "posterise"},  // lists the names
      {{"--family", "bw", "-i", dir + "/missing.mp4", "-o", out, "--short-side", "64"}, 1, "missing.mp4"},
      {{"--family", "bw", "-i", src, "-o", out, "--size", "0x64"}, 1, "--size"},
      {{"--family", "bw", "-i", src, "-o", out, "--size", "big"}, 1, "--size"},
      {{"--family", "bw", "-i", src, "-o", dir + "/out.mp4", "--short-side", "64"}, 1, ".mkv"},
      {{"--family", "bw", "-i", src, "-o", out, "--short-side", "64", "--start", "60"}, 1, "--start"},
      {{"--family", "bw", "-i", src, "-o", out, "--size", "64x64", "--short-side", "64"}, 2, "excludes"},
      {{"--family", "bw", "-i", src, "-o", out}, 2, "--short-side"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"make-target"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    args.insert(args.end(), {"--source-out", so});
    const auto r = run_cli(args);
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    EXPECT_EQ(r.exit_code, c.code) << joined << r.err;
    if (c.code == 1) {
      EXPECT_EQ(r.err_lines(), 1) << joined << r.err;
      EXPECT_NE(r.err.find(c.says), std::string::npos) << joined << r.err;
    }
    for (const std::string& p : {out, out + ".part", so, so + ".part", dir + "/out.mp4"})
      EXPECT_FALSE(exists(p)) << joined << ": " << p;
  }
}

TEST(MakeTarget, ListFamiliesAndProbe) {
  auto r = run_cli({"make-target", "--list-families"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string expected;
  for (const EditFamily& f : edit_families()) expected += f.name + "\t" + f.phrasings[0] + "\n";
  EXPECT_EQ(r.out, expected);
  r = run_cli({"make-target", "--probe", "-i", kMedia + "/realshort.mp4"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream line(r.out);
  int64_t frames = 0;
  std::string size;
  double seconds = 0;
  line >> frames >> size >> seconds;
  EXPECT_EQ(frames, 36);
  EXPECT_EQ(size, "320x240");
  EXPECT_NEAR(seconds, 36 * 1499 / 45000.0, 1e-2);
}

#endif

}  // namespace
