// File helpers: whole-file reads and the atomic output rule — every output is written under
// "<name>.part" and renamed to its name only once complete, so a truncated file never looks complete.
#pragma once

#include <cstdio>
#include <string>

namespace sanastream {

std::string read_text_file(const std::string& path);
bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
// Removes a file or a directory tree (symbolic links are removed, not followed); a missing path is
// fine. Returns "" or the reason it failed. (POSIX nftw rather than std::filesystem::remove_all: in a
// process that loads PyTorch's libtorch, the latter resolves to libtorch's own copy of libstdc++'s
// filesystem code, built by another compiler, and crashes on non-empty directories.)
std::string remove_tree(const std::string& path);

// Writes to "<path>.part"; commit() flushes, closes and renames to <path>. Destroyed without
// commit(), it removes the partial file. path "-" writes to stdout (commit just flushes).
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  std::FILE* handle() { return file_; }
  void write(const void* data, size_t bytes);
  void write(const std::string& text) { write(text.data(), text.size()); }
  void commit();
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }

 private:
  std::string path_;
  std::string temp_path_;
  std::FILE* file_ = nullptr;
  bool to_stdout_ = false;
  bool committed_ = false;
};

// Writes text to path ("-" = stdout) atomically.
void write_text_file_atomic(const std::string& path, const std::string& text);

}  // namespace sanastream
