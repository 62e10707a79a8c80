// The FP8 GEMM of ops::fp8_linear through cuBLASLt (issue 15): E4M3 operands with one fp32 scale per
// row of each (cuBLASLt's outer-vector scaling), the bias in the epilogue and, where given, a
// bf16 matrix added inside the GEMM (β = 1), so a residual or an accumulation costs no extra pass.
//
// Row-major D[M, N] = X[M, K]·W[N, K]ᵀ is column-major Dᵀ[N, M] = W·Xᵀ: A = W, read as the
// column-major K × N matrix Wᵀ and transposed (ld K); B = Xᵀ, column-major K × M (ld K). That is the
// "TN" layout Hopper's FP8 tensor cores take; A's scales are W's N channel scales, B's are X's M row
// scales, and the bias runs along Dᵀ's N rows.
#include <cublasLt.h>

#include <map>
#include <mutex>
#include <tuple>

#include <c10/cuda/CUDAGuard.h>

#include "core/compare.h"
#include "ops/cuda/launch.h"
#include "ops/cuda_dispatch.h"

namespace sanastream::ops::cuda {

#if SS_HAS_FLOAT8
static_assert(CUBLAS_VER_MAJOR > 12 || (CUBLAS_VER_MAJOR == 12 && CUBLAS_VER_MINOR >= 9),
              "the FP8 GEMMs' per-row scales need cuBLASLt 12.9 or newer (CUDA 12.9+)");
namespace {

void check_lt(cublasStatus_t s, const char* what) {
  SS_CHECK(s == CUBLAS_STATUS_SUCCESS, "FP8 GEMM: {} failed ({})", what, cublasLtGetStatusString(s));
}

template <typename T, typename Destroy>
struct LtHandle {
  T h = nullptr;
  Destroy destroy;
  explicit LtHandle(Destroy d) : destroy(d) {}
  ~LtHandle() {
    if (h) destroy(h);
  }
  LtHandle(const LtHandle&) = delete;
  LtHandle& operator=(const LtHandle&) = delete;
};

// The largest power of two up to 256 that divides the address (cuBLASLt picks kernels by it).
uint32_t alignment_of(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && a % align != 0) align /= 2;
  return align;
}

constexpr size_t kWorkspaceBytes = size_t(32) << 20;  // cuBLAS's recommendation for Hopper

// One GEMM's device, shape and alignments: what the heuristic's choice depends on.
using Key = std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool, uint32_t, uint32_t, uint32_t,
                       uint32_t>;

}  // namespace

