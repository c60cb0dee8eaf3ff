// The customers' custom delivery headers (model/custom_header.h), read from the store and kept
// per customer for a few seconds, so delivery asks the store at most once per customer per
// `ttl` (a change reaches every node within it). Thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <mutex>

#include "http/message.h"
#include "store/store.h"

namespace quire::iiif {

class CustomHeaderCache {
 public:
  explicit CustomHeaderCache(Store& store, std::chrono::milliseconds ttl = std::chrono::seconds(5))
      : store_(store), ttl_(ttl) {}
  // Sets the headers for an image of (customer, space) on `res` (overriding Quire's own, e.g.
  // Cache-Control). A store error adds nothing.
  void Apply(int64_t customer, int64_t space, http::Response* res);

 private:
  struct Entry {
    std::vector<CustomHeader> headers;
    std::chrono::steady_clock::time_point read;
  };
  Store& store_;
  std::chrono::milliseconds ttl_;
  std::mutex mu_;
  std::map<int64_t, Entry> entries_;
};

}  // namespace quire::iiif
