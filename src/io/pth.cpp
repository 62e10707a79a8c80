#include "io/pth.h"

#include <cstring>

#include "core/error.h"
#include "io/safetensors.h"
#include "io/zip_archive.h"

namespace sanastream::io {

PyRef load_pth(const std::string& path) {
  SS_CHECK(looks_like_zip(path), "{}: not a torch.save zip archive (legacy pre-1.6 checkpoints are not supported)",
           path);
  auto zip = ZipArchive::open(path);
  // The pickle sits at "<prefix>/data.pkl"; the prefix is whatever torch.save was given.
  std::string prefix;
  const ZipEntry* pkl = nullptr;
  for (const auto& name : zip->names()) {
    const std::string tail = "data.pkl";
    if (name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0 &&
        name.find('/') == name.size() - tail.size() - 1) {
      prefix = name.substr(0, name.size() - tail.size());
      pkl = zip->find(name);
      break;
    }
  }
  SS_CHECK(pkl != nullptr, "{}: not a torch.save archive (no <prefix>/data.pkl entry)", path);
  if (const ZipEntry* bo = zip->find(prefix + "byteorder")) {
    const std::string order(reinterpret_cast<const char*>(bo->data), bo->size);
    SS_CHECK(order == "little", "{}: expected little-endian storages, got byteorder '{}'", path, order);
  }
  StorageLoader loader = [&](const std::string& key, DType dtype, int64_t numel) {
    const ZipEntry* e = zip->find(prefix + "data/" + key);
    SS_CHECK(e != nullptr, "{}: storage '{}' is missing from the archive", path, key);
    const uint64_t bytes = static_cast<uint64_t>(numel) * dtype_size(dtype);
    SS_CHECK(e->size >= bytes, "{}: storage '{}' holds {} bytes, expected {} (truncated?)", path, key, e->size, bytes);
    RawTensor raw;
    raw.dtype = dtype;
    raw.shape = {numel};
    raw.data = e->data;
    raw.bytes = bytes;
    return raw_to_tensor(raw);
  };
  return unpickle(pkl->data, pkl->size, loader, path);
}

}  // namespace sanastream::io
