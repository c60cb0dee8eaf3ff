#include "api/key_cache.h"

namespace quire::api {

std::optional<CachedKey> KeyCache::Get(const std::string& key, int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  if (it->second.expires_ms <= now_ms) {
    entries_.erase(it);
    return std::nullopt;
  }
  return it->second;
}

void KeyCache::Put(const std::string& key, CachedKey entry, int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  if (entries_.size() >= max_entries_) entries_.clear();  // bounded; refilled on demand
  entry.expires_ms = now_ms + ttl_ms_;
  entries_[key] = std::move(entry);
}

void KeyCache::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  entries_.clear();
}

void KeyCache::Erase(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  entries_.erase(key);
}

}  // namespace quire::api
