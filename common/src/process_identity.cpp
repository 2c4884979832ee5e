#include "streamtally/process_identity.hpp"

#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <fstream>
#include <sstream>

namespace streamtally {
namespace {

// Field 22 of /proc/<pid>/stat; 0 when the process does not exist. The command name
// (field 2) may contain spaces and parentheses, so parse from the last ')'.
uint64_t start_time_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return 0;
  const auto close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close_paren + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i == 3 && (field == "Z" || field == "X")) return 0;  // a zombie has died already
    if (i == 22) return std::stoull(field);
  }
  return 0;
}

}  // namespace

std::string local_hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

ProcessIdentity ProcessIdentity::self() {
  const pid_t pid = getpid();
  return ProcessIdentity{pid, start_time_of(pid), local_hostname()};
}

bool ProcessIdentity::alive() const {
  if (host != local_hostname()) return true;  // not ours to judge
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
  const uint64_t st = start_time_of(pid);
  return st != 0 && st == start_time;  // a reused pid has another start time
}

}  // namespace streamtally
