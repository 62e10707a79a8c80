#include "kernels/gdn.h"

#include <cooperative_groups.h>

namespace sanastream::kernels {

namespace {

constexpr int kD = 112;                 // head dim of the 2B family (20 × 112), exactly 7 × 16: no padding
constexpr int kPad = kD + 8;            // shared-memory row stride (elements): 16-byte rows, ldmatrix conflict-free
constexpr int kMT = kD / 16;            // 16-row m tiles
constexpr int kNT = kD / 8;             // 8-column n tiles
constexpr int kVecs = kD / 8;           // 8-channel vectors per head row
constexpr int kChunk = 32;              // tokens per summary chunk (two k16 steps)
constexpr int kMaxFrames = 16;          // frames per call: the most the tests cover
constexpr int kReadTokens = 64;         // tokens per read-out block (4 warps of 16)
constexpr int kMaxSlices = 8;           // token slices per summary at most (a cluster of 8 is portable)

// Launch shapes, one row per architecture: the first row whose compute capability the device reaches.
struct LaunchShape {
  int min_major;
  int max_slices;  // token slices per summary: a thread-block cluster adds their partials (1 below sm_90)
  bool overlap;    // kernels 2–4 launched with programmatic stream serialization
};
constexpr LaunchShape kShapes[] = {
    {9, kMaxSlices, true},  // Hopper: the portable cluster size
    {0, 1, false},          // sm_80–89: no clusters
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
  float* rms_q;   // [B·N] inverse RMS of q rows
  float2* kfac;   // [B·N, H] (sigmoid(β), inverse RMS of the k row)
  float* sums;    // [B, H, T, 3, D, D] fp32: Pk, A, Pz
  float* bz;      // [B, H, T, D] fp32: K β
  float* hist;    // [B, H, T, D, D] fp32: the forward states M_f
  void* states;   // [B, H, T, D, D] (type): M_f + R_f, [v, k]
  float* zc;      // [B, H, T, D] fp32: z_f, then z_f + zr_f
};

size_t align256(size_t n) { return (n + 255) & ~size_t(255); }

size_t carve(const GdnParams& p, Workspace* w) {
  const size_t rows = p.batch * p.frames * p.tokens, bht = p.batch * p.heads * p.frames;
  const size_t elem = p.type == ElemType::kF32 ? 4 : 2;
  constexpr int kParts = 7;
  const size_t sizes[kParts] = {rows * 4,          rows * p.heads * 8,   bht * 3 * kD * kD * 4, bht * kD * 4,
                                bht * kD * kD * 4, bht * kD * kD * elem, bht * kD * 4};
  char* base = static_cast<char*>(p.workspace);
  void* parts[kParts];
  size_t off = 0;
  for (int i = 0; i < kParts; ++i) {
    parts[i] = base ? base + off : nullptr;
    off += align256(sizes[i]);
  }
  if (w)
    *w = {static_cast<float*>(parts[0]), static_cast<float2*>(parts[1]), static_cast<float*>(parts[2]),
          static_cast<float*>(parts[3]), static_cast<float*>(parts[4]), parts[5], static_cast<float*>(parts[6])};
  return off;
}

// ---- element access: 8 consecutive elements as fp32 (global or shared memory) ----------------

__device__ __forceinline__ void load8(const __nv_bfloat16* p, float (&x)[8]) {
  const uint4 u = *reinterpret_cast<const uint4*>(p);
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    x[2 * i] = f.x;
    x[2 * i + 1] = f.y;
  }
}
__device__ __forceinline__ void load8(const float* p, float (&x)[8]) {
  const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
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
__device__ __forceinline__ float2 load2(const __nv_bfloat16* p) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
}
__device__ __forceinline__ float2 load2(const float* p) { return *reinterpret_cast<const float2*>(p); }
__device__ __forceinline__ void store2(__nv_bfloat16* p, float a, float b) {
  *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(a, b);
}
__device__ __forceinline__ void store2(float* p, float a, float b) { *reinterpret_cast<float2*>(p) = make_float2(a, b); }

// 8 elements of an input no kernel writes, through the read-only data path.
__device__ __forceinline__ void load8_nc(const __nv_bfloat16* p, float (&x)[8]) {
  const uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
  load8(reinterpret_cast<const __nv_bfloat16*>(&u), x);
}
__device__ __forceinline__ void load8_nc(const float* p, float (&x)[8]) {
  const float4 a = __ldg(reinterpret_cast<const float4*>(p)), b = __ldg(reinterpret_cast<const float4*>(p) + 1);
  x[0] = a.x, x[1] = a.y, x[2] = a.z, x[3] = a.w, x[4] = b.x, x[5] = b.y, x[6] = b.z, x[7] = b.w;
}

__device__ __forceinline__ float sigmoid(float x) { return 1.f / (1.f + expf(-x)); }

// RoPE on interleaved pairs: (x0, x1) → (x0·c − x1·s, x0·s + x1·c); cos4/sin4 hold the 4 pairs' angles.
__device__ __forceinline__ void rotate8(const float (&x)[8], float4 cos4, float4 sin4, float (&xr)[8]) {
  const float cc[4] = {cos4.x, cos4.y, cos4.z, cos4.w}, ss[4] = {sin4.x, sin4.y, sin4.z, sin4.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    xr[2 * i] = x[2 * i] * cc[i] - x[2 * i + 1] * ss[i];
    xr[2 * i + 1] = x[2 * i] * ss[i] + x[2 * i + 1] * cc[i];
  }
}

// ---- thread-block clusters (sm_90): the summary slices add their partials through distributed
// shared memory. Below sm_90 the launch table asks for no clusters. --------------------------------

// A barrier over the cluster's blocks, with their shared-memory writes visible to one another.
__device__ __forceinline__ void cluster_sync() {
#if __CUDA_ARCH__ >= 900
  cooperative_groups::this_cluster().sync();
#else
  __syncthreads();
#endif
}
// The address of `p` in the shared memory of the cluster's block `rank`.
template <typename X>
__device__ __forceinline__ X* cluster_peer(X* p, int rank) {
#if __CUDA_ARCH__ >= 900
  return cooperative_groups::this_cluster().map_shared_rank(p, rank);
#else
  return p;
#endif
}

// Launches after the first use programmatic stream serialization (sm_90): the next kernel's blocks
// may start once every block of this one has called allow_next_kernel() — each kernel calls it after
// its own wait, so that whatever it waited for has finished before the kernel after it starts — do
// what does not depend on it first, then wait here until it has finished and its writes are visible.
// Both are no-ops for ordinary launches.
__device__ __forceinline__ void wait_for_previous_kernel() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void allow_next_kernel() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
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
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

// Read-out: acc[i][v] += Σ_{k∈[ks, ks+16)} Q[i][k] · M[v][k] for the warp's 16 query rows, the
// queries in registers in the A-fragment layout: q[h][c][e] = Q[g + 8h][ks + 8c + 2t + e]
// (g = lane/4, t = lane%4); M [kD][kPad] in shared memory.
__device__ __forceinline__ void tile_qmt(float (&acc)[kNT][4], const float (&q)[2][2][2], const __nv_bfloat16* M,
                                         int ks, int lane) {
  const int mat = lane >> 3, r = lane & 7;
  const uint32_t a[4] = {pack_bf16(q[0][0][0], q[0][0][1]), pack_bf16(q[1][0][0], q[1][0][1]),
                         pack_bf16(q[0][1][0], q[0][1][1]), pack_bf16(q[1][1][0], q[1][1][1])};
#pragma unroll
  for (int nt = 0; nt < kNT; nt += 2) {
    uint32_t b[4];
    ldsm_x4(b, M + (nt * 8 + r + (mat >> 1) * 8) * kPad + ks + (mat & 1) * 8);
    mma_bf16(acc[nt], a, b[0], b[1]);
    mma_bf16(acc[nt + 1], a, b[2], b[3]);
  }
}
// fp32: IEEE FMA in the same layout, each query element taken from the lane of the quad that holds it.
__device__ __forceinline__ void tile_qmt(float (&acc)[kNT][4], const float (&q)[2][2][2], const float* M, int ks,
                                         int lane) {
  const int t = lane & 3;
#pragma unroll
  for (int kk = 0; kk < 16; ++kk) {
    const int src = (lane & ~3) | ((kk & 7) >> 1);
    const float a0 = __shfl_sync(0xffffffffu, q[0][kk >> 3][kk & 1], src);
    const float a1 = __shfl_sync(0xffffffffu, q[1][kk >> 3][kk & 1], src);
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) {
      const float b0 = M[(nt * 8 + 2 * t) * kPad + ks + kk], b1 = M[(nt * 8 + 2 * t + 1) * kPad + ks + kk];
      acc[nt][0] = fmaf(a0, b0, acc[nt][0]);
      acc[nt][1] = fmaf(a0, b1, acc[nt][1]);
      acc[nt][2] = fmaf(a1, b0, acc[nt][2]);
      acc[nt][3] = fmaf(a1, b1, acc[nt][3]);
    }
  }
}

