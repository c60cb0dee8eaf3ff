// BlobStore: where derivatives, thumbnails and originals live. The filesystem implementation
// is the embedded default; an S3 implementation will follow behind the same interface.
// Keys are relative paths of safe characters ("1/2/<escaped id>/image.tif"); use
// AssetBlobPrefix() to build the prefix for an asset. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace quire {

class BlobStore {
 public:
  virtual ~BlobStore() = default;

  // Atomically places the file at `local_path` under `key` (temp-then-rename); the source file
  // is consumed (moved or copied then removed).
  virtual Status PutFile(const std::string& key, const std::string& local_path) = 0;
  // Atomically writes `bytes` under `key`.
  virtual Status PutBytes(const std::string& key, const std::string& bytes) = 0;
  virtual Result<std::string> GetBytes(const std::string& key) const = 0;
  virtual bool Exists(const std::string& key) const = 0;
  // Removes every blob whose key starts with `prefix` + "/". Missing is not an error.
  virtual Status DeletePrefix(const std::string& prefix) = 0;
  // A local filesystem path for reading `key` with libvips/libtiff. For remote stores this
  // will be a local cache file; for the filesystem store it is the file itself.
  virtual Result<std::string> LocalPath(const std::string& key) const = 0;
  // A scratch directory on the same filesystem as the blobs, for temp files before PutFile.
  virtual std::string ScratchDir() const = 0;
};

// "c/s/<escaped id>": ids may hold any character but '/', '\\', whitespace and controls, so
// they are percent-encoded (and hashed when too long for a file name).
std::string AssetBlobPrefix(int64_t customer, int64_t space, const std::string& image_id);

// Opens the store named by a --storage URL ("file:PATH").
Result<std::unique_ptr<BlobStore>> OpenBlobStore(const std::string& url);

}  // namespace quire
