#include "kernels/gdn.h"

namespace sanastream::kernels {

namespace {

constexpr int kD = 112;                 // head dim of the 2B family (20 × 112), exactly 7 × 16: no padding
constexpr int kPad = kD + 8;            // shared-memory row stride (elements): 16-byte rows, ldmatrix conflict-free
constexpr int kMT = kD / 16;            // 16-row m tiles
constexpr int kNT = kD / 8;             // 8-column n tiles
constexpr int kVecs = kD / 8;           // 8-channel vectors per head row
constexpr int kChunk = 32;              // tokens per summary chunk (two k16 steps)
constexpr int kSumThreads = kMT * 32;   // one warp per m tile
constexpr int kRowsPerThread = 8;       // state rows per scan thread
constexpr int kMaxFrames = 16;          // forward history held in shared memory by the scan
constexpr int kTasks = kChunk * kVecs / kSumThreads;  // channel vectors per summary thread and chunk
static_assert(kSumThreads % kVecs == 0 && kTasks * kSumThreads == kChunk * kVecs,
              "each summary thread keeps one channel vector");

// Launch shapes, one row per architecture: the first row whose compute capability the device reaches.
struct LaunchShape {
  int min_major;
  int scan_rows;      // state rows per scan block (multiple of kRowsPerThread, divides kD)
  int readout_warps;  // 16 tokens per warp in the read-out
};
constexpr LaunchShape kShapes[] = {
    {9, 16, 8},  // Hopper, measured on the H200 (docs/PERF.md): 8 read-out warps beat 4 by 14 %; 8 or 16 scan rows tie
    {0, 16, 4},  // sm_80–89 (untuned): 4 read-out warps keep two bf16 read-out blocks in 100 KB of shared memory
};

LaunchShape launch_shape() {
  int dev = 0, major = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  for (const LaunchShape& s : kShapes)
    if (major >= s.min_major) return s;
  return kShapes[sizeof(kShapes) / sizeof(kShapes[0]) - 1];
}

// The workspace, carved in this order (each part 256-byte aligned).
struct Workspace {
  float* rms_q;  // [B·N] inverse RMS of q rows
  float* rms_k;  // [B·N]
  float* sums;   // [B, H, T, 3, D, D] fp32: Pk, A, Pz
  float* bz;     // [B, H, T, D] fp32: K β
  void* states;  // [B, H, T, D, D] (type): M_f + R_f, [v, k]
  float* zc;     // [B, H, T, D] fp32: z_f + zr_f
};

size_t align256(size_t n) { return (n + 255) & ~size_t(255); }

size_t carve(const GdnParams& p, Workspace* w) {
  const size_t rows = p.batch * p.frames * p.tokens, bht = p.batch * p.heads * p.frames;
  const size_t elem = p.type == ElemType::kF32 ? 4 : 2;
  const size_t sizes[6] = {rows * 4, rows * 4, bht * 3 * kD * kD * 4, bht * kD * 4, bht * kD * kD * elem, bht * kD * 4};
  char* base = static_cast<char*>(p.workspace);
  void* parts[6];
  size_t off = 0;
  for (int i = 0; i < 6; ++i) {
    parts[i] = base ? base + off : nullptr;
    off += align256(sizes[i]);
  }
  if (w) *w = {static_cast<float*>(parts[0]), static_cast<float*>(parts[1]), static_cast<float*>(parts[2]),
               static_cast<float*>(parts[3]), parts[4], static_cast<float*>(parts[5])};
  return off;
}

// ---- element access: 8 consecutive elements as fp32 -------------------------------------------

__device__ __forceinline__ void load8(const __nv_bfloat16* p, float (&x)[8]) {
  const uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    x[2 * i] = f.x;
    x[2 * i + 1] = f.y;
  }
}
__device__ __forceinline__ void load8(const float* p, float (&x)[8]) {
  const float4 a = __ldg(reinterpret_cast<const float4*>(p)), b = __ldg(reinterpret_cast<const float4*>(p) + 1);
  x[0] = a.x, x[1] = a.y, x[2] = a.z, x[3] = a.w, x[4] = b.x, x[5] = b.y, x[6] = b.z, x[7] = b.w;
}
__device__ __forceinline__ void store8(__nv_bfloat16* p, const float (&x)[8]) {
  uint4 u;
  __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) h[i] = __floats2bfloat162_rn(x[2 * i], x[2 * i + 1]);
  *reinterpret_cast<uint4*>(p) = u;
}
__device__ __forceinline__ void store8(float* p, const float (&x)[8]) {
  reinterpret_cast<float4*>(p)[0] = make_float4(x[0], x[1], x[2], x[3]);
  reinterpret_cast<float4*>(p)[1] = make_float4(x[4], x[5], x[6], x[7]);
}
// 8 elements as loaded (packed), unpacked to fp32 later: keeps staged rows in few registers.
template <typename T>
struct Packed8 {
  uint4 u[sizeof(T) / 2];
};
template <typename T>
__device__ __forceinline__ Packed8<T> load_packed(const T* p) {
  Packed8<T> r;
#pragma unroll
  for (int i = 0; i < int(sizeof(T) / 2); ++i) r.u[i] = __ldg(reinterpret_cast<const uint4*>(p) + i);
  return r;
}
__device__ __forceinline__ void unpack(const Packed8<__nv_bfloat16>& r, float (&x)[8]) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&r.u[0]);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    x[2 * i] = f.x;
    x[2 * i + 1] = f.y;
  }
}
__device__ __forceinline__ void unpack(const Packed8<float>& r, float (&x)[8]) {
  const float* f = reinterpret_cast<const float*>(&r.u[0]);
#pragma unroll
  for (int i = 0; i < 8; ++i) x[i] = f[i];
}
__device__ __forceinline__ float2 load2(const __nv_bfloat16* p) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
}
__device__ __forceinline__ float2 load2(const float* p) { return *reinterpret_cast<const float2*>(p); }
__device__ __forceinline__ void store2(__nv_bfloat16* p, float a, float b) {
  *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(a, b);
}
__device__ __forceinline__ void store2(float* p, float a, float b) { *reinterpret_cast<float2*>(p) = make_float2(a, b); }

