// `sanastream bench`: one honest benchmark interface (CUDA events after warm-up, never zeros).
// Every part streams the same chunks: the official baseline's conditions (2B, 1280×704, BF16, 53
// latent frames, first chunk 5 so the softmax window holds 11 frames, then chunks of 3 latent frames
// = 24 video frames); FPS = 24 / median time of chunks 2 … last−1.
//   dit         the streaming DiT (5 forwards per chunk, 4 with --efficient-cache)
//   vae-encode  the causal VAE encoder, streamed (1 + 8·(first − 1) frames, then 24 per chunk)
//   vae-decode  the causal VAE decoder, streamed (the same chunks of latent frames)
//   e2e         RGB frames in host memory → encode → DiT → decode → RGB frames in host memory;
//               --gpus 2 splits it over two GPUs, --streams K runs K sessions at once (docs/MULTI_GPU.md)
//   gdn         the GDN block core at the 2B shapes, 3- and 5-frame calls: fused kernels vs ATen path
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/ltx2_vae.h"

namespace sanastream::model {
class HybridDit;
struct QuantPlan;
}  // namespace sanastream::model

namespace sanastream::pipeline {

struct BenchOptions {
  std::string part = "dit";
  std::string model;            // empty: the 2B streaming shapes with seeded random weights
  int64_t width = 1280, height = 704;
  int steps = 4;
  bool efficient_cache = false;
  std::string dtype = "bf16";
  std::string device = "cuda";
  int64_t latent_frames = 53;
  int first_chunk = 5;
  bool cuda_graphs = true;
  bool profile = false;          // per-region GPU time of one forward at the steady-state shape
  std::string tile = "auto";     // VAE spatial tiling: SIZE[:OVERLAP] | 0 | auto (off on CUDA, the VAE default on CPU)
  std::string vae_layout = "auto";  // VAE activations: auto | ncdhw | ndhwc (model/ltx2_vae.h)
  uint64_t seed = 0;
  int gpus = 1;                  // e2e: 2 = the VAE on the second GPU, the DiT on the first, pipelined
  int streams = 1;               // e2e: K sessions at once over the visible GPUs
  std::string plan;              // quantization plan file (model/quant_plan.h; FP8 GEMMs or simulated, ops/quant.h)
  double pace = 0;               // e2e: also feed the frames in real time at this rate and measure latency
  int64_t vae_call_latents = 0; // e2e: latent frames a VAE call takes at most (0: a whole chunk)
  bool text_encoder = false;     // e2e: the text encoder resident on the device during the run (as in edit)
};

// Returns the JSON summary (keys of the issue; null where a part did not run) and prints a table.
nlohmann::json run_bench(const BenchOptions& opt);

// The DiT `opt` benchmarks — its package or DiT weights, else the 2B streaming shapes with seeded
// random weights — built with `plan` on opt's device and dtype, and its latent grid at opt's size.
struct BenchDit {
  std::unique_ptr<model::HybridDit> dit;
  std::string name;
  int64_t latent_h = 0, latent_w = 0;
};
BenchDit load_bench_dit(const BenchOptions& opt, const model::QuantPlan& plan);

// Video frames of latent chunk [s, e) for a VAE of temporal ratio tr: 1 + tr·(e − 1) for the first
// chunk, tr·(e − s) after.
int64_t chunk_video_frames(int64_t s, int64_t e, int64_t tr);

// The VAE `opt` benchmarks — its package's, LTX-2's weights, else LTX-2's shapes with seeded random
// weights — with the plan's "vae" precision on opt's device and dtype, the tiling the benchmark
// streams it with, and the frame size and chunk boundaries (latent frames) of opt.
struct BenchVae {
  std::unique_ptr<model::Ltx2Vae> vae;
  std::string name;
  model::VaeTiling tiling;
  int64_t height = 0, width = 0;
  std::vector<int64_t> bounds;
};
BenchVae load_bench_vae(const BenchOptions& opt, const model::QuantPlan& plan);

// FLOPs of one DiT forward over N = T·S tokens attending over `context` cached keys (softmax
// blocks) and a caption of L tokens; the formula is documented in docs/PERF.md.
double dit_forward_flops(int64_t depth, int64_t softmax_blocks, int64_t C, int64_t F, int64_t head_dim,
                         int64_t tokens, int64_t context, int64_t caption);

}  // namespace sanastream::pipeline