// ---- 1. inverse RMS over all C channels, one warp per token row. Keys (the first launch) also
// write (sigmoid(β), inverse RMS) per head, for the summaries' asynchronous copies. Queries run as
// the third launch, beside the summaries (they read only inputs), and only the read-out needs them;
// they wait for the summaries at their end, so that the scans, waiting for them, wait for both. --

template <typename T, bool kKeys>
__global__ void __launch_bounds__(256) gdn_inv_rms_kernel(GdnParams p, Workspace w) {
  allow_next_kernel();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * 8 + warp, N = p.frames * p.tokens;
  if (row < p.batch * N) {
    const T* x = static_cast<const T*>(kKeys ? p.k : p.q) + row * (kKeys ? p.k_stride : p.q_stride);
    const int64_t C = p.heads * kD;
    float ss = 0.f;
    for (int64_t c = lane * 8; c < C; c += 256) {
      float v[8];
      load8_nc(x + c, v);
#pragma unroll
      for (int i = 0; i < 8; ++i) ss = fmaf(v[i], v[i], ss);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    const float inv_rms = rsqrtf(ss / static_cast<float>(C) + p.norm_eps);
    if (kKeys) {
      const T* beta = static_cast<const T*>(p.beta) + row * p.beta_stride;
      for (int64_t h = lane; h < p.heads; h += 32) w.kfac[row * p.heads + h] = make_float2(sigmoid(to_f32(beta[h])), inv_rms);
    } else if (lane == 0) {
      w.rms_q[row] = inv_rms;
    }
  }
  if (!kKeys) wait_for_previous_kernel();  // the summaries
}

// ---- 2. per-frame summaries: grid (slices, T, B·H), 14 warps. Per chunk of 32 tokens each thread
// normalises, rotates and weights one channel vector of one token (the data it copied itself) into
// the tiles k̂, β∘k̂, k, β∘k; the values arrive in their tile directly. Warp (m tile mt, column half
// nh) then accumulates rows [16·mt, +16) × columns [56·nh, +56) of all three products:
//   Pk = K̂ᵀ (β∘K̂),  A = Vᵀ (β∘K̂),  Pz = Kᵀ (β∘K)   (and b = K β, fp32, unrounded),
// bf16 on tensor cores (mma.sync), fp32 in IEEE FMA with the same accumulator layout. Slice i of a
// (frame, head) takes the i-th run of chunks; the slices of one cluster add their partials in rank
// order through distributed shared memory. --------------------------------------------------------

constexpr int kSumWarps = kMT * 2;  // (m tile, column half)
constexpr int kSumThreads = kSumWarps * 32;
constexpr int kHalfNT = kNT / 2;    // n tiles per column half
static_assert(kSumThreads == kChunk * kVecs, "one channel vector of one token per thread and chunk");

// The products' operands, token-major [kChunk][kSumPad<T>] (bf16: kPad, conflict-free ldmatrix;
// fp32: 16-byte rows, so that the fp32 stages fit in shared memory).
template <typename T>
constexpr int kSumPad = sizeof(T) == 2 ? kPad : kD + 4;
// One chunk's inputs as copied, by thread: each thread's own vectors (rows past S are zeros).
template <typename T>
struct SumRaw {
  T k[kSumThreads * 8];
  float cos[kSumThreads * 4];
  float sin[kSumThreads * 4];
  float2 kfac[kSumThreads];  // (sigmoid(β), inverse RMS) of the thread's token
};
template <typename T>
struct SumTiles {
  T kr[kChunk * kSumPad<T>];   // k̂
  T bkr[kChunk * kSumPad<T>];  // β∘k̂
  T kn[kChunk * kSumPad<T>];   // k
  T bkn[kChunk * kSumPad<T>];  // β∘k
};
template <typename T>
struct SumSmem {
  SumRaw<T> raw[2];
  SumTiles<T> tiles[2];
  T v[3][kChunk * kSumPad<T>];  // values, copied straight into place: chunk i in v[i % 3]
  float k_norm[kD];             // the head's RMSNorm weight
};
constexpr int kSumUnits = 3 * kHalfNT;  // (product, n tile) units of a warp's accumulators
constexpr int max_slot_units() {  // slices × units owned per slice, the most over 2, 4, … slices
  int most = 0;
  for (int s = 2; s <= kMaxSlices; s *= 2) {
    const int units = s * ((kSumUnits + s - 1) / s);
    most = units > most ? units : most;
  }
  return most;
}
struct SumEpilogue {
  float bred[kChunk * kD];                         // b: one row per token slot
  float bslot[kMaxSlices * kD];                    // slice 0: every slice's b
  float4 slot[max_slot_units() * kSumWarps * 32];  // owned units as received: [rank][unit][warp][lane]
};

// The A fragment of Xᵀ at (k step ks, m tile rows m0…); X token-major [s][kPad].
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const __nv_bfloat16* X, int m0, int ks, int lane) {
  const int mat = lane >> 3, r = lane & 7;
  ldsm_x4_trans(a, X + (ks + r + (mat >> 1) * 8) * kPad + m0 + (mat & 1) * 8);
}
// B fragments of Y at k step ks for n tiles n0 … n0 + kHalfNT − 1 (kHalfNT = 7: three pairs and one).
__device__ __forceinline__ void load_b(uint32_t (&b)[kHalfNT][2], const __nv_bfloat16* Y, int n0, int ks, int lane) {
  const int mat = lane >> 3, r = lane & 7;
#pragma unroll
  for (int j = 0; j + 1 < kHalfNT; j += 2) {
    uint32_t x[4];
    ldsm_x4_trans(x, Y + (ks + r + (mat & 1) * 8) * kPad + (n0 + j) * 8 + (mat >> 1) * 8);
    b[j][0] = x[0], b[j][1] = x[1], b[j + 1][0] = x[2], b[j + 1][1] = x[3];
  }
  const uint32_t addr = static_cast<uint32_t>(
      __cvta_generic_to_shared(Y + (ks + r + (mat & 1) * 8) * kPad + (n0 + kHalfNT - 1) * 8));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(b[kHalfNT - 1][0]), "=r"(b[kHalfNT - 1][1])
               : "r"(addr));
}
// The three products over one chunk for warp (m tile at m0, n tiles n0…).
__device__ __forceinline__ void chunk_products(float (&acc)[3][kHalfNT][4], const SumTiles<__nv_bfloat16>& t,
                                               const __nv_bfloat16* v, int m0, int n0, int lane) {
#pragma unroll
  for (int ks = 0; ks < kChunk; ks += 16) {
    uint32_t ak[4], av[4], az[4], b[kHalfNT][2];
    load_a(ak, t.kr, m0, ks, lane);
    load_a(av, v, m0, ks, lane);
    load_a(az, t.kn, m0, ks, lane);
    load_b(b, t.bkr, n0, ks, lane);
#pragma unroll
    for (int j = 0; j < kHalfNT; ++j) {
      mma_bf16(acc[0][j], ak, b[j][0], b[j][1]);
      mma_bf16(acc[1][j], av, b[j][0], b[j][1]);
    }
    load_b(b, t.bkn, n0, ks, lane);
#pragma unroll
    for (int j = 0; j < kHalfNT; ++j) mma_bf16(acc[2][j], az, b[j][0], b[j][1]);
  }
}
__device__ __forceinline__ void chunk_products(float (&acc)[3][kHalfNT][4], const SumTiles<float>& t, const float* v,
                                               int m0, int n0, int lane) {
  constexpr int kP = kSumPad<float>;
  const int g = lane >> 2, q = lane & 3;
  const float* X[3] = {t.kr, v, t.kn};
#pragma unroll 2
  for (int s = 0; s < kChunk; ++s) {
#pragma unroll
    for (int pr = 0; pr < 3; ++pr) {
      const float* Y = pr == 2 ? t.bkn : t.bkr;
      const float a0 = X[pr][s * kP + m0 + g], a1 = X[pr][s * kP + m0 + g + 8];
#pragma unroll
      for (int j = 0; j < kHalfNT; ++j) {
        const float2 bv = *reinterpret_cast<const float2*>(Y + s * kP + (n0 + j) * 8 + 2 * q);
        acc[pr][j][0] = fmaf(a0, bv.x, acc[pr][j][0]);
        acc[pr][j][1] = fmaf(a0, bv.y, acc[pr][j][1]);
        acc[pr][j][2] = fmaf(a1, bv.x, acc[pr][j][2]);
        acc[pr][j][3] = fmaf(a1, bv.y, acc[pr][j][3]);
      }
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kSumThreads, 1) gdn_summaries_kernel(GdnParams p, Workspace w) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  SumSmem<T>& sm = *reinterpret_cast<SumSmem<T>*>(smem_raw);
  const int slice = blockIdx.x, slices = gridDim.x, f = blockIdx.y;
  const int64_t bh = blockIdx.z, b = bh / p.heads, h = bh % p.heads;
  const int64_t S = p.tokens, N = p.frames * S;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int tok = tid / kVecs, c = (tid % kVecs) * 8;  // this thread's token slot and channel vector
  const int m0 = (warp >> 1) * 16, n0 = (warp & 1) * kHalfNT;
  constexpr int kP = kSumPad<T>;
  float bacc[8] = {};
  if (tid < kD) sm.k_norm[tid] = to_f32(static_cast<const T*>(p.k_norm)[h * kD + tid]);
  wait_for_previous_kernel();  // (sigmoid(β), inverse RMS)
  allow_next_kernel();

  // This slice's chunks: [c0, c0 + n).
  const int chunks = static_cast<int>((S + kChunk - 1) / kChunk), per = (chunks + slices - 1) / slices;
  const int c0 = slice * per, n = c0 + per <= chunks ? per : (chunks > c0 ? chunks - c0 : 0);

  // Starts the copies of local chunk i (one commit group, empty past the end): the thread's vectors
  // of token s (rows past S: the frame's first row, zero-filled).
  auto issue = [&](int i) {
    if (i < n) {
      SumRaw<T>& raw = sm.raw[i % 2];
      const int64_t s = int64_t(c0 + i) * kChunk + tok;
      const bool ok = s < S;
      const int64_t nn = f * S + (ok ? s : 0), row = b * N + nn;
      const T* k_src = static_cast<const T*>(p.k) + row * p.k_stride + h * kD + c;
      const T* v_src = static_cast<const T*>(p.v) + row * p.v_stride + h * kD + c;
#pragma unroll
      for (int e = 0; e < 8; e += 16 / sizeof(T)) {
        cp_async<16>(raw.k + tid * 8 + e, k_src + e, ok);
        cp_async<16>(sm.v[i % 3] + tok * kP + c + e, v_src + e, ok);
      }
      cp_async<16>(raw.cos + tid * 4, p.rope_cos + nn * (kD / 2) + c / 2, ok);
      cp_async<16>(raw.sin + tid * 4, p.rope_sin + nn * (kD / 2) + c / 2, ok);
      cp_async<8>(raw.kfac + tid, w.kfac + row * p.heads + h, ok);
    }
    cp_async_commit();
  };
  // Normalises (RMSNorm, ReLU, k-scale), rotates and weights the thread's vector of local chunk i.
  auto transform = [&](int i) {
    const SumRaw<T>& raw = sm.raw[i % 2];
    SumTiles<T>& tiles = sm.tiles[i % 2];
    const float2 fac = raw.kfac[tid];  // (β, inverse RMS); zeros past S
    float kw[8], kf[8], kr[8], y[8];
    load8(sm.k_norm + c, kw);
    load8(raw.k + tid * 8, kf);
#pragma unroll
    for (int e = 0; e < 8; ++e) kf[e] = fmaxf(kw[e] * (kf[e] * fac.y), 0.f) * p.k_scale;
    rotate8(kf, *reinterpret_cast<const float4*>(raw.cos + tid * 4), *reinterpret_cast<const float4*>(raw.sin + tid * 4),
            kr);
    store8(tiles.kr + tok * kP + c, kr);
    store8(tiles.kn + tok * kP + c, kf);
#pragma unroll
    for (int e = 0; e < 8; ++e) y[e] = fac.x * kr[e];
    store8(tiles.bkr + tok * kP + c, y);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      y[e] = fac.x * kf[e];
      bacc[e] += y[e];
    }
    store8(tiles.bkn + tok * kP + c, y);
  };

  // Pipeline, one barrier per chunk: chunk i + 2 in flight while chunk i's products run beside the
  // transform of the thread's own vector of chunk i + 1 (copied an iteration earlier).
  float acc[3][kHalfNT][4] = {};
  issue(0);
  issue(1);
  cp_async_wait<1>();
  __syncthreads();  // k_norm
  if (n > 0) transform(0);
  __syncthreads();
  for (int i = 0; i < n; ++i) {
    issue(i + 2);
    cp_async_wait<1>();
    if (i + 1 < n) transform(i + 1);
    chunk_products(acc, sm.tiles[i % 2], sm.v[i % 3], m0, n0, lane);
    __syncthreads();
  }
  cp_async_wait<0>();
  __syncthreads();

  // Epilogue. One slice: the accumulators go straight to the output. Several: each (product, n tile)
  // unit u of every warp belongs to slice u % slices; after a cluster barrier (every slice is past its
  // main loop, so its shared memory may be overwritten) each slice stores its units into their owner's
  // slots, and after a second each owner adds its slots in rank order and writes the sums.
  SumEpilogue& ep = *reinterpret_cast<SumEpilogue*>(smem_raw);
  const int g = lane >> 2, q = lane & 3;
  float* out = w.sums + (bh * p.frames + f) * 3 * kD * kD;
  auto store_unit = [&](int u, float4 v) {  // the lane's four elements of unit u
    float* o = out + (u / kHalfNT) * kD * kD + (m0 + g) * kD + (n0 + u % kHalfNT) * 8 + 2 * q;
    store2(o, v.x, v.y);
    store2(o + 8 * kD, v.z, v.w);
  };
  auto unit = [&](int u) {
    const float(&a)[4] = acc[u / kHalfNT][u % kHalfNT];
    return make_float4(a[0], a[1], a[2], a[3]);
  };
  auto b_sum = [&] {  // this slice's b for channel tid < kD (after its token rows are stored)
    float sum = 0.f;
    for (int i = 0; i < kChunk; ++i) sum += ep.bred[i * kD + tid];
    return sum;
  };
  float* bz = w.bz + (bh * p.frames + f) * kD;
  store8(ep.bred + tok * kD + c, bacc);
  if (slices == 1) {
#pragma unroll
    for (int u = 0; u < kSumUnits; ++u) store_unit(u, unit(u));
    __syncthreads();
    if (tid < kD) bz[tid] = b_sum();
    return;
  }
  const int owned = (kSumUnits + slices - 1) / slices;  // units owned per slice, at most
  auto slot = [&](float4* base, int rank, int u) { return base + ((rank * owned + u / slices) * kSumWarps + warp) * 32 + lane; };
  cluster_sync();
#pragma unroll
  for (int u = 0; u < kSumUnits; ++u) *slot(cluster_peer(ep.slot, u % slices), slice, u) = unit(u);
  if (tid < kD) cluster_peer(ep.bslot, 0)[slice * kD + tid] = b_sum();
  cluster_sync();
  for (int u = slice; u < kSumUnits; u += slices) {
    float4 sum = *slot(ep.slot, 0, u);
    for (int rank = 1; rank < slices; ++rank) {
      const float4 v = *slot(ep.slot, rank, u);
      sum.x += v.x, sum.y += v.y, sum.z += v.z, sum.w += v.w;
    }
    store_unit(u, sum);
  }
  if (slice == 0 && tid < kD) {
    float sum = 0.f;
    for (int rank = 0; rank < slices; ++rank) sum += ep.bslot[rank * kD + tid];
    bz[tid] = sum;
  }
}

