// A restricted unpickler for torch.save's data.pkl. It builds plain values (None, bool, int, float,
// str, bytes, tuple, list, dict) and tensors, and accepts only the globals of PyTorch's weights-only
// allow-list that state dicts use; any other global is refused with its name. Nothing is executed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "core/dtype.h"

namespace sanastream::io {

struct PyValue;
using PyRef = std::shared_ptr<PyValue>;

struct PyValue {
  enum class Kind { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Global, Storage, Tensor };
  Kind kind = Kind::None;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;                               // Str, Bytes, Global ("module.name"), Storage key
  std::vector<PyRef> items;                    // Tuple, List
  std::vector<std::pair<PyRef, PyRef>> dict;   // Dict (insertion order)
  DType storage_dtype = DType::U8;             // Storage
  int64_t storage_numel = 0;                   // Storage
  at::Tensor tensor;                           // Tensor

  const char* kind_name() const;
};

// Loads the bytes of a storage record ('storage', type, key, location, numel) as a flat CPU tensor.
using StorageLoader = std::function<at::Tensor(const std::string& key, DType dtype, int64_t numel)>;

// `what` names the source in error messages.
PyRef unpickle(const uint8_t* data, size_t size, const StorageLoader& load_storage, const std::string& what);

}  // namespace sanastream::io
