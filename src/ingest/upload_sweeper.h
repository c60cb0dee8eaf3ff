// Removes uploads that expired unused (spec/platform.md §2, --upload-ttl-hours), and upload
// blobs that have no row (a crash between storing the bytes and recording them). A thread of
// its own; several nodes may sweep the same database at once (deletes are idempotent, and an
// upload that an image took meanwhile is refused by the store and kept).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "blob/blob_store.h"
#include "store/store.h"

namespace quire {

class UploadSweeper {
 public:
  // Sweeps every `period_ms` (the first sweep right at Start).
  UploadSweeper(Store& store, BlobStore& blobs, int64_t period_ms);
  ~UploadSweeper();
  void Start();
  void Stop();
  // One pass now; returns how many uploads were removed.
  int SweepOnce();

 private:
  void Run();
  int SweepOrphanBlobs();

  Store& store_;
  BlobStore& blobs_;
  int64_t period_ms_;
  int64_t next_orphan_pass_ms_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

}  // namespace quire
