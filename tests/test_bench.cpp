// `sanastream bench` on the CPU with a tiny random-weight package: every part runs, reports its own
// keys and leaves the others null; bad options are one line and exit 1.
#include <algorithm>
#include <fstream>
#include <functional>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/test_env.h"

using nlohmann::json;
using sanastream::test::run_cli;
using sanastream::test::temp_dir;

TEST(Bench, EveryPartRunsOnTheCpuAndReportsItsKeys) {
  const std::string dir = temp_dir("bench_parts");
  auto pkg = run_cli({"make-package", "--random-weights", "--preset", "tiny", dir + "/pkg"});
  ASSERT_EQ(pkg.exit_code, 0) << pkg.err;
  const std::vector<std::pair<std::string, std::string>> parts = {
      {"dit", "dit_fps"}, {"vae-encode", "vae_encode_fps"}, {"vae-decode", "vae_decode_fps"}, {"e2e", "e2e_fps"}};
  for (const auto& [part, key] : parts) {
    const std::string out = dir + "/" + part + ".json";
    std::vector<std::string> args = {"bench", "--part", part, "--model", dir + "/pkg", "--device", "cpu", "--dtype",
                                     "fp32", "--size", "96x64", "--latent-frames", "14", "--first-chunk", "5", "--json", out};
    for (const char* a : part == "e2e" ? std::vector<const char*>{"--pace", "500", "--text-encoder"}
                                       : std::vector<const char*>{"--profile"})
      args.push_back(a);
    auto r = run_cli(args);
    ASSERT_EQ(r.exit_code, 0) << part << ": " << r.err;
    const json j = json::parse(std::ifstream(out));
    for (const char* k : {"dit_fps", "vae_encode_fps", "vae_decode_fps", "e2e_fps"})
      EXPECT_EQ(j[k].is_null(), k != key) << part << " " << k;
    EXPECT_GT(j[key].get<double>(), 0) << part;
    EXPECT_GT(j["chunk_ms_p50"].get<double>(), 0) << part;
    EXPECT_EQ(j["chunks_ms"].size(), 4u) << part;  // 14 latent frames: chunks of 5, 3, 3, 3
    EXPECT_EQ(j["first_frame_ms"].is_null(), part != "e2e") << part;
    EXPECT_TRUE(j["peak_gpu_bytes"].is_null()) << part;  // CPU
    EXPECT_EQ(j["config"]["part"], part);
    if (part == "e2e") {  // what the chunks ran: the VAE's tiling and the DiT forwards per chunk
      EXPECT_TRUE(j["config"]["tiling"].is_string());
      EXPECT_EQ(j["config"]["forwards_per_chunk"], 5);
      // The stages of the same run and the bound they set; the overlapped engine gives the same frames.
      double inv = 0;
      for (const char* st : {"input", "encode", "dit", "decode", "output"}) {
        EXPECT_GT(j["stages"][st]["ms_p50"].get<double>(), 0) << st;
        inv += 1 / j["stages"][st]["fps"].get<double>();
      }
      EXPECT_NEAR(j["serial_bound_fps"].get<double>(), 1 / inv, 1e-6 / inv);
      EXPECT_GT(j["overlapped"]["e2e_fps"].get<double>(), 0);
      EXPECT_TRUE(j["overlapped"]["frames_identical"].get<bool>());
      // --pace: latent frames encoded as their frames arrive and the first one decoded ahead give the
      // same frames (up to a level: the convolutions run on other frame counts).
      EXPECT_GT(j["paced"]["first_frame_latency_ms"].get<double>(), 0);
      EXPECT_EQ(j["paced"]["chunk_latency_ms"].size(), 4u);
      EXPECT_LE(j["paced"]["max_abs_diff"].get<int64_t>(), 1);
      EXPECT_TRUE(j["config"]["text_encoder"].is_string());  // the package's, resident through the run
      EXPECT_TRUE(j["text_encoder_gpu_bytes"].is_null());      // CPU
    } else {  // --profile: the regions of one steady chunk (the VAE's) or forward (the DiT's)
      EXPECT_EQ(j["profile_unit"], part == "dit" ? "forward" : "chunk");
      EXPECT_GT(j["profile_ms"][part == "dit" ? "ffn.in" : "vae.conv"].get<double>(), 0) << part;
      EXPECT_GT(j["profile_total_ms"].get<double>(), 0) << part;
    }
    if (part.rfind("vae", 0) == 0) EXPECT_EQ(j["config"]["vae_layout"], "ncdhw");  // auto on the CPU
  }
}