// ---- 3. the scans: grid (⌈kMT / kScanMT⌉ + 1, H, B). Block x owns m tiles [kScanMT·x, …) of M
// (16 rows each, fp32); the last block scans z. Forward from init, then the reverse scan, writing
// M_f + R_f and z_f + zr_f once. The products M·Pk run on tensor cores in TF32: for fp32 inputs with
// operands split into high and low parts (hi·hi + hi·lo + lo·hi: about fp32 accuracy); for bf16
// inputs once, both operands rounded to nearest TF32 (2⁻¹¹ relative, below the bf16 rounding of the
// summaries' operands, 2⁻⁹, that the states already carry); warp w computes columns
// [16·(w % 7), +16) of m tile w / 7, each lane holding its 8 accumulator elements of M as state.
// The Pk (Pz) tiles the steps multiply by are known in advance: each is copied asynchronously while
// the step before runs. Each thread keeps its forward history in global memory (its own elements,
// read back by itself: L2-resident). ------------------------------------------------------------

constexpr int kScanMT = 2;                      // m tiles per scan block
constexpr int kScanThreads = kScanMT * kMT * 32;  // 14 warps: 7 column pairs of n tiles per m tile
constexpr int kTilePad = kD + 8;   // Pk tile row stride (floats): conflict-free B fragments
constexpr int kStatePad = kD + 4;  // published state row stride: conflict-free A fragments

