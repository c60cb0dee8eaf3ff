#include "presentation/manifest_cache.h"

#include <algorithm>
#include <vector>

namespace quire::presentation {

std::shared_ptr<const ManifestCache::Entry> ManifestCache::Find(const std::string& key,
                                                                const std::string& inputs) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = slots_.find(key);
  if (it == slots_.end()) return nullptr;
  if (std::chrono::steady_clock::now() - it->second.stored >= ttl_ || it->second.inputs != inputs) {
    return nullptr;
  }
  return it->second.entry;
}

std::shared_ptr<const ManifestCache::Entry> ManifestCache::FindCurrent(
    const std::string& key, std::chrono::milliseconds fresh) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = slots_.find(key);
  if (it == slots_.end() || it->second.tag.empty() ||
      std::chrono::steady_clock::now() - it->second.stored >= std::min(fresh, ttl_)) {
    return nullptr;
  }
  return it->second.entry;
}

void ManifestCache::EraseLocked(std::map<std::string, Slot>::iterator it) {
  bytes_ -= it->second.bytes;
  if (!it->second.tag.empty()) {
    auto [from, to] = tagged_.equal_range(it->second.tag);
    for (auto t = from; t != to; ++t)
      if (t->second == it->first) {
        tagged_.erase(t);
        break;
      }
  }
  slots_.erase(it);
}

std::shared_ptr<const ManifestCache::Entry> ManifestCache::Put(const std::string& key,
                                                               std::string inputs, Entry entry,
                                                               const std::string& tag) {
  auto shared = std::make_shared<const Entry>(std::move(entry));
  const size_t bytes = key.size() + inputs.size() + shared->body.size() + shared->etag.size();
  if (bytes > max_bytes_) return shared;
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = slots_.find(key); it != slots_.end()) EraseLocked(it);
  if (bytes_ + bytes > max_bytes_) {
    slots_.clear();
    tagged_.clear();
    bytes_ = 0;
  }
  slots_[key] = Slot{std::move(inputs), shared, std::chrono::steady_clock::now(), bytes, tag};
  if (!tag.empty()) tagged_.emplace(tag, key);
  bytes_ += bytes;
  return shared;
}

void ManifestCache::Invalidate(const std::string& tag) {
  std::lock_guard<std::mutex> lock(mu_);
  auto [from, to] = tagged_.equal_range(tag);
  std::vector<std::string> keys;
  for (auto t = from; t != to; ++t) keys.push_back(t->second);
  for (const std::string& key : keys)
    if (auto it = slots_.find(key); it != slots_.end()) EraseLocked(it);
}

void ManifestCache::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  slots_.clear();
  tagged_.clear();
  bytes_ = 0;
}

}  // namespace quire::presentation
