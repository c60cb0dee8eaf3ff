// A short-lived in-memory cache of API keys (salt, hash, customer), so authenticating a
// request costs one salted hash instead of two database reads. Entries live `ttl_ms`; deleting
// a key in this process drops it at once (other nodes see the deletion within the TTL).
// Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace quire::api {

struct CachedKey {
  std::string salt;
  std::string secret_hash;
  int64_t customer = 0;
  bool admin = false;
  int64_t expires_ms = 0;
};

class KeyCache {
 public:
  explicit KeyCache(int64_t ttl_ms = 5000, size_t max_entries = 10000)
      : ttl_ms_(ttl_ms), max_entries_(max_entries) {}
  std::optional<CachedKey> Get(const std::string& key, int64_t now_ms);
  void Put(const std::string& key, CachedKey entry, int64_t now_ms);
  void Erase(const std::string& key);
  void Clear();

 private:
  std::mutex mu_;
  int64_t ttl_ms_;
  size_t max_entries_;
  std::unordered_map<std::string, CachedKey> entries_;
};

}  // namespace quire::api