__device__ __forceinline__ float sigmoid(float x) { return 1.f / (1.f + expf(-x)); }

// Channels [c, c + 8) of one head row: ReLU(w · x · inv_rms) · scale.
template <typename T>
__device__ __forceinline__ void feature8(const T* raw, const T* w, float inv_rms, float scale, float (&x)[8]) {
  float wv[8];
  load8(raw, x);
  load8(w, wv);
#pragma unroll
  for (int i = 0; i < 8; ++i) x[i] = fmaxf(wv[i] * (x[i] * inv_rms), 0.f) * scale;
}

// RoPE on interleaved pairs: (x0, x1) → (x0·c − x1·s, x0·s + x1·c); cos/sin point at the 4 pairs.
__device__ __forceinline__ void rotate8(const float (&x)[8], const float* cos4, const float* sin4, float (&xr)[8]) {
  const float4 c = __ldg(reinterpret_cast<const float4*>(cos4)), s = __ldg(reinterpret_cast<const float4*>(sin4));
  const float cc[4] = {c.x, c.y, c.z, c.w}, ss[4] = {s.x, s.y, s.z, s.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    xr[2 * i] = x[2 * i] * cc[i] - x[2 * i + 1] * ss[i];
    xr[2 * i + 1] = x[2 * i] * ss[i] + x[2 * i + 1] * cc[i];
  }
}

// Copies n16 16-byte vectors global → shared by all threads of the block, kBatch loads in flight
// per thread before the first store. dst_row/src_row map vector i to its element offset.
template <int kBatch, typename SrcAt, typename DstAt>
__device__ __forceinline__ void copy_vectors(int n16, SrcAt src_at, DstAt dst_at) {
  for (int i0 = threadIdx.x; i0 < n16; i0 += kBatch * blockDim.x) {
    uint4 r[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int i = i0 + u * blockDim.x;
      if (i < n16) r[u] = *src_at(i);
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int i = i0 + u * blockDim.x;
      if (i < n16) *dst_at(i) = r[u];
    }
  }
}

