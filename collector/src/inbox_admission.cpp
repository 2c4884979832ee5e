#include "inbox_admission.hpp"

#include <algorithm>
#include <cstdio>

#include <pthread.h>

#include "session_cache.hpp"
#include "update_chain.hpp"

namespace streamtally::collector {

Result<std::unique_ptr<Admission>> Admission::open(const std::string& store_path) {
  auto db = open_database(store_path, true);
  if (!db) return Error{db.error()};
  std::unique_ptr<Admission> a(new Admission());
  a->db_ = std::move(*db);
  a->find_session_ = Statement(a->db_.get(), "SELECT id, seq FROM sessions WHERE server_id = ?1 AND session_id = ?2");
  a->read_chain_ = Statement(a->db_.get(), kReadChainSql);
  for (const Statement* s : {&a->find_session_, &a->read_chain_})
    if (!s->ok()) return Error{store_path + ": " + s->error()};
  return a;
}

void Admission::start_loading_session_keys(const std::string& store_path) {
  int64_t sessions = 0;
  (void)Statement(db_.get(), "SELECT max(id) FROM sessions").each_row([&](const Statement& q) {
    sessions = q.int64(0);  // ids are never reused: at least the count; sizes the filter only
  });
  filter_ = std::make_unique<SessionKeyFilter>(static_cast<uint64_t>(sessions));
  loader_ = std::thread([this, store_path] {
    pthread_setname_np(pthread_self(), "st-session-keys");  // in top -H, perf, gdb
    auto db = open_database(store_path, true);
    // Read, not mapped: a one-off scan of the whole key index should not stay in the
    // process's resident memory.
    Status st = db ? exec_sql_status(db->get(), "PRAGMA mmap_size=0") : Status(Error{db.error()});
    if (st) {
      Statement keys(db->get(), "SELECT server_id, session_id FROM sessions");
      while (!stop_loading_.load(std::memory_order_relaxed) && keys.step())
        filter_->add(session_key(keys.text_view(0), keys.text_view(1)));
      st = keys.failed() ? Status(Error{keys.error()}) : Status::Ok();
    }
    if (!st) {  // admission goes on reading the store for every session it has not seen
      std::fprintf(stderr, "streamtally-collector: %s: loading the session keys: %s\n", store_path.c_str(),
                   st.error().c_str());
      return;
    }
    if (!stop_loading_.load(std::memory_order_relaxed)) keys_loaded_.store(true, std::memory_order_release);
  });
}

Admission::~Admission() {
  stop_loading_ = true;
  if (loader_.joinable()) loader_.join();
}

Status Admission::begin_reads() {
  if (reading_) return Status::Ok();
  // Deferred: the snapshot is taken at the first read, after applied_through() was set
  // for this group, so it holds every apply that made an admitted seq forgettable.
  if (Status s = exec_sql_status(db_.get(), "BEGIN"); !s) return s;
  reading_ = true;
  return Status::Ok();
}

void Admission::end_reads() {
  if (reading_) (void)exec_sql_status(db_.get(), "COMMIT");  // read-only: nothing to fail
  reading_ = false;
}

Status Admission::look_up_session(const SessionRecord& r, Seen& seen) {
  if (Status s = begin_reads(); !s) return s;
  // The group's snapshot holds every apply through applied_through_: all that trim()
  // has forgotten so far.
  return find_session_.bind(1, r.server_id).bind(2, r.session_id).each_row([&](const Statement& q) {
    seen.session = q.int64(0);
    seen.look_up_through = std::max(seen.look_up_through, q.int64(1));
  });
}

Status Admission::look_up_point(const SessionRecord& r, Seen& seen, bool& found) {
  found = false;
  // Forgotten seqs were applied, which made the session's row, after the read that
  // did not find it.
  if (seen.session == 0)
    if (Status s = look_up_session(r, seen); !s) return s;
  if (seen.session == 0) return Status::Ok();  // nothing of it applied: not in a chain
  if (Status s = begin_reads(); !s) return s;
  if (Status s = read_chain(read_chain_, seen.session, chain_); !s) return s;
  found = chain_holds(chain_, r.seq);
  return Status::Ok();
}

std::vector<Admission::Admitted>::iterator Admission::position(std::vector<Admitted>& admitted, int64_t seq) {
  return std::lower_bound(admitted.begin(), admitted.end(), seq,
                          [](const Admitted& a, int64_t s) { return a.seq < s; });
}

bool Admission::all_applied(const Seen& seen) const {
  return std::all_of(seen.admitted.begin(), seen.admitted.end(),
                     [&](const Admitted& a) { return a.row <= applied_through_; });
}

void Admission::trim(Seen& seen) const {
  if (seen.admitted.size() < 2 * kKeepAdmitted) return;
  const auto older = seen.admitted.end() - kKeepAdmitted;
  const auto kept = std::remove_if(seen.admitted.begin(), older, [&](const Admitted& a) {
    if (a.row > applied_through_) return false;
    seen.look_up_through = std::max(seen.look_up_through, a.seq);
    return true;
  });
  seen.admitted.erase(kept, older);
}

Result<Admission::Verdict> Admission::admit(const SessionRecord& r) {
  session_key(r.server_id, r.session_id, key_);
  auto it = seen_.find(key_);
  const bool inserted = it == seen_.end();
  // The filter holds every session admitted and, once loaded, every session the store
  // holds: a key it does not hold was never admitted and is not in the store.
  bool new_session = false;
  if (inserted) {
    Seen fresh;
    new_session = session_keys_loaded() && !filter_->may_hold(key_);
    if (!new_session)
      if (Status st = look_up_session(r, fresh); !st) return Error{st.error()};
    // Before the store can hold it; a batch undone leaves a false positive.
    if (filter_) filter_->add(key_);
    it = seen_.emplace(key_, std::move(fresh)).first;
  }
  Seen& seen = it->second;
  trim(seen);  // first: what it forgets is no longer where position() looks
  const auto at = position(seen.admitted, r.seq);
  bool duplicate = at != seen.admitted.end() && at->seq == r.seq;
  if (!duplicate && r.seq <= seen.look_up_through) {  // a re-send of an applied seq, or late
    if (Status st = look_up_point(r, seen, duplicate); !st) {
      if (inserted) seen_.erase(it);
      return Error{st.error()};
    }
  }
  if (duplicate) {
    if (inserted) seen_.erase(it);
    return Verdict{};
  }
  seen.admitted.insert(at, {r.seq, kNoRow});
  undo_.push_back({&*it, inserted, r.seq});
  return Verdict{true, new_session};
}

void Admission::admitted_into(int64_t row) {
  for (std::size_t i = batch_mark_; i < undo_.size(); ++i)
    position(undo_[i].entry->second.admitted, undo_[i].seq)->row = row;
}

void Admission::begin_group() {
  group_mark_ = batch_mark_ = undo_.size();
  // Bounded memory: past the bound, sessions whose admitted seqs are all applied are
  // forgotten (a later record of theirs costs one indexed read again).
  if (seen_.size() > kMaxCachedSessions && undo_.empty())
    for (auto it = seen_.begin(); it != seen_.end();) {
      if (all_applied(it->second))
        seen_.erase(it++);  // erasing leaves the other iterators valid
      else
        ++it;
    }
}

void Admission::undo_to(std::size_t mark) {
  // Newest first: an entry a batch inserted is erased only after its later seqs are popped.
  while (undo_.size() > mark) {
    const Undo u = undo_.back();
    undo_.pop_back();
    std::vector<Admitted>& admitted = u.entry->second.admitted;
    admitted.erase(position(admitted, u.seq));
    if (u.inserted) {
      const std::string key = u.entry->first;  // not a reference into the node being erased
      seen_.erase(key);
    }
  }
  batch_mark_ = std::min(batch_mark_, mark);
}

}  // namespace streamtally::collector
