// Helpers of the `sanastream edit` tests (test_edit.cpp, test_live.cpp): the tiny random-weight
// package, synthetic clips and the CLI with that package.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/test_env.h"

namespace sanastream::test {

constexpr double kTinyFps = 16;  // the tiny package's model rate

// One tiny package per test (seed 1), in the test's own directory: CTest runs the tests of a
// program as parallel processes.
const std::string& tiny_package();

nlohmann::json read_json(const std::string& path);

// A synthetic y4m clip (ffmpeg's testsrc2) of n frames at 16 fps.
std::string synthetic_clip(const std::string& dir, int64_t frames, const std::string& size = "96x64");

// `sanastream -q edit --model <tiny> --seed 7 ARGS…`.
CliResult run_edit_cli(const std::vector<std::string>& args);

}  // namespace sanastream::test