// A TF32 part of x: its top 10 mantissa bits, the rest truncated. hi = tf32_part(x), lo =
// tf32_part(x − hi) (x − hi is exact in fp32): hi + lo is x to 2⁻²² relative.
__device__ __forceinline__ float tf32_part(float x) { return __uint_as_float(__float_as_uint(x) & 0xffffe000u); }
// x rounded to the nearest TF32 value (ties away from zero).
__device__ __forceinline__ float tf32_round(float x) {
  return __uint_as_float((__float_as_uint(x) + 0x1000u) & 0xffffe000u);
}
__device__ __forceinline__ void mma_tf32(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

constexpr int scan_smem() { return (2 * kD * kTilePad + 2 * kScanMT * 16 * kStatePad) * sizeof(float); }

template <typename T>
__global__ void __launch_bounds__(kScanThreads) gdn_scan_kernel(GdnParams p, Workspace w) {
  extern __shared__ __align__(16) float sm[];
  float* tiles = sm;                           // [2][kD][kTilePad] Pk (or Pz) of the next two steps
  float* mh = tiles + 2 * kD * kTilePad;       // [kScanMT·16][kStatePad] state rows, TF32 high part (z: [kD])
  float* ml = mh + kScanMT * 16 * kStatePad;   // [kScanMT·16][kStatePad] low part
  const int64_t h = blockIdx.y, b = blockIdx.z, bh = b * p.heads + h;
  const int T_ = static_cast<int>(p.frames);
  const float* decay = p.decay + b * T_ * p.heads + h;  // frame f at f · H
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const bool is_z = blockIdx.x == gridDim.x - 1;
  const int which = is_z ? 2 : 0;
  constexpr bool kSplit = sizeof(T) == 4;  // fp32 inputs: 3×TF32 products; bf16: one TF32 product
  const bool seeded = is_z ? p.init_z != nullptr : p.init_kv != nullptr;

  // Tiles in the order the steps use them: forward frames f0 … T−1, reverse frames T−2 … 1.
  const int f0 = seeded ? 0 : 1, forward = T_ - f0, n_tiles = forward + (T_ > 2 ? T_ - 2 : 0);
  auto issue = [&](int i) {
    if (i < n_tiles) {
      const int f = i < forward ? f0 + i : T_ - 2 - (i - forward);
      const float* src = w.sums + ((bh * T_ + f) * 3 + which) * kD * kD;
      float* dst = tiles + (i % 2) * kD * kTilePad;
      for (int v = tid; v < kD * kD / 4; v += kScanThreads)
        cp_async<16>(dst + (v / (kD / 4)) * kTilePad + (v % (kD / 4)) * 4, src + 4 * v, true);
    }
    cp_async_commit();
  };
  int next = 0;  // the next tile a step consumes
  // Waits for tile `next` with the state published by `publish`, runs `product` on it, then starts
  // the copy of the tile two steps ahead into the freed buffer.
  auto with_tile = [&](auto publish, auto product) {
    cp_async_wait<1>();
    publish();
    __syncthreads();
    product(tiles + (next % 2) * kD * kTilePad);
    __syncthreads();
    issue(next + 2);
    ++next;
  };
  // The initial state is an input: it is read before waiting for the summaries.
  auto start = [&] {
    wait_for_previous_kernel();  // the summaries (through the query inverse RMS)
    allow_next_kernel();
    issue(0);
    issue(1);
  };

  if (is_z) {  // z_f = g_f·(z − Pzᵀ z) + b_f (fp32 FMA: a matrix-vector product per step)
    const bool active = tid < kD;
    float z = active && p.init_z ? p.init_z[bh * kD + tid] : 0.f;
    start();
    float* zc = w.zc + bh * T_ * kD + tid;  // frame f at f · D
    auto step = [&](int f, bool zero) {
      const float bf = active ? w.bz[(bh * T_ + f) * kD + tid] : 0.f, gf = decay[f * p.heads];
      float acc = 0.f;
      if (!zero)
        with_tile([&] { if (active) mh[tid] = z; },
                  [&](const float* ps) {
                    if (active)
#pragma unroll 8
                      for (int k = 0; k < kD; ++k) acc = fmaf(ps[k * kTilePad + tid], mh[k], acc);
                  });
      z = gf * (z - acc) + bf;
    };
    for (int f = 0; f < T_; ++f) {
      step(f, f == 0 && !seeded);
      if (active) zc[f * kD] = z;
    }
    if (active && p.final_z) p.final_z[bh * kD + tid] = z;
    z = 0.f;
    for (int f = T_ - 1; f >= 0; --f) {
      if (active) zc[f * kD] += z;
      if (f > 0) step(f, f == T_ - 1);
    }
    cp_async_wait<0>();
    return;
  }

  // This lane's elements of M: rows g and g + 8 of m tile `mt`, columns n0 + 8·nt + 2t + {0, 1};
  // m[nt] in the accumulator layout {(g, c), (g, c + 1), (g + 8, c), (g + 8, c + 1)}.
  const int mt = blockIdx.x * kScanMT + warp / (kNT / 2), lr = (warp / (kNT / 2)) * 16, n0 = (warp % (kNT / 2)) * 16;
  const bool busy = mt < kMT;  // the last block may hold fewer m tiles
  auto at = [&](int64_t f, int nt, int half) {  // element offset of (row g + 8·half, column c) in [.., D, D]
    return (f * kD + mt * 16 + g + 8 * half) * kD + n0 + 8 * nt + 2 * t;
  };
  float m[2][4] = {};
  if (busy && p.init_kv)
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const float2 v = *reinterpret_cast<const float2*>(p.init_kv + at(bh, nt, half));
        m[nt][2 * half] = v.x;
        m[nt][2 * half + 1] = v.y;
      }
  start();
  // m ← g_f·(m − m·Pk_f) + A_f; `zero`: m is known to be 0.
  auto step = [&](int f, bool zero) {
    const float* A = w.sums + ((bh * T_ + f) * 3 + 1) * kD * kD;
    float a[2][4], acc[2][4] = {};
    if (busy)
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const float2 v = *reinterpret_cast<const float2*>(A + at(0, nt, half));
          a[nt][2 * half] = v.x;
          a[nt][2 * half + 1] = v.y;
        }
    const float gf = decay[f * p.heads];
    if (!zero)
      with_tile(
          [&] {
            if (!busy) return;
#pragma unroll
            for (int nt = 0; nt < 2; ++nt)
#pragma unroll
              for (int e = 0; e < 4; ++e) {
                const int r = lr + g + 8 * (e >> 1), c = n0 + 8 * nt + 2 * t + (e & 1);
                if constexpr (kSplit) {
                  const float hi = tf32_part(m[nt][e]);
                  mh[r * kStatePad + c] = hi;
                  ml[r * kStatePad + c] = tf32_part(m[nt][e] - hi);
                } else {
                  mh[r * kStatePad + c] = tf32_round(m[nt][e]);
                }
              }
          },
          [&](const float* ps) {
            if (!busy) return;
            // A fragments by ldmatrix: lane l addresses row l % 8 (+8 for matrices 1, 3) at column
            // k0 (+4 for matrices 2, 3) of the published state.
            const int arow = (lr + (lane & 7) + 8 * ((lane >> 3) & 1)) * kStatePad + 4 * (lane >> 4);
            // Two accumulator chains per tile: fp32, hi·hi and the small terms hi·lo + lo·hi; bf16,
            // the even and the odd k steps.
            float small[2][4] = {};
            auto k_step = [&](int k0, float(&main)[2][4]) {
              uint32_t ah[4], al[4];
              ldsm_x4(ah, mh + arow + k0);
              if constexpr (kSplit) ldsm_x4(al, ml + arow + k0);
#pragma unroll
              for (int nt = 0; nt < 2; ++nt) {
                const float b0 = ps[(k0 + t) * kTilePad + n0 + 8 * nt + g];
                const float b1 = ps[(k0 + t + 4) * kTilePad + n0 + 8 * nt + g];
                if constexpr (kSplit) {
                  const float bh0 = tf32_part(b0), bh1 = tf32_part(b1);
                  mma_tf32(small[nt], al, __float_as_uint(bh0), __float_as_uint(bh1));
                  mma_tf32(small[nt], ah, __float_as_uint(tf32_part(b0 - bh0)), __float_as_uint(tf32_part(b1 - bh1)));
                  mma_tf32(main[nt], ah, __float_as_uint(bh0), __float_as_uint(bh1));
                } else {
                  mma_tf32(main[nt], ah, __float_as_uint(tf32_round(b0)), __float_as_uint(tf32_round(b1)));
                }
              }
            };
#pragma unroll
            for (int k0 = 0; k0 < kD; k0 += 16) {
              k_step(k0, acc);
              k_step(k0 + 8, kSplit ? acc : small);
            }
#pragma unroll
            for (int nt = 0; nt < 2; ++nt)
#pragma unroll
              for (int e = 0; e < 4; ++e) acc[nt][e] += small[nt][e];
          });
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) m[nt][e] = gf * (m[nt][e] - acc[nt][e]) + a[nt][e];
  };
  float* hist = w.hist + bh * T_ * kD * kD;
  for (int f = 0; f < T_; ++f) {
    step(f, f == 0 && !seeded);
    if (busy)
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
#pragma unroll
        for (int half = 0; half < 2; ++half) store2(hist + at(f, nt, half), m[nt][2 * half], m[nt][2 * half + 1]);
  }
  if (busy && p.final_kv)
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int half = 0; half < 2; ++half) store2(p.final_kv + at(bh, nt, half), m[nt][2 * half], m[nt][2 * half + 1]);
#pragma unroll
  for (int nt = 0; nt < 2; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) m[nt][e] = 0.f;
  T* states = static_cast<T*>(w.states) + bh * T_ * kD * kD;
  for (int f = T_ - 1; f >= 0; --f) {
    if (busy)
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const float2 hv = load2(hist + at(f, nt, half));
          store2(states + at(f, nt, half), hv.x + m[nt][2 * half], hv.y + m[nt][2 * half + 1]);
        }
    if (f > 0) step(f, f == T_ - 1);
  }
  cp_async_wait<0>();
}

