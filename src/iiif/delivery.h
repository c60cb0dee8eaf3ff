// IIIF delivery over HTTP (spec/iiif.md): /iiif-img (Image API 3.0, and 2.1 under /v2/),
// /thumbs (level 0 from stored thumbnails), /iiif-av (transcoded audio and video, with byte
// ranges) and /file (originals). Public, CORS everywhere.
//
// Speed by design: pyramid metadata and recent responses are cached in bounded LRUs; an
// aligned tile costs one stored-tile copy; exact thumbnail sizes come from stored files; big
// renders go through a bounded lane that answers 503 + Retry-After when full.
#pragma once

#include "ops/metrics.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "access/access_control.h"
#include "blob/blob_store.h"
#include "blob/cache/blob_cache.h"
#include "http/router.h"
#include "iiif/pyramid_index.h"
#include "iiif/renderer.h"
#include "iiif/request.h"
#include "store/store.h"

namespace quire::iiif {

struct DeliveryOptions {
  int large_render_lane = 2;           // concurrent large renders
  int64_t large_render_pixels = 4096 * 4096;  // output or decoded area that counts as large
  int64_t cache_bytes = 64 * 1024 * 1024;
  int64_t max_area = 100000000;        // upscaling / output bound declared in info.json
  // How long a looked-up asset is reused without asking the store again (the pyramid file's
  // identity is still checked on every request, and Invalidate drops it at once).
  std::chrono::milliseconds asset_ttl{2000};
  size_t max_cached_assets = 4096;
  size_t max_open_pyramids = 256;  // tile indexes, each holding an open file descriptor
  ops::Metrics* metrics = nullptr;  // response-cache hits and misses, when set
  // Adds the customer's custom headers (DLCS customHeaders) to a successful response of an
  // image of (customer, space); unset: none.
  std::function<void(int64_t customer, int64_t space, http::Response* res)> custom_headers;
  // IIIF access control (spec/presentation-auth.md §5.5): sessions that unlock restricted
  // pixels and the auth services info.json describes. Unset: restricted images show only
  // their open renditions to everyone.
  access::AccessControl* access = nullptr;
};

// A bounded least-recently-used cache of byte strings. Thread-safe.
class ByteCache {
 public:
  explicit ByteCache(int64_t capacity) : capacity_(capacity) {}
  bool Get(const std::string& key, std::string* value, std::string* type);
  void Put(const std::string& key, const std::string& value, const std::string& type);

 private:
  struct Entry {
    std::string key, value, type;
  };
  std::mutex mu_;
  int64_t capacity_;
  int64_t used_ = 0;
  std::list<Entry> lru_;
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

// Pyramids on a local filesystem are read in place (pread on an open file). A remote store
// (S3: LocalPath is kUnsupported) is read through `cache`, which must then be given: the
// tile index from 64 KiB blocks of the TIFF directories, each tile as its own byte range,
// thumbnails and originals whole; cached tiles keep being served while the store is down,
// uncached ones answer 503 with Retry-After.
class Delivery {
 public:
  Delivery(Store& store, BlobStore& blobs, std::string public_base, DeliveryOptions options,
           BlobCache* cache = nullptr);
  void Register(http::Router& router);

  // Forgets everything cached about one asset (its store row and, through the version it
  // carried, its pyramid index and info.json bodies). Call when an asset's row or derivatives
  // change: ingest outcome (success or failure), DELETE, PUT/PATCH. Thread-safe, cheap.
  void Invalidate(int64_t customer, int64_t space, const std::string& id);

 private:
  struct Target;  // a resolved, servable asset
  http::Response Redirect(http::Request& req, ApiVersion version, bool thumbs);
  http::Response Info(http::Request& req, ApiVersion version);
  http::Response Image(http::Request& req, ApiVersion version);
  http::Response ThumbInfo(http::Request& req, ApiVersion version);
  http::Response Thumb(http::Request& req, ApiVersion version);
  http::Response File(http::Request& req);
  // /iiif-av/{c}/{s}/{id}/full/full/max/max/0/default.{mp4,mp3}: the transcoded recording,
  // whole or one byte range.
  http::Response Av(http::Request& req);
  // Looks up {c}/{s}/{id}; on failure fills *error with the 404/400 answer.
  bool Resolve(http::Request& req, const char* channel, Target* out, http::Response* error);
  // Resolve for the iiif-img channel through a short-lived cache, plus the pyramid file:
  // nullptr and *error filled when not servable (a missing pyramid is a 404).
  std::shared_ptr<const Target> ResolveImage(http::Request& req, http::Response* error);
  // The tile index of the target's pyramid (cached by version and file identity).
  std::shared_ptr<const PyramidIndex> Index(const Target& t, http::Response* error);

  // GetBytes through the cache when the store is remote.
  Result<std::string> ReadBlob(const std::string& key, const std::string& tag);
  // For a remote store: runs `handler` answering from the disk cache only, and defers the
  // request to the CPU pool when it needs the network (see delivery.cc).
  template <typename Handler>
  http::Response RemoteInline(http::Request& req, Handler handler);

  Store& store_;
  BlobStore& blobs_;
  BlobCache* cache_;
  bool remote_ = false;
  std::string base_;
  DeliveryOptions options_;
  ByteCache responses_;
  struct TargetEntry {
    std::shared_ptr<const Target> target;
    std::chrono::steady_clock::time_point fetched;
  };
  std::mutex targets_mu_;
  std::unordered_map<std::string, TargetEntry> targets_;  // key: URL c \n s \n id
  struct IndexEntry {
    std::shared_ptr<const PyramidIndex> index;
    uint64_t last_used = 0;
  };
  std::mutex index_mu_;
  std::unordered_map<std::string, IndexEntry> indexes_;  // key: version key
  uint64_t index_clock_ = 0;
  std::mutex info_mu_;
  std::unordered_map<std::string, std::string> info_bodies_;  // serialized info.json
  std::atomic<int> large_in_flight_{0};
};

}  // namespace quire::iiif
