// libstreamtally's log: one process-wide sink the host installs (nginx error log,
// GStreamer debug category); stderr until then. Callable from any thread.
#pragma once

#include <string>

#include "streamtally.h"

namespace streamtally {

enum class LogLevel { Error = STREAMTALLY_LOG_ERROR, Warn, Info, Debug };

void set_log_sink(streamtally_log_fn fn, void* user);
void log(LogLevel level, const std::string& message);

}  // namespace streamtally