// ---- 4. read-out and merge: grid (⌈S / kReadTokens⌉, T, B·H), 16 tokens per warp. Everything a
// block reads is copied asynchronously at once: the state tile, the query rows, their RoPE rows and
// inverse RMS, z. Each lane builds its two query rows' features (rows g and g + 8 of its warp's 16)
// in registers; the gate rows then arrive in the query buffer while the products run. ------------

template <typename T>
struct ReadoutSmem {
  T m[kD * kPad];                  // M_f + R_f, [v, k]
  T q[kReadTokens * kPad];         // query rows, then gate rows
  float cos[kReadTokens * kD / 2];
  float sin[kReadTokens * kD / 2];
  float rms[kReadTokens];
  float z[kD];                     // z_f + zr_f
  T q_norm[kD];                    // the head's RMSNorm weight
};

template <typename T>
__global__ void __launch_bounds__(kReadTokens * 2, sizeof(T) == 2 ? 3 : 1) gdn_readout_kernel(GdnParams p, Workspace w) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  ReadoutSmem<T>& sm = *reinterpret_cast<ReadoutSmem<T>*>(smem_raw);
  const int f = blockIdx.y;
  const int64_t bh = blockIdx.z, b = bh / p.heads, h = bh % p.heads;
  const int64_t S = p.tokens, N = p.frames * S, s0 = int64_t(blockIdx.x) * kReadTokens;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  constexpr int kRowVecs = kD * sizeof(T) / 16, kE = 16 / sizeof(T), kThreads = kReadTokens * 2;
  static_assert(kReadTokens + kRowVecs <= kThreads && kD / 4 <= kThreads, "one thread per small copy");
  const int64_t row0 = b * N + f * S;  // this frame's first token row

  // Rows of one [tokens][kD] input (stride `stride` elements) into a [tokens][kPad] buffer; zeros past S.
  auto copy_rows = [&](T* dst, const T* src, int64_t stride) {
    for (int i = tid; i < kReadTokens * kRowVecs; i += kThreads) {
      const int tok = i / kRowVecs, e = (i % kRowVecs) * kE;
      const int64_t s = s0 + tok;
      cp_async<16>(dst + tok * kPad + e, src + (row0 + (s < S ? s : 0)) * stride + h * kD + e, s < S);
    }
  };
  copy_rows(sm.q, static_cast<const T*>(p.q), p.q_stride);
  for (int i = tid; i < kReadTokens * kD / 8; i += kThreads) {
    const int tok = i / (kD / 8), e = (i % (kD / 8)) * 4;
    const int64_t s = s0 + tok, n = f * S + (s < S ? s : 0);
    cp_async<16>(sm.cos + tok * (kD / 2) + e, p.rope_cos + n * (kD / 2) + e, s < S);
    cp_async<16>(sm.sin + tok * (kD / 2) + e, p.rope_sin + n * (kD / 2) + e, s < S);
  }
  if (tid < kReadTokens) {
    const int64_t s = s0 + tid;
    cp_async<4>(sm.rms + tid, w.rms_q + row0 + (s < S ? s : 0), s < S);
  } else if (tid < kReadTokens + kRowVecs) {
    const int i = (tid - kReadTokens) * kE;
    cp_async<16>(sm.q_norm + i, static_cast<const T*>(p.q_norm) + h * kD + i, true);
  }
  wait_for_previous_kernel();  // the scans: the state tile and z
  const T* st = static_cast<const T*>(w.states) + (bh * p.frames + f) * kD * kD;
  for (int i = tid; i < kD * kRowVecs; i += kThreads)
    cp_async<16>(sm.m + (i / kRowVecs) * kPad + (i % kRowVecs) * kE, st + i * kE, true);
  if (tid < kD / 4) cp_async<16>(sm.z + 4 * tid, w.zc + (bh * p.frames + f) * kD + 4 * tid, true);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();

  // Features: ReLU(RMSNorm(q)), den = q·z, then RoPE (rows past S are zeros).
  float q[kD / 16][2][2][2];  // [k step][row half][column pair][element]
  float den[2] = {0.f, 0.f};
