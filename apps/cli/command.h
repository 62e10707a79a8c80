// How a subcommand plugs into the `sanastream` binary: each cmd_*.cpp defines one
// register_<name>(CLI::App&) that adds its subcommand, binds options to a struct it owns and
// sets the callback that runs it. Errors are thrown as sanastream::Error; main() maps them to
// exit codes (0 ok, 1 error, 2 usage, 130 interrupted).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

namespace sanastream::cli {

// The selected subcommand's body; main() runs it after parsing.
using Runner = std::function<void()>;
void set_runner(Runner r);

// Adds the --json FILE option ("-" = stdout) to a subcommand that reports.
CLI::Option* add_json_option(CLI::App* sub, std::string* target);

void register_info(CLI::App& app);
void register_convert(CLI::App& app);
void register_latent_edit(CLI::App& app);
void register_golden_check(CLI::App& app);
void register_bench(CLI::App& app);
void register_quantize(CLI::App& app);
void register_encode_video(CLI::App& app);
void register_decode_latents(CLI::App& app);
void register_make_package(CLI::App& app);
void register_assemble_package(CLI::App& app);  // cmd_make_package.cpp
void register_train(CLI::App& app);  // train and train-cache
#ifdef SANASTREAM_HAS_SENTENCEPIECE
void register_encode_prompt(CLI::App& app);  // needs SentencePiece (the tokenizer)
#endif
#ifdef SANASTREAM_WITH_EVAL
void register_eval(CLI::App& app);  // needs FFmpeg and OpenCV
#endif
#ifdef SANASTREAM_WITH_MAKE_TARGET
void register_make_target(CLI::App& app);  // needs FFmpeg
#endif
#ifdef SANASTREAM_HAS_SPM_TRAINER
void register_train_tokenizer(CLI::App& app);  // needs libsentencepiece_train
#endif
#ifdef SANASTREAM_WITH_EDIT
void register_edit(CLI::App& app);  // needs FFmpeg and SentencePiece
#endif

}  // namespace sanastream::cli
