#include "train/png.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>

#include "core/compare.h"
#include "core/error.h"
#include "core/fs.h"

namespace sanastream::train {

namespace {

void put_u32(std::string& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xff));
}

void put_chunk(std::string& out, const char* type, const std::string& data) {
  put_u32(out, static_cast<uint32_t>(data.size()));
  const std::string body = std::string(type, 4) + data;
  out += body;
  put_u32(out, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(body.data()), body.size())));
}

}  // namespace

void write_png(const std::string& path, const at::Tensor& rgb_in) {
  SS_CHECK(rgb_in.dim() == 3 && rgb_in.size(2) == 3 && rgb_in.scalar_type() == at::kByte,
           "PNG: expected [H, W, 3] uint8, got {}", shape_str(rgb_in.sizes()));
  const at::Tensor rgb = rgb_in.to(at::kCPU).contiguous();
  const int64_t H = rgb.size(0), W = rgb.size(1);
  // Scanlines, each behind filter byte 0.
  std::string raw;
  raw.reserve(static_cast<size_t>(H * (3 * W + 1)));
  const char* px = reinterpret_cast<const char*>(rgb.data_ptr<uint8_t>());
  for (int64_t y = 0; y < H; ++y) {
    raw.push_back('\0');
    raw.append(px + y * 3 * W, static_cast<size_t>(3 * W));
  }
  uLongf packed_size = compressBound(raw.size());
  std::string packed(packed_size, '\0');
  SS_CHECK(compress2(reinterpret_cast<Bytef*>(&packed[0]), &packed_size, reinterpret_cast<const Bytef*>(raw.data()),
                     raw.size(), 6) == Z_OK,
           "PNG: zlib compression failed for '{}'", path);
  packed.resize(packed_size);
  std::string ihdr;
  put_u32(ihdr, static_cast<uint32_t>(W));
  put_u32(ihdr, static_cast<uint32_t>(H));
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8 bit, RGB, deflate, filter 0, no interlace
  std::string png("\x89PNG\r\n\x1a\n", 8);
  put_chunk(png, "IHDR", ihdr);
  put_chunk(png, "IDAT", packed);
  put_chunk(png, "IEND", "");
  AtomicFile f(path);
  f.write(png);
  f.commit();
}

void plot_loss_png(const std::string& path, const std::vector<double>& steps, const std::vector<double>& values,
                   int64_t width, int64_t height) {
  SS_CHECK(steps.size() == values.size(), "loss plot: {} steps for {} values", steps.size(), values.size());
  at::Tensor img = at::full({height, width, 3}, 255, at::kByte);
  auto* p = img.data_ptr<uint8_t>();
  auto set = [&](int64_t x, int64_t y, uint8_t r, uint8_t g, uint8_t b) {
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    uint8_t* q = p + (y * width + x) * 3;
    q[0] = r, q[1] = g, q[2] = b;
  };
  const int64_t m = 24, x0 = m, x1 = width - m, y0 = m, y1 = height - m;  // plot area
  for (int i = 0; i <= 4; ++i) {                                          // grid and frame
    const int64_t y = y0 + (y1 - y0) * i / 4, x = x0 + (x1 - x0) * i / 4;
    const uint8_t c = i == 0 || i == 4 ? 96 : 220;
    for (int64_t u = x0; u <= x1; ++u) set(u, y, c, c, c);
    for (int64_t v = y0; v <= y1; ++v) set(x, v, c, c, c);
  }
  std::vector<std::pair<double, double>> pts;
  for (size_t i = 0; i < steps.size(); ++i)
    if (std::isfinite(values[i])) pts.emplace_back(steps[i], values[i]);
  if (pts.empty()) return write_png(path, img);
  double sx0 = pts.front().first, sx1 = pts.back().first, vy0 = pts[0].second, vy1 = pts[0].second;
  for (const auto& [s, v] : pts) vy0 = std::min(vy0, v), vy1 = std::max(vy1, v);
  if (sx1 <= sx0) sx1 = sx0 + 1;
  if (vy1 <= vy0) vy1 = vy0 + 1e-12 + std::abs(vy0) * 1e-3;
  auto px_of = [&](const std::pair<double, double>& q) {
    return std::make_pair(x0 + std::llround((q.first - sx0) / (sx1 - sx0) * (x1 - x0)),
                          y1 - std::llround((q.second - vy0) / (vy1 - vy0) * (y1 - y0)));
  };
  auto prev = px_of(pts[0]);
  for (const auto& q : pts) {  // segments between consecutive points, 2 px thick
    const auto cur = px_of(q);
    const int64_t n = std::max<int64_t>({1, std::abs(cur.first - prev.first), std::abs(cur.second - prev.second)});
    for (int64_t k = 0; k <= n; ++k) {
      const int64_t x = prev.first + (cur.first - prev.first) * k / n,
                    y = prev.second + (cur.second - prev.second) * k / n;
      set(x, y, 31, 90, 200);
      set(x, y + 1, 31, 90, 200);
    }
    prev = cur;
  }
  write_png(path, img);
}

}  // namespace sanastream::train
