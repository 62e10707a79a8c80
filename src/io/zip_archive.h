// A read-only ZIP reader over a memory-mapped file, as torch.save writes them: stored (uncompressed)
// entries, ZIP64 end-of-central-directory records and ZIP64 extra fields for archives past 4 GiB.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/mmap_file.h"

namespace sanastream::io {

struct ZipEntry {
  std::string name;
  uint64_t size = 0;            // uncompressed = stored size
  const uint8_t* data = nullptr;  // into the mapped file
};

class ZipArchive {
 public:
  static std::unique_ptr<ZipArchive> open(const std::string& path);
  const std::string& path() const { return file_->path(); }
  const std::vector<std::string>& names() const { return names_; }
  // nullptr when absent.
  const ZipEntry* find(const std::string& name) const;
  bool is_zip64() const { return zip64_; }

 private:
  std::shared_ptr<MappedFile> file_;
  std::map<std::string, ZipEntry> entries_;
  std::vector<std::string> names_;
  bool zip64_ = false;
};

// True when the file starts with a ZIP local-header signature.
bool looks_like_zip(const std::string& path);

}  // namespace sanastream::io
