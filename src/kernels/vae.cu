#include "kernels/vae.h"

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

// One warp per output row (pixel): lane l owns the kWidth-element pieces l, l + 32, … (at most
// kPieces); the row's mean square is a warp sum.
template <typename T, int kWidth, int kPieces>
__global__ void __launch_bounds__(kWarpsPerBlock * 32) vae_conv_input_kernel(VaeConvInputParams p) {
  const int lane = threadIdx.x & 31;
  int64_t r = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  const int64_t Hp = p.height + 2 * p.pad, Wp = p.width + 2 * p.pad, Tw = p.out_frames - p.out_begin;
  if (r >= p.batch * Tw * Hp * Wp) return;
  const int64_t wo = r % Wp;
  r /= Wp;
  const int64_t ho = r % Hp;
  r /= Hp;
  const int64_t to = p.out_begin + r % Tw, b = r / Tw;
  const int64_t t = min(max(to - p.front, int64_t(0)), p.frames - 1);
  const int64_t h = source_index(ho - p.pad, p.height, p.mode), w = source_index(wo - p.pad, p.width, p.mode);
  const T* x = static_cast<const T*>(p.x) + b * p.x_strides[0] + t * p.x_strides[1] + h * p.x_strides[2] +
               w * p.x_strides[3];
  T* out = static_cast<T*>(p.out) + b * p.out_strides[0] + to * p.out_strides[1] + ho * p.out_strides[2] +
           wo * p.out_strides[3];
  const int64_t C = p.channels;
  float v[kPieces][kWidth];
  float ss = 0.f;
#pragma unroll
  for (int k = 0; k < kPieces; ++k) {
    const int64_t c = (lane + 32 * k) * kWidth;
    if (c < C) {
      load_n<kWidth>(x + c, v[k]);
#pragma unroll
      for (int i = 0; i < kWidth; ++i) ss += v[k][i] * v[k][i];
    }
  }
  float rms = 1.f;
  if (p.norm_silu) {
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    rms = sqrtf(ss / static_cast<float>(C) + p.eps);
  }
#pragma unroll
  for (int k = 0; k < kPieces; ++k) {
    const int64_t c = (lane + 32 * k) * kWidth;
    if (c < C) {
      if (p.norm_silu) {
#pragma unroll
        for (int i = 0; i < kWidth; ++i) {
          const float n = to_f32(from_f32<T>(v[k][i] / rms));
          v[k][i] = n / (1.f + expf(-n));
        }
      }
      store_n<kWidth>(out + c, v[k]);
    }
  }
}

template <typename T, int kWidth>
cudaError_t launch(const VaeConvInputParams& p, unsigned grid, cudaStream_t stream) {
  const int64_t pieces = (p.channels + 32 * kWidth - 1) / (32 * kWidth);
  constexpr unsigned block = kWarpsPerBlock * 32;
  if (pieces <= 1) vae_conv_input_kernel<T, kWidth, 1><<<grid, block, 0, stream>>>(p);
  else if (pieces <= 2) vae_conv_input_kernel<T, kWidth, 2><<<grid, block, 0, stream>>>(p);
  else if (pieces <= 4) vae_conv_input_kernel<T, kWidth, 4><<<grid, block, 0, stream>>>(p);
  else if (pieces <= 8) vae_conv_input_kernel<T, kWidth, 8><<<grid, block, 0, stream>>>(p);
  else if (pieces <= 16) vae_conv_input_kernel<T, kWidth, 16><<<grid, block, 0, stream>>>(p);
  else return cudaErrorInvalidValue;
  return cudaGetLastError();
}

}  // namespace

cudaError_t vae_conv_input(const VaeConvInputParams& p, cudaStream_t stream) {
  if (p.pad < 0 || p.pad > 1 || p.out_begin > p.out_frames || (p.frames == 0 && p.out_begin < p.out_frames))
    return cudaErrorInvalidValue;
  const int64_t rows = p.batch * (p.out_frames - p.out_begin) * (p.height + 2 * p.pad) * (p.width + 2 * p.pad);
  if (rows == 0) return cudaSuccess;
  const int64_t eb = elem_bytes(p.type);
  bool vec = p.channels % 4 == 0 && is_aligned(p.x, 4 * eb) && is_aligned(p.out, 4 * eb);
  for (int i = 0; i < 4; ++i) vec = vec && p.x_strides[i] % 4 == 0 && p.out_strides[i] % 4 == 0;
  const unsigned grid = static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
  SS_DISPATCH_ELEM(p.type, T, { return vec ? launch<T, 4>(p, grid, stream) : launch<T, 1>(p, grid, stream); });
  return cudaErrorInvalidValue;
}

}  // namespace sanastream::kernels
