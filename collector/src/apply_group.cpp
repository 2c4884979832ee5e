#include "apply_group.hpp"

#include <algorithm>
#include <optional>

#include "attribution.hpp"
#include "update_chain.hpp"

namespace streamtally::collector {
namespace {

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

ApplyGroup::ApplyGroup(ApplyState& state, const ApplyPlan* in_flight, int64_t max_session_ms)
    : state_(state), in_flight_(in_flight) {
  plan_.number = state.next_plan++;
  plan_.max_session_ms = max_session_ms;
}

// The ids of the record's dimension combinations; one seen first gets the next id, and
// the plan writes it.
FamilyIds ApplyGroup::dims_of(const IngestRecord& r) {
  FamilyIds ids{};
  for (std::size_t f = 0; f < kFamilyCount; ++f) {
    const auto& getters = family_getters()[f];
    dims_key_.clear();
    for (DimensionGetter get : getters) append_dims_key_part(dims_key_, get(r));
    auto [it, inserted] = state_.dims_ids[f].try_emplace(dims_key_, 0);
    if (inserted) {
      it->second = state_.next_dims_id[f]++;
      ApplyPlan::NewDims& d = plan_.new_dims.emplace_back();
      d.family = f, d.id = it->second;
      for (std::size_t i = 0; i < getters.size(); ++i) d.values[i] = std::string(getters[i](r));
    }
    ids[f] = it->second;
  }
  return ids;
}

// The cache entry of the record's session: cached, or read from its row (then cached);
// nullptr when the store has no such session.
Result<ApplyGroup::Entry> ApplyGroup::find(const IngestRecord& in) {
  const SessionRecord& r = in.record;
  session_key(r.server_id, r.session_id, session_key_);
  if (auto it = state_.sessions.find(session_key_); it != state_.sessions.end()) return &*it;
  // Rows are planned in order, so no plan before this one held the session (the first
  // of its records admitted) and no row of it is in the store.
  if (in.new_session) return nullptr;
  std::optional<StoredSession> found;
  Status st = state_.find_session.bind(1, r.server_id).bind(2, r.session_id).each_row([&](const Statement& q) {
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
  return &*state_.sessions.emplace(session_key_, std::move(*found)).first;
}

// A new session, just looked up by find(): it gets its id now and its row in the plan,
// with its latest record (written once in the apply that makes it, not inserted and
// then rewritten).
ApplyGroup::Entry ApplyGroup::insert(const IngestRecord& in, const FamilyIds& ids) {
  StoredSession s = stored_from(in, state_.next_session_id++, ids);
  s.pending.record = &in, s.pending.insert = true;
  s.recent = RecentPoints(in.record.started_at, {});
  return &*state_.sessions.emplace(session_key_, std::move(s)).first;
}

Result<std::vector<UpdatePoint>> ApplyGroup::chain_of(const StoredSession& s) {
  std::vector<UpdatePoint> chain;
  if (Status st = read_chain(state_.read_chain, s.id, chain); !st) return Error{st.error()};
  if (const std::vector<UpdatePoint>* writing = in_flight_ ? in_flight_->points_of(s.id) : nullptr)
    chain.insert(chain.end(), writing->begin(), writing->end());
  chain.insert(chain.end(), s.pending.points.begin(), s.pending.points.end());
  std::sort(chain.begin(), chain.end(), seq_before);
  // The plan being written may have committed since the read began, or not: its points
  // are then read and merged both.
  auto same_seq = [](const UpdatePoint& a, const UpdatePoint& b) { return a.seq == b.seq; };
  chain.erase(std::unique(chain.begin(), chain.end(), same_seq), chain.end());
  return chain;
}

Result<bool> ApplyGroup::add(const IngestRecord& in) {
  const SessionRecord& r = in.record;
  const UpdatePoint point{r.seq, point_time(r), static_cast<int64_t>(r.bytes_in), static_cast<int64_t>(r.bytes_out)};
  plan_.max_session_ms = std::max(plan_.max_session_ms, std::max(r.started_at, point.t) - r.started_at);

  auto found = find(in);
  if (!found) return Error{found.error()};
  // Most records repeat the dimensions of their session's previous one in this apply:
  // its ids then, without building and looking up the dimension keys.
  const PendingRow* previous = *found ? &(*found)->second.pending : nullptr;
  const FamilyIds ids =
      previous && previous->record && same_dimensions(*previous->record, in) ? (*found)->second.dims : dims_of(in);
  const bool inserted = *found == nullptr;
  const Entry entry = inserted ? insert(in, ids) : *found;
  StoredSession& s = entry->second;
  s.last_plan = plan_.number;
  touched_.push_back(entry);
  const bool play = r.type == SessionType::Play;
  if (inserted) {  // the row holds this record already
    s.pending.points.push_back(point);
    attribute_session({r.started_at, play, {point}}, +1, plan_.deltas.sink_for(ids));
    return true;
  }

  const bool newest = r.seq > s.seq;
  const UpdatePoint latest{s.seq, s.last_t, s.bytes_in, s.bytes_out};
  if (newest && ids == s.dims && r.started_at == s.started_at && play == s.play) {
    // The common case: the next update of a session. Attribute the new interval
    // and move the session's end; nothing else changes.
    s.pending.points.push_back(point);  // above the chain's highest seq: new
    attribute_interval(s.last_t, point.t, point.bytes_in - s.bytes_in, point.bytes_out - s.bytes_out, +1,
                       plan_.deltas.sink_for(ids));
    Counters end;
    end.ends = -1;
    plan_.deltas.add(ids, floor_to(std::max(s.started_at, s.last_t), kMinuteMs), end);
    end.ends = 1;
    plan_.deltas.add(ids, floor_to(std::max(r.started_at, point.t), kMinuteMs), end);
    RecentPoints recent = s.recent;
    recent.add(latest);
    replace_row(s, in, ids, recent);
    return true;
  }
  if (const auto below = newest || point.seq == s.seq ? std::nullopt : s.recent.just_below(point.seq)) {
    // A late update among the points known before the latest (batches acknowledged out
    // of order): no seq of the chain lies between the two it falls between, so it is
    // new, and only the interval between them changes: it is cut in two at the point.
    const UpdatePoint& from = s.recent[*below];
    const UpdatePoint& to = *below + 1 < s.recent.size() ? s.recent[*below + 1] : latest;
    const MinuteSink sink = plan_.deltas.sink_for(s.dims);
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
  attribute_session(before, -1, plan_.deltas.sink_for(s.dims));
  attribute_session(after, +1, plan_.deltas.sink_for(newest ? ids : s.dims));
  RecentPoints recent(after.started_at, std::span(after.chain).first(after.chain.size() - 1));
  if (newest) {
    s.pending.full = true;
    replace_row(s, in, ids, recent);
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
  s.last_plan = plan_.number;
}

ApplyPlan ApplyGroup::seal() {
  // Each touched session once, in id order (B-tree friendly writes).
  std::sort(touched_.begin(), touched_.end(), [](Entry a, Entry b) { return a->second.id < b->second.id; });
  touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
  plan_.sessions.reserve(touched_.size());
  for (Entry e : touched_) {
    StoredSession& s = e->second;
    ApplyPlan::SessionWrite& w = plan_.sessions.emplace_back();
    w.id = s.id, w.dims = s.dims, w.row = std::move(s.pending);
    s.pending = {};
    std::sort(w.row.points.begin(), w.row.points.end(), seq_before);
    if (s.closed) plan_.closed.push_back(e);
  }
  touched_.clear();
  return std::move(plan_);
}

}  // namespace streamtally::collector
