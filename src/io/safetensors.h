// safetensors: a memory-mapped reader that validates the header against the file (length,
// offsets, dtype sizes, overlaps), HF-style shard sets through *.safetensors.index.json, and an
// atomic writer (temporary name, then rename).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "core/dtype.h"
#include "io/mmap_file.h"

namespace sanastream::io {

struct RawTensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // points into the mapped file
  size_t bytes = 0;
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  // Keys in file order (by data offset).
  const std::vector<std::string>& keys() const { return keys_; }
  bool contains(const std::string& key) const { return tensors_.count(key) != 0; }
  const RawTensor& raw(const std::string& key) const;
  // A CPU tensor with the stored dtype (FP8 decoded to float32 where ATen lacks float8). The data
  // is copied, so the tensor outlives the file.
  at::Tensor tensor(const std::string& key) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::shared_ptr<MappedFile> file_;
  std::vector<std::string> keys_;
  std::map<std::string, RawTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

at::Tensor raw_to_tensor(const RawTensor& raw);

// An ordered set of named tensors, the in-memory form of every weights/inputs/outputs file.
using TensorMap = std::map<std::string, at::Tensor>;

// Reads every tensor of a .safetensors file or of an HF shard set (*.safetensors.index.json).
TensorMap load_safetensors(const std::string& path);
// The same tensors' dtypes and shapes only, as meta-device tensors: reads the header(s), no data
// (checking a model's shapes before loading it).
TensorMap load_safetensors_meta(const std::string& path);

// Writes tensors (any device/dtype supported by safetensors) to path atomically. Keys are
// written in sorted order; metadata goes to "__metadata__".
void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// The safetensors dtype of an ATen scalar type (errors for types safetensors cannot hold).
DType dtype_from_aten(at::ScalarType t);

}  // namespace sanastream::io