void fp8_gemm(const QuantRows& x, const QuantRows& w, const at::Tensor& bias, const at::Tensor& c, at::Tensor& d) {
  const int64_t M = x.q.size(0), K = x.q.size(1), N = w.q.size(0);
  SS_CHECK(x.q.stride(1) == 1 && x.q.stride(0) == K && w.q.is_contiguous() && x.scale.is_contiguous() &&
               w.scale.is_contiguous(),
           "FP8 GEMM: expected contiguous E4M3 rows and scales");
  SS_CHECK(d.scalar_type() == at::kBFloat16 && d.dim() == 2 && d.size(0) == M && d.size(1) == N && d.stride(1) == 1,
           "FP8 GEMM: expected a bf16 output [{}, {}] with unit column stride, got {} {}", M, N,
           c10::toString(d.scalar_type()), shape_str(d.sizes()));
  SS_CHECK(!c.defined() || (c.scalar_type() == at::kBFloat16 && c.sizes() == d.sizes() && c.stride(1) == 1),
           "FP8 GEMM: the added matrix must be bf16 {} with unit column stride, got {}", shape_str(d.sizes()),
           shape_str(c.sizes()));
  SS_CHECK(!bias.defined() || (bias.scalar_type() == at::kBFloat16 && bias.numel() == N && bias.is_contiguous()),
           "FP8 GEMM: the bias must be {} contiguous bf16 values", N);
  if (M == 0) return;
  const c10::cuda::CUDAGuard guard(d.device());
  // cuBLASLt refuses scale vectors that do not start 16-byte aligned (its heuristic does not say so;
  // measured on the H200: every row count and operand offset runs, a scale offset of 4 or 12 bytes
  // does not): the scales of rows sliced at such an offset are copied (M floats).
  const at::Tensor x_scale = alignment_of(x.scale.data_ptr()) >= 16 ? x.scale : x.scale.clone();
  const at::Tensor w_scale = alignment_of(w.scale.data_ptr()) >= 16 ? w.scale : w.scale.clone();
  const at::Tensor& cm = c.defined() ? c : d;
  const bool has_bias = bias.defined(), accumulate = c.defined();

  using Desc = LtHandle<cublasLtMatmulDesc_t, cublasStatus_t (*)(cublasLtMatmulDesc_t)>;
  using Layout = LtHandle<cublasLtMatrixLayout_t, cublasStatus_t (*)(cublasLtMatrixLayout_t)>;
  Desc desc(cublasLtMatmulDescDestroy);
  check_lt(cublasLtMatmulDescCreate(&desc.h, CUBLAS_COMPUTE_32F, CUDA_R_32F), "creating the matmul");
  auto set = [&](cublasLtMatmulDescAttributes_t attr, const auto& value) {
    check_lt(cublasLtMatmulDescSetAttribute(desc.h, attr, &value, sizeof(value)), "setting a matmul attribute");
  };
  set(CUBLASLT_MATMUL_DESC_TRANSA, int32_t(CUBLAS_OP_T));
  set(CUBLASLT_MATMUL_DESC_TRANSB, int32_t(CUBLAS_OP_N));
  // Hopper's FP8 accumulation without cuBLAS's periodic promotion to fp32: 17–20 % faster at the DiT's
  // shapes, a relative RMSE of 2e-3 against the promoted sums (docs/QUANT.md), E4M3's own error is 3 %.
  set(CUBLASLT_MATMUL_DESC_FAST_ACCUM, int8_t(1));
  set(CUBLASLT_MATMUL_DESC_A_SCALE_MODE, int32_t(CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F));
  set(CUBLASLT_MATMUL_DESC_B_SCALE_MODE, int32_t(CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F));
  set(CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, static_cast<const void*>(w_scale.data_ptr<float>()));
  set(CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, static_cast<const void*>(x_scale.data_ptr<float>()));
  if (has_bias) {
    set(CUBLASLT_MATMUL_DESC_EPILOGUE, int32_t(CUBLASLT_EPILOGUE_BIAS));
    set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, static_cast<const void*>(bias.data_ptr()));
    set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, int32_t(CUDA_R_16BF));
  }
  Layout a(cublasLtMatrixLayoutDestroy), b(cublasLtMatrixLayoutDestroy), cl(cublasLtMatrixLayoutDestroy),
      dl(cublasLtMatrixLayoutDestroy);
  check_lt(cublasLtMatrixLayoutCreate(&a.h, CUDA_R_8F_E4M3, K, N, K), "the weight's layout");
  check_lt(cublasLtMatrixLayoutCreate(&b.h, CUDA_R_8F_E4M3, K, M, K), "the input's layout");
  check_lt(cublasLtMatrixLayoutCreate(&cl.h, CUDA_R_16BF, N, M, cm.stride(0)), "the added matrix's layout");
  check_lt(cublasLtMatrixLayoutCreate(&dl.h, CUDA_R_16BF, N, M, d.stride(0)), "the output's layout");

  // The heuristic's first choice, once per shape and alignment (host work only: fine under capture).
  const uint32_t align_a = alignment_of(w.q.data_ptr()), align_b = alignment_of(x.q.data_ptr()),
                 align_c = alignment_of(cm.data_ptr()), align_d = alignment_of(d.data_ptr());
  const int device = d.get_device();
  const Key key{device, M, N, K, cm.stride(0), d.stride(0), has_bias, accumulate, align_a, align_b, align_c, align_d};
  static std::mutex mutex;
  static std::map<int, cublasLtHandle_t> handles;  // one per device, for the process's life
  static std::map<Key, cublasLtMatmulAlgo_t> algos;
  cublasLtHandle_t handle = nullptr;
  cublasLtMatmulAlgo_t algo;
  {
    std::lock_guard<std::mutex> lock(mutex);
    cublasLtHandle_t& h = handles[device];
    if (!h) check_lt(cublasLtCreate(&h), "creating the cuBLASLt handle");
    handle = h;
    auto it = algos.find(key);
    if (it == algos.end()) {
      LtHandle<cublasLtMatmulPreference_t, cublasStatus_t (*)(cublasLtMatmulPreference_t)> pref(
          cublasLtMatmulPreferenceDestroy);
      check_lt(cublasLtMatmulPreferenceCreate(&pref.h), "creating the preference");
      auto pref_set = [&](cublasLtMatmulPreferenceAttributes_t attr, const auto& value) {
        check_lt(cublasLtMatmulPreferenceSetAttribute(pref.h, attr, &value, sizeof(value)), "setting a preference");
      };
      pref_set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64_t(kWorkspaceBytes));
      pref_set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_a);
      pref_set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_b);
      pref_set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_c);
      pref_set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_d);
      cublasLtMatmulHeuristicResult_t result{};
      int found = 0;
      check_lt(cublasLtMatmulAlgoGetHeuristic(handle, desc.h, a.h, b.h, cl.h, dl.h, pref.h, 1, &result, &found),
               "choosing a kernel");
      SS_CHECK(found > 0, "FP8 GEMM: cuBLASLt has no kernel for [{}, {}]·[{}, {}]ᵀ{}{}", M, K, N, K,
               has_bias ? " + bias" : "", accumulate ? " + C" : "");
      it = algos.emplace(key, result.algo).first;
    }
    algo = it->second;
  }
  const float alpha = 1.f, beta = accumulate ? 1.f : 0.f;
  const at::Tensor workspace = at::empty({int64_t(kWorkspaceBytes)}, d.options().dtype(at::kByte));
  check_lt(cublasLtMatmul(handle, desc.h, &alpha, w.q.data_ptr(), a.h, x.q.data_ptr(), b.h, &beta, cm.data_ptr(),
                          cl.h, d.data_ptr(), dl.h, &algo, workspace.data_ptr(), kWorkspaceBytes, stream_of(d)),
           "cublasLtMatmul");
}
#endif

}  // namespace sanastream::ops::cuda
