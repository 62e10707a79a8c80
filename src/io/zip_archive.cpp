#include "io/zip_archive.h"

#include <cstring>
#include <fstream>

#include "core/error.h"

namespace sanastream::io {

namespace {
constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEocdSig = 0x06054b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50, kZip64EocdSig = 0x06064b50;

// Bounds-checked little-endian reads; every offset comes from the (untrusted) file.
class Reader {
 public:
  Reader(const MappedFile& f) : f_(f) {}
  void need(uint64_t off, uint64_t len, const char* what) const {
    SS_CHECK(off <= f_.size() && len <= f_.size() - off, "{}: truncated or corrupt zip ({} at offset {} past the end)",
             f_.path(), what, off);
  }
  template <typename T>
  T get(uint64_t off, const char* what) const {
    need(off, sizeof(T), what);
    T v;
    std::memcpy(&v, f_.data() + off, sizeof(T));
    return v;
  }

 private:
  const MappedFile& f_;
};
}  // namespace

bool looks_like_zip(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint32_t sig = 0;
  in.read(reinterpret_cast<char*>(&sig), 4);
  return in.gcount() == 4 && sig == kLocalSig;
}

std::unique_ptr<ZipArchive> ZipArchive::open(const std::string& path) {
  auto za = std::unique_ptr<ZipArchive>(new ZipArchive());
  za->file_ = MappedFile::open(path);
  const MappedFile& f = *za->file_;
  Reader r(f);
  const uint64_t size = f.size();
  SS_CHECK(size >= 22, "{}: not a zip archive (too short)", path);

  // End of central directory: scan back over a possible comment (≤ 65535 bytes).
  uint64_t eocd = UINT64_MAX;
  const uint64_t lowest = size >= 22 + 65535 ? size - 22 - 65535 : 0;
  for (uint64_t off = size - 22 + 1; off-- > lowest;) {
    if (r.get<uint32_t>(off, "end record") == kEocdSig) {
      eocd = off;
      break;
    }
  }
  SS_CHECK(eocd != UINT64_MAX, "{}: not a zip archive or truncated (no end-of-central-directory record)", path);
  uint64_t n_entries = r.get<uint16_t>(eocd + 10, "entry count");
  uint64_t cd_size = r.get<uint32_t>(eocd + 12, "central directory size");
  uint64_t cd_offset = r.get<uint32_t>(eocd + 16, "central directory offset");
  if (n_entries == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_offset == 0xFFFFFFFFu) {
    SS_CHECK(eocd >= 20 && r.get<uint32_t>(eocd - 20, "zip64 locator") == kZip64LocatorSig,
             "{}: corrupt zip (ZIP64 markers without a ZIP64 locator)", path);
    const uint64_t z64 = r.get<uint64_t>(eocd - 20 + 8, "zip64 record offset");
    SS_CHECK(r.get<uint32_t>(z64, "zip64 record") == kZip64EocdSig, "{}: corrupt zip (bad ZIP64 end record)", path);
    n_entries = r.get<uint64_t>(z64 + 32, "zip64 entry count");
    cd_size = r.get<uint64_t>(z64 + 40, "zip64 directory size");
    cd_offset = r.get<uint64_t>(z64 + 48, "zip64 directory offset");
    za->zip64_ = true;
  }
  r.need(cd_offset, cd_size, "central directory");

  uint64_t p = cd_offset;
  for (uint64_t i = 0; i < n_entries; ++i) {
    SS_CHECK(r.get<uint32_t>(p, "central header") == kCentralSig, "{}: corrupt zip (bad central header #{})", path, i);
    const uint16_t method = r.get<uint16_t>(p + 10, "method");
    uint64_t comp = r.get<uint32_t>(p + 20, "size");
    uint64_t uncomp = r.get<uint32_t>(p + 24, "size");
    const uint16_t name_len = r.get<uint16_t>(p + 28, "name length");
    const uint16_t extra_len = r.get<uint16_t>(p + 30, "extra length");
    const uint16_t comment_len = r.get<uint16_t>(p + 32, "comment length");
    uint64_t local = r.get<uint32_t>(p + 42, "local offset");
    r.need(p + 46, uint64_t(name_len) + extra_len, "entry name");
    std::string name(reinterpret_cast<const char*>(f.data() + p + 46), name_len);
    // ZIP64 extended information: the 64-bit values of the fields that hold 0xFFFFFFFF, in order.
    uint64_t x = p + 46 + name_len;
    const uint64_t x_end = x + extra_len;
    while (x + 4 <= x_end) {
      const uint16_t id = r.get<uint16_t>(x, "extra id");
      const uint16_t len = r.get<uint16_t>(x + 2, "extra length");
      SS_CHECK(x + 4 + len <= x_end, "{}: corrupt zip (extra field of '{}' overruns)", path, name);
      if (id == 0x0001) {
        uint64_t q = x + 4;
        auto take = [&](uint64_t& field) {
          SS_CHECK(q + 8 <= x + 4 + len, "{}: corrupt zip (short ZIP64 field in '{}')", path, name);
          field = r.get<uint64_t>(q, "zip64 field");
          q += 8;
        };
        if (uncomp == 0xFFFFFFFFu) take(uncomp);
        if (comp == 0xFFFFFFFFu) take(comp);
        if (local == 0xFFFFFFFFu) take(local);
        za->zip64_ = true;
      }
      x += 4 + len;
    }
    SS_CHECK(method == 0, "{}: entry '{}' is compressed (method {}); torch.save archives store entries uncompressed",
             path, name, method);
    SS_CHECK(comp == uncomp, "{}: corrupt zip (stored entry '{}' has sizes {} and {})", path, name, comp, uncomp);
    SS_CHECK(r.get<uint32_t>(local, "local header") == kLocalSig, "{}: corrupt zip (bad local header of '{}')", path,
             name);
    const uint64_t data = local + 30 + r.get<uint16_t>(local + 26, "local name length") +
                          r.get<uint16_t>(local + 28, "local extra length");
    r.need(data, uncomp, "entry data");
    ZipEntry e;
    e.name = name;
    e.size = uncomp;
    e.data = f.data() + data;
    za->names_.push_back(name);
    za->entries_[name] = e;
    p += 46 + uint64_t(name_len) + extra_len + comment_len;
  }
  return za;
}

const ZipEntry* ZipArchive::find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

}  // namespace sanastream::io
