#include "streamtally/session_tracker.hpp"

#include <algorithm>

#include "streamtally/clock.hpp"
#include "streamtally/uuid.hpp"

namespace streamtally {

void Session::set_totals(uint64_t in, uint64_t out) noexcept {
  // Monotonic max: a late or smaller reading never takes bytes back.
  uint64_t cur = bytes_in_.load(std::memory_order_relaxed);
  while (in > cur && !bytes_in_.compare_exchange_weak(cur, in, std::memory_order_relaxed)) {
  }
  cur = bytes_out_.load(std::memory_order_relaxed);
  while (out > cur && !bytes_out_.compare_exchange_weak(cur, out, std::memory_order_relaxed)) {
  }
}

SessionTracker::SessionTracker(Options options, Sink sink) : options_(std::move(options)), sink_(std::move(sink)) {}

std::shared_ptr<Session> SessionTracker::open(SessionInfo info) {
  auto session = std::make_shared<Session>();
  SessionRecord& r = session->record_;
  r.server_id = options_.server_id;
  r.host = options_.host;
  r.session_id = make_uuid_v4();
  r.seq = 0;
  r.state = SessionState::Open;
  r.type = info.type;
  r.protocol = info.protocol;
  r.stream = std::move(info.stream);
  r.client_ip = std::move(info.client_ip);
  r.user_agent = std::move(info.user_agent);
  r.referer = std::move(info.referer);
  r.user_id = std::move(info.user_id);
  r.token = std::move(info.token);
  r.tags = std::move(info.tags);
  const int64_t now = now_ms();
  r.started_at = info.started_at > 0 ? info.started_at : now;
  r.updated_at = std::max(now, r.started_at);
  sanitize(r);  // everything here came from a client: valid UTF-8, SPEC limits

  std::lock_guard lock(mutex_);
  session->next_interim_at_ = r.updated_at + options_.interim.count();
  earliest_interim_at_ = std::min(earliest_interim_at_, session->next_interim_at_);
  open_.emplace(r.session_id, session);
  SessionRecord first = r;
  sink_(std::move(first));
  return session;
}

SessionRecord SessionTracker::snapshot(Session& s, int64_t at_ms) {
  SessionRecord r = s.record_;
  r.seq = ++s.record_.seq;
  r.updated_at = std::max(at_ms, s.record_.updated_at);
  s.record_.updated_at = r.updated_at;
  r.bytes_in = s.bytes_in();
  r.bytes_out = s.bytes_out();
  return r;
}

bool SessionTracker::close(const std::shared_ptr<Session>& session, EndReason reason, int64_t at_ms) {
  if (!session) return false;
  std::lock_guard lock(mutex_);
  if (session->closed_.exchange(true, std::memory_order_acq_rel)) return false;  // already closed
  SessionRecord r = snapshot(*session, at_ms > 0 ? at_ms : now_ms());
  r.state = SessionState::Closed;
  r.ended_at = r.updated_at;
  r.end_reason = reason == EndReason::None ? EndReason::Server : reason;
  open_.erase(r.session_id);
  sink_(std::move(r));
  return true;
}

int64_t SessionTracker::emit_due_interims(int64_t now) {
  // Updates due within a tenth of the interval go now too, in the same batch: the
  // sessions' schedules fall into step, and the writer appends (and wakes) once for
  // many sessions rather than once for each.
  const int64_t horizon = now + options_.interim.count() / 10;
  std::lock_guard lock(mutex_);
  if (earliest_interim_at_ > horizon) return earliest_interim_at_;  // none due: no scan
  int64_t next = INT64_MAX;
  for (auto& [id, session] : open_) {
    if (session->next_interim_at_ <= horizon) {
      session->next_interim_at_ = now + options_.interim.count();
      sink_(snapshot(*session, now));
    }
    next = std::min(next, session->next_interim_at_);
  }
  earliest_interim_at_ = next;
  return next;
}

void SessionTracker::close_all(EndReason reason) {
  std::vector<std::shared_ptr<Session>> sessions;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, s] : open_) sessions.push_back(s);
  }
  for (auto& s : sessions) close(s, reason);
}

std::size_t SessionTracker::open_count() const {
  std::lock_guard lock(mutex_);
  return open_.size();
}

}  // namespace streamtally