// ---- warp tile products: acc[16 × kD] += A(16 × 16) · B(16 × kD), fp32 accumulators in the
// m16n8 layout (lane: row lane/4 and +8, columns 2·(lane%4) + {0, 1} of each 8-column tile). -----

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) {
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const void* p) {
  const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Summaries: acc[i][j] += Σ_{s∈[ks, ks+16)} X[s][m0 + i] · Y[s][j]; X, Y token-major [s][kPad].
__device__ __forceinline__ void tile_xty(float (&acc)[kNT][4], const __nv_bfloat16* X, const __nv_bfloat16* Y, int m0,
                                         int ks, int lane) {
  const int mat = lane >> 3, r = lane & 7;
  uint32_t a[4];
  ldsm_x4_trans(a, X + (ks + r + (mat >> 1) * 8) * kPad + m0 + (mat & 1) * 8);
#pragma unroll
  for (int nt = 0; nt < kNT; nt += 2) {
    uint32_t b[4];
    ldsm_x4_trans(b, Y + (ks + r + (mat & 1) * 8) * kPad + nt * 8 + (mat >> 1) * 8);
    mma_bf16(acc[nt], a, b[0], b[1]);
    mma_bf16(acc[nt + 1], a, b[2], b[3]);
  }
}
__device__ __forceinline__ void tile_xty(float (&acc)[kNT][4], const float* X, const float* Y, int m0, int ks,
                                         int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll 4
  for (int kk = ks; kk < ks + 16; ++kk) {
    const float a0 = X[kk * kPad + m0 + g], a1 = X[kk * kPad + m0 + g + 8];
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) {
      const float2 b = *reinterpret_cast<const float2*>(Y + kk * kPad + nt * 8 + 2 * t);
      acc[nt][0] = fmaf(a0, b.x, acc[nt][0]);
      acc[nt][1] = fmaf(a0, b.y, acc[nt][1]);
      acc[nt][2] = fmaf(a1, b.x, acc[nt][2]);
      acc[nt][3] = fmaf(a1, b.y, acc[nt][3]);
    }
  }
}

// Read-out: acc[i][v] += Σ_{k∈[ks, ks+16)} Q[m0 + i][k] · M[v][k]; Q [tokens][kPad], M [kD][kPad].
__device__ __forceinline__ void tile_qmt(float (&acc)[kNT][4], const __nv_bfloat16* Q, const __nv_bfloat16* M, int m0,
                                         int ks, int lane) {
  const int mat = lane >> 3, r = lane & 7;
  uint32_t a[4];
  ldsm_x4(a, Q + (m0 + r + (mat & 1) * 8) * kPad + ks + (mat >> 1) * 8);
#pragma unroll
  for (int nt = 0; nt < kNT; nt += 2) {
    uint32_t b[4];
    ldsm_x4(b, M + (nt * 8 + r + (mat >> 1) * 8) * kPad + ks + (mat & 1) * 8);
    mma_bf16(acc[nt], a, b[0], b[1]);
    mma_bf16(acc[nt + 1], a, b[2], b[3]);
  }
}
__device__ __forceinline__ void tile_qmt(float (&acc)[kNT][4], const float* Q, const float* M, int m0, int ks,
                                         int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll 4
  for (int kk = ks; kk < ks + 16; ++kk) {
    const float a0 = Q[(m0 + g) * kPad + kk], a1 = Q[(m0 + g + 8) * kPad + kk];
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) {
      const float b0 = M[(nt * 8 + 2 * t) * kPad + kk], b1 = M[(nt * 8 + 2 * t + 1) * kPad + kk];
      acc[nt][0] = fmaf(a0, b0, acc[nt][0]);
      acc[nt][1] = fmaf(a0, b1, acc[nt][1]);
      acc[nt][2] = fmaf(a1, b0, acc[nt][2]);
      acc[nt][3] = fmaf(a1, b1, acc[nt][3]);
    }
  }
}

// ---- 1. inverse RMS over all C channels, one warp per token row; blockIdx.y: 0 = q, 1 = k ------

template <typename T>
__global__ void __launch_bounds__(256) gdn_inv_rms_kernel(GdnParams p, Workspace w) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * 8 + warp;
  if (row >= p.batch * p.frames * p.tokens) return;
  const bool is_k = blockIdx.y == 1;
  const T* x = static_cast<const T*>(is_k ? p.k : p.q) + row * (is_k ? p.k_stride : p.q_stride);
  const int64_t C = p.heads * kD;
  float ss = 0.f;
  for (int64_t c = lane * 8; c < C; c += 256) {
    float v[8];
    load8(x + c, v);
#pragma unroll
    for (int i = 0; i < 8; ++i) ss = fmaf(v[i], v[i], ss);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  if (lane == 0) (is_k ? w.rms_k : w.rms_q)[row] = rsqrtf(ss / static_cast<float>(C) + p.norm_eps);
}

