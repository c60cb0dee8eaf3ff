// Copying every blob of one store into another (`quire storage migrate`): how an embedded
// installation (file storage) grows into a cluster (S3). Resumable: a blob already at the
// destination with the same size (and, where the destination's version is a plain MD5 ETag,
// the same MD5) is skipped, so an interrupted run is simply run again. Every copy is verified
// afterwards (size, MD5 ETag when the destination gives one).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "blob/blob_store.h"

namespace quire {

struct MigrateReport {
  int64_t copied = 0, skipped = 0, bytes_copied = 0;
};

// `progress` (optional) is told about each blob: its key and whether it was copied.
Result<MigrateReport> MigrateBlobs(const BlobStore& from, BlobStore& to,
                                   const std::function<void(const std::string&, bool)>& progress);

}  // namespace quire
