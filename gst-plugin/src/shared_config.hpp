// The properties every StreamTally element shares (`spool`, `collector`,
// `collector-token`, `server-id`, `interim`), their mapping onto
// streamtally_config_t, and ContextRef: the libstreamtally context an element holds
// from start (READY->PAUSED) to stop. Contexts with the same (spool, collector) are
// shared by the library across all elements of the process; the first one's
// settings win.
//
// Thread-safety: SharedConfig is a plain value; elements guard it with their object
// lock. ContextRef is owned by one element and used from its state-change thread.
#pragma once

#include <gst/gst.h>

#include <string>

#include "streamtally.h"

namespace streamtally::gst {

struct SharedConfig {
  std::string spool;
  std::string collector;
  std::string collector_token;
  std::string server_id;
  guint interim_ms = 60000;

  // Installs the five properties with ids first_id .. first_id+4.
  static void install_properties(GObjectClass* klass, guint first_id);
  static constexpr guint kPropertyCount = 5;

  // Handle the property if prop_id is one of ours; false otherwise.
  bool set_property(guint first_id, guint prop_id, const GValue* value);
  bool get_property(guint first_id, guint prop_id, GValue* value) const;
};

// The debug category libstreamtally's own log lines go to ("streamtally-core").
void init_core_log_category();

class ContextRef {
 public:
  ContextRef() = default;
  ~ContextRef() { release(); }
  ContextRef(const ContextRef&) = delete;
  ContextRef& operator=(const ContextRef&) = delete;

  // Acquires the process-wide context for this configuration. On failure returns a
  // streamtally_status_t (< 0) and stays empty.
  int acquire(const SharedConfig& config);
  // Drops our reference: closes the sessions opened through it ("server") and
  // flushes for at most kReleaseFlushMs (libstreamtally flushes on every release),
  // so records of a short gst-launch run are uploaded before the process exits. Kept
  // short: waiting longer for an unreachable collector only delays the state change.
  void release();
  streamtally_ctx_t* get() const { return ctx_; }
  explicit operator bool() const { return ctx_ != nullptr; }

  static constexpr uint64_t kReleaseFlushMs = 1000;

 private:
  streamtally_ctx_t* ctx_ = nullptr;
};

// Text of a streamtally_status_t for error messages.
const char* status_text(int status);

}  // namespace streamtally::gst
