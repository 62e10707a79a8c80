// golden-check for VAE sets (ltx2_vae_small): both encodes (whole clip, and the official chunked causal
// encode: F mod 8 frames then 8 at a time) and every decode (non-causal, chunk-tile, causal whole clip,
// causal streamed with the recorded chunking), each reference tensor by name.
#include "core/error.h"
#include "io/checkpoint.h"
#include "model/ltx2_vae.h"
#include "pipeline/golden_kinds.h"

namespace sanastream::pipeline {

using nlohmann::json;

namespace {

at::Tensor cpu_f32(const at::Tensor& t) { return t.detach().to(at::kCPU, at::kFloat).contiguous(); }

void run_vae_set(const GoldenSet& set, const Runtime& rt, GoldenSetResult& result) {
  model::Ltx2VaeConfig cfg = model::parse_ltx2_vae_config(set.config);
  const io::TensorMap weights = io::load_weights(set.dir + "/diffusion_pytorch_model.safetensors").tensors;
  model::Ltx2Vae vae(weights, cfg, rt);
  const io::TensorMap inputs = set.load_inputs();
  const io::TensorMap refs = set.load_references();
  auto input = [&](const char* name) {
    auto it = inputs.find(name);
    SS_CHECK(it != inputs.end(), "{}: inputs.safetensors has no '{}'", set.name, name);
    return it->second;
  };
  const at::Tensor video = input("inputs.video");     // [1, 3, F, H, W]
  const at::Tensor z = input("inputs.latent_z");      // [1, Cl, T, h, w], normalised
  const int64_t tr = cfg.temporal_ratio();
  io::TensorMap ours;

  const at::Tensor mode = vae.encode(video);
  ours["enc.diffusers.mode"] = cpu_f32(mode);
  ours["enc.diffusers.normalized"] = cpu_f32(vae.normalize(mode));

  // The official causal encode: a first call of F mod tr frames (tr when that is 0), then tr at a time.
  model::Ltx2VaeEncodeStream enc(vae);
  std::vector<at::Tensor> parts;
  const int64_t F = video.size(2);
  for (int64_t start = 0, step = F % tr ? F % tr : tr; start < F; start += step, step = tr)
    parts.push_back(enc.push(video.narrow(2, start, std::min(step, F - start))));
  enc.finish();
  const at::Tensor chunked = at::cat(parts, 2);
  ours["enc.causal_chunked.mode"] = cpu_f32(chunked);
  ours["enc.causal_chunked.normalized"] = cpu_f32(vae.normalize(chunked));

  const at::Tensor zd = vae.denormalize(z);
  ours["dec.input_denormalized"] = cpu_f32(zd);
  const at::Tensor noncausal = cpu_f32(vae.decode(zd, model::VaeDecoderKind::kNonCausal));
  ours["dec.diffusers"] = noncausal;
  ours["dec.causal_class_noncausal_full"] = noncausal;
  ours["dec.chunk_tile"] = cpu_f32(vae.decode(zd, model::VaeDecoderKind::kChunkTile));
  ours["dec.causal_full"] = cpu_f32(vae.decode(zd, model::VaeDecoderKind::kCausal));

  // The streamed causal decode, chunked as recorded: frames per call → latent frames per call.
  auto cf = refs.find("dec.causal_stream.chunk_frames");
  if (cf != refs.end()) {
    model::Ltx2VaeDecodeStream dec(vae);
    std::vector<at::Tensor> frames;
    int64_t t0 = 0;
    const at::Tensor counts = cf->second.to(at::kLong).flatten();
    for (int64_t i = 0; i < counts.numel(); ++i) {
      const int64_t f = counts[i].item<int64_t>();
      const int64_t lat = i == 0 ? (f - 1) / tr + 1 : f / tr;
      SS_CHECK(lat >= 1 && (i == 0 ? (f - 1) % tr : f % tr) == 0 && t0 + lat <= zd.size(2),
               "{}: dec.causal_stream.chunk_frames {} does not split {} latent frames", set.name, f, zd.size(2));
      frames.push_back(dec.push(zd.narrow(2, t0, lat)));
      t0 += lat;
    }
    ours["dec.causal_stream"] = cpu_f32(at::cat(frames, 2));
  }

  const double thr = rt.dtype == at::kBFloat16 ? 3e-2 : 1e-4;  // SPEC §9: VAE latents and frames
  compare_references(refs, ours, [&](const std::string&) { return thr; }, result);
}

}  // namespace

GoldenKind golden_vae_kind() {
  return {"vae", [](const json& c) { return detect_golden_kind_name(c) == "vae"; }, run_vae_set};
}

}  // namespace sanastream::pipeline
