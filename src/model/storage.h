// Storage policies (DLCS StoragePolicy) and the usage figures they bound: how many images and
// bytes a customer, a space or one image holds. Usage is kept exact by the store in the same
// transaction as the write that changes it (an ingest outcome, a delete), so no recalculator
// is needed.
#pragma once

#include <cstdint>
#include <string>

namespace quire {

struct StoragePolicy {
  std::string id;                        // [A-Za-z0-9._-]{1,100}; "default" always exists
  int64_t max_images = 1000000000;       // maximumNumberOfStoredImages
  int64_t max_bytes = 1000000000000000;  // maximumTotalSizeOfStoredImages
};

// Usage of a customer (space 0) or of one space.
struct StorageUsage {
  int64_t customer = 0;
  int64_t space = 0;
  std::string policy;           // the customer's storage policy id
  int64_t images = 0;           // numberOfStoredImages
  int64_t bytes = 0;            // totalSizeOfStoredImages (every blob, thumbnails included)
  int64_t thumbnail_bytes = 0;  // totalSizeOfThumbnails
};

// Bytes one image's blobs take, as recorded by its latest ingest outcome.
struct ImageStorage {
  int64_t bytes = 0;
  int64_t thumbnail_bytes = 0;
};

}  // namespace quire
