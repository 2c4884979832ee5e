#include "inbox_admission.hpp"

#include <algorithm>

namespace streamtally::collector {

Result<Admission::Seen> Admission::applied_state(const SessionRecord& r, const std::string& key) {
  Seen seen;
  if (auto it = w_.sessions.find(key); it != w_.sessions.end()) {
    seen.session = it->second.id;
    seen.applied_max_seq = it->second.seq;
    return seen;
  }
  Status st = w_.find_session.bind(1, r.server_id).bind(2, r.session_id).each_row([&](const Statement& q) {
    seen.session = q.int64(0), seen.applied_max_seq = q.int64(1);
  });
  if (!st) return Error{st.error()};
  return seen;
}

Result<bool> Admission::admit(const SessionRecord& r) {
  std::string key = session_key(r.server_id, r.session_id);
  auto it = pending_.find(key);
  const bool inserted = it == pending_.end();
  if (inserted) {
    auto seen = applied_state(r, key);
    if (!seen) return Error{seen.error()};
    it = pending_.emplace(std::move(key), std::move(*seen)).first;
  }
  Seen& seen = it->second;
  bool duplicate = std::find(seen.inbox_seqs.begin(), seen.inbox_seqs.end(), r.seq) != seen.inbox_seqs.end();
  if (!duplicate && r.seq <= seen.applied_max_seq) {  // a re-send or a late update: ask the chain
    Status st = w_.find_point.bind(1, seen.session).bind(2, r.seq).each_row([&](const Statement&) {
      duplicate = true;
    });
    if (!st) {
      if (inserted) pending_.erase(it);
      return Error{st.error()};
    }
  }
  if (duplicate) {
    if (inserted) pending_.erase(it);
    return false;
  }
  seen.inbox_seqs.push_back(r.seq);
  undo_.push_back({&*it, inserted});
  return true;
}

void Admission::undo_to(std::size_t mark) {
  // Newest first: an entry a batch inserted is erased only after its later seqs are popped.
  while (undo_.size() > mark) {
    const Undo u = undo_.back();
    undo_.pop_back();
    u.entry->second.inbox_seqs.pop_back();
    if (u.inserted) {
      const std::string key = u.entry->first;  // not a reference into the node being erased
      pending_.erase(key);
    }
  }
  batch_mark_ = std::min(batch_mark_, mark);
}

}  // namespace streamtally::collector
