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
constexpr int kWgRows = 64;             // rows of M a wgmma scan block owns (one m64): two blocks a head

// Whether this build holds sm_90a code (wgmma and the bulk-copy engine exist only there).
#ifdef SANASTREAM_SM90A
constexpr bool kBuiltSm90a = true;
#else
constexpr bool kBuiltSm90a = false;
#endif

// Launch shapes, one row per architecture: the first row whose compute capability the device reaches.
struct LaunchShape {
  int min_major;
  int max_slices;   // token slices per summary: a thread-block cluster adds their partials (1 below sm_90)
  bool overlap;     // kernels 2–4 launched with programmatic stream serialization
  bool wgmma_scan;  // bf16 scans on warpgroup tensor cores (sm_90a builds)
};
constexpr LaunchShape kShapes[] = {
    {10, kMaxSlices, true, false},      // after Hopper: no wgmma
    {9, kMaxSlices, true, kBuiltSm90a},  // Hopper: the portable cluster size
    {0, 1, false, false},               // sm_80–89: no clusters
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
  float* hist;    // [B, H, T, 2·64, D] fp32: the forward states M_f ([.., D, D] for the mma.sync scans)
  void* states;   // [B, H, T, D, D] (type): M_f + R_f, [v, k]
  float* zc;      // [B, H, T, D] fp32: z_f, then z_f + zr_f
  unsigned* ready;  // [B, H, T]: scan blocks done with frame f's combined state (zeroed by the first kernel)
  int scan_blocks = 0;  // scan blocks a head: the read-out of a frame starts once `ready` reaches it
  bool pk_cores = false;  // Pk rounded to TF32 as the wgmma scans' B operand (core_offset of [n][kperm(k)])
};

size_t align256(size_t n) { return (n + 255) & ~size_t(255); }

