// A bounded, thread-safe LRU map from user-agent to its parsed result. Parsing one user-agent
// runs up to ~1,400 regexes; a stream's viewers share few distinct user-agents, so almost
// every lookup after the first is a hit.
#pragma once

#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace streamtally::collector {

template <class Value>
class UserAgentCache {
 public:
  explicit UserAgentCache(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  std::optional<Value> find(std::string_view key) {
    std::lock_guard lock(mutex_);
    const auto it = index_.find(key);
    if (it == index_.end()) return std::nullopt;
    order_.splice(order_.begin(), order_, it->second);  // most recently used first
    return it->second->second;
  }

  void insert(std::string_view key, Value value) {
    std::lock_guard lock(mutex_);
    if (const auto it = index_.find(key); it != index_.end()) {
      it->second->second = std::move(value);
      order_.splice(order_.begin(), order_, it->second);
      return;
    }
    order_.emplace_front(std::string(key), std::move(value));
    index_.emplace(order_.front().first, order_.begin());  // the view points into the list node
    if (order_.size() > capacity_) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
  }

  std::size_t size() {
    std::lock_guard lock(mutex_);
    return order_.size();
  }

 private:
  using Entry = std::pair<std::string, Value>;
  const std::size_t capacity_;
  std::mutex mutex_;
  std::list<Entry> order_;
  std::unordered_map<std::string_view, typename std::list<Entry>::iterator> index_;
};

}  // namespace streamtally::collector
