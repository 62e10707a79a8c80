// sanastream decode-latents: normalised latents [B, 128, T, h, w] (safetensors) → frames
// (output.video, [B, 3, 1 + 8(T − 1), 32h, 32w], unclamped) through the LTX-2 VAE's non-causal, causal
// or chunk-tile decoder; the causal one whole clip or streamed chunk by chunk.
#include <chrono>
#include <cstdio>

#include "command.h"
#include "core/compare.h"
#include "core/error.h"
#include "core/json_report.h"
#include "core/log.h"
#include "vae_cli.h"

namespace sanastream::cli {

namespace {

struct DecodeCli {
  VaeCliOptions vae;
  std::string decoder;
};

void run(const DecodeCli& d) {
  const VaeCliOptions& o = d.vae;
  const std::string ext = ".safetensors";
  SS_CHECK(o.output.size() > ext.size() && o.output.compare(o.output.size() - ext.size(), ext.size(), ext) == 0,
           "--output: expected a path ending in .safetensors, got '{}'", o.output);
  SS_CHECK(o.chunk >= 0, "--chunk: expected latent frames per streaming call >= 0, got {}", o.chunk);
  const Runtime rt = make_runtime(o.device, o.dtype);
  const model::VaeTiling tiling = model::parse_vae_tiling(o.tile);
  std::optional<model::VaeDecoderKind> kind;
  if (!d.decoder.empty()) kind = model::parse_decoder_kind(d.decoder);
  const io::TensorMap in = io::load_safetensors(o.input);
  std::string name;
  const at::Tensor latents = pick_input_tensor(in, o.input, o.tensor, {"output.latents", "inputs.latent_z"}, &name);
  auto vae = model::load_ltx2_vae(model::resolve_ltx2_vae_source(o.vae, o.vae_config), rt);
  log_info("{}", vae->config().summary());
  const bool cfg_causal = vae->config().decoder_causal;
  if (!kind) kind = cfg_causal ? model::VaeDecoderKind::kCausal : model::VaeDecoderKind::kNonCausal;
  if (*kind == model::VaeDecoderKind::kCausal && !cfg_causal)
    log_warn("decoding causally with a decoder its config marks non-causal (decoder_causal false)");
  SS_CHECK(o.chunk == 0 || *kind == model::VaeDecoderKind::kCausal,
           "--chunk streams the causal decoder only (expected --decoder causal, got {})", model::decoder_kind_name(*kind));
  vae->check_latents(latents);

  ops::reset_peak_memory(rt);
  const auto start = std::chrono::steady_clock::now();
  const at::Tensor z = vae->denormalize(latents);
  at::Tensor frames;
  if (o.chunk == 0) {
    frames = vae->decode(z, *kind, tiling);
  } else {
    model::Ltx2VaeDecodeStream stream(*vae, tiling);
    std::vector<at::Tensor> parts;
    for (int64_t t = 0; t < z.size(2); t += o.chunk)
      parts.push_back(stream.push(z.narrow(2, t, std::min<int64_t>(o.chunk, z.size(2) - t))).to(at::kCPU, at::kFloat));
    frames = at::cat(parts, 2);
  }
  frames = frames.to(at::kCPU, at::kFloat).contiguous();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const ops::PeakMemory mem = ops::peak_memory(rt);
  io::save_safetensors(o.output, {{"output.video", frames}});
  std::printf("%s: output.video %s from %s %s, %s decoder in %.2f s (tiles %s%s), peak RSS %.0f MiB%s\n",
              o.output.c_str(), shape_str(frames.sizes()).c_str(), name.c_str(), shape_str(latents.sizes()).c_str(),
              model::decoder_kind_name(*kind), seconds, model::describe(tiling).c_str(),
              o.chunk ? fmt::format(", {} latent frames per call", o.chunk).c_str() : "", mem.host_rss_mib,
              rt.is_cuda() ? fmt::format(", device peak {:.0f} MiB", mem.device_mib).c_str() : "");
  if (!o.json.empty()) {
    nlohmann::json j = vae_report(*vae, o, tiling, seconds, mem);
    j["decoder"] = model::decoder_kind_name(*kind);
    write_json_report(o.json, j);
  }
}

}  // namespace

void register_decode_latents(CLI::App& app) {
  auto d = std::make_shared<DecodeCli>();
  auto* sub = app.add_subcommand("decode-latents", "Decode normalised latents to frames with the LTX-2 VAE");
  add_vae_cli_options(sub, d->vae, "safetensors holding normalised latents [B, 128, T, h, w] (output.latents or "
                      "inputs.latent_z)", "Latent frames per streaming call of the causal decoder (0 = whole clip)");
  sub->add_option("--decoder", d->decoder, "causal | noncausal | chunk-tile (default: the config's decoder_causal)");
  sub->callback([d] { set_runner([d] { run(*d); }); });
}

}  // namespace sanastream::cli