size_t carve(const GdnParams& p, Workspace* w) {
  const size_t rows = p.batch * p.frames * p.tokens, bht = p.batch * p.heads * p.frames;
  const size_t elem = p.type == ElemType::kF32 ? 4 : 2;
  constexpr int kParts = 8;
  const size_t sizes[kParts] = {rows * 4,          rows * p.heads * 8,   bht * 3 * kD * kD * 4, bht * kD * 4,
                                bht * 2 * kWgRows * kD * 4, bht * kD * kD * elem, bht * kD * 4, bht * 4};
  char* base = static_cast<char*>(p.workspace);
  void* parts[kParts];
  size_t off = 0;
  for (int i = 0; i < kParts; ++i) {
    parts[i] = base ? base + off : nullptr;
    off += align256(sizes[i]);
  }
  if (w)
    *w = {static_cast<float*>(parts[0]), static_cast<float2*>(parts[1]), static_cast<float*>(parts[2]),
          static_cast<float*>(parts[3]), static_cast<float*>(parts[4]), parts[5], static_cast<float*>(parts[6]),
          static_cast<unsigned*>(parts[7])};
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

// A TF32 part of x: its top 10 mantissa bits, the rest truncated. hi = tf32_part(x), lo =
// tf32_part(x − hi) (x − hi is exact in fp32): hi + lo is x to 2⁻²² relative.
__device__ __forceinline__ float tf32_part(float x) { return __uint_as_float(__float_as_uint(x) & 0xffffe000u); }
// x rounded to the nearest TF32 value (ties away from zero).
__device__ __forceinline__ float tf32_round(float x) {
  return __uint_as_float((__float_as_uint(x) + 0x1000u) & 0xffffe000u);
}

// Offset (floats) of element (r, c) of a K-major wgmma operand with `groups` 8-row groups, in core
// matrices of 8 rows × 16 bytes: [c / 4][r / 8][r % 8][c % 4]. The byte distance between core
// matrices along k (the descriptor's leading offset) is groups · 128, along the rows (its stride
// offset) 128.
__device__ __forceinline__ constexpr int core_offset(int r, int c, int groups) {
  return ((c / 4) * groups + r / 8) * 32 + (r % 8) * 4 + c % 4;
}
// The wgmma scans' k order within each 8: even indices first (2t → t, 2t + 1 → t + 4).
__device__ __forceinline__ constexpr int kperm(int k) { return (k & ~7) | (k & 1) << 2 | (k & 7) >> 1; }

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

// A frame's combined state is read as soon as it is final, before the scans end: each scan block
// counts itself into `ready` once its part of the frame is written (release), the read-out waits for
// the count (acquire). Thread 0 of a scan block, after a barrier over the writes:
__device__ __forceinline__ void mark_ready(unsigned* count) {
  asm volatile("red.release.gpu.global.add.u32 [%0], 1;\n" ::"l"(count) : "memory");
}
__device__ __forceinline__ void wait_ready(const unsigned* count, unsigned blocks) {
  unsigned v = 0;
  while (true) {
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(count) : "memory");
    if (v >= blocks) break;
    __nanosleep(64);
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
  if (kKeys)  // the previous call's read-out has finished: this kernel starts after it
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.batch * p.heads * p.frames;
         i += int64_t(gridDim.x) * blockDim.x)
      w.ready[i] = 0;
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

  // This slice's chunks: [c0, c0 + n).
  const int chunks = static_cast<int>((S + kChunk - 1) / kChunk), per = (chunks + slices - 1) / slices;
  const int c0 = slice * per, n = c0 + per <= chunks ? per : (chunks > c0 ? chunks - c0 : 0);

  // The copies of local chunk i: the thread's vectors of token s (rows past S: the frame's first row,
  // zero-filled). The inputs (k, v, RoPE rows) may be copied before the first kernel has finished;
  // its (sigmoid(β), inverse RMS) only after.
  auto chunk_row = [&](int i, int64_t* nn) {
    const int64_t s = int64_t(c0 + i) * kChunk + tok;
    *nn = f * S + (s < S ? s : 0);
    return s < S;
  };
  auto issue_inputs = [&](int i) {
    if (i >= n) return;
    SumRaw<T>& raw = sm.raw[i % 2];
    int64_t nn;
    const bool ok = chunk_row(i, &nn);
    const T* k_src = static_cast<const T*>(p.k) + (b * N + nn) * p.k_stride + h * kD + c;
    const T* v_src = static_cast<const T*>(p.v) + (b * N + nn) * p.v_stride + h * kD + c;
#pragma unroll
    for (int e = 0; e < 8; e += 16 / sizeof(T)) {
      cp_async<16>(raw.k + tid * 8 + e, k_src + e, ok);
      cp_async<16>(sm.v[i % 3] + tok * kP + c + e, v_src + e, ok);
    }
    cp_async<16>(raw.cos + tid * 4, p.rope_cos + nn * (kD / 2) + c / 2, ok);
    cp_async<16>(raw.sin + tid * 4, p.rope_sin + nn * (kD / 2) + c / 2, ok);
  };
  auto issue_factors = [&](int i) {
    if (i >= n) return;
    int64_t nn;
    const bool ok = chunk_row(i, &nn);
    cp_async<8>(sm.raw[i % 2].kfac + tid, w.kfac + (b * N + nn) * p.heads + h, ok);
  };
  auto issue = [&](int i) {  // all of chunk i as one commit group (empty past the end)
    issue_inputs(i);
    issue_factors(i);
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
  issue_inputs(0);
  issue_inputs(1);
  wait_for_previous_kernel();  // (sigmoid(β), inverse RMS)
  allow_next_kernel();
  issue_factors(0);
  issue_factors(1);
  cp_async_commit();  // chunks 0 and 1 as one group
  cp_async_wait<0>();
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
  auto store_unit = [&](int u, float4 v) {  // the lane's four elements of unit u: rows r, r + 8, columns c, c + 1
    const int r = m0 + g, c = (n0 + u % kHalfNT) * 8 + 2 * q;
    float* o = out + (u / kHalfNT) * kD * kD;
    if (u < kHalfNT && w.pk_cores) {  // Pk[r][c] is the B operand's element (n = c, k = kperm(r))
      const int k = kperm(r);
      o[core_offset(c, k, kNT)] = tf32_round(v.x);
      o[core_offset(c + 1, k, kNT)] = tf32_round(v.y);
      o[core_offset(c, k + 8, kNT)] = tf32_round(v.z);
      o[core_offset(c + 1, k + 8, kNT)] = tf32_round(v.w);
    } else {
      store2(o + r * kD + c, v.x, v.y);
      store2(o + (r + 8) * kD + c, v.z, v.w);
    }
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

// ---- 3. the scans, portable (sm_80 on; fp32 inputs on every device; below, the Hopper form for
// bf16): grid (⌈kMT / kScanMT⌉ + 1, H, B). Block x owns m tiles [kScanMT·x, …) of M (16 rows each,
// fp32); the last block scans z. Forward from init, then the reverse scan, writing
// M_f + R_f and z_f + zr_f once. The products M·Pk run on tensor cores in TF32: for fp32 inputs with
// operands split into high and low parts (hi·hi + hi·lo + lo·hi: about fp32 accuracy); for bf16
// inputs once, both operands rounded to nearest TF32 (2⁻¹¹ relative, below the bf16 rounding of the
// summaries' operands, 2⁻⁹, that the states already carry); warp w computes columns
// [16·(w % 7), +16) of m tile w / 7, each lane holding its 8 accumulator elements of M as state.
// The Pk (Pz) tiles the steps multiply by are known in advance: each is copied asynchronously while
// the step before runs. Each thread keeps its forward history in global memory (its own elements,
// read back by itself: L2-resident). ------------------------------------------------------------

// The scans' order, one for both scan kernels: step i of 2T − 1 runs on frame frame(i) — forward
// 0 … T − 1, then reverse T − 1 … 1 (reverse_step(f): the step from frame f to f − 1). The Pk (Pz)
// tiles come in the order the steps with a product use them: forward frames first … T − 1 (first =
// 1 when the scan starts from zero: step 0 multiplies nothing), then reverse frames T − 2 … 1.
struct ScanOrder {
  int frames, steps, first, forward, tiles;
  __device__ ScanOrder(int T, bool seeded)
      : frames(T), steps(2 * T - 1), first(seeded ? 0 : 1), forward(T - first), tiles(forward + (T > 2 ? T - 2 : 0)) {}
  __device__ int frame(int i) const { return i < frames ? i : steps - i; }
  __device__ int reverse_step(int f) const { return steps - f; }
  __device__ int tile_frame(int i) const { return i < forward ? first + i : frames - 2 - (i - forward); }
};

// The z scan of both scan kernels: z_f = g_f·(z − Pzᵀ z) + b_f, `product(z)` giving Pzᵀ z for the
// step's Pz tile (every thread calls it; the tiles come in the order of the scans of M). Forward from
// the initial z, its history in shared memory (`zh` [T][kD], each thread its own column), the final
// z out, then the reverse, writing z_f + zr_f once a frame and counting the block into the frame's
// ready count. `start` runs once the initial z is read; b_f is loaded a step ahead. Threads ≥ kD
// hold no element.
template <typename Start, typename Product>
__device__ __forceinline__ void scan_z(const GdnParams& p, const Workspace& w, int64_t bh, bool seeded,
                                       const float* decay, float* zh, Start start, Product product) {
  const int T_ = static_cast<int>(p.frames), tid = threadIdx.x;
  const ScanOrder order(T_, seeded);
  const bool active = tid < kD;
  float z = active && p.init_z ? p.init_z[bh * kD + tid] : 0.f;
  start();
  auto load_b = [&](int i) { return active && i < order.steps ? w.bz[(bh * T_ + order.frame(i)) * kD + tid] : 0.f; };
  float b_next = load_b(0);
  auto step = [&](int i, bool zero) {  // `zero`: z is known to be 0
    const float bf = b_next;
    b_next = load_b(i + 1);
    const float acc = zero ? 0.f : product(z);
    z = decay[order.frame(i)] * (z - acc) + bf;
  };
  for (int f = 0; f < T_; ++f) {
    step(f, f == 0 && !seeded);
    if (active) zh[f * kD + tid] = z;
  }
  if (active && p.final_z) p.final_z[bh * kD + tid] = z;
  z = 0.f;
  float* zc = w.zc + bh * T_ * kD + tid;  // frame f at f · D
  for (int f = T_ - 1; f >= 0; --f) {
    if (active) zc[f * kD] = zh[f * kD + tid] + z;
    __syncthreads();
    if (tid == 0) mark_ready(w.ready + bh * T_ + f);
    if (f > 0) step(order.reverse_step(f), f == T_ - 1);
  }
}

constexpr int kScanMT = 2;                      // m tiles per scan block
constexpr int kScanThreads = kScanMT * kMT * 32;  // 14 warps: 7 column pairs of n tiles per m tile
constexpr int kTilePad = kD + 8;   // Pk tile row stride (floats): conflict-free B fragments
constexpr int kStatePad = kD + 4;  // published state row stride: conflict-free A fragments

__device__ __forceinline__ void mma_tf32(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

constexpr int scan_smem() { return (2 * kD * kTilePad + 2 * kScanMT * 16 * kStatePad + kMaxFrames) * sizeof(float); }

template <typename T>
__global__ void __launch_bounds__(kScanThreads) gdn_scan_kernel(GdnParams p, Workspace w) {
  extern __shared__ __align__(16) float sm[];
  float* tiles = sm;                           // [2][kD][kTilePad] Pk (or Pz) of the next two steps
  float* mh = tiles + 2 * kD * kTilePad;       // [kScanMT·16][kStatePad] state rows, TF32 high part (z: [kD])
  float* ml = mh + kScanMT * 16 * kStatePad;   // [kScanMT·16][kStatePad] low part
  float* decay = ml + kScanMT * 16 * kStatePad;  // [kMaxFrames] g_f
  const int64_t h = blockIdx.y, b = blockIdx.z, bh = b * p.heads + h;
  const int T_ = static_cast<int>(p.frames);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  if (tid < T_) decay[tid] = p.decay[(b * T_ + tid) * p.heads + h];  // an input: read before waiting
  const bool is_z = blockIdx.x == gridDim.x - 1;
  const int which = is_z ? 2 : 0;
  constexpr bool kSplit = sizeof(T) == 4;  // fp32 inputs: 3×TF32 products; bf16: one TF32 product
  const bool seeded = is_z ? p.init_z != nullptr : p.init_kv != nullptr;

  const ScanOrder order(T_, seeded);
  auto issue = [&](int i) {
    if (i < order.tiles) {
      const float* src = w.sums + ((bh * T_ + order.tile_frame(i)) * 3 + which) * kD * kD;
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
  // The initial state and the decays are inputs: they are read before waiting for the summaries.
  auto start = [&] {
    wait_for_previous_kernel();  // the summaries (through the query inverse RMS)
    allow_next_kernel();
    issue(0);
    issue(1);
    __syncthreads();  // the decays
  };

  if (is_z) {  // z (fp32 FMA: a matrix-vector product per step)
    const bool active = tid < kD;
    scan_z(p, w, bh, seeded, decay, mh + kD, start, [&](float z) {
      float acc = 0.f;
      with_tile([&] { if (active) mh[tid] = z; },
                [&](const float* ps) {
                  if (active)
#pragma unroll 8
                    for (int k = 0; k < kD; ++k) acc = fmaf(ps[k * kTilePad + tid], mh[k], acc);
                });
      return acc;
    });
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
  // The lane's elements of frame f of the [.., D, D] tensor at `base` (8 floats).
  auto load_tile = [&](const float* base, int64_t f, float (&x)[2][4]) {
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const float2 v = *reinterpret_cast<const float2*>(base + at(f, nt, half));
        x[nt][2 * half] = v.x;
        x[nt][2 * half + 1] = v.y;
      }
  };
  const float* sums = w.sums + bh * T_ * 3 * kD * kD;  // frame f's A at (3f + 1) · D²
  float a_next[2][4] = {};
  if (busy) load_tile(sums, 1, a_next);
  // Step i: m ← g_f·(m − m·Pk_f) + A_f; `zero`: m is known to be 0.
  auto step = [&](int i, bool zero) {
    const int f = order.frame(i);
    float a[2][4], acc[2][4] = {};
#pragma unroll
    for (int nt = 0; nt < 2; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) a[nt][e] = a_next[nt][e];
    if (busy && i + 1 < order.steps) load_tile(sums, 3 * order.frame(i + 1) + 1, a_next);  // the next step's A
    const float gf = decay[f];
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
    if (busy && f + 1 < T_)  // the last forward state stays in registers
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
  float fwd[2][4];  // M_f of the frame the reverse scan is at, loaded during the step before
#pragma unroll
  for (int nt = 0; nt < 2; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) fwd[nt][e] = m[nt][e], m[nt][e] = 0.f;
  T* states = static_cast<T*>(w.states) + bh * T_ * kD * kD;
  for (int f = T_ - 1; f >= 0; --f) {
    if (busy)
#pragma unroll
      for (int nt = 0; nt < 2; ++nt)
#pragma unroll
        for (int half = 0; half < 2; ++half)
          store2(states + at(f, nt, half), fwd[nt][2 * half] + m[nt][2 * half], fwd[nt][2 * half + 1] + m[nt][2 * half + 1]);
    __syncthreads();
    if (tid == 0) mark_ready(w.ready + bh * T_ + f);
    if (f > 0) {
      if (busy) load_tile(hist, f - 1, fwd);
      step(order.reverse_step(f), f == T_ - 1);
    }
  }
  cp_async_wait<0>();
}

// ---- 3 on Hopper (sm_90a, bf16 inputs): the scans on warpgroup tensor cores. Grid (3, H, B), one
// warpgroup a block. Blocks 0 and 1 own rows [64·x, +64) of M (block 1's rows 112–127 are zeros).
// The state lives in the accumulators of wgmma m64n112 (56 fp32 a thread); a step runs
// D ← D − M̃·Pk (fourteen k steps of 8, A negated), M̃ the state rounded to TF32 as the register A
// operand, then D ← g_f·D + A_f. The accumulator fragment holds columns 2t, 2t + 1 of each 8 where
// the A fragment wants k positions t, t + 4, so the k order within each 8 is permuted — even
// columns first — in A and in the rows of Pk alike (kperm). The summaries write Pk so permuted,
// rounded to TF32, as the B operand in the core-matrix layout (8 rows × 16 bytes a core matrix, no
// swizzle). Each Pk tile and each step's rows of A_f arrive whole in bulk copies (completion counted
// on mbarriers), two steps ahead. The states a step leaves (the forward history, the combined
// states, the final state) are staged in shared memory and leave in one bulk store; the history,
// private to this kernel, in the accumulators' own order (conflict-free, 64 rows a block), comes
// back the same way. Block 2 scans z with Pz tiles copied like Pk (row-major), each thread one
// output over all 112 inputs in eight accumulators. ------------------------------------------------

constexpr int kWgThreads = 128;    // one warpgroup
constexpr int kWgAcc = kD / 2;     // accumulators a thread holds: 64 × 112 / 128
constexpr uint32_t kTileBytes = kD * kD * sizeof(float);

struct WgScanSmem {
  float tile[2][kD * kD];            // Pk tiles as the B operand (core layout of [n][kperm]), or Pz tiles
  float rows[2][kWgRows * kD];       // the block's rows of A_f, row-major; z: the vector and its history
  float out[kWgRows * kD];           // the history (accumulator order) and the final state (rows) out
  float back[kWgRows * kD];          // the history back in
  __nv_bfloat16 out16[kWgRows * kD];  // combined states out
  float decay[kMaxFrames];           // g_f
  uint64_t bar[5];                   // tiles 0, 1; rows 0, 1; io
};

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }
__device__ __forceinline__ void mbar_init(uint64_t* bar) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(smem_u32(bar)) : "memory");
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// The barrier's one arrival, expecting `bytes` of bulk copies before its phase completes.
__device__ __forceinline__ void mbar_expect(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  uint32_t done = 0;
  while (!done)
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(smem_u32(bar)), "r"(parity)
        : "memory");
}
// Global → shared through the bulk-copy engine, counted on `bar`.
__device__ __forceinline__ void bulk_load(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                   smem_u32(dst)),
               "l"(src), "r"(bytes), "r"(smem_u32(bar))
               : "memory");
}
// Shared → global through the bulk-copy engine, as one bulk group of the thread.
__device__ __forceinline__ void bulk_store(void* dst, const void* src, uint32_t bytes) {
  asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;\n" ::"l"(dst), "r"(smem_u32(src)), "r"(bytes)
               : "memory");
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
}
// Waits until the thread's bulk stores have read their shared memory (kRead), or have completed.
template <bool kRead>
__device__ __forceinline__ void bulk_wait() {
  if constexpr (kRead)
    asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
  else
    asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
}
// A shared-memory matrix descriptor, no swizzle: start address, leading and stride byte offsets.
__device__ __forceinline__ uint64_t wg_desc(const float* p, uint32_t leading, uint32_t stride) {
  return uint64_t((smem_u32(p) & 0x3ffff) >> 4) | uint64_t(leading >> 4) << 16 | uint64_t(stride >> 4) << 32;
}
// D(64 × 112) −= A·B for one k step of 8: A (TF32) from registers in the m64k8 fragment —
// a[0..3] at rows g, g + 8, g, g + 8 and k positions t, t, t + 4, t + 4 of the warp's 16 rows —
// B (TF32) from shared memory (descriptor), fp32 accumulators in the m64n112 fragment: d[4j + e]
// holds row 16·(warp % 4) + g + 8·(e / 2), column 8j + 2t + e % 2 (g = lane / 4, t = lane % 4).
__device__ __forceinline__ void wgmma_sub_tf32(float (&d)[56], const uint32_t (&a)[4], uint64_t b_desc) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %61, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n112k8.f32.tf32.tf32 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55}, {%56, %57, %58, %59}, %60, p, -1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
}
// Keeps the compiler from moving accesses to the accumulators (and the computation of the register
// operands) across the asynchronous products.
template <int N>
__device__ __forceinline__ void pin(float (&x)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(x[i])::"memory");
}
template <int N>
__device__ __forceinline__ void pin(uint32_t (&x)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+r"(x[i][0]), "+r"(x[i][1]), "+r"(x[i][2]), "+r"(x[i][3])::"memory");
}

