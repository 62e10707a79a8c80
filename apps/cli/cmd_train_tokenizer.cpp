// sanastream train-tokenizer: the demo model's SentencePiece tokenizer, trained on the instruction
// corpus (train/tokenizer_trainer.h; docs/MODELS.md). Same corpus and --vocab: byte-identical model.
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "command.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/json_report.h"
#include "pipeline/model_package.h"
#include "train/tokenizer_trainer.h"

namespace sanastream::cli {

namespace {
struct TrainTokenizerCli {
  std::string out, json;
  int64_t vocab = train::kDefaultTokenizerVocab;
  std::vector<std::string> corpus;
};

void run(const TrainTokenizerCli& o) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<std::string> sentences = train::tokenizer_corpus(o.corpus);
  size_t bytes = 0;
  for (const auto& s : sentences) bytes += s.size();
  const std::string model = train::train_tokenizer(sentences, o.vocab);
  const std::vector<model::SpmPiece> pieces = pipeline::read_sentencepiece_pieces(model, o.out);
  const std::filesystem::path parent = std::filesystem::path(o.out).parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  SS_CHECK(!ec, "--out: cannot create the directory {} ({})", parent.string(), ec.message());
  write_text_file_atomic(o.out, model);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const int64_t n = static_cast<int64_t>(pieces.size()), rows = pipeline::gemma_vocab_rows(n);
  std::printf("%s: SentencePiece BPE tokenizer, %lld pieces (asked %lld; Gemma embedding %lld rows), trained on "
              "%zu sentences (%zu bytes) in %.1f s\n",
              o.out.c_str(), static_cast<long long>(n), static_cast<long long>(o.vocab), static_cast<long long>(rows),
              sentences.size(), bytes, seconds);
  if (!o.json.empty())
    write_json_report(o.json, {{"out", o.out},
                               {"pieces", n},
                               {"vocab_requested", o.vocab},
                               {"gemma_vocab_rows", rows},
                               {"sentences", sentences.size()},
                               {"corpus_bytes", bytes},
                               {"corpus_files", o.corpus},
                               {"model_bytes", model.size()},
                               {"seconds", seconds}});
}
}  // namespace

void register_train_tokenizer(CLI::App& app) {
  auto o = std::make_shared<TrainTokenizerCli>();
  auto* sub = app.add_subcommand(
      "train-tokenizer",
      "Train the demo model's SentencePiece tokenizer (Gemma's special ids, byte fallback) on the edit instructions, "
      "the prompt assembly's fixed texts and any --corpus files; deterministic");
  sub->add_option("--out", o->out, "The tokenizer.model to write (its directory is created)")
      ->required()
      ->type_name("FILE");
  sub->add_option("--vocab", o->vocab,
                  "Pieces at most (fewer when the corpus supports fewer); make-package rounds the Gemma embedding up "
                  "to a multiple of 64")
      ->capture_default_str();
  sub->add_option("--corpus", o->corpus, "Extra text, one sentence per line (repeatable)")->type_name("FILE");
  add_json_option(sub, &o->json);
  sub->callback([o] { set_runner([o] { run(*o); }); });
}

}  // namespace sanastream::cli
