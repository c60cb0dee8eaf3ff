// IIIF delivery over HTTP (spec/iiif.md): /iiif-img (Image API 3.0, and 2.1 under /v2/),
// /thumbs (level 0 from stored thumbnails) and /file (originals). Public, CORS everywhere.
//
// Speed by design: pyramid metadata and recent responses are cached in bounded LRUs; an
// aligned tile costs one stored-tile copy; exact thumbnail sizes come from stored files; big
// renders go through a bounded lane that answers 503 + Retry-After when full.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

#include "blob/blob_store.h"
#include "http/router.h"
#include "iiif/renderer.h"
#include "iiif/request.h"
#include "store/store.h"

namespace quire::iiif {

struct DeliveryOptions {
  int large_render_lane = 2;           // concurrent large renders
  int64_t large_render_pixels = 4096 * 4096;  // output or decoded area that counts as large
  int64_t cache_bytes = 64 * 1024 * 1024;
  int64_t max_area = 100000000;        // upscaling / output bound declared in info.json
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

class Delivery {
 public:
  Delivery(Store& store, BlobStore& blobs, std::string public_base, DeliveryOptions options);
  void Register(http::Router& router);

 private:
  struct Target;  // a resolved, servable asset
  http::Response Redirect(http::Request& req, ApiVersion version, bool thumbs);
  http::Response Info(http::Request& req, ApiVersion version);
  http::Response Image(http::Request& req, ApiVersion version);
  http::Response ThumbInfo(http::Request& req);
  http::Response Thumb(http::Request& req);
  http::Response File(http::Request& req);
  // Looks up {c}/{s}/{id}; on failure fills *error with the 404/400 answer.
  bool Resolve(http::Request& req, const char* channel, Target* out, http::Response* error);
  Result<PyramidInfo> Pyramid(const Target& t);

  Store& store_;
  BlobStore& blobs_;
  std::string base_;
  DeliveryOptions options_;
  ByteCache responses_;
  std::mutex pyramid_mu_;
  std::unordered_map<std::string, PyramidInfo> pyramids_;  // key: blob key + finished
  std::atomic<int> large_in_flight_{0};
};

}  // namespace quire::iiif
