// The layers of the LTX-2 video VAE (diffusers AutoencoderKLLTX2Video / the official causal class):
// the 3×3×3 convolution with causal or symmetric temporal padding, the resnet block with its
// per-pixel RMS norms, the space-to-channel downsampler and channel-to-space upsampler (both with
// their residual paths), and the encoder and decoder stacks built from a config. Names of weights
// follow the diffusers keys. Streaming: every layer that looks at earlier frames owns one slot of a
// VaeCache, so a clip fed in pieces gives exactly the whole-clip result.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "io/safetensors.h"
#include "model/ltx2_vae_config.h"
#include "ops/vae.h"

namespace sanastream::model {

// One layer's state between streaming calls.
struct VaeCacheSlot {
  at::Tensor frames;     // conv: the padded input frames the next window starts with; downsampler: pending frames
  bool started = false;  // conv: history exists; downsampler: first-frame prefix added; upsampler: trim done
};

// The per-layer feature cache of one encoder or decoder (one per spatial tile).
struct VaeCache {
  std::vector<VaeCacheSlot> slots;
};

// Weights while the network is built: read (shape-checked, converted to the runtime's device and dtype,
// every key must be used) or generated (seeded random weights in the same layout). Also hands out the
// cache slot numbers.
class VaeBuildContext {
 public:
  // Read mode: convolution weights are stored in `format` (ChannelsLast3d: the activations' layout too).
  VaeBuildContext(const io::TensorMap& weights, at::TensorOptions options,
                  at::MemoryFormat format = at::MemoryFormat::Contiguous);
  VaeBuildContext(uint64_t seed, at::ScalarType dtype);

  // The tensor `key` of `shape` (read or generated).
  at::Tensor take(const std::string& key, const std::vector<int64_t>& shape);
  int new_slot() { return slots_++; }
  int slots() const { return slots_; }
  void reset_slots() { slots_ = 0; }  // the next network numbers its cache slots from 0
  // Read mode: throws when the weights hold tensors the configured network does not use.
  void check_all_used() const;
  const io::TensorMap& generated() const { return generated_; }
  at::MemoryFormat format() const { return format_; }

 private:
  const io::TensorMap* weights_ = nullptr;
  at::TensorOptions options_;
  at::MemoryFormat format_ = at::MemoryFormat::Contiguous;
  std::set<std::string> used_;
  std::optional<at::Generator> gen_;
  io::TensorMap generated_;
  int slots_ = 0;
};

// LTX2VideoCausalConv3d (key.conv.weight/bias): kt×kh×kw, spatial padding kh/2, kw/2 by mode; temporal
// padding by replicating the first frame kt−1 times (causal) or both edge frames (kt−1)/2 times.
class VaeConv {
 public:
  VaeConv(VaeBuildContext& b, const std::string& key, int64_t in, int64_t out, VaePadding pad, int64_t stride = 1);
  // x: [B, in, T, H, W] → [B, out, T', H', W'], with norm_silu of SiLU(x / sqrt(mean_c(x²) + 1e-8)) (the
  // resnets' prologue, fused into building the padded input). A cache (causal only) carries the padded
  // input frames the next call's first output window needs, so split inputs give the whole-clip
  // result; T may be 0.
  at::Tensor forward(const at::Tensor& x, bool causal, VaeCache* cache, bool norm_silu = false) const;
  int64_t out_channels() const { return b_.size(0); }
  // Keeps only the first n output channels (the encoder head's mode()).
  void keep_outputs(int64_t n);
  // Runs the convolution in `p` (kBF16: the model dtype; kFP8, for convolutions fed by norm_silu only:
  // ops::conv3d_fp8 where it runs, else its simulation). docs/QUANT.md, "The VAE in FP8".
  void set_precision(ops::Precision p);

 private:
  at::Tensor w_, b_;  // [out, in, kt, kh, kw] (undefined with the FP8 convolution), [out]
  ops::Precision precision_ = ops::Precision::kBF16;
  ops::Fp8ConvWeight w8_;  // the FP8 convolution's weight (else undefined)
  at::Tensor out_scale_, bias_f32_;  // the FP8 convolution's [out] fp32 scale (input × weight) and bias
  int64_t in_ = 0;
  VaePadding pad_;
  int64_t stride_;
  int slot_;
  at::MemoryFormat fmt_;
};

// LTX2VideoResnetBlock3d: x + conv2(SiLU(norm(conv1(SiLU(norm(x)))))), norm = x / sqrt(mean_c(x²) + 1e-8);
// a width change adds LayerNorm(affine) + 1×1×1 conv on the shortcut.
class VaeResnet {
 public:
  VaeResnet(VaeBuildContext& b, const std::string& prefix, int64_t in, int64_t out, double eps, VaePadding pad);
  at::Tensor forward(const at::Tensor& x, bool causal, VaeCache* cache) const;  // [B, in, T, H, W] → [B, out, …]
  void set_precision(ops::Precision p);  // both 3×3×3 convolutions (VaeConv::set_precision)