template <typename T>
__global__ void __launch_bounds__(kWgThreads, 1) gdn_scan_wgmma_kernel(GdnParams p, Workspace w) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(16) unsigned char smem_raw[];
  WgScanSmem& sm = *reinterpret_cast<WgScanSmem*>(smem_raw);
  const int64_t h = blockIdx.y, b = blockIdx.z, bh = b * p.heads + h;
  const int T_ = static_cast<int>(p.frames);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const bool is_z = blockIdx.x == 2;
  const bool seeded = is_z ? p.init_z != nullptr : p.init_kv != nullptr;
  const int row0 = blockIdx.x * kWgRows, n_rows = kD - row0 < kWgRows ? kD - row0 : kWgRows;  // M blocks
  if (tid < T_) sm.decay[tid] = p.decay[(b * T_ + tid) * p.heads + h];  // an input: read before waiting
  if (tid < 5) mbar_init(&sm.bar[tid]);
  const ScanOrder order(T_, seeded);
  const float* sums = w.sums + bh * T_ * 3 * kD * kD;  // frame f's Pk, A, Pz at (3f + {0, 1, 2}) · D²
  auto issue_tile = [&](int i) {  // warp 0: tile i into buffer i % 2
    if (i < order.tiles && lane == 0) {
      mbar_expect(&sm.bar[i % 2], kTileBytes);
      bulk_load(sm.tile[i % 2], sums + (3 * order.tile_frame(i) + (is_z ? 2 : 0)) * kD * kD, kTileBytes,
                &sm.bar[i % 2]);
    }
  };
  auto issue_rows = [&](int i) {  // warp 0 of an M block: step i's rows of A_f into buffer i % 2
    if (i < order.steps && lane == 0) {
      const uint32_t bytes = n_rows * kD * sizeof(float);
      mbar_expect(&sm.bar[2 + i % 2], bytes);
      bulk_load(sm.rows[i % 2], sums + (3 * order.frame(i) + 1) * kD * kD + row0 * kD, bytes, &sm.bar[2 + i % 2]);
    }
  };
  int next = 0;  // the next tile a step consumes
  auto tile_ready = [&] {
    mbar_wait(&sm.bar[next % 2], (next / 2) & 1);
    return sm.tile[next % 2];
  };
  auto start = [&] {  // the initial state and the decays are inputs: read before waiting
    wait_for_previous_kernel();  // the summaries (through the query inverse RMS)
    allow_next_kernel();
    __syncthreads();  // the barriers' initialisation, the decays
    if (warp == 0) {
      issue_tile(0);
      issue_tile(1);
      if (!is_z) {
        issue_rows(0);
        issue_rows(1);
      }
    }
  };

  if (is_z) {  // z (fp32 FMA: a matrix-vector product per step, in eight partial sums)
    const bool active = tid < kD;
    float* zs = sm.rows[0];  // [kD] z as published for the product, then the history
    scan_z(p, w, bh, seeded, sm.decay, zs + kD, start, [&](float z) {
      float acc = 0.f;
      if (active) zs[tid] = z;
      const float* ps = tile_ready();
      __syncthreads();
      if (active) {
        float part[8] = {};
#pragma unroll
        for (int k = 0; k < kD; k += 8) {
          const float4 z0 = *reinterpret_cast<const float4*>(zs + k), z1 = *reinterpret_cast<const float4*>(zs + k + 4);
          const float zk[8] = {z0.x, z0.y, z0.z, z0.w, z1.x, z1.y, z1.z, z1.w};
#pragma unroll
          for (int e = 0; e < 8; ++e) part[e] = fmaf(ps[(k + e) * kD + tid], zk[e], part[e]);
        }
        acc = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
      }
      __syncthreads();  // every thread is done with the tile and z
      if (warp == 0) issue_tile(next + 2);
      ++next;
      return acc;
    });
    return;
  }

  // The thread's rows of M: row0 + lr and + 8 (lr = 16·warp + g); accumulator 4j + e holds row
  // lr + 8·(e / 2), column 8j + 2t + e % 2. Rows past kD are zeros and never stored.
  const int lr = warp * 16 + g;
  // The thread's element e: row lr + 8·((e / 2) % 2), column 8·(e / 4) + 2t + e % 2 of the block's rows.
  auto at = [&](int e) { return (lr + 8 * ((e >> 1) & 1)) * kD + 8 * (e >> 2) + 2 * t; };
  auto mine = [&](int e) { return lr + 8 * ((e >> 1) & 1) < n_rows; };
  float d[kWgAcc];
