// SIGINT handling: the first Ctrl-C sets a flag that long-running loops poll; they finalise their
// outputs and throw sanastream::Interrupted (exit code 130). A second Ctrl-C exits at once.
#pragma once

namespace sanastream {

void install_interrupt_handler();
bool interrupt_requested();
// Throws Interrupted when a SIGINT arrived; call it where outputs are in a consistent state.
void check_interrupt();

}  // namespace sanastream
