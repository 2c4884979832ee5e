// Helpers of the GStreamer plugin tests: the plugin registered statically, the
// records a spool holds (read with libstreamtally's own Spool and strict decoder,
// independent of the plugin), and waiting for bus messages.
#pragma once

#include <gst/gst.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "streamtally/record.hpp"

namespace streamtally::gsttest {

// gst_init() and gst_plugin_register_static() of the `streamtally` plugin, once.
void register_plugin();

// Every record pending in the spool, decoded (fails the test on a bad line).
std::vector<SessionRecord> spool_records(const std::string& spool_path);

// The newest record (highest seq) of each session, by session id.
std::map<std::string, SessionRecord> latest_by_session(const std::vector<SessionRecord>& records);

// Polls the spool until `predicate` holds for its latest records (bounded).
bool wait_for_records(const std::string& spool_path,
                      const std::function<bool(const std::map<std::string, SessionRecord>&)>& predicate,
                      std::chrono::milliseconds timeout);

// The next message of one of `types` on the bus (bounded); nullptr on timeout.
GstMessage* pop_message(GstBus* bus, GstMessageType types, std::chrono::milliseconds timeout);

// The next `streamtally-session` element message (bounded; others are dropped);
// nullptr on timeout. The caller unrefs it.
GstMessage* pop_session_message(GstBus* bus, std::chrono::milliseconds timeout);

}  // namespace streamtally::gsttest