#pragma unroll
  for (int e = 0; e < kWgAcc; e += 2) {
    const float2 v = seeded && mine(e) ? *reinterpret_cast<const float2*>(p.init_kv + bh * kD * kD + row0 * kD + at(e))
                                       : make_float2(0.f, 0.f);
    d[e] = v.x;
    d[e + 1] = v.y;
  }
  start();
  auto rows_of = [&](auto* base, int64_t f) { return base + (f * kD + row0) * kD; };  // frame f's block rows
  int sent = -1;  // thread 0: the frame whose combined state is on its way out, not yet marked ready
  auto mark_sent = [&] {  // thread 0: once the bulk store has written it
    if (sent >= 0) {
      bulk_wait<false>();
      asm volatile("fence.proxy.async.global;\n" ::: "memory");  // the bulk writes, before the release
      mark_ready(w.ready + bh * T_ + sent);
      sent = -1;
    }
  };
  // Step i: D ← g_f·(D − M̃·Pk_f) + A_f; `zero`: D is known to be 0.
  auto step = [&](int i, bool zero) {
    if (!zero) {
      uint32_t a[kNT][4];  // M̃, k permuted: the accumulators' columns 2t, 2t + 1 at k positions t, t + 4
#pragma unroll
      for (int j = 0; j < kNT; ++j) {
        a[j][0] = __float_as_uint(tf32_round(d[4 * j]));
        a[j][1] = __float_as_uint(tf32_round(d[4 * j + 2]));
        a[j][2] = __float_as_uint(tf32_round(d[4 * j + 1]));
        a[j][3] = __float_as_uint(tf32_round(d[4 * j + 3]));
      }
      pin(a);
      const float* tile = tile_ready();
      asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
      pin(d);
#pragma unroll
      for (int s = 0; s < kNT; ++s) wgmma_sub_tf32(d, a[s], wg_desc(tile + s * 2 * kNT * 32, kNT * 128, 128));
      asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
      if (tid == 0) mark_sent();  // while the products run
      asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
      pin(d);
    }
    mbar_wait(&sm.bar[2 + i % 2], (i / 2) & 1);
    const float gf = sm.decay[order.frame(i)];
    const float* af = sm.rows[i % 2];
#pragma unroll
    for (int e = 0; e < kWgAcc; e += 2) {
      const float2 v = *reinterpret_cast<const float2*>(af + at(e));
      d[e] = gf * d[e] + v.x;
      d[e + 1] = gf * d[e + 1] + v.y;
    }
    __syncthreads();  // every thread is done with the buffers: they take the copies two steps on
    if (warp == 0) {
      if (!zero) issue_tile(next + 2);
      issue_rows(i + 2);
    }
    next += !zero;
  };
  // The thread's element pair e, e + 1 in accumulator order: [e / 2][thread][2].
  auto own = [&](int e) { return (e / 2 * kWgThreads + tid) * 2; };
  // Stages x(e) at buf + where(e) once the last bulk store has read the buffer, then thread 0 sends
  // `bytes` of it to dst in one bulk store; `more` runs on thread 0 after every thread has staged.
  auto put = [&](auto* buf, auto where, auto x, auto* dst, uint32_t bytes, auto more) {
    if (tid == 0) {
      mark_sent();
      bulk_wait<true>();
    }
    __syncthreads();
#pragma unroll
    for (int e = 0; e < kWgAcc; e += 2) store2(buf + where(e), x(e), x(e + 1));
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");  // the stores, to the bulk copies
    __syncthreads();
    if (tid == 0) {
      bulk_store(dst, buf, bytes);
      more();
    }
  };
  auto state = [&](int e) { return d[e]; };
  auto nothing = [] {};
  const uint32_t row_bytes = n_rows * kD * sizeof(float), own_bytes = kWgRows * kD * sizeof(float);
  // The block's history slot of frame f: 64 rows in accumulator order (two slots a frame).
  float* hist = w.hist + (bh * T_ * 2 + blockIdx.x) * kWgRows * kD;
  auto hist_of = [&](int f) { return hist + f * 2 * kWgRows * kD; };
  // Forward: M_f leaves as the history; M_{T−2} stays in sm.back (each thread reads back only its
  // own elements), M_{T−1} in registers.
  for (int f = 0; f < T_; ++f) {
    step(f, f == 0 && !seeded);
    if (f + 2 < T_) {
      put(sm.out, own, state, hist_of(f), own_bytes, nothing);
    } else if (f + 2 == T_) {
#pragma unroll
      for (int e = 0; e < kWgAcc; e += 2) store2(sm.back + own(e), d[e], d[e + 1]);
    }
  }
  // Reverse: d = R_f; M_f + R_f leaves as the combined state, M_{f−1} coming back meanwhile.
  auto load_back = [&](int f) {  // thread 0, every thread done with sm.back: M_f into it
    if (f >= 0) {
      mbar_expect(&sm.bar[4], own_bytes);
      bulk_load(sm.back, hist_of(f), own_bytes, &sm.bar[4]);
    }
  };
  if (tid == 0) bulk_wait<false>();  // the history is written
  if (p.final_kv) put(sm.out, at, state, rows_of(p.final_kv, bh), row_bytes, nothing);
  T* states = static_cast<T*>(w.states) + bh * T_ * kD * kD;
  put(sm.out16, at, state, rows_of(states, T_ - 1), row_bytes / 2, [&] { sent = T_ - 1; });
