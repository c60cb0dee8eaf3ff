#include "api/batch_cache.h"

namespace quire::api {

std::optional<Batch> BatchCache::Get(int64_t customer, int64_t id, int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  auto c = entries_.find(customer);
  if (c == entries_.end()) return std::nullopt;
  auto it = c->second.find(id);
  if (it == c->second.end()) return std::nullopt;
  if (it->second.expires_ms <= now_ms) {
    c->second.erase(it);
    --size_;
    return std::nullopt;
  }
  return it->second.batch;
}

uint64_t BatchCache::Generation(int64_t customer) {
  std::lock_guard<std::mutex> lock(mu_);
  return generations_[customer] + clear_generation_;
}

void BatchCache::Put(int64_t customer, const Batch& batch, uint64_t generation, int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  if (generations_[customer] + clear_generation_ != generation) return;
  if (size_ >= max_entries_) {
    // Full: a cache of a second refills at once, so start again rather than keep an order.
    entries_.clear();
    size_ = 0;
  }
  auto [it, added] = entries_[customer].insert_or_assign(batch.id, Entry{batch, now_ms + ttl_ms_});
  if (added) ++size_;
}

void BatchCache::ForgetCustomer(int64_t customer) {
  std::lock_guard<std::mutex> lock(mu_);
  ++generations_[customer];
  if (auto c = entries_.find(customer); c != entries_.end()) {
    size_ -= c->second.size();
    entries_.erase(c);
  }
}

void BatchCache::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  ++clear_generation_;
  entries_.clear();
  size_ = 0;
}

std::string BatchBodies::Body(const Batch& batch, const std::function<std::string()>& make) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto c = entries_.find(batch.customer);
    if (c != entries_.end()) {
      auto it = c->second.find(batch.id);
      if (it != c->second.end() && it->second.batch == batch) return it->second.body;
    }
  }
  std::string body = make();
  std::lock_guard<std::mutex> lock(mu_);
  if (size_ >= max_entries_) {
    entries_.clear();
    size_ = 0;
  }
  auto [it, added] = entries_[batch.customer].insert_or_assign(batch.id, Entry{batch, body});
  if (added) ++size_;
  return body;
}

}  // namespace quire::api
