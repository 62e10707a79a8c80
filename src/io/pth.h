// PyTorch checkpoints written by torch.save (the zip format, any archive prefix, ZIP64 too), read
// through the restricted unpickler: tensors and plain values only, nothing executed.
#pragma once

#include <string>

#include "io/pickle.h"

namespace sanastream::io {

// The unpickled root object of a torch.save archive.
PyRef load_pth(const std::string& path);

}  // namespace sanastream::io
