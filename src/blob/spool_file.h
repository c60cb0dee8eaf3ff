// A scratch file that a stream of bytes is written into before it is placed in a BlobStore
// (uploads): appended piece by piece, never held in memory, with the free-space guard ingest
// uses (blob/free_space.h) so a large body cannot fill the volume the database lives on.
// Removed on destruction unless Release()d. Not thread-safe (one writer).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace quire {

class SpoolFile {
 public:
  // Creates an empty file in `dir` for about `expected_bytes` (0: unknown). `reserve_bytes`
  // must stay free on its volume beyond what is still expected: Create and Append fail with
  // kIOError once it would not (checked every few MiB).
  static Result<std::unique_ptr<SpoolFile>> Create(const std::string& dir,
                                                   int64_t reserve_bytes,
                                                   int64_t expected_bytes = 0);
  ~SpoolFile();
  SpoolFile(const SpoolFile&) = delete;
  SpoolFile& operator=(const SpoolFile&) = delete;

  Status Append(std::string_view bytes);
  // Flushes the bytes to disk and closes the file.
  Status Sync();
  // The file is no longer removed on destruction (it was handed to BlobStore::PutFile).
  void Release() { released_ = true; }
  const std::string& path() const { return path_; }
  int64_t size() const { return size_; }

 private:
  SpoolFile() = default;
  std::string path_;
  int fd_ = -1;
  int64_t size_ = 0;
  int64_t reserve_ = 0;
  int64_t expected_ = 0;
  int64_t next_check_ = 0;
  bool released_ = false;
};

}  // namespace quire
