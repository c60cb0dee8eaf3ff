// BlobStore: where derivatives, thumbnails and originals live. The filesystem implementation
// (blob/file_blob_store.h) is the embedded default; blob/s3/ holds the S3 one. Both honour
// one contract (tests/unit/file_blob_store_test.cc runs against each): writes are whole-blob
// (a reader sees the old blob or all of the new one), keys are relative paths of safe
// characters ("1/2/<escaped id>/image.tif"; AssetBlobPrefix() builds an asset's prefix).
// Errors: kNotFound for a missing blob, kUnavailable for a transient storage failure (worth
// retrying), kIOError otherwise. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace quire {

// What a blob is now: `version` changes whenever the blob is replaced (an S3 ETag; for files
// inode, size and mtime).
struct BlobStat {
  int64_t size = 0;
  std::string version;
  int64_t modified_ms = 0;
};

struct BlobListing {
  std::string key;
  int64_t size = 0;
  std::string version;
};

class BlobStore {
 public:
  virtual ~BlobStore() = default;

  // Atomically places the file at `local_path` under `key`, streamed (never read whole into
  // memory); the source file is consumed (moved, or copied then removed) on success.
  virtual Status PutFile(const std::string& key, const std::string& local_path) = 0;
  // Atomically writes `bytes` under `key`.
  virtual Status PutBytes(const std::string& key, const std::string& bytes) = 0;
  virtual Result<std::string> GetBytes(const std::string& key) const = 0;
  virtual bool Exists(const std::string& key) const = 0;
  virtual Result<BlobStat> Stat(const std::string& key) const = 0;
  // Bytes [offset, offset + length) of `key`, fewer at its end. When `version` is given and
  // the blob is no longer that version: kConflict (so a reader never mixes two versions).
  virtual Result<std::string> GetRange(const std::string& key, int64_t offset, int64_t length,
                                       const std::string& version = "") const = 0;
  // Writes the blob to the local file `local_path` (created or truncated), streamed.
  virtual Status GetToFile(const std::string& key, const std::string& local_path) const = 0;
  // Every blob whose key starts with `prefix` (all when empty), in key order.
  virtual Result<std::vector<BlobListing>> List(const std::string& prefix) const = 0;
  // Removes every blob whose key starts with `prefix` + "/". Missing is not an error.
  virtual Status DeletePrefix(const std::string& prefix) = 0;
  // True for stores whose blobs are not local files (S3): read them through blob/cache/.
  virtual bool IsRemote() const { return false; }
  // A local filesystem path for reading `key` in place (the file store's own file).
  // kUnsupported for remote stores: read those with GetRange / GetToFile (or blob/cache/).
  virtual Result<std::string> LocalPath(const std::string& key) const = 0;
  // A local scratch directory for temp files before PutFile (for the file store on the same
  // filesystem as the blobs, so PutFile is a rename).
  virtual std::string ScratchDir() const = 0;
};

// Keys are relative paths of [A-Za-z0-9_.%-] with no empty component and none starting with
// '.'. Every store refuses other keys with kInvalid.
Status ValidateBlobKey(const std::string& key);

// "c/s/<escaped id>": ids may hold any character but '/', '\\', whitespace and controls, so
// they are percent-encoded (and hashed when too long for a file name).
std::string AssetBlobPrefix(int64_t customer, int64_t space, const std::string& image_id);

// Opens the store named by a --storage URL: "file:PATH", or
// "s3://bucket/prefix?endpoint=…&region=…&path_style=1" (blob/s3/s3_blob_store.h; its
// scratch files go to `scratch_dir`, default a directory under the system temp dir).
Result<std::unique_ptr<BlobStore>> OpenBlobStore(const std::string& url,
                                                 const std::string& scratch_dir = "");

}  // namespace quire