// ---- 2. per-frame summaries: grid (3 products, T, B·H), one warp per 16 output rows --------------
// product 0: Pk = K̂ᵀ (β∘K̂); 1: A = Vᵀ (β∘K̂); 2: Pz = Kᵀ (β∘K) and b = K β (fp32, unrounded).

template <typename T>
__global__ void __launch_bounds__(kSumThreads, 2) gdn_summaries_kernel(GdnParams p, Workspace w) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* xs = reinterpret_cast<T*>(smem_raw);  // [2][kChunk][kPad]
  T* ys = xs + 2 * kChunk * kPad;          // [2][kChunk][kPad]
  const int prod = blockIdx.x, f = blockIdx.y;
  const int64_t bh = blockIdx.z, b = bh / p.heads, h = bh % p.heads;
  const int64_t S = p.tokens, N = p.frames * S;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int c = (tid % kVecs) * 8;  // this thread's channel vector, the same in every task
  const T* k_in = static_cast<const T*>(p.k) + h * kD + c;
  const T* v_in = static_cast<const T*>(p.v) + h * kD + c;
  const T* beta_in = static_cast<const T*>(p.beta) + h;
  float kw[8];
  load8(static_cast<const T*>(p.k_norm) + h * kD + c, kw);
  float bacc[8] = {};

  // A chunk's keys and values staged in registers: fetched before the previous chunk's products,
  // transformed and written to shared memory after them (with the small, cache-resident β, inverse
  // RMS and RoPE rows). Rows past S are read at S − 1 and zeroed (β = 0).
  struct Stage {
    Packed8<T> k[kTasks], v[kTasks];
  } st;
  auto fetch = [&](int s0) {
#pragma unroll
    for (int i = 0; i < kTasks; ++i) {
      const int64_t s = s0 + (tid + i * kSumThreads) / kVecs;
      const int64_t row = b * N + f * S + (s < S ? s : S - 1);
      st.k[i] = load_packed(k_in + row * p.k_stride);
      if (prod == 1) st.v[i] = load_packed(v_in + row * p.v_stride);
    }
  };
  auto commit = [&](int s0, int buf) {
#pragma unroll
    for (int i = 0; i < kTasks; ++i) {
      const int tok = (tid + i * kSumThreads) / kVecs;
      const int64_t s = s0 + tok;
      const int64_t n = f * S + (s < S ? s : S - 1), row = b * N + n;
      const float beta = s < S ? sigmoid(to_f32(beta_in[row * p.beta_stride])) : 0.f;
      const float rms = w.rms_k[row];
      float kf[8], x[8], y[8];
      unpack(st.k[i], kf);
#pragma unroll
      for (int e = 0; e < 8; ++e) kf[e] = fmaxf(kw[e] * (kf[e] * rms), 0.f) * p.k_scale;
      if (prod == 2) {
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          x[e] = kf[e];
          y[e] = beta * kf[e];
          bacc[e] += y[e];
        }
      } else {
        float kr[8], vf[8];
        rotate8(kf, p.rope_cos + n * (kD / 2) + c / 2, p.rope_sin + n * (kD / 2) + c / 2, kr);
        if (prod == 1) unpack(st.v[i], vf);
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          y[e] = beta * kr[e];
          x[e] = prod == 0 ? kr[e] : vf[e];
        }
      }
      store8(xs + (buf * kChunk + tok) * kPad + c, x);
      store8(ys + (buf * kChunk + tok) * kPad + c, y);
    }
  };

  float acc[kNT][4] = {};
  const int chunks = static_cast<int>((S + kChunk - 1) / kChunk);
  fetch(0);
  commit(0, 0);
  __syncthreads();
  for (int ch = 0; ch < chunks; ++ch) {
    const bool next = ch + 1 < chunks;
    if (next) fetch((ch + 1) * kChunk);
    const T* xb = xs + (ch & 1) * kChunk * kPad;
    const T* yb = ys + (ch & 1) * kChunk * kPad;
#pragma unroll
    for (int ks = 0; ks < kChunk; ks += 16) tile_xty(acc, xb, yb, warp * 16, ks, lane);
    if (next) commit((ch + 1) * kChunk, (ch + 1) & 1);
    __syncthreads();
  }

  float* out = w.sums + ((bh * p.frames + f) * 3 + prod) * kD * kD;
  const int g = lane >> 2, t = lane & 3, r0 = warp * 16 + g;
