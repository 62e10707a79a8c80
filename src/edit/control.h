// The control channel of a running edit session: one command per line, from stdin (`--control
// stdin`) and/or from the clients of a local socket (`--control tcp:[HOST:]PORT` or
// `--control unix:PATH`), one JSON line back for each.
//
//   prompt: TEXT   the instruction from the next chunk on (caches kept)
//   pause          from the next chunk on, frames pass through unedited (the model is not run)
//   resume         from the next chunk on, frames are edited again (with the caches of before)
//   stats          answered at once: frames in/out/dropped, chunks, the prompt, latency
//
// prompt/pause/resume are checked at once (a bad line gets {"ok":false,"error":…} and changes
// nothing) and applied by the session at its next chunk boundary, which then replies
// {"ok":true,"command":…,"chunk":N}. The channel runs one thread (poll on stdin, the listening
// socket and its clients); POSIX only.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace sanastream::edit {

struct ControlCommand {
  enum class Kind { kPrompt, kPause, kResume, kStats };
  Kind kind = Kind::kStats;
  std::string text;  // kPrompt: the instruction
  int client = -1;   // who sent it (for the reply)
};

// One line → a command, or the error message for the reply ("unknown command …").
struct ParsedCommand {
  std::optional<ControlCommand> command;
  std::string error;
};
ParsedCommand parse_control_line(const std::string& line);
const char* command_name(ControlCommand::Kind kind);

class ControlChannel {
 public:
  using StatsFn = std::function<nlohmann::json()>;

  // addresses: "stdin" (replies on stdout, or on stderr when stdout carries the video:
  // replies_to_stderr) and at most one socket, "tcp:PORT", "tcp:HOST:PORT" (PORT 0: any free port)
  // or "unix:PATH". Binds at once (a bad or busy address throws); stats answers `stats`.
  ControlChannel(const std::vector<std::string>& addresses, bool replies_to_stderr, StatsFn stats);
  ~ControlChannel();  // stops the thread, closes the sockets, removes a unix socket's file
  ControlChannel(const ControlChannel&) = delete;
  ControlChannel& operator=(const ControlChannel&) = delete;

  // "tcp:127.0.0.1:40123" / "unix:/tmp/s.sock" (the port actually bound); "" without a socket.
  const std::string& address() const { return bound_; }
  // The commands received since the last call, in order (the session applies them).
  std::vector<ControlCommand> take();
  // Sends one JSON line to a command's sender (dropped when it has gone).
  void reply(int client, const nlohmann::json& message);

 private:
  struct Client;
  void run();
  void handle_line(int client, const std::string& line);
  void close_client(int client);

  StatsFn stats_;
  bool replies_to_stderr_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  // self-pipe: the destructor wakes poll()
  std::string bound_, unix_path_;
  std::mutex mu_;  // clients_ and pending_
  std::vector<std::unique_ptr<Client>> clients_;
  std::vector<ControlCommand> pending_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace sanastream::edit
