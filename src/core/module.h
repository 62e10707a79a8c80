// Loadable modules of our own (dlopen): the SentencePiece tokenizer and trainer run in modules so
// that their protobuf never meets libtorch's (model/sentencepiece_shim.h).
#pragma once

#include <string>

namespace sanastream {

// Opens module `name` (e.g. "libsanastream_spm.so"), looked for at $`env_var`, beside the running
// executable, in <exe dir>/../lib, then at `build_path`; local and deep-bound. An Error names what
// (`what`) was looked for and where, or why the file found does not load.
void* open_module(const std::string& name, const std::string& env_var, const std::string& build_path,
                  const std::string& what);

// The symbol `symbol` of an opened module; an Error names it when it is missing.
void* module_symbol(void* module, const std::string& symbol, const std::string& what);

}  // namespace sanastream
