#include "ingest/upload_sweeper.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "blob/asset_keys.h"
#include "core/time_util.h"

namespace quire {

namespace {
// A blob without a row younger than this may belong to an upload being recorded right now.
constexpr int64_t kOrphanAgeMs = 3600 * 1000;
constexpr int64_t kOrphanPassEveryMs = 3600 * 1000;
}  // namespace

UploadSweeper::UploadSweeper(Store& store, BlobStore& blobs, int64_t period_ms)
    : store_(store), blobs_(blobs), period_ms_(std::max<int64_t>(100, period_ms)) {}

UploadSweeper::~UploadSweeper() { Stop(); }

void UploadSweeper::Start() { thread_ = std::thread([this] { Run(); }); }

void UploadSweeper::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void UploadSweeper::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    lock.unlock();
    SweepOnce();
    lock.lock();
    cv_.wait_for(lock, std::chrono::milliseconds(period_ms_), [this] { return stop_; });
  }
}

int UploadSweeper::SweepOnce() {
  int removed = 0;
  while (true) {
    auto expired = store_.ExpiredUploads(NowMs(), 100);
    if (!expired.ok()) {
      spdlog::warn("upload sweep: cannot list expired uploads: {}", expired.status().message());
      break;
    }
    int progress = 0;
    for (const Upload& u : *expired) {
      // The row goes first: once it is gone no image can name the upload, so its blob is free.
      Status st = store_.DeleteUpload(u.customer, u.id);
      if (!st.ok() && st.code() != Code::kNotFound) continue;  // taken by an image meanwhile
      if (Status b = blobs_.DeletePrefix(UploadBlobPrefix(u.customer, u.id)); !b.ok())
        spdlog::warn("upload sweep: cannot remove the bytes of upload {}: {}", u.id, b.message());
      if (st.ok()) {
        ++removed;
        ++progress;
        spdlog::info("upload {} of customer {} expired unused; removed", u.id, u.customer);
      }
    }
    if (expired->size() < 100 || progress == 0) break;
  }
  if (NowMs() >= next_orphan_pass_ms_) {
    next_orphan_pass_ms_ = NowMs() + kOrphanPassEveryMs;
    removed += SweepOrphanBlobs();
  }
  return removed;
}

int UploadSweeper::SweepOrphanBlobs() {
  auto list = blobs_.List("uploads/");
  if (!list.ok()) return 0;
  int removed = 0;
  for (const BlobListing& b : *list) {
    // uploads/<customer>/<id>/original
    size_t a = b.key.find('/'), c = b.key.find('/', a + 1), d = b.key.find('/', c + 1);
    if (a == std::string::npos || c == std::string::npos || d == std::string::npos) continue;
    int64_t customer = std::strtoll(b.key.substr(a + 1, c - a - 1).c_str(), nullptr, 10);
    std::string id = b.key.substr(c + 1, d - c - 1);
    auto row = store_.GetUpload(customer, id);
    if (row.ok() || row.status().code() != Code::kNotFound) continue;
    auto stat = blobs_.Stat(b.key);
    if (!stat.ok() || NowMs() - stat->modified_ms < kOrphanAgeMs) continue;
    if (blobs_.DeletePrefix(UploadBlobPrefix(customer, id)).ok()) {
      ++removed;
      spdlog::info("removed the bytes of upload {} (customer {}): no upload records them", id,
                   customer);
    }
  }
  return removed;
}

}  // namespace quire
