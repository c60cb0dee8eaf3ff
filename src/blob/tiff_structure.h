// The structure of a TIFF file as byte extents: the header, every directory (IFD) and the
// out-of-line values they point to (tile offsets and byte counts, JPEG tables, ...) — what a
// reader needs to index the tiles, and none of the tile data. Ingest stores these extents
// beside a pyramid on remote storage (PyramidIndexKey), so delivery indexes a pyramid it
// has never read with one GET instead of one per level: libvips writes each level's
// directory after that level's tiles, spread across the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace quire {

struct ByteExtent {
  uint64_t offset = 0;
  std::string bytes;
};

// Reads the structure of the classic or BigTIFF file at `path` (at most 64 MiB of it).
Result<std::vector<ByteExtent>> ReadTiffStructure(const std::string& path);

// A self-describing blob: the extents and `version`, the version of the pyramid they were
// read from (its BlobStat::version once stored), so a reader can tell a stale one.
std::string EncodeTiffStructure(const std::vector<ByteExtent>& extents, const std::string& version);
Result<std::vector<ByteExtent>> DecodeTiffStructure(const std::string& blob,
                                                    std::string* version);

}  // namespace quire