 private:
  VaeConv conv1_, conv2_;
  at::Tensor norm3_w_, norm3_b_, short_w_, short_b_;  // [in], [in], [out, in, 1, 1, 1], [out] or undefined
  double eps_;
};

// LTXVideoDownsampler3d: stride (st, sh, sw), space-to-channel of conv(x) plus the group mean of
// space-to-channel(x); st > 1 prepends the first frame once and groups frames in pairs.
class VaeDownsampler {
 public:
  VaeDownsampler(VaeBuildContext& b, const std::string& prefix, int64_t in, int64_t out, VaeResample kind,
                 VaePadding pad);
  at::Tensor forward(const at::Tensor& x, bool causal, VaeCache* cache) const;  // [B, in, T, H, W] → [B, out, T/st, …]

 private:
  std::array<int64_t, 3> stride_;
  int64_t out_, group_;
  VaeConv conv_;
  int slot_;
  at::MemoryFormat fmt_;
};

// LTXVideoUpsampler3d: channel-to-space of conv(x) (and, residual, of x with its channels repeated),
// the first st − 1 frames dropped (once per stream).
class VaeUpsampler {
 public:
  VaeUpsampler(VaeBuildContext& b, const std::string& prefix, int64_t in, VaeResample kind, bool residual,
               int64_t factor, VaePadding pad);
  at::Tensor forward(const at::Tensor& x, bool causal, VaeCache* cache) const;  // [B, in, T, H, W] → [B, in/factor, T·st − trim, …]

 private:
  std::array<int64_t, 3> stride_;
  bool residual_;
  int64_t factor_;
  VaeConv conv_;
  int slot_;
  at::MemoryFormat fmt_;
};

// LTX2VideoEncoder3d, producing the posterior mode: patchify (space-to-channel by patch_size), conv_in,
// down blocks, mid block, norm, SiLU, conv_out (latent + 1 channels, of which the first latent are the mean).
class VaeEncoder {
 public:
  VaeEncoder(VaeBuildContext& b, const Ltx2VaeConfig& cfg);
  // video: [B, Cin, F, H, W] → mode [B, Cl, T, H/sr, W/sr] in the model dtype.
  at::Tensor forward(const at::Tensor& video, bool causal, VaeCache* cache) const;
  int cache_slots() const { return slots_; }
  void set_resnet_precision(ops::Precision p);  // every resnet's convolutions

 private:
  struct Block {
    std::vector<VaeResnet> resnets;
    std::unique_ptr<VaeConv> conv_down;           // "conv" kind
    std::unique_ptr<VaeDownsampler> downsampler;  // spatial/temporal/spatiotemporal
  };
  int64_t patch_;
  std::unique_ptr<VaeConv> conv_in_, conv_out_;
  std::vector<Block> blocks_;
  std::vector<VaeResnet> mid_;
  int slots_ = 0;
  at::MemoryFormat fmt_;
};

// LTX2VideoDecoder3d: conv_in, mid block, up blocks (optional width-changing resnet, upsampler,
// resnets), norm, SiLU, conv_out, unpatchify.
class VaeDecoder {
 public:
  VaeDecoder(VaeBuildContext& b, const Ltx2VaeConfig& cfg);
  // latents (denormalised): [B, Cl, T, h, w] → frames [B, Cout, F, h·sr, w·sr] in the model dtype.
  at::Tensor forward(const at::Tensor& latents, bool causal, VaeCache* cache) const;
  int cache_slots() const { return slots_; }
  void set_resnet_precision(ops::Precision p);  // every resnet's convolutions

 private:
  struct Block {
    std::unique_ptr<VaeResnet> conv_in;
    std::unique_ptr<VaeUpsampler> upsampler;
    std::vector<VaeResnet> resnets;
  };
  int64_t patch_;
  std::unique_ptr<VaeConv> conv_in_, conv_out_;
  std::vector<VaeResnet> mid_;
  std::vector<Block> blocks_;
  int slots_ = 0;
  at::MemoryFormat fmt_;
};

}  // namespace sanastream::model
