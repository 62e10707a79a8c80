// sanastream encode-video: frames [B, 3, 1 + 8k, H, W] in [−1, 1] (safetensors) → normalised latents
// (output.latents, the DiT's latent space) through the LTX-2 VAE's causal encoder, whole clip or streamed.
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

void run(const VaeCliOptions& o) {
  const std::string ext = ".safetensors";
  SS_CHECK(o.output.size() > ext.size() && o.output.compare(o.output.size() - ext.size(), ext.size(), ext) == 0,
           "--output: expected a path ending in .safetensors, got '{}'", o.output);
  SS_CHECK(o.chunk >= 0, "--chunk: expected frames per streaming call >= 0, got {}", o.chunk);
  const Runtime rt = make_runtime(o.device, o.dtype);
  const model::VaeTiling tiling = model::parse_vae_tiling(o.tile);
  const io::TensorMap in = io::load_safetensors(o.input);
  std::string name;
  const at::Tensor video = pick_input_tensor(in, o.input, o.tensor, {"inputs.video"}, &name);
  auto vae = model::load_ltx2_vae(model::resolve_ltx2_vae_source(o.vae, o.vae_config), rt);
  log_info("{}", vae->config().summary());
  vae->check_frames(video, /*whole_clip=*/true);

  ops::reset_peak_memory(rt);
  const auto start = std::chrono::steady_clock::now();
  at::Tensor mode;
  if (o.chunk == 0) {
    mode = vae->encode(video, tiling);
  } else {
    model::Ltx2VaeEncodeStream stream(*vae, tiling);
    std::vector<at::Tensor> parts;
    for (int64_t f = 0; f < video.size(2); f += o.chunk)
      parts.push_back(stream.push(video.narrow(2, f, std::min<int64_t>(o.chunk, video.size(2) - f))));
    stream.finish();
    mode = at::cat(parts, 2);
  }
  const at::Tensor latents = vae->normalize(mode).to(at::kCPU, at::kFloat).contiguous();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const ops::PeakMemory mem = ops::peak_memory(rt);
  io::save_safetensors(o.output, {{"output.latents", latents}});
  std::printf("%s: output.latents %s from %s %s in %.2f s (tiles %s%s), peak RSS %.0f MiB%s\n", o.output.c_str(),
              shape_str(latents.sizes()).c_str(), name.c_str(), shape_str(video.sizes()).c_str(), seconds,
              model::describe(tiling).c_str(), o.chunk ? fmt::format(", {} frames per call", o.chunk).c_str() : "",
              mem.host_rss_mib, rt.is_cuda() ? fmt::format(", device peak {:.0f} MiB", mem.device_mib).c_str() : "");
  if (!o.json.empty()) write_json_report(o.json, vae_report(*vae, o, tiling, seconds, mem));
}

}  // namespace

void register_encode_video(CLI::App& app) {
  auto o = std::make_shared<VaeCliOptions>();
  auto* sub = app.add_subcommand("encode-video", "Encode frames to normalised latents with the LTX-2 VAE");
  add_vae_cli_options(sub, *o, "safetensors holding the frames [B, 3, 1 + 8k, H, W] in [-1, 1] (inputs.video)",
                      "Frames per streaming call of the causal encoder (0 = whole clip at once)");
  sub->callback([o] { set_runner([o] { run(*o); }); });
}

}  // namespace sanastream::cli
