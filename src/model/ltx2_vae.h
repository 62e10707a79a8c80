// The LTX-2 video VAE (SPEC §4): frames in [−1, 1] ↔ latents, from the diffusers layout
// (config.json + diffusion_pytorch_model.safetensors). One code path for CPU and CUDA, fp32 and bf16.
//   encode:  causal (or non-causal, as configured) whole-clip encode → posterior mode; normalize() maps it
//            to the DiT's latent space, (z − latents_mean)·scaling_factor/latents_std.
//   decode:  the non-causal decoder, the causal decoder, and the release's chunk-tile decode (latent tiles of
//            tile_frames/ratio + 1 frames every stride_frames/ratio, blended linearly over
//            tile_frames − stride_frames frames).
//   streams: Ltx2VaeEncodeStream / Ltx2VaeDecodeStream take frames / latent frames in pieces and keep a
//            per-layer cache, giving exactly the whole-clip causal result.
//   tiling:  frames larger than a tile are split into overlapping spatial tiles (each with its own stream
//            cache) blended with linear ramps, so memory stays bounded however large the frame.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/runtime.h"
#include "model/ltx2_vae_blocks.h"

namespace sanastream::model {

enum class VaeDecoderKind { kNonCausal, kCausal, kChunkTile };
const char* decoder_kind_name(VaeDecoderKind k);
VaeDecoderKind parse_decoder_kind(const std::string& name);  // "noncausal" | "causal" | "chunk-tile"

// Spatial tiling in pixels (multiples of the spatial compression ratio). size 0 turns it off; a frame
// is tiled when it is larger than `size` along either axis. Tiles overlap by at least `overlap`.
struct VaeTiling {
  int64_t size = 0;
  int64_t overlap = 0;
};
VaeTiling default_vae_tiling();
// "SIZE:OVERLAP", "SIZE" (overlap SIZE/2, the default's proportion) or "0" / "off".
VaeTiling parse_vae_tiling(const std::string& spec);
std::string describe(const VaeTiling& t);

// The release's chunk-tile decode (enable_tiling(tile_sample_min_num_frames=24, tile_sample_stride_num_frames=8)).
struct VaeChunkTile {
  int64_t tile_frames = 24;
  int64_t stride_frames = 8;
};

// How the activations lie in memory: channels-last 3-D (NDHWC: cuDNN's tensor-core layout, and rows of
// channels for the per-pixel norms) or NCDHW. Auto: channels-last on CUDA, NCDHW on the CPU.
enum class VaeLayout { kAuto, kChannelsFirst, kChannelsLast };
VaeLayout parse_vae_layout(const std::string& name);  // "auto" | "ncdhw" | "ndhwc"
const char* layout_name(VaeLayout l);

class Ltx2Vae {
 public:
  // Weights are checked against the config (every tensor present, shaped as the config implies, none
  // left over) and converted to rt's device and dtype.
  Ltx2Vae(const io::TensorMap& weights, Ltx2VaeConfig cfg, const Runtime& rt, VaeLayout layout = VaeLayout::kAuto);

  const Ltx2VaeConfig& config() const { return cfg_; }
  const Runtime& runtime() const { return rt_; }
  VaeLayout layout() const { return layout_; }  // never kAuto

  // video: [B, Cin, 1 + k·tr, H, W] in [−1, 1], H and W multiples of sr (tr, sr: the compression ratios)
  // → the posterior mode [B, Cl, 1 + k, H/sr, W/sr] in the model dtype.
  at::Tensor encode(const at::Tensor& video, const VaeTiling& tiling = {}) const;
  // [B, Cl, T, h, w]: (z − latents_mean)·scaling_factor/latents_std, and its inverse z·std/sf + mean.
  at::Tensor normalize(const at::Tensor& mode) const;
  at::Tensor denormalize(const at::Tensor& latents) const;
  // latents (denormalised): [B, Cl, T, h, w] → frames [B, Cout, 1 + (T − 1)·tr, h·sr, w·sr], model dtype.
  at::Tensor decode(const at::Tensor& latents, VaeDecoderKind kind, const VaeTiling& tiling = {},
                    const VaeChunkTile& chunk_tile = {}) const;

