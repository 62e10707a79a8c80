// Edit families whose target can be computed exactly from the source frames (the demo model's
// training and evaluation data, issue 11; docs/TRAIN.md "Edit families"): each family has a
// deterministic per-frame image operation, several phrasings of the instruction and of its reverse.
// The operations work on any device and dtype-agnostic float frames, so the trainer synthesises
// targets on the GPU and `sanastream make-target` writes the evaluation targets with the same code.
#pragma once

#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace sanastream::train {

struct EditFamily {
  std::string name;                             // "bw", "sepia", "night", "thermal", "sketch", "cartoon", "posterise", "blur"
  std::vector<std::string> phrasings;           // the instruction, several ways (≥ 3)
  std::vector<std::string> reverse_phrasings;   // the instruction that undoes it (≥ 2)
};

// Every family, in a fixed order.
const std::vector<EditFamily>& edit_families();
// The family named `name`; an Error lists the names.
const EditFamily& edit_family(const std::string& name);

// The family's target of frames [N, 3, H, W] float in [0, 1] (any device; computed in fp32, returned
// in the input's dtype), values in [0, 1]. Per frame, so a video's target is temporally as
// consistent as the video. Spatial operations (blur, sketch, cartoon) are defined in pixels of the
// frames given: the demo model's processing scale (short side 256).
at::Tensor apply_edit_family(const std::string& name, const at::Tensor& frames);

// Every phrasing and reverse phrasing of every family, one per line (the tokenizer's corpus).
std::vector<std::string> edit_family_texts();

}  // namespace sanastream::train
