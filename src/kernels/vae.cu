#include "kernels/vae.h"

#include "kernels/quant.h"

namespace sanastream::kernels {

namespace {

constexpr int kWarpsPerBlock = 8;

// Index along an axis of n for padded position i − pad (within pad of the range).
__device__ __forceinline__ int64_t source_index(int64_t i, int64_t n, PadMode mode) {
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case PadMode::kReflect: return i < 0 ? -i : 2 * (n - 1) - i;
    case PadMode::kReplicate: return i < 0 ? 0 : n - 1;
    case PadMode::kCircular: return i < 0 ? i + n : i - n;
  }
  return 0;
}

// A warp takes kRows consecutive output rows (pixels): lane l owns the kWidth-element pieces
// l, l + 32, … (at most kPieces) of each; every row's loads are issued before the first reduction
// (narrow rows would leave too few bytes in flight otherwise); a row's mean square is a warp sum.
// Two MUFU operations an element (ex2 and the reciprocal of SiLU's fast division): with IEEE
// division and expf the kernel issued ~40 instructions an element and ran at a quarter of the
// memory bandwidth. __fdividef returns 0 for denominators past 2^126 (n < −87), SiLU's limit anyway.
// The element type of the output: T, or E4M3 bytes (kFp8).
template <typename T, bool kFp8>
using OutElem = std::conditional_t<kFp8, __nv_fp8_storage_t, T>;

template <typename T, int kWidth, int kPieces, int kRows, bool kFp8>
__global__ void __launch_bounds__(kWarpsPerBlock * 32) vae_conv_input_kernel(VaeConvInputParams p) {
  using Y = OutElem<T, kFp8>;
  const int lane = threadIdx.x & 31;
  const int64_t Hp = p.height + 2 * p.pad, Wp = p.width + 2 * p.pad, Tw = p.out_frames - p.out_begin;
  const int64_t rows = p.batch * Tw * Hp * Wp, C = p.channels;
  int64_t r = (int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5)) * kRows;
  if (r >= rows) return;
  const int64_t valid = min(int64_t(kRows), rows - r);
  // The first row's position; the others follow along W, then H, T and B.
  int64_t wo = r % Wp, ho = (r / Wp) % Hp, to = p.out_begin + (r / (Wp * Hp)) % Tw, b = r / (Wp * Hp * Tw);
  const T* x[kRows];
  Y* out[kRows];
#pragma unroll
  for (int j = 0; j < kRows; ++j) {
    if (j > 0 && ++wo == Wp) {
      wo = 0;
      if (++ho == Hp) {
        ho = 0;
        if (++to == p.out_frames) to = p.out_begin, ++b;
      }
    }
    const int64_t t = min(max(to - p.front, int64_t(0)), p.frames - 1);
    const int64_t h = source_index(ho - p.pad, p.height, p.mode), w = source_index(wo - p.pad, p.width, p.mode);
    x[j] = static_cast<const T*>(p.x) + b * p.x_strides[0] + t * p.x_strides[1] + h * p.x_strides[2] +
           w * p.x_strides[3];
    out[j] = static_cast<Y*>(p.out) + b * p.out_strides[0] + to * p.out_strides[1] + ho * p.out_strides[2] +
             wo * p.out_strides[3];
  }
  float v[kRows][kPieces][kWidth];
#pragma unroll
  for (int j = 0; j < kRows; ++j)
#pragma unroll
    for (int k = 0; k < kPieces; ++k) {
      const int64_t c = (lane + 32 * k) * kWidth;
      if (j < valid && c < C) load_n<kWidth>(x[j] + c, v[j][k]);
    }
#pragma unroll
  for (int j = 0; j < kRows; ++j) {
    if (j >= valid) break;
    float inv = 1.f;
    if (p.norm_silu) {
      float ss = 0.f;
#pragma unroll
      for (int k = 0; k < kPieces; ++k)
        if ((lane + 32 * k) * kWidth < C)
#pragma unroll
          for (int i = 0; i < kWidth; ++i) ss += v[j][k][i] * v[j][k][i];
      for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
      inv = 1.f / sqrtf(ss / static_cast<float>(C) + p.eps);
    }
#pragma unroll
    for (int k = 0; k < kPieces; ++k) {
      const int64_t c = (lane + 32 * k) * kWidth;
      if (c >= C) continue;
      if (p.norm_silu) {
#pragma unroll
        for (int i = 0; i < kWidth; ++i) {
          const float n = to_f32(from_f32<T>(v[j][k][i] * inv));
          v[j][k][i] = __fdividef(n, 1.f + __expf(-n));
        }
      }
      if constexpr (kFp8) {
#pragma unroll
        for (int i = 0; i < kWidth; ++i) v[j][k][i] = to_f32(from_f32<T>(v[j][k][i]));
        store_e4m3<kWidth>(out[j] + c, v[j][k], p.fp8_scale);
      } else {
        store_n<kWidth>(out[j] + c, v[j][k]);
      }
    }
  }
}

