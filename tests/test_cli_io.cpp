// `sanastream info` and `convert` on good and bad inputs: exit codes, one error line, no output
// file left behind.
#include <fstream>

#include "io/safetensors.h"
#include "support/pth_writer.h"
#include "support/test_env.h"

using namespace sanastream;
using sanastream::test::file_exists;
using sanastream::test::run_cli;
using sanastream::test::temp_dir;

TEST(CliIo, InfoAndConvertOnAGoodCheckpoint) {
  const std::string dir = temp_dir("cli_good");
  io::TensorMap m{{"a", at::randn({4, 4})}, {"b", at::randn({3}).to(at::kBFloat16)}};
  test::PthWriteOptions o;
  o.wrapper = "state_dict";
  o.int_leaves = {{"step", 7}};
  test::write_pth(dir + "/m.pth", m, o);
  auto info = run_cli({"info", dir + "/m.pth", "--json", dir + "/info.json"});
  EXPECT_EQ(info.exit_code, 0) << info.err;
  EXPECT_NE(info.out.find("2 tensors"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("step: int 7"), std::string::npos) << info.out;
  EXPECT_TRUE(file_exists(dir + "/info.json"));
  auto conv = run_cli({"convert", dir + "/m.pth", dir + "/m.safetensors", "--dtype", "fp32"});
  ASSERT_EQ(conv.exit_code, 0) << conv.err;
  auto back = io::load_safetensors(dir + "/m.safetensors");
  EXPECT_TRUE(at::equal(back["a"], m["a"]));
  EXPECT_TRUE(at::equal(back["b"], m["b"].to(at::kFloat)));
}

TEST(CliIo, BadInputsGetOneLineAndExitOne) {
  const std::string dir = temp_dir("cli_bad");
  std::ofstream(dir + "/garbage.pth") << "this is not a checkpoint";
  std::ofstream(dir + "/garbage.safetensors") << "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
  std::string hostile = std::string("\x80\x02") + "cposix\nsystem\n(X\x02\x00\x00\x00lstR.";
  test::write_pth_raw_pickle(dir + "/hostile.pth", hostile);
  test::write_pth(dir + "/ok.pth", {{"w", at::randn({64})}});
  {
    std::ifstream in(dir + "/ok.pth", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(dir + "/trunc.pth", std::ios::binary).write(bytes.data(), bytes.size() - 40);
    std::string wrong = bytes;
    // Corrupt the local-header offset of the first central-directory entry (ZIP64 extra, last 8 bytes).
    const size_t cd = wrong.rfind(std::string("PK\x01\x02", 4));
    wrong[cd + 46 + 16 + 4 + 16] ^= 0x7f;
    std::ofstream(dir + "/offset.pth", std::ios::binary).write(wrong.data(), wrong.size());
  }
  for (const std::string name : {"missing.pth", "garbage.pth", "garbage.safetensors", "hostile.pth", "trunc.pth",
                                 "offset.pth"}) {
    for (const std::string cmd : {"info", "convert"}) {
      std::vector<std::string> args{cmd, dir + "/" + name};
      const std::string out = dir + "/out_" + name + ".safetensors";
      if (cmd == "convert") args.push_back(out);
      auto r = run_cli(args);
      EXPECT_EQ(r.exit_code, 1) << cmd << " " << name << ": " << r.err;
      EXPECT_EQ(r.err_lines(), 1) << cmd << " " << name << ": " << r.err;
      EXPECT_FALSE(file_exists(out)) << out;
      EXPECT_FALSE(file_exists(out + ".part")) << out;
    }
  }
  auto hostile_run = run_cli({"info", dir + "/hostile.pth"});
  EXPECT_NE(hostile_run.err.find("posix.system"), std::string::npos) << hostile_run.err;
}

TEST(CliIo, UsageErrorsExitTwo) {
  EXPECT_EQ(run_cli({"info", "--no-such-flag", "x"}).exit_code, 2);
  EXPECT_EQ(run_cli({"no-such-command"}).exit_code, 2);
  EXPECT_EQ(run_cli({}).exit_code, 2);
  auto help = run_cli({"info", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--json"), std::string::npos);
}
