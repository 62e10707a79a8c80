#include "edit/control.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/log.h"

namespace sanastream::edit {

using nlohmann::json;

namespace {

constexpr int kStdinClient = 0;
constexpr size_t kMaxLine = 64 * 1024;

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Writes all of data; false when the peer has gone (or, for a socket, cannot take it now).
bool write_all(int fd, const std::string& data, bool socket) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = socket ? ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT)
                             : ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

int bind_tcp(const std::string& spec, std::string* bound) {
  const size_t colon = spec.rfind(':');
  const std::string host = colon == std::string::npos ? "127.0.0.1" : spec.substr(0, colon);
  const std::string port = colon == std::string::npos ? spec : spec.substr(colon + 1);
  SS_CHECK(!port.empty() && std::all_of(port.begin(), port.end(), ::isdigit) && std::stoul(port) <= 65535,
           "--control tcp:{}: expected a port number 0-65535, got '{}'", spec, port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
  SS_CHECK(rc == 0 && found != nullptr, "--control tcp:{}: expected a local address, got '{}' ({})", spec, host,
           gai_strerror(rc));
  int fd = ::socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, found->ai_protocol);
  const int one = 1;
  if (fd >= 0) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || ::bind(fd, found->ai_addr, found->ai_addrlen) != 0 || ::listen(fd, 8) != 0) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    ::freeaddrinfo(found);
    SS_FAIL("--control tcp:{}: expected a free address to listen on, got {}", spec, std::strerror(err));
  }
  ::freeaddrinfo(found);
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  char name[NI_MAXHOST] = {0}, serv[NI_MAXSERV] = {0};
  ::getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, name, sizeof name, serv, sizeof serv,
                NI_NUMERICHOST | NI_NUMERICSERV);
  *bound = fmt::format("tcp:{}:{}", name, serv);
  return fd;
}

int bind_unix(const std::string& path, std::string* bound) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  SS_CHECK(!path.empty() && path.size() < sizeof addr.sun_path, "--control unix:{}: expected a path of 1-{} bytes, got {}",
           path, sizeof addr.sun_path - 1, path.size());
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    SS_CHECK(S_ISSOCK(st.st_mode), "--control unix:{}: expected a free path, got an existing file", path);
    const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool in_use = probe >= 0 && ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    if (probe >= 0) ::close(probe);
    SS_CHECK(!in_use, "--control unix:{}: expected a free socket, got one another process listens on", path);
    ::unlink(path.c_str());  // a stale socket of a run that ended without removing it
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 8) != 0) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    SS_FAIL("--control unix:{}: expected a socket to listen on, got {}", path, std::strerror(err));
  }
  *bound = "unix:" + path;
  return fd;
}

}  // namespace

const char* command_name(ControlCommand::Kind kind) {
  switch (kind) {
    case ControlCommand::Kind::kPrompt: return "prompt";
    case ControlCommand::Kind::kPause: return "pause";
    case ControlCommand::Kind::kResume: return "resume";
    case ControlCommand::Kind::kStats: return "stats";
  }
  return "?";
}

ParsedCommand parse_control_line(const std::string& raw) {
  const std::string line = trim(raw);
  ParsedCommand p;
  const size_t colon = line.find(':');
  const std::string word = lower(trim(line.substr(0, colon)));
  ControlCommand c;
  if (colon != std::string::npos && word == "prompt") {
    c.kind = ControlCommand::Kind::kPrompt;
    c.text = trim(line.substr(colon + 1));
    if (c.text.empty()) {
      p.error = "prompt: the instruction is empty";
      return p;
    }
  } else if (colon == std::string::npos && word == "pause") {
    c.kind = ControlCommand::Kind::kPause;
  } else if (colon == std::string::npos && word == "resume") {
    c.kind = ControlCommand::Kind::kResume;
  } else if (colon == std::string::npos && word == "stats") {
    c.kind = ControlCommand::Kind::kStats;
  } else {
    p.error = fmt::format("unknown command '{}': expected 'prompt: TEXT', 'pause', 'resume' or 'stats'",
                          line.size() > 80 ? line.substr(0, 80) + "…" : line);
    return p;
  }
  p.command = c;
  return p;
}

struct ControlChannel::Client {
  int id = 0;
  int in = -1, out = -1;  // stdin: 0 and 1 (or 2); a socket: the same fd
  bool socket = false;
  std::string buffer;     // bytes after the last newline
};

