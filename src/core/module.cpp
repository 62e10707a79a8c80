#include "core/module.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "core/error.h"
#include "core/fs.h"

namespace sanastream {

void* open_module(const std::string& name, const std::string& env_var, const std::string& build_path,
                  const std::string& what) {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv(env_var.c_str())) candidates.push_back(env);
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    std::string dir(exe, n);
    dir = dir.substr(0, dir.find_last_of('/'));
    candidates.push_back(dir + "/" + name);
    candidates.push_back(dir + "/../lib/" + name);
  }
  candidates.push_back(build_path);
  std::string tried;
  for (const std::string& path : candidates) {
    if (!path_exists(path)) {
      tried += (tried.empty() ? "" : ", ") + path;
      continue;
    }
    void* lib = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    SS_CHECK(lib, "{} '{}': expected a loadable library, got: {}", what, path, ::dlerror());
    return lib;
  }
  SS_FAIL("{} {} not found (looked at {}; set {})", what, name, tried, env_var);
}

void* module_symbol(void* module, const std::string& symbol, const std::string& what) {
  void* f = ::dlsym(module, symbol.c_str());
  SS_CHECK(f != nullptr, "{}: expected the function {}, it is missing", what, symbol);
  return f;
}

}  // namespace sanastream
