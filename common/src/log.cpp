#include "streamtally/log.hpp"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace streamtally {
namespace {

struct Sink {
  streamtally_log_fn fn = nullptr;
  void* user = nullptr;
};

std::mutex& sink_mutex() {
  static std::mutex m;
  return m;
}
Sink& sink() {
  static Sink s;
  return s;
}

constexpr const char* kLevelNames[] = {"error", "warn", "info", "debug"};

}  // namespace

void set_log_sink(streamtally_log_fn fn, void* user) {
  std::lock_guard lock(sink_mutex());
  sink() = Sink{fn, user};
}

void log(LogLevel level, const std::string& message) {
  Sink s;
  {
    std::lock_guard lock(sink_mutex());
    s = sink();
  }
  if (s.fn) {
    s.fn(s.user, static_cast<streamtally_log_level_t>(level), message.c_str());
  } else if (level != LogLevel::Debug) {
    std::fprintf(stderr, "streamtally %s: %s\n", kLevelNames[static_cast<int>(level)], message.c_str());
  }
}

}  // namespace streamtally
