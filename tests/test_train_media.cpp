// `sanastream train-cache` on real footage (the Debian clips of the test_media fixture) and training
// on the frame cache it writes, through the tiny package's VAE (docs/TRAIN.md).
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "support/test_env.h"
#include "train/data_cache.h"

namespace {

using json = nlohmann::json;
using sanastream::test::run_cli;
using sanastream::test::temp_dir;

const std::string kMedia = SANASTREAM_TEST_MEDIA;

TEST(TrainMedia, ManifestToFrameCacheToTraining) {
  const std::string dir = temp_dir("train_media");
  auto r = run_cli({"make-package", "--random-weights", "--dtype", "fp32", "--seed", "3", dir + "/pkg"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  {
    std::ofstream m(dir + "/manifest.jsonl");
    m << json{{"source_video", kMedia + "/realshort.mp4"},
              {"target_video", kMedia + "/cockatoo.mp4"},
              {"prompt", "make it snowy"},
              {"reverse_prompt", "remove the snow"}}
             .dump()
      << "\n"
      << json{{"source_video", kMedia + "/vtest.avi"},
              {"prompt", "turn the jacket red"},
              {"reverse_prompt", "turn the jacket back"}}
             .dump()
      << "\n";
  }
  r = run_cli({"train-cache", "--manifest", dir + "/manifest.jsonl", "--model", dir + "/pkg", "--size", "128x96",
               "--frames", "41", "--out", dir + "/cache", "--json", dir + "/cache.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const sanastream::train::DataCache cache(dir + "/cache");
  ASSERT_EQ(cache.size(), 2);
  EXPECT_EQ(cache.load(0).source.sizes(), at::IntArrayRef({41, 96, 128, 3}));
  EXPECT_TRUE(cache.load(0).target.defined());
  EXPECT_FALSE(cache.load(1).target.defined());
  EXPECT_EQ(cache.load(1).prompt_embeds.sizes(), at::IntArrayRef({300, 64}));

  const json cfg = {{"format_version", 1},
                    {"output", "run"},
                    {"max_steps", 2},
                    {"dit", {{"init", "pkg"}, {"trainable", {"blocks.", "final_layer."}}}},
                    {"rollout", {{"enabled", true}}},
                    {"crr", {{"enabled", true}}},
                    {"data", {{"cache", "cache"}, {"vae", "pkg"}, {"width", 96}, {"height", 64}, {"crop_min", 0.75}}}};
  sanastream::write_text_file_atomic(dir + "/train.json", cfg.dump(1));
  r = run_cli({"train", "--config", dir + "/train.json", "--json", dir + "/train_report.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json rep = json::parse(sanastream::read_text_file(dir + "/train_report.json"));
  EXPECT_EQ(rep["last_step"], 2);
  EXPECT_LT(rep["trainable_parameters"].get<int64_t>(), rep["parameters"].get<int64_t>());
  EXPECT_GT(rep["crr"].get<double>(), 0);
  EXPECT_TRUE(sanastream::path_exists(dir + "/run/checkpoints/step_00000002/dit_ema.safetensors"));
}

}  // namespace
