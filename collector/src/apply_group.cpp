#include "apply_group.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <optional>

#include "attribution.hpp"
#include "streamtally/clock.hpp"
#include "update_chain.hpp"

namespace streamtally::collector {
namespace {

int64_t point_time(const SessionRecord& r) { return r.ended_at ? *r.ended_at : r.updated_at; }

// A rollup dimension's value for a record.
using DimensionGetter = std::string_view (*)(const IngestRecord&);
DimensionGetter getter_for(std::string_view dimension) {
  if (dimension == "stream") return [](const IngestRecord& r) -> std::string_view { return r.record.stream; };
  if (dimension == "server") return [](const IngestRecord& r) -> std::string_view { return r.record.server_id; };
  if (dimension == "host") return [](const IngestRecord& r) -> std::string_view { return r.record.host; };
  if (dimension == "type") return [](const IngestRecord& r) { return to_string(r.record.type); };
  if (dimension == "protocol") return [](const IngestRecord& r) { return to_string(r.record.protocol); };
  if (dimension == "country") return [](const IngestRecord& r) -> std::string_view { return r.country; };
  if (dimension == "device_type") return [](const IngestRecord& r) -> std::string_view { return r.device_type; };
  if (dimension == "os") return [](const IngestRecord& r) -> std::string_view { return r.os; };
  return [](const IngestRecord& r) -> std::string_view { return r.browser; };
}

// Each family's getters in the order of its dimensions: resolved once, not per record.
using FamilyGetters = std::array<std::array<DimensionGetter, 5>, kFamilyCount>;
const FamilyGetters& family_getters() {
  static const FamilyGetters getters = [] {
    FamilyGetters g{};
    for (std::size_t f = 0; f < kFamilyCount; ++f)
      for (std::size_t i = 0; i < kRollupFamilies[f].dimensions.size(); ++i)
        g[f][i] = getter_for(kRollupFamilies[f].dimensions[i]);
    return g;
  }();
  return getters;
}

// The nullable columns end_reason and tags: NULL when the record has none. Text is bound
// without a copy: the records outlive the statement's step (write() runs them).
void bind_end_reason(Statement& s, int i, const SessionRecord& r) {
  if (r.end_reason == EndReason::None)
    s.bind_null(i);
  else
    s.bind_static(i, to_string(r.end_reason));
}
void bind_tags(Statement& s, int i, const SessionRecord& r) {
  if (r.tags.empty())
    s.bind_null(i);
  else
    s.bind(i, nlohmann::json(r.tags).dump());
}

// Binds the 29 session columns of a record (the order of kColumns in sqlite_writer.cpp).
void bind_session(Statement& s, const IngestRecord& in, const FamilyIds& ids) {
  const SessionRecord& r = in.record;
  const int64_t last_t = point_time(r);
  s.bind_static(1, r.server_id).bind_static(2, r.session_id).bind(3, r.seq).bind_static(4, to_string(r.state));
  s.bind_static(5, to_string(r.type)).bind_static(6, to_string(r.protocol)).bind_static(7, r.stream);
  s.bind_static(8, r.host).bind_static(9, r.client_ip).bind_static(10, r.user_agent).bind_static(11, r.referer);
  s.bind_static(12, in.referer_domain).bind_static(13, r.user_id).bind_static(14, r.token).bind(15, r.started_at);
  s.bind(16, r.updated_at).bind(17, r.ended_at).bind(18, last_t).bind(19, std::max(r.started_at, last_t));
  s.bind(20, static_cast<int64_t>(r.bytes_in)).bind(21, static_cast<int64_t>(r.bytes_out));
  bind_end_reason(s, 22, r), bind_tags(s, 23, r);
  s.bind_static(24, in.country).bind_static(25, in.device_type).bind_static(26, in.os).bind_static(27, in.browser);
  s.bind(28, ids[0]).bind(29, ids[1]);
}

// Binds update_session_fast: the columns the next update of a session may change.
void bind_session_fast(Statement& u, const IngestRecord& in, int64_t id) {
  const SessionRecord& r = in.record;
  const int64_t t = point_time(r);
  u.bind(1, r.seq).bind_static(2, to_string(r.state)).bind_static(3, r.client_ip).bind_static(4, r.user_agent);
  u.bind_static(5, r.referer).bind_static(6, in.referer_domain).bind_static(7, r.user_id).bind_static(8, r.token);
  u.bind(9, r.updated_at).bind(10, r.ended_at).bind(11, t).bind(12, std::max(r.started_at, t));
  u.bind(13, static_cast<int64_t>(r.bytes_in)).bind(14, static_cast<int64_t>(r.bytes_out));
  bind_end_reason(u, 15, r), bind_tags(u, 16, r);
  u.bind(17, id);
}

// The cache entry of a session whose row holds this record.
StoredSession stored_from(const IngestRecord& in, int64_t id, const FamilyIds& ids) {
  const SessionRecord& r = in.record;
  StoredSession s;
  s.id = id;
  s.seq = r.seq;
  s.started_at = r.started_at;
  s.last_t = point_time(r);
  s.bytes_in = static_cast<int64_t>(r.bytes_in);
  s.bytes_out = static_cast<int64_t>(r.bytes_out);
  s.dims = ids;
  s.play = r.type == SessionType::Play;
  s.closed = r.state == SessionState::Closed;
  return s;
}

// Whether two records have the same value in every rollup dimension.
bool same_dimensions(const IngestRecord& a, const IngestRecord& b) {
  for (const auto& getters : family_getters())
    for (DimensionGetter get : getters)
      if (get(a) != get(b)) return false;
  return true;
}

}  // namespace

Result<FamilyIds> ApplyGroup::dims_of(const IngestRecord& r) {
  FamilyIds ids{};
  for (std::size_t f = 0; f < kFamilyCount; ++f) {
    const auto& getters = family_getters()[f];
    dims_key_.clear();
    for (DimensionGetter get : getters) append_dims_key_part(dims_key_, get(r));
    if (auto it = w_.dims_ids[f].find(dims_key_); it != w_.dims_ids[f].end()) {
      ids[f] = it->second;
      continue;
    }
    Statement& s = w_.insert_dims[f];
    for (std::size_t i = 0; i < getters.size(); ++i) s.bind(static_cast<int>(i + 1), getters[i](r));
    Status st = s.run_and_reset();
    if (!st) return Error{st.error()};
    ids[f] = sqlite3_last_insert_rowid(w_.db.get());
    w_.dims_ids[f].emplace(dims_key_, ids[f]);
    new_dims_keys_.emplace_back(f, dims_key_);
  }
  return ids;
}

// The cache entry of the record's session: cached, or read from its row (then cached);
// nullptr when the store has no such session.
Result<ApplyGroup::Entry> ApplyGroup::find(const IngestRecord& in) {
  const SessionRecord& r = in.record;
  session_key(r.server_id, r.session_id, session_key_);
  if (auto it = w_.sessions.find(session_key_); it != w_.sessions.end()) return &*it;
  std::optional<StoredSession> found;
  Status st = w_.find_session.bind(1, r.server_id).bind(2, r.session_id).each_row([&](const Statement& q) {
    StoredSession s;
    s.id = q.int64(0), s.seq = q.int64(1), s.started_at = q.int64(2), s.last_t = q.int64(3);
    s.play = q.text_equals(4, "play");
    s.dims = {q.int64(5), q.int64(6)};
    s.bytes_in = q.int64(7), s.bytes_out = q.int64(8);
    s.closed = q.text_equals(9, "closed");
    found = s;
  });
  if (!st) return Error{st.error()};
  if (!found) return nullptr;
  return &*w_.sessions.emplace(session_key_, std::move(*found)).first;
}

// A new session, just looked up by find(): it gets its id now and its row in write(),
// with its latest record (written once in the apply that makes it, not inserted and
// then rewritten).
ApplyGroup::Entry ApplyGroup::insert(const IngestRecord& in, const FamilyIds& ids) {
  StoredSession s = stored_from(in, w_.next_session_id++, ids);
  s.pending.record = &in, s.pending.insert = true;
  s.recent = RecentPoints(in.record.started_at, {});
  return &*w_.sessions.emplace(session_key_, std::move(s)).first;
}

Result<std::vector<UpdatePoint>> ApplyGroup::chain_of(const StoredSession& s) {
  std::vector<UpdatePoint> chain;
  if (Status st = read_chain(w_.read_chain, s.id, chain); !st) return Error{st.error()};
  chain.insert(chain.end(), s.pending.points.begin(), s.pending.points.end());
  std::sort(chain.begin(), chain.end(), seq_before);
  return chain;
}

Result<bool> ApplyGroup::add(const IngestRecord& in) {
  const SessionRecord& r = in.record;
  const UpdatePoint point{r.seq, point_time(r), static_cast<int64_t>(r.bytes_in), static_cast<int64_t>(r.bytes_out)};
  if (const int64_t length = std::max(r.started_at, point.t) - r.started_at; length > max_session_ms_)
    max_session_ms_ = length, max_session_ms_grew_ = true;

  auto found = find(in);
  if (!found) return Error{found.error()};
  // Most records repeat the dimensions of their session's previous one in this apply:
  // its ids then, without building and looking up the dimension keys.
  const PendingRow* previous = *found ? &(*found)->second.pending : nullptr;
  auto ids = previous && previous->record && same_dimensions(*previous->record, in) ? (*found)->second.dims
                                                                                     : dims_of(in);
  if (!ids) return Error{ids.error()};
  const bool inserted = *found == nullptr;
  const Entry entry = inserted ? insert(in, *ids) : *found;
  StoredSession& s = entry->second;
  touched_.push_back(entry);
  const bool play = r.type == SessionType::Play;
  if (inserted) {  // the row holds this record already
    s.pending.points.push_back(point);
    attribute_session({r.started_at, play, {point}}, +1, deltas_.sink_for(*ids));
    return true;
  }

  const bool newest = r.seq > s.seq;
  const UpdatePoint latest{s.seq, s.last_t, s.bytes_in, s.bytes_out};
  if (newest && *ids == s.dims && r.started_at == s.started_at && play == s.play) {
    // The common case: the next update of a session. Attribute the new interval
    // and move the session's end; nothing else changes.
    s.pending.points.push_back(point);  // above the chain's highest seq: new
    attribute_interval(s.last_t, point.t, point.bytes_in - s.bytes_in, point.bytes_out - s.bytes_out, +1,
                       deltas_.sink_for(*ids));
    Counters end;
    end.ends = -1;
    deltas_.add(*ids, floor_to(std::max(s.started_at, s.last_t), kMinuteMs), end);
    end.ends = 1;
    deltas_.add(*ids, floor_to(std::max(r.started_at, point.t), kMinuteMs), end);
    RecentPoints recent = s.recent;
    recent.add(latest);
    replace_row(s, in, *ids, recent);
    return true;
  }
  if (const auto below = newest || point.seq == s.seq ? std::nullopt : s.recent.just_below(point.seq)) {
    // A late update among the points known before the latest (batches acknowledged out
    // of order): no seq of the chain lies between the two it falls between, so it is
    // new, and only the interval between them changes: it is cut in two at the point.
    const UpdatePoint& from = s.recent[*below];
    const UpdatePoint& to = *below + 1 < s.recent.size() ? s.recent[*below + 1] : latest;
    const MinuteSink sink = deltas_.sink_for(s.dims);
    attribute_interval(from.t, to.t, to.bytes_in - from.bytes_in, to.bytes_out - from.bytes_out, -1, sink);
    attribute_interval(from.t, point.t, point.bytes_in - from.bytes_in, point.bytes_out - from.bytes_out, +1, sink);
    attribute_interval(point.t, to.t, to.bytes_in - point.bytes_in, to.bytes_out - point.bytes_out, +1, sink);
    s.pending.points.push_back(point);
    s.recent.add(point);
    return true;
  }

  // Otherwise the chain decides: a late update further back, a re-send, or a changed
  // session (start, type or dimensions), whose whole contribution is replaced, computed
  // from the chain before and after.
  auto read = chain_of(s);
  if (!read) return Error{read.error()};
  std::vector<UpdatePoint> chain = std::move(*read);
  if (!newest && chain_holds(chain, point.seq)) return false;
  s.pending.points.push_back(point);  // not in the chain: new
  SessionShape before{s.started_at, s.play, chain};
  chain.insert(std::upper_bound(chain.begin(), chain.end(), point, seq_before), point);
  SessionShape after{newest ? r.started_at : s.started_at, newest ? play : s.play, std::move(chain)};
  attribute_session(before, -1, deltas_.sink_for(s.dims));
  attribute_session(after, +1, deltas_.sink_for(newest ? *ids : s.dims));
  RecentPoints recent(after.started_at, std::span(after.chain).first(after.chain.size() - 1));
  if (newest) {
    s.pending.full = true;
    replace_row(s, in, *ids, recent);
  } else {
    s.recent = recent;
  }
  return true;
}

void ApplyGroup::replace_row(StoredSession& s, const IngestRecord& in, const FamilyIds& ids,
                             const RecentPoints& recent) {
  PendingRow pending = std::move(s.pending);
  pending.record = &in;
  s = stored_from(in, s.id, ids);
  s.pending = std::move(pending);
  s.recent = recent;
}

Status ApplyGroup::write() {
  // Each touched session once, in id order (B-tree friendly): its new chain points as
  // one row (keyed by the lowest, which the chain does not hold), and its row.
  std::sort(touched_.begin(), touched_.end(), [](Entry a, Entry b) { return a->second.id < b->second.id; });
  touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
  for (Entry e : touched_) {
    StoredSession& s = e->second;
    PendingRow& p = s.pending;
    if (!p.points.empty()) {
      std::sort(p.points.begin(), p.points.end(), seq_before);
      if (Status st = write_chain_row(w_.insert_update, s.id, p.points, chain_row_); !st) return st;
    }
    if (p.record) {
      Statement& u = p.insert ? w_.insert_session : p.full ? w_.update_session : w_.update_session_fast;
      if (p.insert || p.full)
        bind_session(u, *p.record, s.dims), u.bind(30, s.id);
      else
        bind_session_fast(u, *p.record, s.id);
      if (Status st = u.run_and_reset(); !st) return st;
    }
    p = {};
  }

  const auto levels = deltas_.levels();
  for (std::size_t level = 0; level < kRollupLevelCount; ++level) {
    for (const auto& [cell, c] : levels[level]) {
      if (c.zero()) continue;
      Statement& s = w_.upsert_rollup[cell.family][level];
      s.bind(1, cell.bucket).bind(2, cell.dims).bind(3, c.starts).bind(4, c.views).bind(5, c.ends).bind(6, c.bytes_in);
      s.bind(7, c.bytes_out).bind(8, c.viewtime_ms);
      Status st = s.run_and_reset();
      if (!st) return st;
    }
  }
  if (max_session_ms_grew_) {
    w_.set_meta.bind(1, std::string_view("max_session_ms")).bind(2, max_session_ms_);
    Status st = w_.set_meta.run_and_reset();
    if (!st) return st;
  }
  return Status::Ok();
}

void ApplyGroup::committed() {
  for (Entry e : touched_)  // each once: write() left them so
    if (e->second.closed) w_.sessions.erase(std::string(e->first));
  touched_.clear();
  if (w_.sessions.size() > kMaxCachedSessions) w_.sessions.clear();
}

void ApplyGroup::abandoned() {
  w_.sessions.clear();
  w_.next_session_id = first_new_session_id_;
  for (const auto& [family, key] : new_dims_keys_) w_.dims_ids[family].erase(key);
  new_dims_keys_.clear();
  touched_.clear();
  w_.reset_all();
}

}  // namespace streamtally::collector
