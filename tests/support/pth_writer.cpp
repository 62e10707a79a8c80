#include "support/pth_writer.h"

#include <cstring>
#include <fstream>

#include "core/error.h"

namespace sanastream::test {

namespace {

void put16(std::string& s, uint16_t v) { s.append(reinterpret_cast<const char*>(&v), 2); }
void put32(std::string& s, uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }
void put64(std::string& s, uint64_t v) { s.append(reinterpret_cast<const char*>(&v), 8); }

// A minimal ZIP writer (stored entries) that can force ZIP64 everywhere.
class ZipWriter {
 public:
  explicit ZipWriter(bool zip64) : zip64_(zip64) {}
  void add(const std::string& name, const std::string& data) {
    Entry e{name, data.size(), out_.size()};
    std::string extra;
    if (zip64_) {
      put16(extra, 0x0001);
      put16(extra, 16);
      put64(extra, data.size());
      put64(extra, data.size());
    }
    // Pad so the data starts at a 64-byte boundary, as torch.save does.
    const size_t header = 30 + name.size() + extra.size();
    size_t pad = (64 - (out_.size() + header + 4) % 64) % 64;
    put16(extra, 0xCAFE);
    put16(extra, static_cast<uint16_t>(pad));
    extra.append(pad, 'Z');
    put32(out_, 0x04034b50);
    put16(out_, zip64_ ? 45 : 20);
    put16(out_, 0);
    put16(out_, 0);
    put16(out_, 0);
    put16(out_, 0);
    put32(out_, 0);  // crc (not checked by readers of stored torch archives)
    put32(out_, zip64_ ? 0xFFFFFFFFu : static_cast<uint32_t>(data.size()));
    put32(out_, zip64_ ? 0xFFFFFFFFu : static_cast<uint32_t>(data.size()));
    put16(out_, static_cast<uint16_t>(name.size()));
    put16(out_, static_cast<uint16_t>(extra.size()));
    out_ += name;
    out_ += extra;
    out_ += data;
    entries_.push_back(e);
  }
  std::string finish() {
    const uint64_t cd_start = out_.size();
    for (const auto& e : entries_) {
      std::string extra;
      if (zip64_) {
        put16(extra, 0x0001);
        put16(extra, 24);
        put64(extra, e.size);
        put64(extra, e.size);
        put64(extra, e.offset);
      }
      put32(out_, 0x02014b50);
      put16(out_, zip64_ ? 45 : 20);
      put16(out_, zip64_ ? 45 : 20);
      put16(out_, 0);
      put16(out_, 0);
      put16(out_, 0);
      put16(out_, 0);
      put32(out_, 0);
      put32(out_, zip64_ ? 0xFFFFFFFFu : static_cast<uint32_t>(e.size));
      put32(out_, zip64_ ? 0xFFFFFFFFu : static_cast<uint32_t>(e.size));
      put16(out_, static_cast<uint16_t>(e.name.size()));
      put16(out_, static_cast<uint16_t>(extra.size()));
      put16(out_, 0);
      put16(out_, 0);
      put16(out_, 0);
      put32(out_, 0);
      put32(out_, zip64_ ? 0xFFFFFFFFu : static_cast<uint32_t>(e.offset));
      out_ += e.name;
      out_ += extra;
    }
    const uint64_t cd_size = out_.size() - cd_start;
    if (zip64_) {
      const uint64_t z64 = out_.size();
      put32(out_, 0x06064b50);
      put64(out_, 44);
      put16(out_, 45);
      put16(out_, 45);
      put32(out_, 0);
      put32(out_, 0);
      put64(out_, entries_.size());
      put64(out_, entries_.size());
      put64(out_, cd_size);
      put64(out_, cd_start);
      put32(out_, 0x07064b50);
      put32(out_, 0);
      put64(out_, z64);
      put32(out_, 1);
    }
    put32(out_, 0x06054b50);
    put16(out_, 0);
    put16(out_, 0);
    put16(out_, zip64_ ? 0xFFFF : static_cast<uint16_t>(entries_.size()));
    put16(out_, zip64_ ? 0xFFFF : static_cast<uint16_t>(entries_.size()));
    put32(out_, zip64_ ? 0xFFFFFFFFu : static_cast<uint32_t>(cd_size));
    put32(out_, zip64_ ? 0xFFFFFFFFu : static_cast<uint32_t>(cd_start));
    put16(out_, 0);
    return out_;
  }

