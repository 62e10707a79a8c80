// sanastream encode-prompt: an instruction → the caption tensors latent-edit reads
// (inputs.prompt_embeds BF16 [1, 1, 300, C], inputs.prompt_mask I64 [1, 300], and with --negative
// the inputs.neg_prompt_* pair), through the Gemma-2 text encoder and the official assembly.
#include <chrono>
#include <cstdio>

#include "command.h"
#include "core/compare.h"
#include "core/error.h"
#include "core/json_report.h"
#include "core/log.h"
#include "io/safetensors.h"
#include "pipeline/prompt_encoder.h"

namespace sanastream::cli {

namespace {
struct EncodePromptCli {
  std::string model, prompt, mode = "streaming", output, inputs, negative, cache_dir, dtype = "fp32",
      device = "cpu", attention = "eager", json;
  CLI::Option* negative_opt = nullptr;
};

nlohmann::json describe(const pipeline::PromptEmbedding& e) {
  return {{"tokens", e.tokens},
          {"max_length", e.max_length},
          {"truncated", e.truncated},
          {"valid_positions", e.mask.sum().item<int64_t>()},
          {"source", e.source}};
}

void run(const EncodePromptCli& o) {
  const auto start = std::chrono::steady_clock::now();
  const pipeline::PromptMode mode = pipeline::parse_prompt_mode(o.mode);
  pipeline::check_prompt_text(o.prompt);  // before loading the model
  const Runtime rt = make_runtime(o.device, o.dtype);
  io::TensorMap out = o.inputs.empty() ? io::TensorMap{} : io::load_safetensors(o.inputs);
  pipeline::PromptEncoder enc(o.model, rt, model::parse_gemma2_attention(o.attention), o.cache_dir);
  log_info("{}", enc.model().config().summary());

  nlohmann::json report = {{"output", o.output}, {"mode", o.mode},         {"dtype", o.dtype},
                           {"device", o.device}, {"attention", o.attention}, {"model", enc.model().config().to_json()}};
  auto put = [&](const std::string& prefix, const pipeline::PromptEmbedding& e) {
    const int64_t L = e.embeds.size(0), C = e.embeds.size(1);
    out["inputs." + prefix + "prompt_embeds"] = e.embeds.to(at::kBFloat16).reshape({1, 1, L, C});
    out["inputs." + prefix + "prompt_mask"] = e.mask.reshape({1, L});
    std::printf("%s: inputs.%sprompt_embeds (1, 1, %lld, %lld), %lld of %lld positions valid (%lld tokens, max %lld%s)\n",
                o.output.c_str(), prefix.c_str(), static_cast<long long>(L), static_cast<long long>(C),
                static_cast<long long>(e.mask.sum().item<int64_t>()), static_cast<long long>(L),
                static_cast<long long>(e.tokens), static_cast<long long>(e.max_length),
                e.truncated ? ", truncated" : "");
  };
  const pipeline::PromptEmbedding pos = enc.encode(o.prompt, mode);
  put("", pos);
  report["prompt"] = describe(pos);
  if (o.negative_opt->count() > 0) {
    const pipeline::PromptEmbedding neg = enc.encode_negative(o.negative);
    put("neg_", neg);
    report["negative"] = describe(neg);
  }
  io::save_safetensors(o.output, out);
  report["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  report["encoder_runs"] = enc.encoder_runs();
  if (!o.json.empty()) write_json_report(o.json, report);
}
}  // namespace

void register_encode_prompt(CLI::App& app) {
  auto o = std::make_shared<EncodePromptCli>();
  auto* sub = app.add_subcommand(
      "encode-prompt", "Encode an instruction with the Gemma-2 text encoder (inputs.prompt_embeds / prompt_mask)");
  sub->add_option("--model", o->model, "Text-encoder directory: config.json, weights, tokenizer.model")->required();
  sub->add_option("-p,--prompt", o->prompt, "The instruction")->required();
  sub->add_option("--mode", o->mode, "streaming | bidirectional (appends \" motion score: 10.\")")
      ->capture_default_str();
  sub->add_option("--output", o->output, "Output safetensors")->required();
  o->negative_opt = sub->add_option("--negative", o->negative,
                                    "Also encode a negative prompt (inputs.neg_prompt_*); without TEXT the official "
                                    "default of the bidirectional mode")
                        ->expected(0, 1)
                        ->type_name("[TEXT]")
                        ->default_str(pipeline::kDefaultNegativePrompt);
  sub->add_option("--inputs", o->inputs,
                  "Copy every tensor of this safetensors file into the output (e.g. inputs.noise, "
                  "inputs.src_latents), so the output feeds latent-edit");
  sub->add_option("--cache-dir", o->cache_dir, "Keep embeddings on disk per prompt (reused across runs)");
  sub->add_option("--attention", o->attention, "eager (soft-capped logits) | sdpa")->capture_default_str();
  sub->add_option("--dtype", o->dtype, "fp32 | bf16")->capture_default_str();
  sub->add_option("--device", o->device, "cpu | cuda[:N]")->capture_default_str();
  add_json_option(sub, &o->json);
  sub->callback([o] { set_runner([o] { run(*o); }); });
}

}  // namespace sanastream::cli
