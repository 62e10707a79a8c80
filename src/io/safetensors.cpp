#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"
#include "core/torch_compat.h"

namespace sanastream::io {

using nlohmann::json;

namespace {
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the format's own limit

at::ScalarType aten_type(DType t) {
  switch (t) {
    case DType::F64: return at::kDouble;
    case DType::F32: return at::kFloat;
    case DType::F16: return at::kHalf;
    case DType::BF16: return at::kBFloat16;
#if SS_HAS_FLOAT8
    case DType::F8_E4M3: return at::kFloat8_e4m3fn;
    case DType::F8_E5M2: return at::kFloat8_e5m2;
#else
    case DType::F8_E4M3:
    case DType::F8_E5M2: return at::kFloat;  // decoded on load
#endif
    case DType::I64: return at::kLong;
    case DType::I32: return at::kInt;
    case DType::I16: return at::kShort;
    case DType::I8: return at::kChar;
    case DType::U8: return at::kByte;
    case DType::BOOL: return at::kBool;
  }
  return at::kFloat;
}

std::string dirname_of(const std::string& path) {
  auto pos = path.find_last_of('/');
  return pos == std::string::npos ? std::string(".") : path.substr(0, pos);
}
}  // namespace

int64_t RawTensor::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

DType dtype_from_aten(at::ScalarType t) {
  switch (t) {
    case at::kDouble: return DType::F64;
    case at::kFloat: return DType::F32;
    case at::kHalf: return DType::F16;
    case at::kBFloat16: return DType::BF16;
#if SS_HAS_FLOAT8
    case at::kFloat8_e4m3fn: return DType::F8_E4M3;
    case at::kFloat8_e5m2: return DType::F8_E5M2;
#endif
    case at::kLong: return DType::I64;
    case at::kInt: return DType::I32;
    case at::kShort: return DType::I16;
    case at::kChar: return DType::I8;
    case at::kByte: return DType::U8;
    case at::kBool: return DType::BOOL;
    default: SS_FAIL("safetensors cannot hold dtype {}", c10::toString(t));
  }
}

at::Tensor raw_to_tensor(const RawTensor& raw) {
#if !SS_HAS_FLOAT8
  if (raw.dtype == DType::F8_E4M3 || raw.dtype == DType::F8_E5M2) {
    at::Tensor out = at::empty(raw.shape, at::kFloat);
    float* dst = out.data_ptr<float>();
    for (size_t i = 0; i < raw.bytes; ++i)
      dst[i] = raw.dtype == DType::F8_E4M3 ? fp8_e4m3_to_float(raw.data[i]) : fp8_e5m2_to_float(raw.data[i]);
    return out;
  }
#endif
  at::Tensor out = at::empty(raw.shape, at::TensorOptions().dtype(aten_type(raw.dtype)));
  if (raw.bytes) std::memcpy(out.data_ptr(), raw.data, raw.bytes);
  return out;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto st = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
  st->file_ = MappedFile::open(path);
  const size_t size = st->file_->size();
  SS_CHECK(size >= 8, "{}: not a safetensors file (expected at least 8 bytes, got {})", path, size);
  uint64_t header_len = 0;
  std::memcpy(&header_len, st->file_->data(), 8);  // little-endian hosts only (x86-64, aarch64)
  SS_CHECK(header_len <= kMaxHeaderBytes && header_len <= size - 8,
           "{}: corrupt safetensors header (header length {} but file has {} bytes)", path, header_len, size);
  const char* hdr = reinterpret_cast<const char*>(st->file_->data() + 8);
  json j = json::parse(hdr, hdr + header_len, nullptr, /*allow_exceptions=*/false);
  SS_CHECK(j.is_object(), "{}: corrupt safetensors header (not a JSON object)", path);
  const uint8_t* data_base = st->file_->data() + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;

  std::vector<std::pair<uint64_t, std::string>> order;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    if (key == "__metadata__") {
      SS_CHECK(it->is_object(), "{}: __metadata__ must be an object", path);
      for (auto m = it->begin(); m != it->end(); ++m)
        st->metadata_[m.key()] = m->is_string() ? m->get<std::string>() : m->dump();
      continue;
    }
    const json& e = *it;
    SS_CHECK(e.is_object() && e.contains("dtype") && e.contains("shape") && e.contains("data_offsets"),
             "{}: tensor '{}': expected dtype, shape and data_offsets in the header", path, key);
    SS_CHECK(e["dtype"].is_string(), "{}: tensor '{}': dtype must be a string", path, key);
    RawTensor raw;
    const std::string dtype = e["dtype"].get<std::string>();
    SS_CHECK(parse_dtype(dtype, &raw.dtype), "{}: tensor '{}': unsupported dtype '{}'", path, key, dtype);
    SS_CHECK(e["shape"].is_array(), "{}: tensor '{}': shape must be an array", path, key);
    uint64_t numel = 1;
    for (const auto& d : e["shape"]) {
      SS_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0),
               "{}: tensor '{}': shape entries must be non-negative integers", path, key);
      const uint64_t dim = d.get<uint64_t>();
      SS_CHECK(dim == 0 || numel <= std::numeric_limits<uint64_t>::max() / dim / 8,
               "{}: tensor '{}': shape overflows", path, key);
      numel *= dim;
      raw.shape.push_back(static_cast<int64_t>(dim));
    }
    const json& off = e["data_offsets"];
    SS_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
             "{}: tensor '{}': data_offsets must be two non-negative integers", path, key);
    const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    SS_CHECK(begin <= end && end <= data_size,
             "{}: tensor '{}': data offsets [{}, {}) outside the {}-byte data section (truncated or corrupt file)",
             path, key, begin, end, data_size);
    const uint64_t expected = numel * dtype_size(raw.dtype);
    SS_CHECK(end - begin == expected, "{}: tensor '{}': expected {} bytes for {} {} values, got offsets spanning {}",
             path, key, expected, numel, dtype, end - begin);
    raw.data = data_base + begin;
    raw.bytes = expected;
    order.emplace_back(begin, key);
    st->tensors_.emplace(key, std::move(raw));
  }
  std::sort(order.begin(), order.end());
  for (size_t i = 0; i < order.size(); ++i) {
    if (i > 0) {
      const RawTensor& prev = st->tensors_.at(order[i - 1].second);
      const uint64_t prev_end = order[i - 1].first + prev.bytes;
      SS_CHECK(order[i].first >= prev_end, "{}: tensors '{}' and '{}' overlap in the data section", path,
               order[i - 1].second, order[i].second);
    }
    st->keys_.push_back(order[i].second);
  }
  return st;
}