#pragma unroll
  for (int nt = 0; nt < kNT; ++nt) {
    store2(out + r0 * kD + nt * 8 + 2 * t, acc[nt][0], acc[nt][1]);
    store2(out + (r0 + 8) * kD + nt * 8 + 2 * t, acc[nt][2], acc[nt][3]);
  }
  if (prod == 2) {  // b = K β: the partials of the threads sharing a channel vector, added in a fixed order
    float* red = reinterpret_cast<float*>(smem_raw);  // [kSumThreads / kVecs][kD]
#pragma unroll
    for (int e = 0; e < 8; ++e) red[(tid / kVecs) * kD + c + e] = bacc[e];
    __syncthreads();
    if (tid < kD) {
      float sum = 0.f;
      for (int i = 0; i < kSumThreads / kVecs; ++i) sum += red[i * kD + tid];
      w.bz[(bh * p.frames + f) * kD + tid] = sum;
    }
  }
}

// ---- 3. the scans: grid (D/rows + 1, H, B). Blocks 0 … D/rows − 1 own `rows` rows of M (fp32,
// column j = thread % D, 8 rows per thread); the last block scans z. Forward from init, then the
// reverse scan, writing M_f + R_f and z_f + zr_f once. ---------------------------------------------

template <typename T>
__global__ void gdn_scan_kernel(GdnParams p, Workspace w, int rows) {
  extern __shared__ __align__(16) float sm[];
  float* ps = sm;  // [kD][kD] the frame's Pk (or Pz)
  const int64_t h = blockIdx.y, b = blockIdx.z, bh = b * p.heads + h, T_ = p.frames;
  const float* decay = p.decay + b * T_ * p.heads + h;  // frame f at f · H
  const int tid = threadIdx.x;
  auto load_tile = [&](const float* src) {
    copy_vectors<7>(kD * kD / 4, [&](int i) { return reinterpret_cast<const uint4*>(src) + i; },
                    [&](int i) { return reinterpret_cast<uint4*>(ps) + i; });
  };
  auto frame_sums = [&](int64_t f, int which) { return w.sums + ((bh * T_ + f) * 3 + which) * kD * kD; };

  if (blockIdx.x == gridDim.x - 1) {  // z: z_f = g_f·(z − Pzᵀ z) + b_f
    float* zs = ps + kD * kD;  // [kD] current z
    float* zh = zs + kD;       // [T][kD] forward history
    const bool active = tid < kD;
    float z = active && p.init_z ? p.init_z[bh * kD + tid] : 0.f;
    auto step = [&](int64_t f, bool zero) {
      float acc = 0.f;
      if (!zero) {
        __syncthreads();
        load_tile(frame_sums(f, 2));
        if (active) zs[tid] = z;
        __syncthreads();
        if (active)
#pragma unroll 8
          for (int k = 0; k < kD; ++k) acc = fmaf(ps[k * kD + tid], zs[k], acc);
      }
      if (active) z = decay[f * p.heads] * (z - acc) + w.bz[(bh * T_ + f) * kD + tid];
    };
    for (int64_t f = 0; f < T_; ++f) {
      step(f, f == 0 && !p.init_z);
      if (active) zh[f * kD + tid] = z;
    }
    if (active && p.final_z) p.final_z[bh * kD + tid] = z;
    z = 0.f;
    for (int64_t f = T_ - 1; f >= 0; --f) {
      if (active) w.zc[(bh * T_ + f) * kD + tid] = zh[f * kD + tid] + z;
      if (f > 0) step(f, f == T_ - 1);
    }
    return;
  }

  float* ms = ps + kD * kD;     // [rows][kD] current state rows
  float* hist = ms + rows * kD;  // [T][rows][kD] forward states
  const int j = tid % kD, rl = (tid / kD) * kRowsPerThread;  // column, first local row
  const int64_t r0 = int64_t(blockIdx.x) * rows;
  float m[kRowsPerThread];
#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i)
    m[i] = p.init_kv ? p.init_kv[(bh * kD + r0 + rl + i) * kD + j] : 0.f;
  // m ← g_f·(m − m·Pk_f) + A_f (rows of this block); `zero`: m is known to be 0.
  auto step = [&](int64_t f, bool zero) {
    float acc[kRowsPerThread] = {};
    if (!zero) {
      __syncthreads();
      load_tile(frame_sums(f, 0));
#pragma unroll
      for (int i = 0; i < kRowsPerThread; ++i) ms[(rl + i) * kD + j] = m[i];
      __syncthreads();
      for (int k = 0; k < kD; k += 4) {
        const float p0 = ps[k * kD + j], p1 = ps[(k + 1) * kD + j], p2 = ps[(k + 2) * kD + j],
                    p3 = ps[(k + 3) * kD + j];
#pragma unroll
        for (int i = 0; i < kRowsPerThread; ++i) {
          const float4 mv = *reinterpret_cast<const float4*>(ms + (rl + i) * kD + k);
          acc[i] = fmaf(mv.x, p0, fmaf(mv.y, p1, fmaf(mv.z, p2, fmaf(mv.w, p3, acc[i]))));
        }
      }
    }
    const float g = decay[f * p.heads];
    const float* A = frame_sums(f, 1);
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) m[i] = g * (m[i] - acc[i]) + A[(r0 + rl + i) * kD + j];
  };
  for (int64_t f = 0; f < T_; ++f) {
    step(f, f == 0 && !p.init_kv);
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) hist[(f * rows + rl + i) * kD + j] = m[i];
  }
  if (p.final_kv) {
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) p.final_kv[(bh * kD + r0 + rl + i) * kD + j] = m[i];
  }
