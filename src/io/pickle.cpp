#include "io/pickle.h"

#include <cstring>
#include <map>
#include <set>

#include "core/error.h"

namespace sanastream::io {

const char* PyValue::kind_name() const {
  switch (kind) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Global: return "global";
    case Kind::Storage: return "storage";
    case Kind::Tensor: return "tensor";
  }
  return "?";
}

namespace {

using Kind = PyValue::Kind;

PyRef make(Kind k) {
  auto v = std::make_shared<PyValue>();
  v->kind = k;
  return v;
}

// Storage classes of torch.save's persistent ids and their element types.
const std::map<std::string, DType>& storage_types() {
  static const std::map<std::string, DType> m = {
      {"torch.FloatStorage", DType::F32},          {"torch.DoubleStorage", DType::F64},
      {"torch.HalfStorage", DType::F16},           {"torch.BFloat16Storage", DType::BF16},
      {"torch.LongStorage", DType::I64},           {"torch.IntStorage", DType::I32},
      {"torch.ShortStorage", DType::I16},          {"torch.CharStorage", DType::I8},
      {"torch.ByteStorage", DType::U8},            {"torch.BoolStorage", DType::BOOL},
      {"torch.Float8_e4m3fnStorage", DType::F8_E4M3}, {"torch.Float8_e5m2Storage", DType::F8_E5M2},
  };
  return m;
}

// The part of PyTorch's weights-only allow-list that state dicts use.
const std::set<std::string>& allowed_globals() {
  static const std::set<std::string> s = [] {
    std::set<std::string> a = {
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._tensor._rebuild_from_type_v2",
        "torch.nn.parameter.Parameter",
        "torch.Tensor",
        "torch.Size",
        "torch.device",
        "_codecs.encode",
        "builtins.set",
        "builtins.frozenset",
        "builtins.bytearray",
        "torch.float32", "torch.float64", "torch.float16", "torch.bfloat16", "torch.int64", "torch.int32",
        "torch.int16", "torch.int8", "torch.uint8", "torch.bool", "torch.float8_e4m3fn", "torch.float8_e5m2",
    };
    for (const auto& [name, _] : storage_types()) a.insert(name);
    return a;
  }();
  return s;
}

class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, const StorageLoader& loader, const std::string& what)
      : p_(data), end_(data + size), begin_(data), loader_(loader), what_(what) {}

  PyRef run() {
    while (true) {
      need(1);
      const uint8_t op = *p_++;
      switch (op) {
        case 0x80: need(1); ++p_; break;  // PROTO
        case 0x95: need(8); p_ += 8; break;  // FRAME
        case '.': SS_CHECK(stack_.size() == 1, "{}: corrupt pickle (stack holds {} items at STOP)", what_, stack_.size());
          return stack_.back();
        case '(': marks_.push_back(stack_.size()); break;
        case 'N': push(make(Kind::None)); break;
        case 0x88: case 0x89: { auto v = make(Kind::Bool); v->b = op == 0x88; push(v); break; }
        case 'J': { int32_t x; read(&x, 4); push_int(x); break; }
        case 'K': { need(1); push_int(*p_++); break; }
        case 'M': { uint16_t x; read(&x, 2); push_int(x); break; }
        case 0x8a: { need(1); const uint8_t n = *p_++; push_int(read_long(n)); break; }
        case 0x8b: { uint32_t n; read(&n, 4); push_int(read_long(n)); break; }
        case 'G': {
          need(8);
          uint8_t be[8];
          for (int k = 0; k < 8; ++k) be[k] = p_[7 - k];
          p_ += 8;
          auto v = make(Kind::Float);
          std::memcpy(&v->f, be, 8);
          push(v);
          break;
        }
        case 'X': { uint32_t n; read(&n, 4); push_str(Kind::Str, n); break; }
        case 0x8c: { need(1); const uint8_t n = *p_++; push_str(Kind::Str, n); break; }
        case 0x8d: { uint64_t n; read(&n, 8); push_str(Kind::Str, n); break; }
        case 'T': { uint32_t n; read(&n, 4); push_str(Kind::Str, n); break; }
        case 'U': { need(1); const uint8_t n = *p_++; push_str(Kind::Str, n); break; }
        case 'B': { uint32_t n; read(&n, 4); push_str(Kind::Bytes, n); break; }
        case 'C': { need(1); const uint8_t n = *p_++; push_str(Kind::Bytes, n); break; }
        case 0x8e: { uint64_t n; read(&n, 8); push_str(Kind::Bytes, n); break; }
        case '}': push(make(Kind::Dict)); break;
        case ']': push(make(Kind::List)); break;
        case ')': push(make(Kind::Tuple)); break;
        case 0x8f: push(make(Kind::List)); break;  // EMPTY_SET (kept as a list)
        case 't': { auto v = make(Kind::Tuple); v->items = pop_mark(); push(v); break; }
        case 0x85: case 0x86: case 0x87: {
          const size_t n = op - 0x84;
          auto v = make(Kind::Tuple);
          v->items.resize(n);
          for (size_t k = n; k-- > 0;) v->items[k] = pop();
          push(v);
          break;
        }
        case 'l': { auto v = make(Kind::List); v->items = pop_mark(); push(v); break; }
        case 'a': { auto x = pop(); expect(top(), Kind::List, "APPEND")->items.push_back(x); break; }
        case 'e': case 0x90: {
          auto xs = pop_mark();
          auto& lst = expect(top(), Kind::List, "APPENDS")->items;
          lst.insert(lst.end(), xs.begin(), xs.end());
          break;
        }
        case 'd': {
          auto xs = pop_mark();
          SS_CHECK(xs.size() % 2 == 0, "{}: corrupt pickle (DICT with odd item count)", what_);
          auto v = make(Kind::Dict);
          for (size_t k = 0; k < xs.size(); k += 2) v->dict.emplace_back(xs[k], xs[k + 1]);
          push(v);
          break;
        }
        case 's': {
          auto val = pop();
          auto key = pop();
          expect(top(), Kind::Dict, "SETITEM")->dict.emplace_back(key, val);
          break;
        }
        case 'u': {
          auto xs = pop_mark();
          SS_CHECK(xs.size() % 2 == 0, "{}: corrupt pickle (SETITEMS with odd item count)", what_);
          auto d = expect(top(), Kind::Dict, "SETITEMS");
          for (size_t k = 0; k < xs.size(); k += 2) d->dict.emplace_back(xs[k], xs[k + 1]);
          break;
        }
        case 'q': { need(1); memo_[*p_++] = top(); break; }
        case 'r': { uint32_t n; read(&n, 4); memo_[n] = top(); break; }
        case 0x94: { const uint32_t n = static_cast<uint32_t>(memo_.size()); memo_[n] = top(); break; }
        case 'h': { need(1); push(memo_get(*p_++)); break; }
        case 'j': { uint32_t n; read(&n, 4); push(memo_get(n)); break; }
        case 'c': {
          const std::string module = read_line();
          const std::string name = read_line();
          push(global(module, name));
          break;
        }
        case 0x93: {
          auto name = pop();
          auto module = pop();
          SS_CHECK(module->kind == Kind::Str && name->kind == Kind::Str, "{}: corrupt pickle (STACK_GLOBAL)", what_);
          push(global(module->s, name->s));
          break;
        }
        case 'Q': push(persistent_load(pop())); break;
        case 'R': {
          auto args = pop();
          auto fn = pop();
          push(reduce(fn, args));
          break;
        }
        case 0x81: {  // NEWOBJ: cls.__new__(cls, *args) — only for allowed container types
          auto args = pop();
          auto cls = pop();
          push(reduce(cls, args));
          break;
        }
        case 'b': {  // BUILD: state is ignored (no __setstate__ is ever run)
          pop();
          break;
        }
        case '0': pop(); break;
        case '1': pop_mark(); break;
        case '2': push(top()); break;
        default:
          SS_FAIL("{}: unsupported pickle opcode 0x{:02x} at byte {}", what_, op, (p_ - begin_) - 1);
      }
    }
  }

 private:
  void need(size_t n) const {
    SS_CHECK(static_cast<size_t>(end_ - p_) >= n, "{}: truncated pickle (needs {} more bytes at byte {})", what_, n,
             p_ - begin_);
  }
  void read(void* out, size_t n) {
    need(n);
    std::memcpy(out, p_, n);
    p_ += n;
  }
  int64_t read_long(uint64_t n) {
    SS_CHECK(n <= 8, "{}: integer of {} bytes does not fit 64 bits", what_, n);
    need(n);
    uint64_t v = 0;
    for (uint64_t k = 0; k < n; ++k) v |= uint64_t(p_[k]) << (8 * k);
    if (n > 0 && n < 8 && (p_[n - 1] & 0x80)) v |= ~uint64_t(0) << (8 * n);  // sign-extend
    p_ += n;
    return static_cast<int64_t>(v);
  }
  std::string read_line() {
    const uint8_t* nl = static_cast<const uint8_t*>(std::memchr(p_, '\n', end_ - p_));
    SS_CHECK(nl != nullptr, "{}: truncated pickle (unterminated GLOBAL)", what_);
    std::string s(reinterpret_cast<const char*>(p_), nl - p_);
    p_ = nl + 1;
    return s;
  }
  void push(PyRef v) { stack_.push_back(std::move(v)); }
  void push_int(int64_t x) {
    auto v = make(Kind::Int);
    v->i = x;
    push(v);
  }
  void push_str(Kind k, uint64_t n) {
    need(n);
    auto v = make(k);
    v->s.assign(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    push(v);
  }
  PyRef pop() {
    SS_CHECK(stack_.size() > (marks_.empty() ? 0 : marks_.back()), "{}: corrupt pickle (stack underflow)", what_);
    PyRef v = stack_.back();
    stack_.pop_back();
    return v;
  }
  PyRef top() const {
    SS_CHECK(!stack_.empty(), "{}: corrupt pickle (stack underflow)", what_);
    return stack_.back();
  }
  std::vector<PyRef> pop_mark() {
    SS_CHECK(!marks_.empty(), "{}: corrupt pickle (no MARK)", what_);
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<PyRef> xs(stack_.begin() + m, stack_.end());
    stack_.resize(m);
    return xs;
  }
  PyRef expect(const PyRef& v, Kind k, const char* op) const {
    SS_CHECK(v->kind == k, "{}: corrupt pickle ({} on a {})", what_, op, v->kind_name());
    return v;
  }
  PyRef memo_get(uint32_t n) const {
    auto it = memo_.find(n);
    SS_CHECK(it != memo_.end(), "{}: corrupt pickle (memo {} unset)", what_, n);
    return it->second;
  }

  PyRef global(const std::string& module, const std::string& name) {
    const std::string full = module + "." + name;
    SS_CHECK(allowed_globals().count(full) != 0,
             "{}: refused to load: the pickle names global '{}', which is not on the weights-only allow-list", what_,
             full);
    auto v = make(Kind::Global);
    v->s = full;
    return v;
  }

  PyRef persistent_load(const PyRef& pid) {
    SS_CHECK(pid->kind == Kind::Tuple && pid->items.size() == 5 && pid->items[0]->kind == Kind::Str &&
                 pid->items[0]->s == "storage",
             "{}: unsupported persistent id (expected ('storage', type, key, location, numel))", what_);
    const PyRef& type = pid->items[1];
    SS_CHECK(type->kind == Kind::Global && storage_types().count(type->s),
             "{}: unsupported storage type in persistent id", what_);
    SS_CHECK(pid->items[2]->kind == Kind::Str && pid->items[4]->kind == Kind::Int,
             "{}: corrupt persistent id (key or numel)", what_);
    const std::string& key = pid->items[2]->s;
    auto it = storages_.find(key);
    if (it != storages_.end()) return it->second;
    auto v = make(Kind::Storage);
    v->s = key;
    v->storage_dtype = storage_types().at(type->s);
    v->storage_numel = pid->items[4]->i;
    SS_CHECK(v->storage_numel >= 0, "{}: negative storage size", what_);
    v->tensor = loader_(key, v->storage_dtype, v->storage_numel);
    storages_[key] = v;
    return v;
  }

  std::vector<int64_t> int_tuple(const PyRef& v, const char* what) const {
    SS_CHECK(v->kind == Kind::Tuple || v->kind == Kind::List, "{}: corrupt tensor record ({} is a {})", what_, what,
             v->kind_name());
    std::vector<int64_t> out;
    for (const auto& x : v->items) {
      SS_CHECK(x->kind == Kind::Int, "{}: corrupt tensor record ({} holds a {})", what_, what, x->kind_name());
      out.push_back(x->i);
    }
    return out;
  }

  PyRef rebuild_tensor(const std::vector<PyRef>& a) {
    SS_CHECK(a.size() >= 4 && a[0]->kind == Kind::Storage && a[1]->kind == Kind::Int,
             "{}: corrupt _rebuild_tensor_v2 arguments", what_);
    const at::Tensor& storage = a[0]->tensor;
    const int64_t offset = a[1]->i;
    const auto size = int_tuple(a[2], "size");
    const auto stride = int_tuple(a[3], "stride");
    SS_CHECK(size.size() == stride.size(), "{}: tensor size and stride ranks differ", what_);
    int64_t extent = offset, numel = 1;
    for (size_t k = 0; k < size.size(); ++k) {
      SS_CHECK(size[k] >= 0 && stride[k] >= 0, "{}: negative tensor size or stride", what_);
      numel *= size[k];
      extent += (size[k] - 1) * stride[k];
    }
    SS_CHECK(offset >= 0 && (numel == 0 || extent < storage.numel()),
             "{}: tensor view (offset {}, extent {}) outside its storage of {} elements", what_, offset, extent,
             storage.numel());
    auto v = make(Kind::Tensor);
    v->tensor = numel == 0 ? at::empty(size, storage.options()) : storage.as_strided(size, stride, offset).clone();
    return v;
  }

  PyRef reduce(const PyRef& fn, const PyRef& args) {
    SS_CHECK(fn->kind == Kind::Global, "{}: refused to load: REDUCE on a {} (only allow-listed globals)", what_,
             fn->kind_name());
    SS_CHECK(args->kind == Kind::Tuple, "{}: corrupt pickle (REDUCE arguments are a {})", what_, args->kind_name());
    const std::string& name = fn->s;
    const auto& a = args->items;
    if (name == "collections.OrderedDict") {
      auto d = make(Kind::Dict);
      if (!a.empty() && a[0]->kind == Kind::List)
        for (const auto& pair : a[0]->items)
          if (pair->kind == Kind::Tuple && pair->items.size() == 2) d->dict.emplace_back(pair->items[0], pair->items[1]);
      return d;
    }
    if (name == "torch._utils._rebuild_tensor_v2") return rebuild_tensor(a);
    if (name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state") {
      SS_CHECK(!a.empty() && a[0]->kind == Kind::Tensor, "{}: corrupt _rebuild_parameter arguments", what_);
      return a[0];
    }
    if (name == "torch._tensor._rebuild_from_type_v2") {
      SS_CHECK(a.size() >= 3 && a[2]->kind == Kind::Tuple, "{}: corrupt _rebuild_from_type_v2 arguments", what_);
      return reduce(a[0], a[2]);
    }
    if (name == "torch.Size" || name == "builtins.set" || name == "builtins.frozenset") {
      auto t = make(name == "torch.Size" ? Kind::Tuple : Kind::List);
      if (!a.empty()) t->items = a[0]->items;
      return t;
    }
    if (name == "torch.device" || name == "_codecs.encode" || name == "builtins.bytearray") {
      auto s = make(name == "torch.device" ? Kind::Str : Kind::Bytes);
      if (!a.empty()) s->s = a[0]->s;
      return s;
    }
    SS_FAIL("{}: refused to load: global '{}' cannot be called", what_, name);
  }

  const uint8_t* p_;
  const uint8_t* end_;
  const uint8_t* begin_;
  const StorageLoader& loader_;
  std::string what_;
  std::vector<PyRef> stack_;
  std::vector<size_t> marks_;
  std::map<uint32_t, PyRef> memo_;
  std::map<std::string, PyRef> storages_;
};

}  // namespace

PyRef unpickle(const uint8_t* data, size_t size, const StorageLoader& load_storage, const std::string& what) {
  return Unpickler(data, size, load_storage, what).run();
}

}  // namespace sanastream::io
