// Test-only writer of torch.save archives: a protocol-2 pickle of a (possibly wrapped) state dict
// in a ZIP that can be forced to use ZIP64 records, and raw-pickle archives for hostile inputs.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "io/safetensors.h"

namespace sanastream::test {

struct PthWriteOptions {
  bool force_zip64 = true;
  std::string prefix = "archive";
  std::string wrapper;                                      // "" = raw dict, else {"<wrapper>": dict}
  std::vector<std::pair<std::string, int64_t>> int_leaves;  // extra non-tensor entries at the top
  std::string key_prefix;                                   // e.g. "module." prepended to every key
};

void write_pth(const std::string& path, const io::TensorMap& tensors, const PthWriteOptions& opts = {});
// An archive whose data.pkl is exactly `pickle`.
void write_pth_raw_pickle(const std::string& path, const std::string& pickle, bool force_zip64 = false);

}  // namespace sanastream::test
