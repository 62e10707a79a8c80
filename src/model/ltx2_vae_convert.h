// The Lightricks-native LTX-2 video VAE layout (one combined safetensors, keys prefixed "vae.") to the
// diffusers layout (SPEC §4): the published ordered substring renames (diffusers'
// convert_ltx2_to_diffusers.py, LTX-2.0 rules plus the 2.3 decoder's extra blocks), each applied to
// every key in order, then the per-channel statistics that diffusers does not keep are dropped.
#pragma once

#include <string>
#include <vector>

#include "io/safetensors.h"

namespace sanastream::model {

struct Ltx2NativeConversion {
  io::TensorMap tensors;              // diffusers key names
  std::vector<std::string> dropped;   // native keys left out (statistics diffusers does not keep)
  size_t ignored = 0;                 // tensors of other components (no "vae." prefix) in a combined file
};

// The renamed key of one native VAE key (prefix already removed).
std::string ltx2_native_vae_key(const std::string& native_key);

// Selects the "vae." tensors of a combined checkpoint (or every tensor of a VAE-only file without the
// prefix) and renames them. Throws when there is no VAE in it or two keys collide.
Ltx2NativeConversion convert_ltx2_native_vae(const io::TensorMap& native);

}  // namespace sanastream::model
