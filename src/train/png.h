// A minimal PNG writer (8-bit RGB, zlib) and the loss plot of a training run.
#pragma once

#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace sanastream::train {

// rgb: [H, W, 3] uint8. Written atomically.
void write_png(const std::string& path, const at::Tensor& rgb);

// A line plot of `values` over `steps` (white background, grey frame and grid, blue line), width × height.
void plot_loss_png(const std::string& path, const std::vector<double>& steps, const std::vector<double>& values,
                   int64_t width = 640, int64_t height = 360);

}  // namespace sanastream::train
