#include "support/edit_support.h"

#include <fstream>

#include "support/media_tools.h"

namespace sanastream::test {

const std::string& tiny_package() {
  static const std::string dir = [] {
    const std::string d =
        temp_dir(std::string("edit_package_") + ::testing::UnitTest::GetInstance()->current_test_info()->name()) + "/tiny";
    auto r = run_cli({"make-package", "--random-weights", "--preset", "tiny", "--seed", "1", d});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return d;
  }();
  return dir;
}

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(std::ifstream(path)); }

std::string synthetic_clip(const std::string& dir, int64_t frames, const std::string& size) {
  const std::string out = dir + "/synthetic_" + std::to_string(frames) + ".y4m";
  EXPECT_EQ(run_tool({"ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=" + size + ":rate=16", "-frames:v",
                      std::to_string(frames), "-pix_fmt", "yuv420p", out}),
            0);
  return out;
}

CliResult run_edit_cli(const std::vector<std::string>& args) {
  std::vector<std::string> all = {"-q", "edit", "--model", tiny_package(), "--seed", "7"};
  all.insert(all.end(), args.begin(), args.end());
  return run_cli(all);
}

}  // namespace sanastream::test