 private:
  struct Entry {
    std::string name;
    uint64_t size, offset;
  };
  bool zip64_;
  std::string out_;
  std::vector<Entry> entries_;
};

// Protocol-2 pickle building blocks.
class Pickler {
 public:
  std::string& out() { return s_; }
  void proto() { s_ += "\x80\x02"; }
  void str(const std::string& v) {
    s_ += 'X';
    put32(s_, static_cast<uint32_t>(v.size()));
    s_ += v;
  }
  void integer(int64_t v) {
    if (v >= 0 && v < 256) {
      s_ += 'K';
      s_ += static_cast<char>(v);
    } else {
      s_ += '\x8a';
      s_ += '\x08';
      put64(s_, static_cast<uint64_t>(v));
    }
  }
  void global(const std::string& module, const std::string& name) { s_ += "c" + module + "\n" + name + "\n"; }
  void mark() { s_ += '('; }
  void tuple() { s_ += 't'; }
  void empty_dict() { s_ += '}'; }
  void empty_tuple() { s_ += ')'; }
  void reduce() { s_ += 'R'; }
  void setitems() { s_ += 'u'; }
  void newfalse() { s_ += '\x89'; }
  void binpersid() { s_ += 'Q'; }
  void stop() { s_ += '.'; }

 private:
  std::string s_;
};

std::string storage_class(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "FloatStorage";
    case at::kBFloat16: return "BFloat16Storage";
    case at::kHalf: return "HalfStorage";
    case at::kDouble: return "DoubleStorage";
    case at::kLong: return "LongStorage";
    case at::kInt: return "IntStorage";
    case at::kByte: return "ByteStorage";
    case at::kBool: return "BoolStorage";
    default: SS_FAIL("pth_writer: unsupported dtype {}", c10::toString(t));
  }
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  SS_CHECK(f.good(), "cannot write {}", path);
}

}  // namespace

void write_pth(const std::string& path, const io::TensorMap& tensors, const PthWriteOptions& o) {
  Pickler p;
  p.proto();
  p.empty_dict();
  p.mark();
  if (!o.wrapper.empty()) {
    p.str(o.wrapper);
    p.global("collections", "OrderedDict");
    p.empty_tuple();
    p.reduce();
    p.mark();
  }
  std::vector<std::pair<std::string, at::Tensor>> storages;
  for (const auto& [key, t] : tensors) {
    at::Tensor c = t.contiguous();
    const std::string skey = std::to_string(storages.size());
    p.str(o.key_prefix + key);
    p.global("torch._utils", "_rebuild_tensor_v2");
    p.mark();
    p.mark();
    p.str("storage");
    p.global("torch", storage_class(c.scalar_type()));
    p.str(skey);
    p.str("cpu");
    p.integer(c.numel());
    p.tuple();
    p.binpersid();
    p.integer(0);
    p.mark();
    for (auto s : c.sizes()) p.integer(s);
    p.tuple();
    p.mark();
    for (auto s : c.strides()) p.integer(s);
    p.tuple();
    p.newfalse();
    p.global("collections", "OrderedDict");
    p.empty_tuple();
    p.reduce();
    p.tuple();
    p.reduce();
    storages.emplace_back(skey, c);
  }
  p.setitems();
  if (!o.wrapper.empty()) {
    for (const auto& [k, v] : o.int_leaves) {
      p.str(k);
      p.integer(v);
    }
    p.setitems();
  }
  p.stop();
  ZipWriter z(o.force_zip64);
  z.add(o.prefix + "/data.pkl", p.out());
  z.add(o.prefix + "/byteorder", "little");
  for (const auto& [skey, t] : storages)
    z.add(o.prefix + "/data/" + skey,
          std::string(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size()));
  z.add(o.prefix + "/version", "3\n");
  write_file(path, z.finish());
}

void write_pth_raw_pickle(const std::string& path, const std::string& pickle, bool force_zip64) {
  ZipWriter z(force_zip64);
  z.add("archive/data.pkl", pickle);
  z.add("archive/version", "3\n");
  write_file(path, z.finish());
}

}  // namespace sanastream::test
