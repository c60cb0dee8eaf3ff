// How much room is left on the filesystem that holds the blobs (and, in the embedded default,
// the database). Ingest stops writing derivatives while the volume has less than a reserve
// free, so the database can still record outcomes and the blobs already written stay whole.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace quire {

// Bytes available to unprivileged writers on the filesystem of `fd` / `path`; -1 when it
// cannot be told.
int64_t FreeBytes(int fd);
int64_t FreeBytes(const std::string& path);

// kIOError "no space left on the data volume: N MiB free, M MiB kept in reserve" when less
// than `reserve_bytes` are free; Ok when there is room or the amount cannot be told.
Status CheckFreeSpace(int64_t free_bytes, int64_t reserve_bytes);

}  // namespace quire