const RawTensor& SafetensorsFile::raw(const std::string& key) const {
  auto it = tensors_.find(key);
  SS_CHECK(it != tensors_.end(), "{}: no tensor named '{}'", path(), key);
  return it->second;
}

at::Tensor SafetensorsFile::tensor(const std::string& key) const { return raw_to_tensor(raw(key)); }

namespace {
// The tensors of a file or shard set: copied to the CPU, or (meta) only their dtypes and shapes.
TensorMap load_tensors(const std::string& path, bool meta) {
  auto get = [meta](const SafetensorsFile& f, const std::string& key) {
    if (!meta) return f.tensor(key);
    const RawTensor& raw = f.raw(key);
    return at::empty(raw.shape, at::TensorOptions().dtype(aten_type(raw.dtype)).device(at::kMeta));
  };
  TensorMap out;
  const std::string suffix = ".index.json";
  if (path.size() > suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0) {
    json index = json::parse(read_text_file(path), nullptr, false);
    SS_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
             "{}: expected a shard index with a 'weight_map' object", path);
    std::map<std::string, std::vector<std::string>> by_file;
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      SS_CHECK(it->is_string(), "{}: weight_map['{}'] must be a file name", path, it.key());
      by_file[it->get<std::string>()].push_back(it.key());
    }
    const std::string dir = dirname_of(path);
    for (const auto& [file, keys] : by_file) {
      SS_CHECK(file.find('/') == std::string::npos && file.find("..") == std::string::npos,
               "{}: shard name '{}' must be a plain file name", path, file);
      auto shard = SafetensorsFile::open(dir + "/" + file);
      for (const auto& key : keys) {
        SS_CHECK(shard->contains(key), "{}: index maps '{}' to {}, which does not hold it", path, key, file);
        out[key] = get(*shard, key);
      }
    }
    return out;
  }
  auto f = SafetensorsFile::open(path);
  for (const auto& key : f->keys()) out[key] = get(*f, key);
  return out;
}
}  // namespace

TensorMap load_safetensors(const std::string& path) { return load_tensors(path, false); }

TensorMap load_safetensors_meta(const std::string& path) { return load_tensors(path, true); }

void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> cpu;
  cpu.reserve(tensors.size());
  uint64_t offset = 0;
  for (const auto& [key, t] : tensors) {
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    const DType dt = dtype_from_aten(c.scalar_type());
    const uint64_t bytes = static_cast<uint64_t>(c.numel()) * dtype_size(dt);
    header[key] = {{"dtype", dtype_name(dt)}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    cpu.push_back(std::move(c));
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8 != 0) h.push_back(' ');
  const uint64_t hlen = h.size();
  AtomicFile out(path);
  out.write(&hlen, 8);
  out.write(h);
  for (const auto& c : cpu) out.write(c.data_ptr(), c.numel() * c.element_size());
  out.commit();
}

}  // namespace sanastream::io