#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i) m[i] = 0.f;
  T* states = static_cast<T*>(w.states);
  for (int64_t f = T_ - 1; f >= 0; --f) {
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i)
      states[((bh * T_ + f) * kD + r0 + rl + i) * kD + j] = from_f32<T>(hist[(f * rows + rl + i) * kD + j] + m[i]);
    if (f > 0) step(f, f == T_ - 1);
  }
}

// ---- 4. read-out and merge: grid (⌈S / tokens⌉, T, B·H), tokens = 16 per warp, two threads per
// token for the query features --------------------------------------------------------------------

template <typename T>
__global__ void gdn_readout_kernel(GdnParams p, Workspace w) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int warps = blockDim.x >> 5, tokens = warps * 16;
  T* ms = reinterpret_cast<T*>(smem_raw);         // [kD][kPad] M_f + R_f, [v, k]
  T* qs = ms + kD * kPad;                          // [tokens][kPad] rotated queries
  float* zs = reinterpret_cast<float*>(qs + tokens * kPad);  // [kD] z_f + zr_f
  float* den = zs + kD;                            // [tokens]
  const int f = blockIdx.y;
  const int64_t bh = blockIdx.z, b = bh / p.heads, h = bh % p.heads;
  const int64_t S = p.tokens, N = p.frames * S, s0 = int64_t(blockIdx.x) * tokens;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;

  const T* st = static_cast<const T*>(w.states) + (bh * p.frames + f) * kD * kD;
  constexpr int kRowVecs = kD * sizeof(T) / 16;  // 16-byte vectors per state row
  copy_vectors<7>(kD * kRowVecs, [&](int i) { return reinterpret_cast<const uint4*>(st) + i; },
                  [&](int i) { return reinterpret_cast<uint4*>(ms + (i / kRowVecs) * kPad) + i % kRowVecs; });
  if (tid < kD) zs[tid] = w.zc[(bh * p.frames + f) * kD + tid];
  __syncthreads();

  {  // Queries: two threads per token, 7 channel vectors each; den summed in a fixed order.
    const int tok = tid >> 1, v0 = (tid & 1) * (kVecs / 2);
    const int64_t s = s0 + tok;
    const bool valid = s < S;
    const int64_t n = f * S + (valid ? s : S - 1), row = b * N + n;
    const float rms = w.rms_q[row];
    const T* q_row = static_cast<const T*>(p.q) + row * p.q_stride + h * kD;
    const T* qn = static_cast<const T*>(p.q_norm) + h * kD;
    float d = 0.f;
#pragma unroll
    for (int v = 0; v < kVecs / 2; ++v) {
      const int c = (v0 + v) * 8;
      float x[8], xr[8];
      feature8(q_row + c, qn + c, rms, 1.f, x);
#pragma unroll
      for (int i = 0; i < 8; ++i) d = fmaf(x[i], zs[c + i], d);
      rotate8(x, p.rope_cos + n * (kD / 2) + c / 2, p.rope_sin + n * (kD / 2) + c / 2, xr);
      if (!valid) {
#pragma unroll
        for (int i = 0; i < 8; ++i) xr[i] = 0.f;
      }
      store8(qs + tok * kPad + c, xr);
    }
    d += __shfl_xor_sync(0xffffffffu, d, 1);
    if ((tid & 1) == 0) den[tok] = d;
  }
  __syncthreads();

  float acc[kNT][4] = {};
