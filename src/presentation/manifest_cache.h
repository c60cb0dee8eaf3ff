// Serialized manifests (body and ETag), kept while what they were built from is unchanged:
// each entry holds the ManifestInputs of its images, and a lookup with different inputs
// misses. A manifest of 500 canvases is about 1 MB of JSON whose building costs far more than
// reading its rows, so a viewer's second request (or another viewer's) skips the building.
// Entries also expire after `ttl`, for what the inputs do not hold (the role records a PROBE
// names). Bounded by the bytes it holds: full, it starts again empty. Thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace quire::presentation {

class ManifestCache {
 public:
  struct Entry {
    std::string body;
    std::string etag;
  };
  explicit ManifestCache(size_t max_bytes = size_t(64) << 20,
                         std::chrono::milliseconds ttl = std::chrono::seconds(5))
      : max_bytes_(max_bytes), ttl_(ttl) {}

  // The entry stored under `key` from the same `inputs`, younger than the ttl; else null.
  std::shared_ptr<const Entry> Find(const std::string& key, const std::string& inputs);
  // The entry stored under `key` with a `tag`, younger than `fresh` and not invalidated since:
  // served without reading its inputs again (a single image's manifest, whose image's changes
  // all arrive as Invalidate(tag)).
  std::shared_ptr<const Entry> FindCurrent(const std::string& key, std::chrono::milliseconds fresh);
  // Stores (replacing) and returns the entry. One bigger than the whole cache is returned but
  // not kept. `tag` names what Invalidate drops it by ("" for none).
  std::shared_ptr<const Entry> Put(const std::string& key, std::string inputs, Entry entry,
                                   const std::string& tag = "");
  // Drops the entries stored with `tag`; Clear drops all.
  void Invalidate(const std::string& tag);
  void Clear();

 private:
  struct Slot {
    std::string inputs;
    std::shared_ptr<const Entry> entry;
    std::chrono::steady_clock::time_point stored;
    size_t bytes = 0;
    std::string tag;
  };
  void EraseLocked(std::map<std::string, Slot>::iterator it);
  const size_t max_bytes_;
  const std::chrono::milliseconds ttl_;
  std::mutex mu_;
  std::map<std::string, Slot> slots_;
  std::multimap<std::string, std::string> tagged_;  // tag → key
  size_t bytes_ = 0;
};

}  // namespace quire::presentation
