// Model packages (SPEC §8): a directory whose model.json names the DiT(s), the LTX-2 VAE and its
// decoder kind, the Gemma-2 text encoder (with its tokenizer), the frame rate, the resolutions and,
// for the bidirectional mode, max_frames. docs/MODELS.md has the schema, an example and the lookup
// order; this file parses and checks a package, finds the one to use, loads its components through
// the components' own loaders, and writes packages of seeded random weights (make-package).
//
// Opening a package checks everything that can be checked without reading weight data: the JSON
// (keys, types, values), that every file exists, the VAE and text-encoder configs, every DiT and
// text-encoder tensor's shape (from the safetensors headers) and the agreement between the parts
// (latent channels, caption width = text-encoder width, resolutions vs the VAE's compression, the
// decoder kind vs the VAE config). The first problem is one Error line naming model.json and the key.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/dit_config.h"
#include "model/dit_random.h"
#include "model/gemma2.h"
#include "model/ltx2_vae.h"
#include "pipeline/dit_loader.h"

namespace sanastream::pipeline {

constexpr int64_t kPackageFormatVersion = 1;

// One DiT of a package: its weights (.safetensors or a shard index) and optional config overrides
// (a golden-style config.json or bare override keys; without it everything is detected).
struct PackageDit {
  std::string weights;       // resolved path
  std::string config;        // "" = detected from the weights
  model::DitConfig detected; // from the weights' shapes (and the overrides)
};

struct PackageVae {
  std::string path;                     // the diffusers directory (config.json + weights)
  model::VaeDecoderKind decoder = model::VaeDecoderKind::kCausal;  // kCausal or kChunkTile
  model::Ltx2VaeConfig config;
};

// A Gemma-2 directory in the gemma-2-2b-it release layout: config.json, model.safetensors (or a
// shard index) and tokenizer.model. Prompts are encoded with
// PromptEncoder(package.text_encoder.path, ...) (prompt_encoder.h; needs SentencePiece).
struct PackageTextEncoder {
  std::string path;
  model::Gemma2Config config;
};

struct ModelPackage {
  std::string dir;
  std::string name;
  std::string description;
  bool random_weights = false;  // seeded random weights: the outputs are noise (tests, benchmarks)
  PackageDit dit;                               // streaming or bidirectional
  std::optional<PackageDit> dit_bidirectional;  // a second, bidirectional DiT beside a streaming "dit"
  PackageVae vae;
  PackageTextEncoder text_encoder;
  double fps = 16;
  std::vector<std::array<int64_t, 2>> resolutions;  // [W, H], multiples of the VAE's spatial ratio
  int64_t max_frames = 0;                           // bidirectional clip limit (0: no bidirectional DiT)

  // The DiT for a sampler mode; an Error names the missing model.json entry.
  const PackageDit& dit_for(model::DitVariant variant) const;
  bool has_variant(model::DitVariant variant) const;
  nlohmann::json to_json() const;  // a summary for --json reports
};

// Parses and checks DIR/model.json and the files it names (see above). Paths in model.json are
// relative to DIR unless absolute.
ModelPackage load_model_package(const std::string& dir);

// Which package to use: `cli_model` (--model) when given; else $SANASTREAM_MODEL; else the demo
// package beside the executable, <exe dir>/models/demo; else the installed one,
// <exe dir>/../share/sanastream/models/demo. A named directory without model.json, or no package at
// all, is one Error that names --model. exe_dir "" = the running executable's directory.
struct ModelChoice {
  std::string dir;
  std::string source;  // "--model", "SANASTREAM_MODEL" or "demo package"
};
ModelChoice resolve_model_dir(const std::string& cli_model, const std::string& exe_dir = "");

// The components, through their own loaders (dit_loader, ltx2_vae).
DitSource package_dit_source(const PackageDit& dit);
std::unique_ptr<model::HybridDit> load_package_dit(const ModelPackage& pkg, model::DitVariant variant,
                                                   const Runtime& rt);
std::unique_ptr<model::Ltx2Vae> load_package_vae(const ModelPackage& pkg, const Runtime& rt);

// ---- Packages of seeded random weights (sanastream make-package --random-weights) ----------------

// The shapes of a preset: "tiny" (CPU tests: DiT 2 blocks, one of them softmax, width 224; narrow
// one-resnet VAE; Gemma-2 of width 64), "small" (DiT 8 blocks × 448; the VAE of the golden set, real
// depths at narrow widths; Gemma-2 of width 256) or "2b" (SPEC §2's DiT, C 2240, 20 blocks, softmax
// blocks 3, 7, 11, 15, 19, FFN 6720; the LTX-2 VAE; gemma-2-2b-it's shapes). Every VAE compresses
// 8× in time and 32× in space to 128 channels, as the DiT expects.
struct RandomPackagePreset {
  std::string name;
  model::DitShape dit;
  model::Ltx2VaeConfig vae;
  nlohmann::json text_encoder;  // a transformers Gemma2Config (config.json)
  double fps = 16;
  std::vector<std::array<int64_t, 2>> resolutions;
  int64_t max_frames = 81;  // written with a bidirectional DiT
};
RandomPackagePreset random_package_preset(const std::string& name);  // "tiny" | "small" | "2b"

struct RandomPackageOptions {
  std::string preset = "tiny";
  uint64_t seed = 0;
  at::ScalarType dtype = at::kBFloat16;  // bf16 or fp32 weights
  bool bidirectional = false;            // also a bidirectional DiT ("dit_bidirectional", max_frames)
  bool force = false;                    // replace an existing output directory
};

struct RandomPackageReport {
  std::string dir;
  int64_t dit_parameters = 0, dit_bidirectional_parameters = 0, vae_parameters = 0, text_encoder_parameters = 0;
  int64_t bytes = 0;  // all files
  nlohmann::json to_json() const;
};

// Writes a complete package into out_dir: everything goes to out_dir.part, which is opened with
// load_model_package() and only then renamed to out_dir. An existing out_dir is an Error unless
// `force`. Same options → byte-identical files. SIGINT between components removes the partial
// directory and throws Interrupted.
RandomPackageReport write_random_package(const RandomPackageOptions& opt, const std::string& out_dir);

}  // namespace sanastream::pipeline
