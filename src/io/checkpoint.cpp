#include "io/checkpoint.h"

#include <dirent.h>

#include <algorithm>

#include "core/error.h"
#include "core/fs.h"
#include "io/pth.h"

namespace sanastream::io {

namespace {
bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool is_weights_file(const std::string& name) {
  return ends_with(name, ".safetensors.index.json") || ends_with(name, ".pth") || ends_with(name, ".pt") ||
         (ends_with(name, ".safetensors") && name.find("-of-") == std::string::npos);
}

std::string describe_leaf(const PyValue& v) {
  switch (v.kind) {
    case PyValue::Kind::Int: return fmt::format("int {}", v.i);
    case PyValue::Kind::Float: return fmt::format("float {}", v.f);
    case PyValue::Kind::Str: return fmt::format("str '{}'", v.s.size() > 40 ? v.s.substr(0, 40) + "…" : v.s);
    case PyValue::Kind::Dict: return fmt::format("dict of {} entries", v.dict.size());
    case PyValue::Kind::List:
    case PyValue::Kind::Tuple: return fmt::format("{} of {} items", v.kind_name(), v.items.size());
    default: return v.kind_name();
  }
}

const PyValue* dict_get(const PyValue& d, const std::string& key) {
  for (const auto& [k, v] : d.dict)
    if (k->kind == PyValue::Kind::Str && k->s == key) return v.get();
  return nullptr;
}
}  // namespace

std::string strip_wrapper_prefixes(const std::string& key) {
  std::string k = key;
  if (k.rfind("model.", 0) == 0) k = k.substr(6);
  if (k.rfind("module.", 0) == 0) k = k.substr(7);
  return k;
}

std::string resolve_weights_path(const std::string& path, const std::string& kind_hint) {
  SS_CHECK(path_exists(path), "{} '{}' does not exist", kind_hint, path);
  if (!is_directory(path)) return path;
  std::vector<std::string> candidates;
  if (DIR* d = ::opendir(path.c_str())) {
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (is_weights_file(name)) candidates.push_back(name);
    }
    ::closedir(d);
  }
  std::sort(candidates.begin(), candidates.end());
  // A shard index wins over the shards it lists.
  std::vector<std::string> indexes;
  for (const auto& c : candidates)
    if (ends_with(c, ".index.json")) indexes.push_back(c);
  if (indexes.size() == 1) return path + "/" + indexes[0];
  SS_CHECK(!candidates.empty(), "{} directory '{}' holds no .safetensors, .safetensors.index.json or .pth file",
           kind_hint, path);
  if (candidates.size() > 1) {
    std::string list;
    for (const auto& c : candidates) list += (list.empty() ? "" : ", ") + c;
    SS_FAIL("{} directory '{}' holds several weight files ({}); name one", kind_hint, path, list);
  }
  return path + "/" + candidates[0];
}

WeightSet load_weights(const std::string& path_in) {
  const std::string path = resolve_weights_path(path_in);
  WeightSet ws;
  ws.source = path;
  TensorMap raw;
  if (ends_with(path, ".index.json")) {
    ws.format = "safetensors-shards";
    raw = load_safetensors(path);
  } else if (ends_with(path, ".safetensors")) {
    ws.format = "safetensors";
    raw = load_safetensors(path);
  } else {
    ws.format = "pth";
    PyRef root = load_pth(path);
    SS_CHECK(root->kind == PyValue::Kind::Dict, "{}: expected a dict at the top of the checkpoint, got a {}", path,
             root->kind_name());
    const PyValue* sd = root.get();
    for (const char* wrapper : {"generator", "state_dict"}) {
      const PyValue* inner = dict_get(*root, wrapper);
      if (inner && inner->kind == PyValue::Kind::Dict) {
        sd = inner;
        ws.selected = wrapper;
        break;
      }
    }
    if (sd != root.get())
      for (const auto& [k, v] : root->dict)
        if (k->kind == PyValue::Kind::Str && k->s != ws.selected)
          ws.skipped.push_back(fmt::format("{}: {} (ignored)", k->s, describe_leaf(*v)));
    for (const auto& [k, v] : sd->dict) {
      SS_CHECK(k->kind == PyValue::Kind::Str, "{}: state-dict key is a {}, expected str", path, k->kind_name());
      if (v->kind == PyValue::Kind::Tensor) {
        raw[k->s] = v->tensor;
      } else {
        ws.skipped.push_back(fmt::format("{}: {}", k->s, describe_leaf(*v)));
      }
    }
  }
  for (auto& [k, t] : raw) {
    const std::string key = strip_wrapper_prefixes(k);
    SS_CHECK(!ws.tensors.count(key), "{}: key '{}' appears twice after stripping 'model.'/'module.'", path, key);
    ws.tensors[key] = std::move(t);
  }
  return ws;
}

}  // namespace sanastream::io
