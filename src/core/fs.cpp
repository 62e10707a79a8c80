#include "core/fs.h"

#include <ftw.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace sanastream {

namespace {
int remove_entry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }
}  // namespace

std::string remove_tree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return errno == ENOENT ? "" : std::strerror(errno);
  if (::nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) return std::strerror(errno);
  return "";
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SS_CHECK(in.good(), "{}: cannot open ({})", path, std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  if (path_ == "-") {
    to_stdout_ = true;
    file_ = stdout;
    return;
  }
  temp_path_ = path_ + ".part";
  file_ = std::fopen(temp_path_.c_str(), "wb");
  SS_CHECK(file_ != nullptr, "{}: cannot create ({})", temp_path_, std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (to_stdout_ || committed_) return;
  if (file_) std::fclose(file_);
  std::remove(temp_path_.c_str());
}

void AtomicFile::write(const void* data, size_t bytes) {
  SS_CHECK(!committed_, "{}: write after commit", path_);
  if (bytes == 0) return;
  size_t n = std::fwrite(data, 1, bytes, file_);
  SS_CHECK(n == bytes, "{}: short write ({} of {} bytes: {})", to_stdout_ ? "stdout" : temp_path_, n, bytes,
           std::strerror(errno));
}

void AtomicFile::commit() {
  if (committed_) return;
  if (to_stdout_) {
    std::fflush(stdout);
    committed_ = true;
    return;
  }
  SS_CHECK(std::fflush(file_) == 0, "{}: flush failed ({})", temp_path_, std::strerror(errno));
  int rc = std::fclose(file_);
  file_ = nullptr;
  if (rc != 0) {
    std::remove(temp_path_.c_str());
    SS_FAIL("{}: close failed ({})", temp_path_, std::strerror(errno));
  }
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    int err = errno;
    std::remove(temp_path_.c_str());
    SS_FAIL("{}: cannot rename to {} ({})", temp_path_, path_, std::strerror(err));
  }
  committed_ = true;
}

void write_text_file_atomic(const std::string& path, const std::string& text) {
  AtomicFile f(path);
  f.write(text);
  f.commit();
}

}  // namespace sanastream
