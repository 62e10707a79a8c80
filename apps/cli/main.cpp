// sanastream: one binary, one subcommand per job. See `sanastream --help`.
#include <cstdio>
#include <exception>

#include "command.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "core/log.h"

namespace sanastream::cli {

Runner g_runner;  // set by the parsed subcommand's callback

void set_runner(Runner r) { g_runner = std::move(r); }

CLI::Option* add_json_option(CLI::App* sub, std::string* target) {
  return sub->add_option("--json", *target, "Write a machine-readable summary to FILE ('-' = stdout)")
      ->type_name("FILE");
}

}  // namespace sanastream::cli

int main(int argc, char** argv) {
  using namespace sanastream;
  CLI::App app{"sanastream: real-time streaming video editing with SANA-Streaming", "sanastream"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "sanastream 0.1.0");
  bool quiet = false, verbose = false;
  app.add_flag("-q,--quiet", quiet, "Only errors on stderr");
  app.add_flag("-v,--verbose", verbose, "Progress details and debug output on stderr");

#ifdef SANASTREAM_WITH_EDIT
  cli::register_edit(app);
#endif
  cli::register_info(app);
  cli::register_convert(app);
  cli::register_latent_edit(app);
  cli::register_golden_check(app);
  cli::register_bench(app);
  cli::register_quantize(app);
  cli::register_encode_video(app);
  cli::register_decode_latents(app);
  cli::register_make_package(app);
  cli::register_assemble_package(app);
  cli::register_train(app);
#ifdef SANASTREAM_HAS_SENTENCEPIECE
  cli::register_encode_prompt(app);
#endif
#ifdef SANASTREAM_WITH_EVAL
  cli::register_eval(app);
#endif
#ifdef SANASTREAM_WITH_MAKE_TARGET
  cli::register_make_target(app);
#endif
#ifdef SANASTREAM_HAS_SPM_TRAINER
  cli::register_train_tokenizer(app);
#endif

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  set_log_level(quiet ? LogLevel::kQuiet : verbose ? LogLevel::kDebug : LogLevel::kWarn);
  install_interrupt_handler();
  try {
    if (cli::g_runner) cli::g_runner();
    return 0;
  } catch (const Interrupted&) {
    std::fprintf(stderr, "sanastream: interrupted; outputs were finalised\n");
    return 130;
  } catch (const Error& e) {
    std::fprintf(stderr, "sanastream: error: %s\n", e.message().c_str());
    log_debug("raised at {}", e.location());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sanastream: error: %s\n", e.what());
    return 1;
  }
}