// --plan: the DiT built with a quantization plan (simulated on the CPU), named in the report with how
// its layers run; a plan the part cannot use, or a bad plan file, is one line and exit 1.
TEST(Bench, APlanQuantizesTheDitAndIsReported) {
  const std::string dir = temp_dir("bench_plan");
  auto pkg = run_cli({"make-package", "--random-weights", "--preset", "tiny", dir + "/pkg"});
  ASSERT_EQ(pkg.exit_code, 0) << pkg.err;
  std::ofstream(dir + "/plan.json") << R"({"format": "sanastream-quant-plan", "version": 1, "groups": [
      {"layers": ["attn.q", "attn.k", "attn.v", "mlp.inverted_conv"], "blocks": [0, 1], "precision": "fp8"}]})";
  const std::vector<std::string> base = {"bench", "--part", "dit", "--model", dir + "/pkg", "--device", "cpu",
                                         "--dtype", "fp32", "--size", "96x64", "--latent-frames", "14"};
  auto args = base;
  args.insert(args.end(), {"--plan", dir + "/plan.json", "--json", dir + "/out.json"});
  auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("plan " + dir + "/plan.json (simulated)"), std::string::npos) << r.out;
  const json j = json::parse(std::ifstream(dir + "/out.json"));
  EXPECT_EQ(j["config"]["plan"], dir + "/plan.json");
  EXPECT_EQ(j["config"]["plan_execution"], "simulated") << "on the CPU";
  EXPECT_GT(j["dit_fps"].get<double>(), 0);
  // A plan with the VAE's resnets in FP8 on a VAE part: simulated on the CPU, and said so.
  std::ofstream(dir + "/vae.json") << R"({"format": "sanastream-quant-plan", "version": 1, "groups": [],
      "vae": "fp8"})";
  auto v = run_cli({"bench", "--part", "vae-decode", "--model", dir + "/pkg", "--device", "cpu", "--dtype", "fp32",
                    "--size", "96x64", "--latent-frames", "14", "--plan", dir + "/vae.json", "--json", dir + "/v.json"});
  ASSERT_EQ(v.exit_code, 0) << v.err;
  EXPECT_EQ(json::parse(std::ifstream(dir + "/v.json"))["config"]["plan_execution"], "VAE simulated");
  std::ofstream(dir + "/deep.json") << R"({"format": "sanastream-quant-plan", "version": 1, "groups": [
      {"layers": ["attn.q"], "blocks": [0, 5], "precision": "int8"}]})";
  for (const auto& [plan, part, message] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {dir + "/plan.json", "gdn", "--plan quantizes the DiT and the VAE"},
           {dir + "/none.json", "dit", "no file"},
           {dir + "/deep.json", "dit", "the model has 2"}}) {
    auto bad = base;
    bad[2] = part;
    bad.push_back("--plan");
    bad.push_back(plan);
    auto e = run_cli(bad);
    EXPECT_EQ(e.exit_code, 1) << part;
    EXPECT_EQ(e.err_lines(), 1) << e.err;
    EXPECT_NE(e.err.find(message), std::string::npos) << e.err;
  }
}

// The e2e part split over two devices (both the CPU here: the stages' threads and queues) and as two
// streams at once: the same frames as one session alone.
TEST(Bench, SplitAndParallelStreamsGiveTheOneSessionFrames) {
  const std::string dir = temp_dir("bench_multi");
  auto pkg = run_cli({"make-package", "--random-weights", "--preset", "tiny", dir + "/pkg"});
  ASSERT_EQ(pkg.exit_code, 0) << pkg.err;
  auto bench = [&](const std::string& flag) {
    const std::string out = dir + "/" + flag + ".json";
    auto r = run_cli({"bench", "--part", "e2e", "--model", dir + "/pkg", "--device", "cpu", "--dtype", "fp32", "--size",
                      "96x64", "--latent-frames", "14", "--first-chunk", "5", "--" + flag, "2", "--json", out});
    EXPECT_EQ(r.exit_code, 0) << flag << ": " << r.err;
    return json::parse(std::ifstream(out));
  };
  const json g = bench("gpus");
  EXPECT_EQ(g["config"]["gpus"], 2);
  EXPECT_TRUE(g["gpus"]["frames_identical"].get<bool>());
  EXPECT_EQ(g["gpus"]["max_abs_diff"], 0);
  EXPECT_GT(g["gpus"]["speedup"].get<double>(), 0);
  EXPECT_GT(g["gpus"]["one_gpu_e2e_fps"].get<double>(), 0);
  EXPECT_EQ(g["chunks_ms"].size(), 4u);
  const json s = bench("streams");
  ASSERT_EQ(s["streams"]["per_stream"].size(), 2u);
  for (const json& one : s["streams"]["per_stream"]) {
    EXPECT_TRUE(one["frames_identical"].get<bool>());
    EXPECT_GT(one["e2e_fps"].get<double>(), 0);
  }
  EXPECT_NEAR(s["streams"]["total_e2e_fps"].get<double>(),
              s["streams"]["per_stream"][0]["e2e_fps"].get<double>() + s["streams"]["per_stream"][1]["e2e_fps"].get<double>(),
              1e-9);
  EXPECT_GT(s["streams"]["throughput_ratio"].get<double>(), 0);
}