ControlChannel::ControlChannel(const std::vector<std::string>& addresses, bool replies_to_stderr, StatsFn stats)
    : stats_(std::move(stats)), replies_to_stderr_(replies_to_stderr) {
  bool use_stdin = false;
  std::string socket;
  for (const std::string& address : addresses) {
    if (address == "stdin") {
      use_stdin = true;
      continue;
    }
    SS_CHECK(address.rfind("tcp:", 0) == 0 || address.rfind("unix:", 0) == 0,
             "--control: expected stdin, tcp:[HOST:]PORT or unix:PATH, got '{}'", address);
    SS_CHECK(socket.empty(), "--control: expected one socket address (and stdin), got {} and {}", socket, address);
    socket = address;
  }
  SS_CHECK(::pipe2(wake_, O_CLOEXEC) == 0, "--control: expected a pipe, got {}", std::strerror(errno));
  try {
    if (socket.rfind("tcp:", 0) == 0) listen_fd_ = bind_tcp(socket.substr(4), &bound_);
    if (socket.rfind("unix:", 0) == 0) listen_fd_ = bind_unix(socket.substr(5), &bound_);
  } catch (...) {
    ::close(wake_[0]);
    ::close(wake_[1]);
    throw;
  }
  if (socket.rfind("unix:", 0) == 0) unix_path_ = socket.substr(5);
  if (use_stdin) {
    auto c = std::make_unique<Client>();
    c->id = kStdinClient;
    c->in = STDIN_FILENO;
    c->out = replies_to_stderr_ ? STDERR_FILENO : STDOUT_FILENO;
    clients_.push_back(std::move(c));
  }
  if (!bound_.empty()) log_info("control: listening on {}", bound_);
  thread_ = std::thread([this] { run(); });
}

ControlChannel::~ControlChannel() {
  stop_ = true;
  const char byte = 0;
  if (::write(wake_[1], &byte, 1) < 0) log_debug("control: cannot wake the thread ({})", std::strerror(errno));
  if (thread_.joinable()) thread_.join();
  for (auto& c : clients_)
    if (c->socket) ::close(c->in);
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
  ::close(wake_[0]);
  ::close(wake_[1]);
}

std::vector<ControlCommand> ControlChannel::take() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ControlCommand> out;
  out.swap(pending_);
  return out;
}

void ControlChannel::reply(int client, const json& message) {
  const std::string line = message.dump() + "\n";
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& c : clients_) {
    if (c->id != client) continue;
    if (!write_all(c->out, line, c->socket)) log_debug("control: client {} has gone; reply dropped", client);
    return;
  }
}

void ControlChannel::close_client(int client) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find_if(clients_.begin(), clients_.end(), [&](const auto& c) { return c->id == client; });
  if (it == clients_.end()) return;
  if (!(*it)->socket) {  // stdin ended: its commands still get their replies on stdout
    (*it)->in = -1;
    return;
  }
  ::close((*it)->in);
  clients_.erase(it);
}

void ControlChannel::handle_line(int client, const std::string& line) {
  if (trim(line).empty()) return;
  ParsedCommand p = parse_control_line(line);
  if (!p.command) {
    reply(client, {{"ok", false}, {"error", p.error}});
    return;
  }
  p.command->client = client;
  if (p.command->kind == ControlCommand::Kind::kStats) {
    json j = stats_ ? stats_() : json::object();
    j["ok"] = true;
    j["command"] = "stats";
    reply(client, j);
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  pending_.push_back(*p.command);
}

void ControlChannel::run() {
  int next_id = kStdinClient + 1;
  char buf[4096];
  while (!stop_) {
    std::vector<pollfd> fds{{wake_[0], POLLIN, 0}};
    if (listen_fd_ >= 0) fds.push_back({listen_fd_, POLLIN, 0});
    std::vector<std::pair<int, int>> watched;  // (fd, client id)
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& c : clients_)
        if (c->in >= 0) watched.emplace_back(c->in, c->id);
    }
    for (auto& [fd, id] : watched) fds.push_back({fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      log_warn("control: poll failed ({}); the control channel stops", std::strerror(errno));
      return;
    }
    if (fds[0].revents != 0) return;
    size_t i = 1;
    if (listen_fd_ >= 0) {
      if (fds[i].revents & POLLIN) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
          auto c = std::make_unique<Client>();
          c->id = next_id++;
          c->in = c->out = fd;
          c->socket = true;
          std::lock_guard<std::mutex> lock(mu_);
          clients_.push_back(std::move(c));
        }
      }
      ++i;
    }
    for (const auto& [fd, id] : watched) {
      const short ev = fds[i++].revents;
      if (ev == 0) continue;
      const ssize_t n = (ev & (POLLIN | POLLHUP)) ? ::read(fd, buf, sizeof buf) : -1;
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        close_client(id);
        continue;
      }
      std::vector<std::string> lines;
      bool too_long = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = std::find_if(clients_.begin(), clients_.end(), [&, id = id](const auto& c) { return c->id == id; });
        if (it == clients_.end()) continue;
        std::string& b = (*it)->buffer;
        b.append(buf, static_cast<size_t>(n));
        for (size_t nl; (nl = b.find('\n')) != std::string::npos; b.erase(0, nl + 1)) lines.push_back(b.substr(0, nl));
        if (b.size() > kMaxLine) {
          b.clear();
          too_long = true;
        }
      }
      for (const std::string& l : lines) handle_line(id, l);
      if (too_long)
        reply(id, {{"ok", false}, {"error", fmt::format("a command line longer than {} bytes; ignored", kMaxLine)}});
    }
  }
}

}  // namespace sanastream::edit