#pragma unroll
  for (int e = 0; e < kWgAcc; ++e) d[e] = 0.f;
  for (int f = T_ - 1; f > 0; --f) {
    step(order.reverse_step(f), f == T_ - 1);  // d = R_{f−1}
    if (f < T_ - 1) mbar_wait(&sm.bar[4], (T_ - 2 - f) & 1);  // M_{f−1} from the history
    put(sm.out16, at, [&](int e) { return sm.back[own(e & ~1) + (e & 1)] + d[e]; }, rows_of(states, f - 1),
        row_bytes / 2, [&] {
          sent = f - 1;
          load_back(f - 2);
        });
  }
  if (tid == 0) mark_sent();
#else
  __trap();  // launched only where the build has sm_90a code (see launch())
#endif
}

// ---- 4. read-out and merge: grid (⌈S / kReadTokens⌉, B·H, T), the last frame first, 16 tokens per
// warp. A block starts while the scans run and waits only for its own frame's state (`ready`).
// Everything it reads is copied asynchronously at once: the state tile, the query rows, their RoPE
// rows and inverse RMS, z. Each lane builds its two query rows' features (rows g and g + 8 of its warp's 16)
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
  const int f = static_cast<int>(p.frames) - 1 - blockIdx.z;  // the scans finish the last frame first
  const int64_t bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
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
  if (tid == 0) wait_ready(w.ready + bh * p.frames + f, w.scan_blocks);  // this frame's state tile and z
  __syncthreads();
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
  constexpr bool kBf16 = sizeof(T) == 2;
  w.pk_cores = kBf16 && shape.wgmma_scan && !p.portable_scans;
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
  w.scan_blocks = w.pk_cores ? 3 : (kMT + kScanMT - 1) / kScanMT + 1;
  if constexpr (kBf16) {
    if (w.pk_cores)
      err = launch_after(gdn_scan_wgmma_kernel<T>, dim3(w.scan_blocks, static_cast<unsigned>(p.heads), static_cast<unsigned>(p.batch)),
                         kWgThreads, sizeof(WgScanSmem), 1, shape, stream, p, w);
  }
  if (!w.pk_cores)
    err = launch_after(gdn_scan_kernel<T>,
                       dim3(w.scan_blocks, static_cast<unsigned>(p.heads), static_cast<unsigned>(p.batch)),
                       kScanThreads, scan_smem(), 1, shape, stream, p, w);
  if (err != cudaSuccess) return err;
  err = launch_after(gdn_readout_kernel<T>,
                     dim3(static_cast<unsigned>((p.tokens + kReadTokens - 1) / kReadTokens), static_cast<unsigned>(BH), T_),
                     kReadTokens * 2, sizeof(ReadoutSmem<T>), 1, shape, stream, p, w);
  if (err != cudaSuccess) return err;
  return cudaGetLastError();
}

