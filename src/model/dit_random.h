// Seeded random DiT weights in the official key layout, for tests, benchmarks and
// `make-package --random-weights`. Distributions follow the golden sets' generator in spirit
// (fan-in scaled normals, gates away from their trivial initial values), not bit for bit.
#pragma once

#include <cstdint>
#include <vector>

#include "io/safetensors.h"
#include "model/dit_config.h"

namespace sanastream::model {

struct DitShape {
  int64_t depth = 4;
  int64_t hidden = 224;
  int64_t heads = 2;
  int64_t ffn_hidden = 672;
  int64_t latent_channels = 128;
  int64_t source_channels = 128;
  int64_t caption_channels = 2304;
  int64_t caption_length = 300;
  int64_t patch = 1;  // spatial patch of the embedding (tokens of patch × patch latent pixels)
  double softmax_ratio = 0.25;
  DitVariant variant = DitVariant::kStreaming;
};

// The 2B streaming configuration of the official release.
DitShape dit_shape_2b();

// Generated on `device` with that device's generator (seeded): the same seed gives the same weights
// on the same device type.
io::TensorMap random_dit_weights(const DitShape& shape, uint64_t seed, at::ScalarType dtype = at::kBFloat16,
                                 at::Device device = at::kCPU);

}  // namespace sanastream::model