#pragma unroll
  for (int ks = 0; ks < kD / 16; ++ks) {
#pragma unroll
    for (int cp = 0; cp < 2; ++cp) {
      const int col = ks * 16 + 8 * cp + 2 * t;
      const float2 wn = load2(sm.q_norm + col);
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const int tok = warp * 16 + g + 8 * hf;
        const float2 x = load2(sm.q + tok * kPad + col);
        const float rms = sm.rms[tok];
        const float x0 = fmaxf(wn.x * (x.x * rms), 0.f), x1 = fmaxf(wn.y * (x.y * rms), 0.f);
        den[hf] = fmaf(x1, sm.z[col + 1], fmaf(x0, sm.z[col], den[hf]));
        const float cs = sm.cos[tok * (kD / 2) + col / 2], sn = sm.sin[tok * (kD / 2) + col / 2];
        q[ks][hf][cp][0] = x0 * cs - x1 * sn;
        q[ks][hf][cp][1] = x0 * sn + x1 * cs;
      }
    }
  }
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {  // q·z over the quad's four lanes, in a fixed order
    den[hf] += __shfl_xor_sync(0xffffffffu, den[hf], 1);
    den[hf] += __shfl_xor_sync(0xffffffffu, den[hf], 2);
  }
  __syncthreads();  // the query rows are consumed: the gate rows take their place
  copy_rows(sm.q, static_cast<const T*>(p.gate), p.gate_stride);
  cp_async_commit();

  float acc[kNT][4] = {};