// One block per (batch·frame, head): the threads sum the frame's tokens (a few loads each, all in
// flight at once), then one block sum.
template <typename T>
__global__ void gdn_decay_kernel(GdnDecayParams p) {
  __shared__ float scratch[32];
  const int64_t bf = blockIdx.x, h = blockIdx.y;  // bf = b·T + f
  const T* col = static_cast<const T*>(p.logits) + bf * p.tokens * p.stride + h;
  float sum = 0.f;
  for (int64_t s = threadIdx.x; s < p.tokens; s += blockDim.x) sum += to_f32(col[s * p.stride]);
  sum = block_sum(sum, scratch);
  if (threadIdx.x == 0) {
    const float x = sum / static_cast<float>(p.tokens) + p.dt_bias[h];
    const float softplus = x > 20.f ? x : log1pf(expf(x));
    p.decay[bf * p.heads + h] = expf(p.neg_a[h] * softplus);
  }
}

}  // namespace

cudaError_t gdn_decay(const GdnDecayParams& p, cudaStream_t stream) {
  if (p.type != ElemType::kBF16 && p.type != ElemType::kF32) return cudaErrorInvalidValue;
  if (p.batch * p.frames * p.heads == 0 || p.tokens == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(p.batch * p.frames), static_cast<unsigned>(p.heads));
  constexpr int kThreads = 256;
  if (p.type == ElemType::kBF16) gdn_decay_kernel<__nv_bfloat16><<<grid, kThreads, 0, stream>>>(p);
  else gdn_decay_kernel<float><<<grid, kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

bool gdn_supported(int64_t head_dim, int64_t frames, ElemType type) {
  return head_dim == kD && frames <= kMaxFrames && (type == ElemType::kBF16 || type == ElemType::kF32);
}

bool gdn_wgmma_scans(ElemType type) { return type == ElemType::kBF16 && launch_shape().wgmma_scan; }

size_t gdn_workspace_bytes(const GdnParams& p) { return carve(p, nullptr); }

cudaError_t gdn_forward(const GdnParams& p, cudaStream_t stream) {
  if (!gdn_supported(p.head_dim, p.frames, p.type) || p.norm_type != p.type) return cudaErrorInvalidValue;
  if (p.batch * p.frames * p.tokens * p.heads == 0) return cudaSuccess;
  if (p.type == ElemType::kBF16) return launch<__nv_bfloat16>(p, stream);
  return launch<float>(p, stream);
}

}  // namespace sanastream::kernels
