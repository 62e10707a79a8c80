#include <fstream>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/pth.h"
#include "io/zip_archive.h"
#include "support/pth_writer.h"
#include "support/test_env.h"

using namespace sanastream;
using sanastream::test::golden_root;
using sanastream::test::temp_dir;

TEST(Pth, GoldenCheckpointEqualsItsSafetensors) {
  const std::string set = golden_root() + "/dit_stream_small";
  REQUIRE_GOLDEN(set + "/checkpoint.pth");
  io::WeightSet pth = io::load_weights(set + "/checkpoint.pth");
  io::TensorMap ref = io::load_safetensors(set + "/weights.safetensors");
  EXPECT_EQ(pth.format, "pth");
  EXPECT_EQ(pth.selected, "state_dict");
  ASSERT_EQ(pth.tensors.size(), ref.size());
  for (const auto& [k, t] : ref) {
    ASSERT_TRUE(pth.tensors.count(k)) << k;
    EXPECT_EQ(pth.tensors[k].scalar_type(), t.scalar_type()) << k;
    EXPECT_TRUE(at::equal(pth.tensors[k], t)) << k;
  }
}

TEST(Pth, Zip64WriterRoundTripsExactly) {
  const std::string dir = temp_dir("pth_zip64");
  io::TensorMap m{{"a.weight", at::randn({3, 5})},
                  {"b.bias", at::randn({7}).to(at::kBFloat16)},
                  {"c.idx", at::arange(300, at::kLong)},
                  {"d.half", at::randn({2, 2}).to(at::kHalf)}};
  test::PthWriteOptions opts;
  opts.force_zip64 = true;
  opts.prefix = "my_weird_prefix";
  opts.wrapper = "generator";
  opts.int_leaves = {{"step", 12345678901LL}};
  opts.key_prefix = "model.";
  test::write_pth(dir + "/w.pth", m, opts);
  ASSERT_TRUE(io::ZipArchive::open(dir + "/w.pth")->is_zip64());
  io::WeightSet ws = io::load_weights(dir + "/w.pth");
  EXPECT_EQ(ws.selected, "generator");
  ASSERT_EQ(ws.tensors.size(), m.size());
  for (const auto& [k, t] : m) {
    ASSERT_TRUE(ws.tensors.count(k)) << k;  // "model." stripped
    EXPECT_TRUE(at::equal(ws.tensors[k], t)) << k;
  }
  ASSERT_EQ(ws.skipped.size(), 1u);
  EXPECT_NE(ws.skipped[0].find("step"), std::string::npos);
  EXPECT_NE(ws.skipped[0].find("12345678901"), std::string::npos);
}

TEST(Pth, PrefixesStripOnceEach) {
  EXPECT_EQ(io::strip_wrapper_prefixes("model.module.blocks.0.w"), "blocks.0.w");
  EXPECT_EQ(io::strip_wrapper_prefixes("module.blocks.0.w"), "blocks.0.w");
  EXPECT_EQ(io::strip_wrapper_prefixes("module.model.x"), "model.x");
  EXPECT_EQ(io::strip_wrapper_prefixes("model.model.x"), "model.x");
}

namespace {
std::string hostile_global(const std::string& module, const std::string& name) {
  // c<module>\n<name>\n (X"echo pwned" t) R .
  std::string p = "\x80\x02";
  p += "c" + module + "\n" + name + "\n";
  p += "(X";
  std::string arg = "echo pwned";
  uint32_t n = arg.size();
  p.append(reinterpret_cast<const char*>(&n), 4);
  p += arg + "tR.";
  return p;
}
}  // namespace

TEST(Pth, HostilePicklesAreRefusedByName) {
  const std::string dir = temp_dir("pth_hostile");
  for (auto [module, name] : std::vector<std::pair<std::string, std::string>>{
           {"posix", "system"}, {"builtins", "eval"}, {"os", "system"}, {"subprocess", "Popen"}, {"builtins", "exec"}}) {
    const std::string path = dir + "/" + module + "_" + name + ".pth";
    test::write_pth_raw_pickle(path, hostile_global(module, name));
    try {
      io::load_pth(path);
      ADD_FAILURE() << module << "." << name << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(e.message().find(module + "." + name), std::string::npos) << e.message();
      EXPECT_NE(e.message().find("allow-list"), std::string::npos) << e.message();
    }
  }
  // STACK_GLOBAL spelling of the same attack.
  std::string p = "\x80\x04\x8c\x05posix\x8c\x06system\x93(X\x02\x00\x00\x00hitR.";
  test::write_pth_raw_pickle(dir + "/stack.pth", p);
  EXPECT_THROW(io::load_pth(dir + "/stack.pth"), Error);
}

TEST(Pth, TruncatedAndCorruptArchivesAreRefused) {
  const std::string dir = temp_dir("pth_corrupt");
  test::write_pth(dir + "/ok.pth", {{"w", at::randn({128})}});
  std::ifstream in(dir + "/ok.pth", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::ofstream(dir + "/trunc.pth", std::ios::binary).write(bytes.data(), bytes.size() / 2);
  EXPECT_THROW(io::load_weights(dir + "/trunc.pth"), Error);
  std::string flipped = bytes;
  flipped[flipped.rfind(std::string("PK\x01\x02", 4)) + 1] ^= 0x5a;  // a central-directory signature
  std::ofstream(dir + "/flip.pth", std::ios::binary).write(flipped.data(), flipped.size());
  EXPECT_THROW(io::load_weights(dir + "/flip.pth"), Error);
  test::write_pth_raw_pickle(dir + "/badpkl.pth", "\x80\x02}(X");
  EXPECT_THROW(io::load_weights(dir + "/badpkl.pth"), Error);
}
