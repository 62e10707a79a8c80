#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "support/test_env.h"

using namespace sanastream;
using sanastream::test::temp_dir;

namespace {
io::TensorMap sample_tensors() {
  io::TensorMap m;
  m["f32"] = at::randn({3, 4});
  m["f64"] = at::randn({2}, at::kDouble);
  m["f16"] = at::randn({5}).to(at::kHalf);
  m["bf16"] = at::randn({2, 3, 2}).to(at::kBFloat16);
  m["i64"] = at::arange(7, at::kLong);
  m["i32"] = at::arange(3, at::kInt);
  m["i16"] = at::arange(4, at::kShort);
  m["i8"] = at::arange(-3, 3, at::kChar);
  m["u8"] = at::arange(6, at::kByte);
  m["bool"] = at::arange(3, at::kLong).remainder(2).to(at::kBool);
  m["scalar"] = at::tensor(3.5f);
  m["empty"] = at::empty({0, 4});
  return m;
}

std::string write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

// A hand-made file: header JSON + data bytes.
std::string make_file(const std::string& path, const std::string& header, const std::string& data) {
  std::string b;
  uint64_t n = header.size();
  b.append(reinterpret_cast<const char*>(&n), 8);
  b += header + data;
  return write_bytes(path, b);
}
}  // namespace

TEST(Safetensors, RoundTripEveryDtype) {
  const std::string dir = temp_dir("st_roundtrip");
  auto m = sample_tensors();
  io::save_safetensors(dir + "/a.safetensors", m, {{"note", "x"}});
  auto f = io::SafetensorsFile::open(dir + "/a.safetensors");
  EXPECT_EQ(f->metadata().at("note"), "x");
  auto back = io::load_safetensors(dir + "/a.safetensors");
  ASSERT_EQ(back.size(), m.size());
  for (const auto& [k, t] : m) {
    ASSERT_TRUE(back.count(k)) << k;
    EXPECT_EQ(back[k].scalar_type(), t.scalar_type()) << k;
    EXPECT_EQ(back[k].sizes(), t.sizes()) << k;
    EXPECT_TRUE(at::equal(back[k], t)) << k;
  }
  EXPECT_FALSE(sanastream::test::file_exists(dir + "/a.safetensors.part"));
}

TEST(Safetensors, ShardIndexLoadsEveryShard) {
  const std::string dir = temp_dir("st_shards");
  io::TensorMap a{{"x", at::randn({4})}}, b{{"y", at::randn({2, 2})}};
  io::save_safetensors(dir + "/m-00001-of-00002.safetensors", a);
  io::save_safetensors(dir + "/m-00002-of-00002.safetensors", b);
  nlohmann::json idx = {{"metadata", {{"total_size", 32}}},
                        {"weight_map", {{"x", "m-00001-of-00002.safetensors"}, {"y", "m-00002-of-00002.safetensors"}}}};
  std::ofstream(dir + "/m.safetensors.index.json") << idx.dump();
  auto all = io::load_safetensors(dir + "/m.safetensors.index.json");
  ASSERT_EQ(all.size(), 2u);
  EXPECT_TRUE(at::equal(all["x"], a["x"]));
  EXPECT_TRUE(at::equal(all["y"], b["y"]));
  // A directory resolves to its index, not to the shards.
  EXPECT_EQ(io::resolve_weights_path(dir), dir + "/m.safetensors.index.json");
  EXPECT_EQ(io::load_weights(dir).tensors.size(), 2u);
}

TEST(Safetensors, RejectsCorruptFiles) {
  const std::string dir = temp_dir("st_corrupt");
  auto expect_error = [](const std::string& path, const std::string& fragment) {
    try {
      io::load_safetensors(path);
      ADD_FAILURE() << path << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(e.message().find(fragment), std::string::npos) << e.message();
    }
  };
  write_bytes(dir + "/short.safetensors", "abc");
  expect_error(dir + "/short.safetensors", "at least 8 bytes");
  make_file(dir + "/hdrlen.safetensors", "{}", "");
  {  // header length pointing past the end
    std::string b(8, '\0');
    uint64_t n = 1000;
    std::memcpy(&b[0], &n, 8);
    write_bytes(dir + "/hdrlen.safetensors", b + "{}");
  }
  expect_error(dir + "/hdrlen.safetensors", "header length");
  make_file(dir + "/json.safetensors", "{not json", "");
  expect_error(dir + "/json.safetensors", "not a JSON object");
  make_file(dir + "/dtype.safetensors", R"({"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}})", "abcd");
  expect_error(dir + "/dtype.safetensors", "unsupported dtype");
  make_file(dir + "/size.safetensors", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", "abcd");
  expect_error(dir + "/size.safetensors", "expected 8 bytes");
  make_file(dir + "/off.safetensors", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", "abcd");
  expect_error(dir + "/off.safetensors", "outside");
  make_file(dir + "/overlap.safetensors",
            R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
            "abcdefgh");
  expect_error(dir + "/overlap.safetensors", "overlap");
  // Truncation of a valid file.
  io::save_safetensors(dir + "/good.safetensors", {{"w", at::randn({64})}});
  std::ifstream in(dir + "/good.safetensors", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  write_bytes(dir + "/trunc.safetensors", bytes.substr(0, bytes.size() - 10));
  expect_error(dir + "/trunc.safetensors", "truncated or corrupt");
}
