// The VAE's FP8 convolutions (ops::conv3d_fp8, issue 15) as one cuDNN graph through the backend API:
// convolution of E4M3 channels-last input and weight with fp32 accumulation into a virtual fp32
// tensor, times the per-output-channel scale, plus the bias, written once in bf16.
//
// cuDNN's heuristics order its engine configs, but not by speed at these shapes: on the H200 the
// first config of a 256-channel 5 × 88 × 160 convolution ran at 816 TFLOP/s and the best of the first
// eight at 945 (docs/QUANT.md, "The VAE in FP8"). So the first call of each shape builds the first
// eight configs that build, times each (CUDA events, after one untimed run) and keeps the fastest;
// under CUDA graph capture it keeps the first that builds instead.
//
// Building a config compiles its kernels, which made the timing cost seconds per shape. The choice
// is therefore kept on disk (EngineRecord below), per GPU, cuDNN version and shape: a later process
// builds only the recorded config.
#include <cudnn.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>

#include "core/compare.h"
#include "core/fs.h"
#include "core/log.h"
#include "ops/cuda/launch.h"
#include "ops/cuda_dispatch.h"

namespace sanastream::ops::cuda {

#if SS_HAS_FLOAT8
namespace {

void check_dnn(cudnnStatus_t s, const char* what) {
  SS_CHECK(s == CUDNN_STATUS_SUCCESS, "FP8 convolution: {} failed ({})", what, cudnnGetErrorString(s));
}

// Backend descriptors, created and finalised. The kept plan of a shape lives as long as the process
// (the cache below), and with it every descriptor of its graph, which are therefore never destroyed;
// the engine configs' plans that lost the timing are.
cudnnBackendDescriptor_t make(cudnnBackendDescriptorType_t type) {
  cudnnBackendDescriptor_t d = nullptr;
  check_dnn(cudnnBackendCreateDescriptor(type, &d), "creating a descriptor");
  return d;
}
template <typename V>
void set(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t n,
         const V* values) {
  check_dnn(cudnnBackendSetAttribute(d, name, type, n, values), "setting an attribute");
}
void finalize(cudnnBackendDescriptor_t d, const char* what) { check_dnn(cudnnBackendFinalize(d), what); }

enum Uid : int64_t { kX = 1, kW = 2, kY = 3, kScale = 4, kBias = 5, kSums = 10, kScaled = 11 };

cudnnBackendDescriptor_t tensor(Uid uid, cudnnDataType_t type, const std::vector<int64_t>& dims,
                                const std::vector<int64_t>& strides, bool is_virtual = false) {
  cudnnBackendDescriptor_t d = make(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  const int64_t id = uid, align = 16;
  set(d, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type);
  set(d, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, static_cast<int64_t>(dims.size()), dims.data());
  set(d, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, static_cast<int64_t>(strides.size()), strides.data());
  set(d, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &id);
  set(d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align);
  if (is_virtual) set(d, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual);
  finalize(d, "a tensor descriptor");
  return d;
}

cudnnBackendDescriptor_t pointwise(cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b,
                                   cudnnBackendDescriptor_t y) {
  cudnnBackendDescriptor_t pw = make(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
  const cudnnDataType_t prec = CUDNN_DATA_FLOAT;
  set(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
  set(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec);
  finalize(pw, "a pointwise descriptor");
  cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
  set(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw);
  set(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
  set(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b);
  set(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
  finalize(op, "a pointwise operation");
  return op;
}

std::vector<int64_t> dims_of(const at::Tensor& t) { return t.sizes().vec(); }
std::vector<int64_t> strides_of(const at::Tensor& t) { return t.strides().vec(); }

struct Plan {
  cudnnBackendDescriptor_t plan = nullptr;
  int64_t workspace = 0;
};

// One handle per thread and device: a handle carries its stream (cudnnSetStream), so threads that
// run stages on their own streams (the pipelined engine's encoder and decoder) must not share one.
cudnnHandle_t handle_for(int device) {
  struct Handles {
    std::map<int, cudnnHandle_t> by_device;
    ~Handles() {
      for (auto& [d, h] : by_device) cudnnDestroy(h);
    }
  };
  thread_local Handles handles;
  cudnnHandle_t& h = handles.by_device[device];
  if (!h) check_dnn(cudnnCreate(&h), "creating the cuDNN handle");
  return h;
}

void execute(cudnnHandle_t handle, const Plan& plan, void* const (&ptrs)[5], const at::Tensor& like) {
  const at::Tensor workspace = at::empty({std::max<int64_t>(plan.workspace, 1)}, like.options().dtype(at::kByte));
  cudnnBackendDescriptor_t pack = make(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  const int64_t uids[5] = {kX, kW, kY, kScale, kBias};
  void* ws = workspace.data_ptr();
  set(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 5, uids);
  set(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 5, ptrs);
  set(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
  const cudnnStatus_t built = cudnnBackendFinalize(pack);
  const cudnnStatus_t ran = built == CUDNN_STATUS_SUCCESS ? cudnnBackendExecute(handle, plan.plan, pack) : built;
  cudnnBackendDestroyDescriptor(pack);
  check_dnn(ran, "executing the convolution");
}

// The graph of one shape and cuDNN's engine configs for it, in its heuristics' order.
std::vector<cudnnBackendDescriptor_t> engine_configs(cudnnHandle_t handle, const at::Tensor& x, const at::Tensor& w,
                                                     const at::Tensor& y, int64_t stride, int64_t pad) {
  const int64_t K = w.size(0);
  const std::vector<int64_t> ch_dims = {1, K, 1, 1, 1}, ch_strides = {K, 1, K, K, K};
  cudnnBackendDescriptor_t xd = tensor(kX, CUDNN_DATA_FP8_E4M3, dims_of(x), strides_of(x));
  cudnnBackendDescriptor_t wd = tensor(kW, CUDNN_DATA_FP8_E4M3, dims_of(w), strides_of(w));
  cudnnBackendDescriptor_t yd = tensor(kY, CUDNN_DATA_BFLOAT16, dims_of(y), strides_of(y));
  cudnnBackendDescriptor_t sums = tensor(kSums, CUDNN_DATA_FLOAT, dims_of(y), strides_of(y), true);
  cudnnBackendDescriptor_t scaled = tensor(kScaled, CUDNN_DATA_FLOAT, dims_of(y), strides_of(y), true);
  cudnnBackendDescriptor_t sd = tensor(kScale, CUDNN_DATA_FLOAT, ch_dims, ch_strides);
  cudnnBackendDescriptor_t bd = tensor(kBias, CUDNN_DATA_FLOAT, ch_dims, ch_strides);

  cudnnBackendDescriptor_t conv = make(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
  const int64_t nd = 3, pre[3] = {0, pad, pad}, strides[3] = {stride, stride, stride}, one[3] = {1, 1, 1};
  const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  set(conv, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &nd);
  set(conv, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp);
  set(conv, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode);
  set(conv, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 3, pre);
  set(conv, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 3, pre);
  set(conv, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 3, one);
  set(conv, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 3, strides);
  finalize(conv, "the convolution descriptor");
  cudnnBackendDescriptor_t op = make(CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR);
  const float alpha = 1.f, beta = 0.f;
  set(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &xd);
  set(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &wd);
  set(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &sums);
  set(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &conv);
  set(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, CUDNN_TYPE_FLOAT, 1, &alpha);
  set(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, CUDNN_TYPE_FLOAT, 1, &beta);
  finalize(op, "the convolution operation");
  const cudnnBackendDescriptor_t ops[3] = {op, pointwise(CUDNN_POINTWISE_MUL, sums, sd, scaled),
                                           pointwise(CUDNN_POINTWISE_ADD, scaled, bd, yd)};
  cudnnBackendDescriptor_t graph = make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
  set(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 3, ops);
  set(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
  finalize(graph, "the operation graph");

  std::vector<cudnnBackendDescriptor_t> configs;
  for (cudnnBackendHeurMode_t hm : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    cudnnBackendDescriptor_t heur = make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    set(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph);
    set(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &hm);
    int64_t count = 0;
    if (cudnnBackendFinalize(heur) == CUDNN_STATUS_SUCCESS)
      cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr);
    if (count == 0) continue;
    configs.resize(static_cast<size_t>(count));
    for (auto& c : configs) c = make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    int64_t got = 0;
    check_dnn(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got,
                                       configs.data()),
              "reading the engine configs");
    configs.resize(static_cast<size_t>(got));
    break;
  }
  return configs;
}

// An engine config's plan, or nothing when the config does not build here.
std::optional<Plan> build(cudnnHandle_t handle, cudnnBackendDescriptor_t cfg) {
  Plan p;
  p.plan = make(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
  set(p.plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
  set(p.plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg);
  if (cudnnBackendFinalize(p.plan) != CUDNN_STATUS_SUCCESS) {
    cudnnBackendDestroyDescriptor(p.plan);
    return std::nullopt;
  }
  int64_t n = 0;
  check_dnn(cudnnBackendGetAttribute(p.plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n,
                                     &p.workspace),
            "reading the workspace size");
  return p;
}

// The global index of a config's engine (what the record checks its position against).
int64_t engine_of(cudnnBackendDescriptor_t cfg) {
  cudnnBackendDescriptor_t engine = make(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
  int64_t n = 0, index = -1;
  check_dnn(cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &engine),
            "reading a config's engine");
  check_dnn(cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, &index),
            "reading an engine's index");
  cudnnBackendDestroyDescriptor(engine);
  return index;
}

// The configs chosen by timing, kept across processes in
//   $SANASTREAM_CACHE_DIR, else $XDG_CACHE_HOME/sanastream, else ~/.cache/sanastream:
//   cudnn-fp8-conv.json = {"format": "sanastream-cudnn-fp8-conv", "version": 1,
//                          "choices": {KEY: {"position": i, "engine": e, "ms": t}}}
// KEY names the GPU, the cuDNN version and the shape; position is the config's place in cuDNN's
// heuristic list, engine its engine's global index (checked: another list is timed again). An
// unreadable record is timed afresh and rewritten; an unwritable one lives in memory only.
class EngineRecord {
 public:
  struct Choice {
    size_t position = 0;
    int64_t engine = -1;
  };
  EngineRecord() : path_(default_path()) {
    if (path_.empty() || !path_exists(path_)) return;
    try {
      const nlohmann::json j = nlohmann::json::parse(read_text_file(path_));
      if (j.value("format", "") == "sanastream-cudnn-fp8-conv" && j.value("version", 0) == 1)
        choices_ = j.at("choices");
    } catch (const std::exception& e) {
      log_warn("FP8 convolution: ignoring the engine record {} ({})", path_, e.what());
    }
    if (!choices_.is_object()) choices_ = nlohmann::json::object();
  }
  std::optional<Choice> find(const std::string& key) const {
    if (!choices_.contains(key)) return std::nullopt;
    const nlohmann::json& c = choices_[key];
    if (!c.value("position", nlohmann::json()).is_number_unsigned() || !c.value("engine", nlohmann::json()).is_number())
      return std::nullopt;
    return Choice{c["position"].get<size_t>(), c["engine"].get<int64_t>()};
  }
  const std::string& path() const { return path_; }
  void keep(const std::string& key, Choice c, float ms) {
    choices_[key] = {{"position", c.position}, {"engine", c.engine}, {"ms", ms}};
    if (path_.empty()) return;
    try {
      std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
      write_text_file_atomic(path_, nlohmann::json({{"format", "sanastream-cudnn-fp8-conv"},
                                                    {"version", 1},
                                                    {"choices", choices_}})
                                            .dump(1) +
                                        "\n");
    } catch (const std::exception& e) {
      log_warn("FP8 convolution: cannot write the engine record {} ({}); the choices last this process", path_,
               e.what());
      path_.clear();
    }
  }

 private:
  static std::string default_path() {
    auto env = [](const char* name) {
      const char* v = std::getenv(name);
      return std::string(v ? v : "");
    };
    const std::string file = "cudnn-fp8-conv.json";
    if (!env("SANASTREAM_CACHE_DIR").empty()) return env("SANASTREAM_CACHE_DIR") + "/" + file;
    if (!env("XDG_CACHE_HOME").empty()) return env("XDG_CACHE_HOME") + "/sanastream/" + file;
    if (!env("HOME").empty()) return env("HOME") + "/.cache/sanastream/" + file;
    return "";
  }
  std::string path_;
  nlohmann::json choices_ = nlohmann::json::object();
};

// The plan of one shape: the recorded config when it still builds, else the fastest of the first
// eight configs that build (see the top of the file), recorded.
Plan choose_plan(cudnnHandle_t handle, const at::Tensor& x, const at::Tensor& w, const at::Tensor& y, int64_t stride,
                 int64_t pad, void* const (&ptrs)[5], EngineRecord& record) {
  const auto t0 = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  cudaDeviceProp prop{};
  check_cuda(cudaGetDeviceProperties(&prop, x.get_device()), "cudaGetDeviceProperties");
  const std::string key = fmt::format("{} | cuDNN {} | x {} {} | w {} | stride {} | pad {}", prop.name,
                                      cudnnGetVersion(), shape_str(x.sizes()), shape_str(x.strides()),
                                      shape_str(w.sizes()), stride, pad);
  const std::vector<cudnnBackendDescriptor_t> configs = engine_configs(handle, x, w, y, stride, pad);
  if (const auto c = record.find(key); c && c->position < configs.size() && engine_of(configs[c->position]) == c->engine)
    if (const auto p = build(handle, configs[c->position])) {
      log_debug("FP8 convolution {}: the recorded config #{} built in {:.2f} s", key, c->position, seconds());
      return *p;
    }
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  check_cuda(cudaStreamIsCapturing(stream_of(y), &capture), "cudaStreamIsCapturing");
  const bool capturing = capture != cudaStreamCaptureStatusNone;
  static bool told = false;
  if (!capturing && !std::exchange(told, true))
    log_warn("FP8 convolution: timing cuDNN's engines for a new shape (seconds each, once per GPU and shape: the "
             "choice is recorded in {})", record.path().empty() ? "memory only" : record.path());
  constexpr int kTried = 8;
  Plan best;
  float best_ms = 0.f;
  size_t best_position = 0;
  int tried = 0;
  for (size_t i = 0; i < configs.size() && tried < kTried; ++i) {
    std::optional<Plan> p = build(handle, configs[i]);
    if (!p) continue;
    ++tried;
    if (capturing) return *p;
    execute(handle, *p, ptrs, y);  // untimed: first-use costs
    at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
    start.record(at::cuda::getCurrentCUDAStream());
    execute(handle, *p, ptrs, y);
    stop.record(at::cuda::getCurrentCUDAStream());
    stop.synchronize();
    const float ms = start.elapsed_time(stop);
    if (best.plan && ms >= best_ms) {
      cudnnBackendDestroyDescriptor(p->plan);
      continue;
    }
    if (best.plan) cudnnBackendDestroyDescriptor(best.plan);
    best = *p, best_ms = ms, best_position = i;
  }
  SS_CHECK(best.plan, "FP8 convolution: cuDNN has no engine for x {} w {} stride {} padding {}", shape_str(x.sizes()),
           shape_str(w.sizes()), stride, pad);
  record.keep(key, {best_position, engine_of(configs[best_position])}, best_ms);
  log_debug("FP8 convolution {}: {} configs built and timed in {:.2f} s; kept #{} ({:.3f} ms)", key, tried, seconds(),
            best_position, best_ms);
  return best;
}

}  // namespace

bool cudnn_fp8_conv_supported() { return cudnnGetVersion() >= 90000; }

at::Tensor conv3d_fp8(const at::Tensor& xq, const at::Tensor& wq, const at::Tensor& out_scale, const at::Tensor& bias,
                      int64_t stride, int64_t pad) {
  const auto cl = at::MemoryFormat::ChannelsLast3d;
  SS_CHECK(xq.scalar_type() == at::kFloat8_e4m3fn && wq.scalar_type() == at::kFloat8_e4m3fn && xq.stride(1) == 1 &&
               wq.is_contiguous(cl),
           "conv3d_fp8: expected E4M3 input with unit channel stride and a channels-last E4M3 weight");
  const at::Tensor scale = out_scale.to(at::kFloat).contiguous(), b = bias.to(at::kFloat).contiguous();
  const int64_t B = xq.size(0), K = wq.size(0);
  auto out_size = [&](int64_t n, int64_t k, int64_t p) { return (n + 2 * p - k) / stride + 1; };
  const int64_t To = out_size(xq.size(2), wq.size(2), 0), Ho = out_size(xq.size(3), wq.size(3), pad),
                Wo = out_size(xq.size(4), wq.size(4), pad);
  SS_CHECK(To > 0 && Ho > 0 && Wo > 0, "conv3d_fp8: input {} is smaller than the kernel {}", shape_str(xq.sizes()),
           shape_str(wq.sizes()));
  at::Tensor y = at::empty({B, K, To, Ho, Wo}, xq.options().dtype(at::kBFloat16), cl);
  const c10::cuda::CUDAGuard guard(xq.device());
  const int device = xq.get_device();
  cudnnHandle_t handle = handle_for(device);
  check_dnn(cudnnSetStream(handle, stream_of(y)), "setting the stream");
  void* const ptrs[5] = {xq.data_ptr(), wq.data_ptr(), y.data_ptr(), scale.data_ptr(), b.data_ptr()};

  using Key = std::tuple<int, std::vector<int64_t>, std::vector<int64_t>, std::vector<int64_t>, int64_t, int64_t>;
  static std::mutex mutex;
  static std::map<Key, Plan> plans;
  const Key key{device, dims_of(xq), strides_of(xq), dims_of(wq), stride, pad};
  Plan plan;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = plans.find(key);
    static EngineRecord record;
    if (it == plans.end()) it = plans.emplace(key, choose_plan(handle, xq, wq, y, stride, pad, ptrs, record)).first;
    plan = it->second;
  }
  execute(handle, plan, ptrs, y);
  return y;
}
#endif

}  // namespace sanastream::ops::cuda
