// Model packages (SPEC §8): a directory whose model.json names the DiT(s), the LTX-2 VAE and its
// decoder kind, the Gemma-2 text encoder (with its tokenizer), the frame rate, the resolutions and,
// for the bidirectional mode, max_frames. docs/MODELS.md has the schema, an example and the lookup
// order; this file parses and checks a package, finds the one to use, loads its components through
// the components' own loaders, and writes packages of seeded random weights (make-package) or of
// trained parts (assemble-package).
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
#include "model/sentencepiece_model.h"
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
  std::vector<std::array<int64_t, 2>> resolutions;  // [W, H], multiples of pixel_multiple()
  int64_t max_frames = 0;                           // bidirectional clip limit (0: no bidirectional DiT)

  // The DiT for a sampler mode; an Error names the missing model.json entry.
  const PackageDit& dit_for(model::DitVariant variant) const;
  bool has_variant(model::DitVariant variant) const;
  // The pixels per DiT token along each axis: the VAE's spatial ratio × the DiT's patch (every
  // DiT of the package). Processing sizes are multiples of it.
  int64_t pixel_multiple() const;
  nlohmann::json to_json() const;  // a summary for --json reports
};

// Parses and checks DIR/model.json and the files it names (see above). Paths in model.json are
// relative to DIR unless absolute.
ModelPackage load_model_package(const std::string& dir);
// Whether dir is a model package (a directory holding model.json), not a weights file.
bool is_package(const std::string& dir);

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
                                                   const Runtime& rt, const model::QuantPlan& plan = {});
std::unique_ptr<model::Ltx2Vae> load_package_vae(const ModelPackage& pkg, const Runtime& rt,
                                                  model::VaeLayout layout = model::VaeLayout::kAuto);
// A VAE from a model package (a directory with model.json) or a VAE directory (config.json + weights).
std::unique_ptr<model::Ltx2Vae> load_vae(const std::string& package_or_vae_dir, const Runtime& rt);

// ---- Tokenizers ----------------------------------------------------------------------------------

// The pieces of a SentencePiece model (tokenizer.model bytes) in id order, read from its protobuf wire
// format without SentencePiece. Bytes that are not a ModelProto are an Error naming `origin`.
std::vector<model::SpmPiece> read_sentencepiece_pieces(const std::string& model, const std::string& origin);
// Rows of a Gemma-2 embedding for a tokenizer of `pieces` pieces: rounded up to a multiple of 64.
int64_t gemma_vocab_rows(int64_t pieces);

// ---- Packages of seeded random weights (sanastream make-package --random-weights) ----------------

// The shapes of a preset: "tiny" (CPU tests: DiT 2 blocks, one of them softmax, width 224; narrow
// one-resnet VAE; Gemma-2 of width 64), "small" (DiT 8 blocks × 448; the VAE of the golden set, real
// depths at narrow widths; Gemma-2 of width 256), "2b" (SPEC §2's DiT, C 2240, 20 blocks, softmax
// blocks 3, 7, 11, 15, 19, FFN 6720; the LTX-2 VAE; gemma-2-2b-it's shapes) — their VAEs compress 8× in
// time and 32× in space to 128 channels — or "demo" (the embedded demo model of docs/MODELS.md: DiT 8
// blocks × 160, 2 heads of 80, FFN 400, captions 128; a VAE of 32 latent channels compressing 4× in
// time and 8× in space; Gemma-2 of width 128, 2 layers; short side 256 at 16 fps).
// `tokenizer`: a tokenizer.model to use instead of the built-in test pieces; the Gemma vocabulary is
// then its piece count rounded up to 64 (the 2b preset keeps gemma-2's 256000).
struct RandomPackagePreset {
  std::string name;
  model::DitShape dit;
  model::Ltx2VaeConfig vae;
  nlohmann::json text_encoder;  // a transformers Gemma2Config (config.json)
  double fps = 16;
  std::vector<std::array<int64_t, 2>> resolutions;
  int64_t max_frames = 81;  // written with a bidirectional DiT
};
RandomPackagePreset random_package_preset(const std::string& name,  // "tiny" | "small" | "2b" | "demo"
                                          const std::string& tokenizer = "");
// The text encoder `edit` keeps resident beside the DiT and the VAE, on rt: a package's, or (package
// "") the named preset's Gemma-2 with seeded random weights — for memory measurements.
std::unique_ptr<model::Gemma2Model> load_resident_text_encoder(const std::string& package, const std::string& preset,
                                                               uint64_t seed, const Runtime& rt);

struct RandomPackageOptions {
  std::string preset = "tiny";
  std::string tokenizer;                 // a tokenizer.model; "" = the built-in test pieces
  uint64_t seed = 0;
  at::ScalarType dtype = at::kBFloat16;  // bf16 or fp32 weights
  bool bidirectional = false;            // also a bidirectional DiT ("dit_bidirectional", max_frames)
  bool force = false;                    // replace an existing output directory
};

struct PackageReport {
  std::string dir;
  int64_t dit_parameters = 0, dit_bidirectional_parameters = 0, vae_parameters = 0, text_encoder_parameters = 0;
  int64_t bytes = 0;  // all files
  nlohmann::json to_json() const;
};
using RandomPackageReport = PackageReport;

// Writes a complete package into out_dir: everything goes to out_dir.part, which is opened with
// load_model_package() and only then renamed to out_dir. An existing out_dir is an Error unless
// `force` (which replaces only a package directory or an empty one). Same options → byte-identical
// files. SIGINT between components removes the partial directory and throws Interrupted.
PackageReport write_random_package(const RandomPackageOptions& opt, const std::string& out_dir);

// ---- Packages from trained parts (sanastream assemble-package) -----------------------------------

// The parts: `base` (a package: its name, fps, resolutions and max_frames, the DiT's config
// overrides, the text encoder's config.json and tokenizer.model, and — without `text_encoder` — its
// text-encoder weights), `dit` (DiT weights, a train checkpoint's dit_ema.safetensors), `vae` (a VAE
// directory, config.json + diffusion_pytorch_model.safetensors, a checkpoint's vae_ema/) and
// `text_encoder` (Gemma-2 weights, a checkpoint's text_encoder_ema.safetensors; "" = the base's).
struct AssembleOptions {
  std::string base, dit, vae, text_encoder;
  at::ScalarType dtype = at::kBFloat16;  // every floating-point tensor is written in it
  std::string name;         // "" = the base's
  std::string description;  // "" = one naming the parts
  bool force = false;       // replace an existing output directory (a package or an empty one)
};

// Checks every part (each problem one Error naming its option: a missing file, weights that do not
// form the component, a DiT whose latent or caption width does not fit the VAE or the text encoder),
// then writes the package as write_random_package does (OUT.part, opened, renamed), random_weights
// false.
PackageReport assemble_package(const AssembleOptions& opt, const std::string& out_dir);

}  // namespace sanastream::pipeline