#pragma unroll
  for (int ks = 0; ks < kD / 16; ++ks) tile_qmt(acc, q[ks], sm.m, ks * 16, lane);
  cp_async_wait<0>();
  __syncthreads();

  // The merged rows replace the warp's own gate rows, element by element, then leave in 16-byte stores.
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    T* row = sm.q + (warp * 16 + g + 8 * hf) * kPad;
    const float inv_den = 1.f / (den[hf] + p.eps);
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) {
      const int col = nt * 8 + 2 * t;
      const float2 gv = load2(row + col);
      const float o0 = acc[nt][2 * hf] * inv_den * __fdividef(gv.x, 1.f + __expf(-gv.x));
      const float o1 = acc[nt][2 * hf + 1] * inv_den * __fdividef(gv.y, 1.f + __expf(-gv.y));
      store2(row + col, o0, o1);
    }
  }
  __syncwarp();
  for (int i = lane; i < 16 * kRowVecs; i += 32) {
    const int tok = warp * 16 + i / kRowVecs, e = (i % kRowVecs) * kE;
    const int64_t s = s0 + tok;
    if (s < S)
      *reinterpret_cast<uint4*>(static_cast<T*>(p.out) + (row0 + s) * p.out_stride + h * kD + e) =
          *reinterpret_cast<const uint4*>(sm.q + tok * kPad + e);
  }
}

