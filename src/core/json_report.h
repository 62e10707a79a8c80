// Machine-readable summaries (--json FILE, "-" = stdout), written atomically.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace sanastream {

void write_json_report(const std::string& path, const nlohmann::json& report);

}  // namespace sanastream