#pragma unroll
  for (int ks = 0; ks < kD; ks += 16) tile_qmt(acc, qs, ms, warp * 16, ks, lane);

  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int tok = warp * 16 + g + half * 8;
    const int64_t s = s0 + tok;
    if (s >= S) continue;
    const int64_t row = b * N + f * S + s;
    const float dn = den[tok] + p.eps;
    const T* gate = static_cast<const T*>(p.gate) + row * p.gate_stride + h * kD;
    T* out = static_cast<T*>(p.out) + row * p.out_stride + h * kD;
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) {
      const int col = nt * 8 + 2 * t;
      const float2 gv = load2(gate + col);
      const float o0 = acc[nt][2 * half] / dn * (gv.x * sigmoid(gv.x));
      const float o1 = acc[nt][2 * half + 1] / dn * (gv.y * sigmoid(gv.y));
      store2(out + col, o0, o1);
    }
  }
}

template <typename T>
cudaError_t launch(const GdnParams& p, cudaStream_t stream) {
  Workspace w;
  carve(p, &w);
  const LaunchShape shape = launch_shape();
  const int64_t rows = p.batch * p.frames * p.tokens, BH = p.batch * p.heads;
  const unsigned T_ = static_cast<unsigned>(p.frames);

  gdn_inv_rms_kernel<T><<<dim3(static_cast<unsigned>((rows + 7) / 8), 2), 256, 0, stream>>>(p, w);

  const int sum_smem = 4 * kChunk * kPad * sizeof(T);
  cudaError_t err = cudaFuncSetAttribute(gdn_summaries_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, sum_smem);
  if (err != cudaSuccess) return err;
  gdn_summaries_kernel<T><<<dim3(3, T_, static_cast<unsigned>(BH)), kSumThreads, sum_smem, stream>>>(p, w);

  const int scan_rows = shape.scan_rows;
  const int scan_smem = (kD * kD + scan_rows * kD * (1 + static_cast<int>(p.frames))) * sizeof(float);
  err = cudaFuncSetAttribute(gdn_scan_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, scan_smem);
  if (err != cudaSuccess) return err;
  gdn_scan_kernel<T><<<dim3(kD / scan_rows + 1, static_cast<unsigned>(p.heads), static_cast<unsigned>(p.batch)),
                       kD * scan_rows / kRowsPerThread, scan_smem, stream>>>(p, w, scan_rows);

  const int tokens = shape.readout_warps * 16;
  const int read_smem = (kD + tokens) * kPad * sizeof(T) + (kD + tokens) * sizeof(float);
  err = cudaFuncSetAttribute(gdn_readout_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, read_smem);
  if (err != cudaSuccess) return err;
  gdn_readout_kernel<T><<<dim3(static_cast<unsigned>((p.tokens + tokens - 1) / tokens), T_, static_cast<unsigned>(BH)),
                          shape.readout_warps * 32, read_smem, stream>>>(p, w);
  return cudaGetLastError();
}

}  // namespace

bool gdn_supported(int64_t head_dim, int64_t frames, ElemType type) {
  return head_dim == kD && frames <= kMaxFrames && (type == ElemType::kBF16 || type == ElemType::kF32);
}

size_t gdn_workspace_bytes(const GdnParams& p) { return carve(p, nullptr); }

cudaError_t gdn_forward(const GdnParams& p, cudaStream_t stream) {
  if (!gdn_supported(p.head_dim, p.frames, p.type) || p.norm_type != p.type) return cudaErrorInvalidValue;
  if (p.batch * p.frames * p.tokens * p.heads == 0) return cudaSuccess;
  if (p.type == ElemType::kBF16) return launch<__nv_bfloat16>(p, stream);
  return launch<float>(p, stream);
}

}  // namespace sanastream::kernels
