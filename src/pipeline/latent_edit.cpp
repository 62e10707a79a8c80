#include "pipeline/latent_edit.h"

#include <chrono>

#include "core/compare.h"
#include "core/error.h"
#include "pipeline/samplers.h"

namespace sanastream::pipeline {

SamplerMode parse_mode(const std::string& mode) {
  if (mode == "streaming") return SamplerMode::kStreaming;
  if (mode == "bidirectional") return SamplerMode::kBidirectional;
  SS_FAIL("--mode: expected streaming or bidirectional, got '{}'", mode);
}

int64_t streaming_call_count(int64_t frames, int first_chunk, int steps, bool efficient_cache) {
  const int64_t chunks = static_cast<int64_t>(chunk_boundaries(frames, first_chunk).size()) - 1;
  return chunks * steps + (efficient_cache ? 0 : chunks - 1);
}

namespace {
const at::Tensor& input(const io::TensorMap& in, const std::string& name) {
  auto it = in.find(name);
  SS_CHECK(it != in.end(), "inputs: missing tensor '{}'", name);
  return it->second;
}
}  // namespace

LatentEditResult latent_edit(const model::HybridDit& dit, const io::TensorMap& inputs, const LatentEditOptions& opt) {
  const auto& cfg = dit.config();
  const at::Tensor& noise = input(inputs, "inputs.noise");
  const at::Tensor& src = input(inputs, "inputs.src_latents");
  SS_CHECK(noise.dim() == 5 && noise.size(1) == cfg.latent_channels,
           "inputs.noise: expected [B, {}, T, H, W] for this model, got {}", cfg.latent_channels,
           shape_str(noise.sizes()));
  SS_CHECK(src.dim() == 5 && src.size(0) == noise.size(0) && src.size(1) == cfg.source_channels &&
               src.sizes().slice(2) == noise.sizes().slice(2),
           "inputs.src_latents: expected {} to match inputs.noise {} with {} channels", shape_str(src.sizes()),
           shape_str(noise.sizes()), cfg.source_channels);
  for (int64_t d = 3; d < 5; ++d)
    SS_CHECK(noise.size(d) <= cfg.rope_positions, "inputs.noise: grid dim {} exceeds the RoPE table", noise.size(d));

  LatentEditResult r;
  DumpSpec dump;
  if (opt.dump) {
    dump.out = &r.dump;
    dump.activation_calls = opt.dump_calls;
    dump.prefix = opt.dump_prefix.empty() && opt.mode == SamplerMode::kBidirectional ? "dpm." : opt.dump_prefix;
  }
  model::Capture caption_capture;
  io::TensorMap caption_acts;
  if (opt.dump && !opt.dump_calls.empty()) caption_capture = {&caption_acts, ""};
  const model::CaptionState cond =
      dit.encode_caption(input(inputs, "inputs.prompt_embeds"), input(inputs, "inputs.prompt_mask"), caption_capture);
  SS_CHECK(cond.y.size(0) == noise.size(0), "inputs.prompt_embeds: batch {} but inputs.noise has batch {}",
           cond.y.size(0), noise.size(0));
  for (const auto& [name, t] : caption_acts)
    for (int c : opt.dump_calls) {
      r.dump[fmt::format("{}call{:02d}.{}", opt.dump_prefix, c, name)] = t;
      if (c == 0 || opt.mode == SamplerMode::kBidirectional) r.dump[opt.dump_prefix + "first_call." + name] = t;
    }

  const auto t0 = std::chrono::steady_clock::now();
  if (opt.mode == SamplerMode::kStreaming) {
    SS_CHECK(opt.cfg <= 1.0, "the streaming sampler has no classifier-free guidance (got --cfg {})", opt.cfg);
    StreamingOptions so;
    so.steps = opt.steps > 0 ? opt.steps : 4;
    so.first_chunk = opt.first_chunk;
    so.efficient_cache = opt.efficient_cache;
    so.rope_limit = opt.rope_limit;
    r.latents = sample_streaming(dit, noise, src, cond, so, dump);
    r.model_calls = streaming_call_count(noise.size(2), so.first_chunk, so.steps, so.efficient_cache);
  } else {
    DpmOptions d;
    d.steps = opt.steps > 0 ? opt.steps : 50;
    d.cfg = opt.cfg >= 0 ? opt.cfg : 6.0;
    model::CaptionState uncond;
    const bool use_cfg = d.cfg != 1.0;
    if (use_cfg) {
      SS_CHECK(inputs.count("inputs.neg_prompt_embeds") && inputs.count("inputs.neg_prompt_mask"),
               "bidirectional mode with --cfg {} needs inputs.neg_prompt_embeds and inputs.neg_prompt_mask", d.cfg);
      uncond = dit.encode_caption(inputs.at("inputs.neg_prompt_embeds"), inputs.at("inputs.neg_prompt_mask"));
    }
    r.latents = sample_dpm(dit, noise, src, cond, use_cfg ? &uncond : nullptr, d, dump);
    r.model_calls = d.steps;
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace sanastream::pipeline
