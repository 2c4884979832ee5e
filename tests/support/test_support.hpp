// Test support shared by every test: temp dirs, free loopback ports, child processes
// stopped by pid, waiting for a server to answer, a small HTTP client.
// Servers under test listen on 127.0.0.1 only; every wait is bounded.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace streamtally::test {

// A fresh directory under $TMPDIR, removed (recursively) in the destructor.
// Mode 0777 so unprivileged server workers (nginx's "nobody") can write into it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A TCP port on 127.0.0.1 that was free when asked (bind to port 0, read it back).
int free_port();

// Polls until the predicate is true or the timeout passes.
bool wait_until(const std::function<bool()>& predicate, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = std::chrono::milliseconds(20));

// True once something accepts TCP connections on 127.0.0.1:port.
bool wait_for_port(int port, std::chrono::milliseconds timeout);

// A child process started with execvp. The destructor stops it by its pid: SIGTERM,
// then SIGKILL after a grace period. stdout/stderr go to files (readable by tests).
class ChildProcess {
 public:
  struct Options {
    std::vector<std::string> argv;
    std::map<std::string, std::string> env;  // added to the inherited environment
    std::string stdout_path;                 // empty: /dev/null
    std::string stderr_path;                 // empty: /dev/null
    std::string working_dir;                 // empty: inherited
    std::string stdin_data;                  // written to the child's stdin, then closed
  };
  explicit ChildProcess(Options options);
  ~ChildProcess();
  ChildProcess(ChildProcess&&) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ChildProcess(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running();                      // not exited yet
  void signal(int sig);                // e.g. SIGKILL for crash tests
  // Waits for exit; returns the exit code (128+signal when killed), nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  // SIGTERM, wait up to grace, then SIGKILL. Returns the exit code.
  int stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// Runs a command to completion (bounded); returns exit code and captured stdout.
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                          const std::string& stdin_data = "");

// Minimal blocking HTTP client (libcurl) for tests.
struct HttpResponse {
  long status = 0;  // 0: no response (connection refused, timeout)
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
};
HttpResponse http_request(const std::string& method, const std::string& url, const std::string& body = "",
                          const std::map<std::string, std::string>& headers = {},
                          std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
inline HttpResponse http_get(const std::string& url, const std::map<std::string, std::string>& headers = {}) {
  return http_request("GET", url, "", headers);
}

// Reads a whole file ("" when missing).
std::string read_file(const std::string& path);

// The build tree's directory of a target's binary, as passed by CMake through the
// environment (see tests/support/CMakeLists.txt): STREAMTALLY_BUILD_DIR.
std::string build_dir();
std::string source_dir();

}  // namespace streamtally::test