// Launches kernels 2–4: `smem` bytes of dynamic shared memory, a cluster of `cluster` blocks along x
// when above 1, and programmatic serialization after the previous kernel where the device has it.
template <typename Kernel>
cudaError_t launch_after(Kernel kernel, dim3 grid, unsigned threads, int smem, unsigned cluster,
                         const LaunchShape& shape, cudaStream_t stream, const GdnParams& p, const Workspace& w) {
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;
  cudaLaunchAttribute attrs[2];
  unsigned n = 0;
  if (cluster > 1) {
    attrs[n].id = cudaLaunchAttributeClusterDimension;
    attrs[n].val.clusterDim.x = cluster;
    attrs[n].val.clusterDim.y = 1;
    attrs[n].val.clusterDim.z = 1;
    ++n;
  }
  if (shape.overlap) {
    attrs[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attrs[n].val.programmaticStreamSerializationAllowed = 1;
    ++n;
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = dim3(threads);
  cfg.dynamicSmemBytes = static_cast<size_t>(smem);
  cfg.stream = stream;
  cfg.attrs = attrs;
  cfg.numAttrs = n;
  return cudaLaunchKernelEx(&cfg, kernel, p, w);
}

template <typename T>
cudaError_t launch(const GdnParams& p, cudaStream_t stream) {
  Workspace w;
  carve(p, &w);
  const LaunchShape shape = launch_shape();
  const int64_t rows = p.batch * p.frames * p.tokens, BH = p.batch * p.heads;
  const unsigned T_ = static_cast<unsigned>(p.frames);

  const dim3 rms_grid(static_cast<unsigned>((rows + 7) / 8));
  gdn_inv_rms_kernel<T, true><<<rms_grid, 256, 0, stream>>>(p, w);

  // Summaries: one block per multiprocessor at a time; each (frame, head) pair's chunks are split
  // into the power-of-two slice count (up to the table's cluster size) that minimises waves × chunks
  // per slice, the smaller on ties (clusters of other sizes pack the multiprocessors worse).
  int sms = 0, dev = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  const int64_t chunks = (p.tokens + kChunk - 1) / kChunk, pairs = p.frames * BH;
  int64_t slices = 1, best = -1;
  for (int64_t s = 1; s <= shape.max_slices && s <= chunks; s *= 2) {
    const int64_t cost = (pairs * s + sms - 1) / sms * ((chunks + s - 1) / s);
    if (best < 0 || cost < best) best = cost, slices = s;
  }
  constexpr int sum_smem = sizeof(SumSmem<T>) > sizeof(SumEpilogue) ? sizeof(SumSmem<T>) : sizeof(SumEpilogue);
  cudaError_t err = launch_after(gdn_summaries_kernel<T>, dim3(static_cast<unsigned>(slices), T_, static_cast<unsigned>(BH)),
                                 kSumThreads, sum_smem, static_cast<unsigned>(slices), shape, stream, p, w);
  if (err != cudaSuccess) return err;
  err = launch_after(gdn_inv_rms_kernel<T, false>, rms_grid, 256, 0, 1, shape, stream, p, w);
  if (err != cudaSuccess) return err;
  err = launch_after(gdn_scan_kernel<T>,
                     dim3((kMT + kScanMT - 1) / kScanMT + 1, static_cast<unsigned>(p.heads), static_cast<unsigned>(p.batch)),
                     kScanThreads, scan_smem(), 1, shape, stream, p, w);
  if (err != cudaSuccess) return err;
  err = launch_after(gdn_readout_kernel<T>,
                     dim3(static_cast<unsigned>((p.tokens + kReadTokens - 1) / kReadTokens), T_, static_cast<unsigned>(BH)),
                     kReadTokens * 2, sizeof(ReadoutSmem<T>), 1, shape, stream, p, w);
  if (err != cudaSuccess) return err;
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
