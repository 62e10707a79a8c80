#include "core/json_report.h"

#include "core/fs.h"

namespace sanastream {

void write_json_report(const std::string& path, const nlohmann::json& report) {
  write_text_file_atomic(path, report.dump(2) + "\n");
}

}  // namespace sanastream
