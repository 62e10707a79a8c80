// ATen front end of the fused GDN kernels (kernels/gdn.h); only built with SANASTREAM_CUDA.
#pragma once

#include "ops/gdn.h"

namespace sanastream::ops::cuda {

// Whether the fused kernels take these inputs (CUDA, bf16 or fp32, head dim 112, ≤ 16 frames,
// 16-byte rows).
bool gdn_fused_applies(const GdnProjections& p, const GdnFeatureMaps& fm, const RopeTable& rope);
// ops::gdn_gated through the kernels; call only where gdn_fused_applies(). `portable_scans`: the
// mma.sync scans even where the wgmma ones run (the portable kernels' test on Hopper).
at::Tensor gdn_gated(const GdnProjections& p, const GdnFeatureMaps& fm, const RopeTable& rope, const GdnState& init,
                     GdnState* final_state, double eps, bool portable_scans = false);

// ops::gdn_decay through its kernel; undefined when the layout does not suit it (rows evenly
// strided, unit stride along H, bf16 or fp32, contiguous fp32 neg_a and dt_bias).
at::Tensor gdn_decay(const at::Tensor& logits, int64_t frames, const at::Tensor& neg_a, const at::Tensor& dt_bias);

}  // namespace sanastream::ops::cuda
