// The outputs of `sanastream eval`: the JSON summary (layout fixed by issue 8), the terminal
// table and the self-contained HTML report (inline SVG curves, base64 JPEG strips; no external
// resources, so it opens offline).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "eval/evaluate.h"

namespace sanastream::eval {

// {"edited": {"warp_error", "flicker_index", "edge_ssim", "psnr"?, "ssim"?, "frames": [...], …},
//  "source": {"warp_error", "flicker_index", …}, "target"?: {"warp_error", "flicker_index", …},
//  "pairs": N, "run"?: run}. run is carried when it is not null. NaN figures are null.
nlohmann::json to_json(const EvalResult& r, const nlohmann::json& run);

// The terminal table: inputs, then one row per metric with edited / source / target columns,
// then the run's figures when run is not null.
std::string format_table(const EvalResult& r, const nlohmann::json& run);

// A complete HTML document.
std::string render_html(const EvalResult& r, const nlohmann::json& run);

// Standard base64 (RFC 4648, with padding).
std::string base64_encode(const std::vector<uint8_t>& bytes);

}  // namespace sanastream::eval
