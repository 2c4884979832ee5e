// Identity of a process that survives pid reuse: pid + its start time (clock ticks
// since boot, /proc/<pid>/stat field 22) + the host name. Used by the spool to tell
// whether the writer of an open session is still alive.
#pragma once

#include <cstdint>
#include <string>
#include <sys/types.h>

namespace streamtally {

struct ProcessIdentity {
  pid_t pid = 0;
  uint64_t start_time = 0;
  std::string host;

  static ProcessIdentity self();  // re-read after fork(): the pid changes
  // True when this identity's process still runs on this host (false for other hosts:
  // callers must not judge those).
  bool alive() const;
};

std::string local_hostname();

}  // namespace streamtally