  // The resnets' 3×3×3 convolutions in p (a plan's "vae", docs/QUANT.md): kFP8 runs them on cuDNN's
  // FP8 convolution where it exists, else simulates it; the other convolutions stay in the model dtype.
  void set_resnet_precision(ops::Precision p);
  ops::Precision resnet_precision() const { return resnet_precision_; }

  const VaeEncoder& encoder() const { return *enc_; }
  const VaeDecoder& decoder() const { return *dec_; }
  // Input checks with one clear message each (shared by the streams).
  void check_frames(const at::Tensor& video, bool whole_clip) const;
  void check_latents(const at::Tensor& latents) const;

 private:
  at::Tensor decode_whole(const at::Tensor& z, bool causal, const VaeTiling& tiling) const;

  Ltx2VaeConfig cfg_;
  Runtime rt_;
  VaeLayout layout_;
  std::unique_ptr<VaeEncoder> enc_;
  std::unique_ptr<VaeDecoder> dec_;
  at::Tensor mean_, std_;  // [1, Cl, 1, 1, 1] model dtype
  ops::Precision resnet_precision_ = ops::Precision::kBF16;
};

// Causal encoding in pieces: push() takes any number of frames and returns the latent frames they
// complete (latent frame 0 after frame 0, latent frame j after frame j·tr), equal to the whole-clip encode.
class Ltx2VaeEncodeStream {
 public:
  explicit Ltx2VaeEncodeStream(const Ltx2Vae& vae, const VaeTiling& tiling = {});
  // frames: [B, Cin, n, H, W], n ≥ 1, the same B, H, W every call → mode [B, Cl, t, H/sr, W/sr] (t may be 0).
  at::Tensor push(const at::Tensor& frames);
  // Throws unless the frames so far form whole latent frames (1 + k·tr).
  void finish() const;
  int64_t frames_pushed() const { return frames_; }

 private:
  const Ltx2Vae& vae_;
  VaeTiling tiling_;
  std::vector<VaeCache> caches_;  // one per spatial tile
  std::vector<int64_t> shape_;    // B, C, H, W of the first push
  int64_t frames_ = 0;
};

// Causal decoding in pieces: push() takes latent frames (denormalised) and returns their frames
// (1 + (t − 1)·tr for the first call, t·tr after), equal to the whole-clip causal decode.
class Ltx2VaeDecodeStream {
 public:
  explicit Ltx2VaeDecodeStream(const Ltx2Vae& vae, const VaeTiling& tiling = {});
  at::Tensor push(const at::Tensor& latents);  // [B, Cl, t, h, w], t ≥ 1 → [B, Cout, n, h·sr, w·sr]

 private:
  const Ltx2Vae& vae_;
  VaeTiling tiling_;
  std::vector<VaeCache> caches_;
  std::vector<int64_t> shape_;
};

// A VAE directory (config.json + diffusion_pytorch_model.safetensors, or a folder holding them in
// vae/), or a weights file with config.json beside it. `config_path` overrides the config.
struct Ltx2VaeSource {
  std::string config_path;
  std::string weights_path;
};
Ltx2VaeSource resolve_ltx2_vae_source(const std::string& path, const std::string& config_path = "");
std::unique_ptr<Ltx2Vae> load_ltx2_vae(const Ltx2VaeSource& src, const Runtime& rt, VaeLayout layout = VaeLayout::kAuto);

// Seeded random weights for a config, in the diffusers layout (tests, measurements).
io::TensorMap random_ltx2_vae_weights(const Ltx2VaeConfig& cfg, uint64_t seed, at::ScalarType dtype = at::kFloat);

}  // namespace sanastream::model