TEST(Bench, BadOptionsAreOneLine) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"bench", "--part", "vae", "--device", "cpu"},
        std::vector<std::string>{"bench", "--part", "dit", "--device", "cpu", "--size", "100x64"},
        std::vector<std::string>{"bench", "--part", "dit", "--device", "cpu", "--latent-frames", "8"},
        std::vector<std::string>{"bench", "--part", "dit", "--device", "cpu", "--gpus", "2"}}) {
    auto r = run_cli(args);
    EXPECT_EQ(r.exit_code, 1) << args[2] << ": " << r.err;
    EXPECT_EQ(r.err_lines(), 1) << r.err;
  }
}

// A package's own compression sizes the latents: the demo preset (8× VAE, 2×2 DiT patches) takes
// multiples of 16 pixels, its 64×48 frames are 8×6 latents (a multiple of 32 is no longer required).
TEST(Bench, SizesLatentsByThePackagesVaeAndPatch) {
  const std::string dir = temp_dir("bench_demo");
  auto pkg = run_cli({"make-package", "--random-weights", "--preset", "demo", dir + "/pkg"});
  ASSERT_EQ(pkg.exit_code, 0) << pkg.err;
  const std::string out = dir + "/dit.json";
  auto r = run_cli({"bench", "--part", "dit", "--model", dir + "/pkg", "--device", "cpu", "--dtype", "fp32", "--size",
                    "64x48", "--latent-frames", "12", "--steps", "2", "--json", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GT(json::parse(std::ifstream(out))["dit_fps"].get<double>(), 0);
  auto bad = run_cli({"bench", "--part", "dit", "--model", dir + "/pkg", "--device", "cpu", "--size", "64x40"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("--size: expected multiples of 16, got 64x40"), std::string::npos) << bad.err;
}

// `sanastream quantize --profile` on the CPU (tiny package, FP8 simulated, so no candidate saves
// time there and the plan stays empty; the search itself: QuantSearch.* in test_quant.cpp): every
// figure is saved as it is measured, a spent budget stops the command with nothing lost, the same
// command resumes from the state file and writes the plan with every figure, a state made for other
// settings and bad options are one line and exit 1, and an unreachable --min-fps writes no plan.
TEST(QuantizeCli, ProfileResumesAndWritesThePlanWithItsMeasurements) {
  const std::string dir = temp_dir("quantize");
  auto pkg = run_cli({"make-package", "--random-weights", "--preset", "tiny", dir + "/pkg"});
  ASSERT_EQ(pkg.exit_code, 0) << pkg.err;
  const std::vector<std::string> base = {"quantize", "--profile", "--model", dir + "/pkg", "--device", "cpu",
                                         "--dtype", "fp32", "--size", "96x64", "--prompts", "1", "--clips", "1"};
  auto with = [&](std::vector<std::string> extra) {  // FP8 candidates and plan.json unless extra names others
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    auto named = [&](const char* opt) { return std::find(extra.begin(), extra.end(), opt) != extra.end(); };
    if (!named("--precisions")) args.insert(args.end(), {"--precisions", "fp8"});
    if (!named("--out")) args.insert(args.end(), {"--out", dir + "/plan.json"});
    return run_cli(args);
  };
  auto r = with({"--budget-seconds", "0", "--json", dir + "/r0.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("run the same command again"), std::string::npos) << r.out;
  EXPECT_FALSE(std::ifstream(dir + "/plan.json").good()) << "no plan before the search is complete";
  EXPECT_EQ(json::parse(std::ifstream(dir + "/r0.json"))["complete"], false);

  r = with({"--json", dir + "/r1.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json r1 = json::parse(std::ifstream(dir + "/r1.json"));
  EXPECT_EQ(r1["complete"], true);
  const int measured = r1["measured"].get<int>();
  EXPECT_GT(measured, 7 * 3);  // 7 groups × (BF16 + FP8) timings, 7 × bands errors, BF16's dit_fps
  const json plan = json::parse(std::ifstream(dir + "/plan.json"));
  EXPECT_EQ(plan["format"], "sanastream-quant-plan");
  const json& m = plan["measurements"];
  EXPECT_EQ(m["candidates"].size() % 7, 0u);  // 7 groups × the tiny model's depth bands
  EXPECT_GE(m["candidates"].size(), 7u);
  for (const json& c : m["candidates"]) {
    EXPECT_GT(c["error"].get<double>(), 0) << c.dump();
    EXPECT_LT(c["error"].get<double>(), 0.2) << c.dump();
  }
  EXPECT_GT(m["bf16_fps"].get<double>(), 0);
  EXPECT_LE(m["error"].get<double>(), 0.02);
  EXPECT_EQ(m["search"]["group_ms"].size(), 14u);
  // The VAE: encode and decode timed BF16 and FP8 (simulated here), its FP8 frames' PSNR against
  // BF16's measured (really quantized: below the 100 dB of equal frames), and FP8 taken only when it
  // saves time and keeps the bound.
  const json& vae = m["vae"];
  ASSERT_TRUE(vae.is_object()) << m.dump();
  EXPECT_EQ(m["search"]["vae_chunk_ms"].size(), 4u);
  double saved = 0;
  for (const char* part : {"vae-encode", "vae-decode"}) {
    EXPECT_GT(vae[part]["bf16_chunk_ms"].get<double>(), 0) << vae.dump();
    EXPECT_GT(vae[part]["fp8_chunk_ms"].get<double>(), 0) << vae.dump();
    saved += vae[part]["bf16_chunk_ms"].get<double>() - vae[part]["fp8_chunk_ms"].get<double>();
  }
  EXPECT_NEAR(vae["saved_ms_per_chunk"].get<double>(), saved, 1e-9) << vae.dump();
  EXPECT_GT(vae["psnr"].get<double>(), 15) << vae.dump();
  EXPECT_LT(vae["psnr"].get<double>(), 80) << vae.dump();
  EXPECT_EQ(vae["min_psnr"], 35);
  EXPECT_EQ(vae["psnr_clip"], "smooth seeded");
  const std::string vae_precision = saved > 0 && vae["psnr"].get<double>() >= 35 ? "fp8" : "bf16";
  EXPECT_EQ(vae["precision"], vae_precision) << vae.dump();
  EXPECT_EQ(plan.value("vae", "bf16"), vae_precision);

  r = with({"--json", dir + "/r2.json"});  // everything measured: all reused, the same plan
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json r2 = json::parse(std::ifstream(dir + "/r2.json"));
  EXPECT_EQ(r2["measured"], 0);
  EXPECT_EQ(r2["reused"].get<int>(), r1["measured"].get<int>() + r1["reused"].get<int>());
  EXPECT_EQ(json::parse(std::ifstream(dir + "/plan.json"))["groups"], plan["groups"]);

  // The decisions, on figures edited into the state (which the search then reuses): with FP8 twice as
  // fast everywhere and the VAE's PSNR above the bound, the VAE takes FP8 and the DiT a plan; that
  // plan measured slower than BF16 is dropped, faster it is kept.
  const std::string state_path = dir + "/plan.json.state.json";
  auto edit_state = [&](const std::function<void(json&)>& edit) {
    json st = json::parse(std::ifstream(state_path));
    edit(st);
    std::ofstream(state_path) << st.dump();
  };
  edit_state([](json& st) {
    for (auto& [key, ms] : st["group_ms"].items())
      if (key.size() > 4 && key.substr(key.size() - 4) == ":fp8")
        ms = st["group_ms"][key.substr(0, key.size() - 4) + ":bf16"].get<double>() / 2;
    for (const char* part : {"vae-encode", "vae-decode"})
      st["vae_chunk_ms"][std::string(part) + ":fp8"] =
          st["vae_chunk_ms"][std::string(part) + ":bf16"].get<double>() / 2;
    st["vae_psnr"]["fp8"] = 60.0;
  });
  const std::vector<std::string> loose = {"--max-error", "0.5"};  // every candidate fits
  r = with(loose);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json m3 = json::parse(std::ifstream(dir + "/plan.json"))["measurements"];
  EXPECT_EQ(m3["vae"]["precision"], "fp8");
  EXPECT_EQ(json::parse(std::ifstream(dir + "/plan.json"))["vae"], "fp8");
  std::string plan_key;
  for (const auto& [key, fps] : m3["search"]["dit_fps"].items())
    if (key != "bf16") plan_key = key;
  ASSERT_FALSE(plan_key.empty()) << m3["search"]["dit_fps"].dump();
  const double bf16_fps = m3["bf16_fps"].get<double>();
  for (const double ratio : {0.5, 2.0}) {
    edit_state([&](json& st) { st["dit_fps"][plan_key] = bf16_fps * ratio; });
    r = with(loose);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json p = json::parse(std::ifstream(dir + "/plan.json"));
    EXPECT_EQ(p["measurements"]["dropped"], ratio < 1) << ratio;
    EXPECT_EQ(p["groups"].empty(), ratio < 1) << ratio;
    EXPECT_EQ(r.err.find("below BF16's") != std::string::npos, ratio < 1) << r.err;
  }

  r = with({"--seed", "5"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("made for another configuration"), std::string::npos) << r.err;
  r = with({"--state", dir + "/plan.json.state.json", "--min-fps", "1e9", "--out", dir + "/fast.json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no plan reaches --min-fps"), std::string::npos) << r.err;
  EXPECT_FALSE(std::ifstream(dir + "/fast.json").good());
  for (const auto& [extra, message] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--chunks", "7"}, "at least 8 chunks"},
           {{"--max-error", "0"}, "--max-error"},
           {{"--precisions", "bf16"}, "--precisions"}}) {
    r = with(extra);
    EXPECT_EQ(r.exit_code, 1) << message;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
  }
  r = run_cli({"quantize", "--out", dir + "/x.json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--profile is required"), std::string::npos) << r.err;
}

// `quantize --profile --data DIR`: the error runs read a data cache's clips and distinct prompts (here
// `train-cache --random`, noise in the shapes real ones have) instead of seeded ones, the VAE's PSNR
// its first clip, and the search records where they came from; a cache with too few, or latents of
// another grid, is one line and exit 1.
TEST(QuantizeCli, ErrorRunsReadADataCachesClipsAndPrompts) {
  const std::string dir = temp_dir("quantize-data");
  ASSERT_EQ(run_cli({"make-package", "--random-weights", "--preset", "tiny", dir + "/pkg"}).exit_code, 0);
  auto cache = run_cli({"train-cache", "--random", "2", "--size", "96x64", "--frames", "201", "--caption-channels",
                        "64", "--out", dir + "/cache"});
  ASSERT_EQ(cache.exit_code, 0) << cache.err;
  const std::vector<std::string> base = {"quantize", "--profile", "--model", dir + "/pkg", "--device", "cpu",
                                         "--dtype", "fp32", "--precisions", "fp8", "--data", dir + "/cache"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return run_cli(args);
  };
  auto r = with({"--size", "96x64", "--prompts", "1", "--clips", "2", "--out", dir + "/plan.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json config = json::parse(std::ifstream(dir + "/plan.json"))["measurements"]["search"]["config"];
  EXPECT_EQ(config["inputs"], "--data " + dir + "/cache");
  EXPECT_EQ(config["prompts"], 1);
  EXPECT_EQ(config["clips"], 2);
  // The VAE's PSNR on the data's first clip, as the BF16 VAE decodes it.
  const json vae = json::parse(std::ifstream(dir + "/plan.json"))["measurements"]["vae"];
  EXPECT_EQ(vae["psnr_clip"], "--data " + dir + "/cache: its first clip, decoded by the BF16 VAE");
  EXPECT_GT(vae["psnr"].get<double>(), 10) << vae.dump();
  EXPECT_LT(vae["psnr"].get<double>(), 80) << vae.dump();
  r = with({"--size", "96x64", "--prompts", "2", "--out", dir + "/two.json"});  // every random prompt is "(random)"
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("it holds 2 clips and 1 distinct prompts"), std::string::npos) << r.err;
  r = with({"--size", "128x96", "--prompts", "1", "--out", dir + "/other.json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("clip 0 has latents (128, 26, 2, 3); the error runs need [128, ≥ 26, 3, 4]"), std::string::npos)
      << r.err;
  EXPECT_FALSE(std::ifstream(dir + "/other.json").good());
}
