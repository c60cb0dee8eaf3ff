// Batches as last read, kept for up to a second, so that many clients polling a batch (the
// portal, `quire client`, scripts, viewers' progress bars) cost one store read per change of
// the batch rather than one per request — on PostgreSQL a request would otherwise wait for a
// round trip to the database every time.
// A customer's entries are dropped by every store event that can change one of its batches
// (an outcome, an asset re-queued, retried, tested or deleted; events reach the committing
// node before the change answers, and other nodes through NOTIFY); an event that names no
// customer (work rescheduled, a lost channel) drops them all. An entry also expires after
// `ttl_ms`, which bounds what a missed event (or an estimate's drift with the clock) can show.
// Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "model/batch.h"

namespace quire::api {

class BatchCache {
 public:
  explicit BatchCache(int64_t ttl_ms = 1000, size_t max_entries = 10000)
      : ttl_ms_(ttl_ms), max_entries_(max_entries) {}

  std::optional<Batch> Get(int64_t customer, int64_t id, int64_t now_ms);
  // Taken before reading the store: Put keeps what it read only if no event for `customer`
  // arrived since (a read that raced a change must not outlive it).
  uint64_t Generation(int64_t customer);
  void Put(int64_t customer, const Batch& batch, uint64_t generation, int64_t now_ms);
  // Something of `customer`'s may have changed.
  void ForgetCustomer(int64_t customer);
  void Clear();

 private:
  struct Entry {
    Batch batch;
    int64_t expires_ms = 0;
  };

  std::mutex mu_;
  int64_t ttl_ms_;
  size_t max_entries_;
  uint64_t clear_generation_ = 0;  // bumped by Clear: counts into every customer's generation
  std::unordered_map<int64_t, uint64_t> generations_;  // per customer
  std::unordered_map<int64_t, std::unordered_map<int64_t, Entry>> entries_;  // customer → id →
  size_t size_ = 0;
};

// The JSON body last served for each batch, reused while a fresh read of the batch equals the
// one it was made from: nothing is served that the store did not just say, only the
// serialisation of an unchanged batch (pollers ask many times between two changes) is saved.
// Bounded; thread-safe.
class BatchBodies {
 public:
  explicit BatchBodies(size_t max_entries = 4096) : max_entries_(max_entries) {}
  // The body of `batch`: the kept one when it was made from an equal batch, else `make()`'s
  // (run outside the lock), kept for next time.
  std::string Body(const Batch& batch, const std::function<std::string()>& make);

 private:
  struct Entry {
    Batch batch;
    std::string body;
  };
  std::mutex mu_;
  size_t max_entries_;
  std::unordered_map<int64_t, std::unordered_map<int64_t, Entry>> entries_;  // customer → id →
  size_t size_ = 0;
};

}  // namespace quire::api
