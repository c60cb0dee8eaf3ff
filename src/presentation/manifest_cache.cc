#include "presentation/manifest_cache.h"

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

std::shared_ptr<const ManifestCache::Entry> ManifestCache::Put(const std::string& key,
                                                               std::string inputs, Entry entry) {
  auto shared = std::make_shared<const Entry>(std::move(entry));
  const size_t bytes = key.size() + inputs.size() + shared->body.size() + shared->etag.size();
  if (bytes > max_bytes_) return shared;
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = slots_.find(key); it != slots_.end()) {
    bytes_ -= it->second.bytes;
    slots_.erase(it);
  }
  if (bytes_ + bytes > max_bytes_) {
    slots_.clear();
    bytes_ = 0;
  }
  slots_[key] = Slot{std::move(inputs), shared, std::chrono::steady_clock::now(), bytes};
  bytes_ += bytes;
  return shared;
}

}  // namespace quire::presentation
