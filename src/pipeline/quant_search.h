// `sanastream quantize --profile` (issue 15, SPEC §6): chooses a mixed-precision plan by measurement
// on the device it runs on. Per layer group (the quantizable projections, q/k/v together) and
// precision it times the group's GEMMs at the deployment shapes; per candidate (group, depth band,
// precision) it measures the relative RMSE of the final latents against BF16 with the same noise,
// over several prompts and clips of at least 8 chunks; then it adds candidates in order of error per
// millisecond saved while the whole plan's measured error stays under the bound, and measures the
// plan's dit_fps beside BF16's. The VAE (a package's, or LTX-2's shapes with random weights) takes
// FP8 resnets when they save time per chunk, encoding and decoding, and a clip's decoded frames keep
// a PSNR against BF16's of at least the bound. Every figure is saved to a state file as it is
// measured, so a search spans several commands of a bounded length; the plan JSON carries all of them.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "ops/quant.h"
#include "pipeline/bench.h"

namespace sanastream::pipeline {

// Real inputs for the error runs: prompt embeddings and normalised source latents (a data cache's,
// `train-cache --latents`), every prompt on every clip.
struct QuantSearchInputs {
  std::string name;  // what they are (recorded in the search's configuration)
  std::vector<std::pair<at::Tensor, at::Tensor>> prompts;  // embeds [L, Cc], mask [L]
  std::vector<at::Tensor> clips;                           // latents [Cl, T, h, w], T ≥ the runs' frames
};

struct QuantSearchOptions {
  BenchOptions deploy;  // the model, size, device, dtype, first chunk and steps it will run at (part dit)
  int chunks = 8;       // chunks per error run (at least 8)
  int prompts = 2, clips = 2;  // error runs: every prompt on every clip (seeded random captions and latents)
  QuantSearchInputs inputs;    // or these, when it holds any (prompts and clips then count its own)
  double max_error = 0.02;     // relative RMSE of the final latents against BF16
  double min_fps = 0;          // the plan's measured dit_fps must reach it
  double min_vae_psnr = 35;    // dB: the FP8 VAE's frames against BF16's (inputs' first clip, or a smooth seeded one)
  std::vector<ops::Precision> precisions = {ops::Precision::kFP8, ops::Precision::kINT8};
  std::string state;           // measurements so far: read when present, rewritten after each one
  std::string out;             // the plan, written once the search is complete
  double budget_seconds = 540;  // no new measurement starts after this long (the command resumes)
};

struct QuantSearchReport {
  bool complete = false;  // the plan was written
  int measured = 0;       // figures measured by this command
  int reused = 0;         // figures read from the state file
  nlohmann::json summary;  // complete: the plan's measurements (as written into it)
};

// Depth bands: blocks 0–5, 6–13, 14–19 for 20 blocks, else thirds (inclusive ranges).
std::vector<std::pair<int64_t, int64_t>> depth_bands(int64_t depth);

// One layer group ("attn.qkv", "attn.proj", "cross_attn.q_linear", "cross_attn.proj",
// "mlp.inverted_conv", "mlp.point_conv", "mlp.t_conv") over blocks [first, last] at one precision.
struct QuantCandidate {
  std::string group;
  int64_t first = 0, last = 0;
  ops::Precision precision = ops::Precision::kBF16;
  std::string key() const;  // "group:first-last:precision"
};
struct ScoredCandidate {
  QuantCandidate candidate;
  double saved_ms = 0;  // per chunk, from the group timings
  double error = 0;     // alone, measured
};
// The search: the candidates that save time, least error per millisecond saved first, each added
// while the whole plan's error (error_of, measured on the plan so far plus it) stays within max_error;
// a (group, band) takes one precision.
std::vector<QuantCandidate> search_plan(std::vector<ScoredCandidate> scored, double max_error,
                                        const std::function<double(const std::vector<QuantCandidate>&)>& error_of);

QuantSearchReport quant_search(const QuantSearchOptions& opt);

}  // namespace sanastream::pipeline