// Four pieces a lane in flight: rows of one piece go four to a warp, of two pieces two.
template <typename T, int kWidth, int kPieces>
void launch_pieces(const VaeConvInputParams& p, int64_t rows, cudaStream_t stream) {
  constexpr int kRows = kPieces >= 4 ? 1 : 4 / kPieces;
  const unsigned grid = static_cast<unsigned>((rows + kWarpsPerBlock * kRows - 1) / (kWarpsPerBlock * kRows));
  if (p.fp8_scale > 0.f)
    vae_conv_input_kernel<T, kWidth, kPieces, kRows, true><<<grid, kWarpsPerBlock * 32, 0, stream>>>(p);
  else
    vae_conv_input_kernel<T, kWidth, kPieces, kRows, false><<<grid, kWarpsPerBlock * 32, 0, stream>>>(p);
}

template <typename T, int kWidth>
cudaError_t launch(const VaeConvInputParams& p, int64_t rows, cudaStream_t stream) {
  const int64_t pieces = (p.channels + 32 * kWidth - 1) / (32 * kWidth);
  if (pieces <= 1) launch_pieces<T, kWidth, 1>(p, rows, stream);
  else if (pieces <= 2) launch_pieces<T, kWidth, 2>(p, rows, stream);
  else if (pieces <= 4) launch_pieces<T, kWidth, 4>(p, rows, stream);
  else if (pieces <= 8) launch_pieces<T, kWidth, 8>(p, rows, stream);
  else if (pieces <= 16) launch_pieces<T, kWidth, 16>(p, rows, stream);
  else return cudaErrorInvalidValue;
  return cudaGetLastError();
}

}  // namespace

cudaError_t vae_conv_input(const VaeConvInputParams& p, cudaStream_t stream) {
  if (p.pad < 0 || p.pad > 1 || p.out_begin > p.out_frames || (p.frames == 0 && p.out_begin < p.out_frames))
    return cudaErrorInvalidValue;
  const int64_t rows = p.batch * (p.out_frames - p.out_begin) * (p.height + 2 * p.pad) * (p.width + 2 * p.pad);
  if (rows == 0) return cudaSuccess;
  const int64_t eb = elem_bytes(p.type), out_eb = p.fp8_scale > 0.f ? 1 : eb;
  bool vec = p.channels % 4 == 0 && is_aligned(p.x, 4 * eb) && is_aligned(p.out, 4 * out_eb);
  for (int i = 0; i < 4; ++i) vec = vec && p.x_strides[i] % 4 == 0 && p.out_strides[i] % 4 == 0;
  SS_DISPATCH_ELEM(p.type, T, { return vec ? launch<T, 4>(p, rows, stream) : launch<T, 1>(p, rows, stream); });
  return cudaErrorInvalidValue;
}

}  // namespace sanastream::kernels
