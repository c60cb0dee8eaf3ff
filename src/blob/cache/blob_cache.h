// BlobCache: a bounded local disk cache in front of a (remote) BlobStore, for delivery.
// Entries are byte ranges or whole blobs of one blob *version* (its S3 ETag), so a replaced
// blob is never answered from an older copy, and old versions simply age out.
//
// - Bounded: the bytes of every entry on disk, including ones being written, never exceed
//   `capacity` (space is reserved before a write; least-recently-used entries go first).
// - Safe under concurrency: one mutex guards the index; files are written to a temp name
//   and renamed into place, so a reader sees a whole entry or none.
// - Across restarts: Open re-indexes the directory (oldest files first in the LRU order),
//   drops stray temp files and trims to the bound.
// - Warm reads at memory speed: the most recently read entries (up to HeldEntries()) stay
//   mapped read-only, so a warm read is a copy from the page cache with no system call and
//   holds no descriptor. The pages are the page cache's (VmRSS counts them as RssFile; the
//   kernel reclaims them like any cached file page). An evicted entry is unmapped at once,
//   or when its last reader lets go.
// Thread-safe. One process per directory.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "blob/blob_store.h"

namespace quire {

class BlobCache {
 public:
  // `max_held`: how many entries warm reads keep mapped; 0: HeldEntries().
  static Result<std::unique_ptr<BlobCache>> Open(const BlobStore& source, const std::string& dir,
                                                 int64_t capacity, size_t max_held = 0);
  // A quarter of the kernel's per-process mapping limit (vm.max_map_count), between 1024 and
  // 32768: the rest stays for the allocator, libraries and libvips.
  static size_t HeldEntries();
  // Entries larger than this are read with pread and never held mapped.
  static constexpr int64_t kMaxMappedBytes = 16 << 20;

  // Bytes [offset, offset + length) of `key` at `version`, from disk or else one ranged GET
  // (which then fills the cache). kConflict when the blob is no longer that version.
  Result<std::string> GetRange(const std::string& key, const std::string& version,
                               int64_t offset, int64_t length);
  // The whole blob; `tag` names the version the caller expects (e.g. an asset version).
  Result<std::string> GetBytes(const std::string& key, const std::string& tag);
  // GetRange / GetBytes from disk only: false (and no request) on a miss. For callers that
  // must not block on the network (delivery's I/O threads).
  bool PeekRange(const std::string& key, const std::string& version, int64_t offset,
                 int64_t length, std::string* out);
  bool PeekBytes(const std::string& key, const std::string& tag, std::string* out);
  // GetRange / PeekRange into `out` (`length` bytes the caller holds): a warm read is one
  // pread into the caller's buffer, no allocation or copy.
  Status GetRangeInto(const std::string& key, const std::string& version, int64_t offset,
                      int64_t length, char* out);
  bool PeekRangeInto(const std::string& key, const std::string& version, int64_t offset,
                     int64_t length, char* out);
  // A local file holding the whole blob at `version` (for libvips); kUnsupported when the
  // blob is larger than half the cache. The file may be evicted later: open it at once.
  Result<std::string> LocalFile(const std::string& key, const std::string& version, int64_t size);

  int64_t used_bytes() const;
  int64_t capacity() const { return capacity_; }
  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }
  const std::string& dir() const { return dir_; }

 private:
  // An entry's bytes for reading: mapped (held for warm reads, unmapped when the last reader
  // lets go) or, above kMaxMappedBytes, an open descriptor for pread (never held).
  struct OpenFile {
    OpenFile(const char* d, size_t n, int f) : data(d), size(n), fd(f) {}
    OpenFile(const OpenFile&) = delete;
    OpenFile& operator=(const OpenFile&) = delete;
    ~OpenFile();
    // Copies [offset, offset + n) of the entry into `out`; false when the entry is shorter.
    bool Copy(size_t offset, size_t n, char* out) const;
    const char* const data;  // null when read through fd (or empty)
    const size_t size;
    const int fd;  // -1 when mapped
  };
  struct Entry {
    std::string name;
    int64_t size = 0;
    bool ready = false;                        // false while its file is being written
    std::shared_ptr<OpenFile> file;            // held for the max_open_ most recently read entries
    std::list<std::string>::iterator open_at;  // in open_lru_ while `file` is set
  };
  // Warm reads of recently read entries skip open, mmap and close: at most max_open_ are held
  // mapped (an evicted entry's is unmapped at once, so the disk bound still holds).
  void DropFile(Entry& e);  // mu_ held
  BlobCache(const BlobStore& source, std::string dir, int64_t capacity, size_t max_open)
      : source_(source), dir_(std::move(dir)), capacity_(capacity),
        max_open_(max_open > 0 ? max_open : HeldEntries()) {}
  std::string PathOf(const std::string& name) const;
  // The entry's bytes when present and whole: into `out`, or (ReadInto) into the caller's
  // `n` bytes at `out` when the entry is exactly that size.
  bool Read(const std::string& name, std::string* out);
  bool ReadInto(const std::string& name, char* out, size_t n);
  // The entry's held file (opened now when not held) and its size; null when absent.
  std::shared_ptr<OpenFile> Acquire(const std::string& name, int64_t* size);
  // Reserves `size` bytes for `name`, evicting LRU entries.
  enum class Reservation { kReserved, kBusy /* present or being written */, kTooLarge };
  Reservation Reserve(const std::string& name, int64_t size);
  void Commit(const std::string& name, bool ok);
  // Writes `bytes` as entry `name` (after Reserve).
  void Store(const std::string& name, const std::string& bytes);

  const BlobStore& source_;
  const std::string dir_;
  const int64_t capacity_;
  const size_t max_open_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // front: most recently used
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  std::list<std::string> open_lru_;  // names of the entries holding a file, most recent first
  int64_t used_ = 0;
  std::atomic<int64_t> hits_{0}, misses_{0};
  std::atomic<uint64_t> temp_counter_{0};
};

}  // namespace quire
