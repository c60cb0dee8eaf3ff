// A pyramid's edge tiles, stored as they are served. A tiled TIFF pads the last column and
// row of tiles of every level to the full tile size; a viewer asks for them cut at the image
// edge, which costs a JPEG transcode per request (about ten times an interior tile's cost).
// Ingest therefore appends, after everything the TIFF references, each padded tile's cut
// version — the tile's own quantised coefficients re-entropy-coded at the cut size, so its
// pixels are the stored tile's — and a table saying where they are. TIFF readers never look
// past what the directories reference, so libtiff, libvips and iipsrv read the file as before.
//
// Layout at the end of the file (little-endian):
//   cut tiles (JPEG streams) … | table: count × 32-byte entries | footer: 24 bytes
//   entry:  u32 level, col, row, width, height, size; u64 offset
//   footer: u64 table offset, u32 count, u32 format (1), "QEDGTRL1"
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace quire {

struct EdgeTile {
  uint32_t level = 0, col = 0, row = 0;  // the padded tile it is cut from
  uint32_t width = 0, height = 0;        // its pixel size (the level's edge minus the tile's origin)
  uint64_t offset = 0;                   // in the pyramid file
  uint32_t size = 0;                     // bytes of the JPEG stream
};

constexpr size_t kEdgeFooterBytes = 24;
constexpr size_t kEdgeEntryBytes = 32;

// Appends the cut edge tiles of every JPEG-tiled level of the finished TIFF at `path`, with
// their table and footer. Levels whose tiles cannot be cut (not 8-bit baseline JPEG) are
// skipped; a pyramid with no partial tiles gets an empty table. Fails (leaving the file as it
// was, truncated back) on a write error, or with CheckFreeSpace's error when writing would
// leave less than `reserve_bytes` free.
Status AppendEdgeTiles(const std::string& path, int64_t reserve_bytes = 0);

// The trailer's table, read through `read_at(offset, n)` from a pyramid file of `file_size`
// bytes. An empty table when the file has no trailer (older pyramids) or a trailer that does
// not describe itself consistently (never trusted half-way).
Result<std::vector<EdgeTile>> ReadEdgeTable(
    uint64_t file_size, const std::function<Result<std::string>(uint64_t, size_t)>& read_at);
// Where the table and footer lie, for readers that keep the structure of a file: {offset, n},
// or {0, 0} when `footer` (the file's last kEdgeFooterBytes) is not an edge trailer's.
std::pair<uint64_t, uint64_t> EdgeTableExtent(std::string_view footer, uint64_t file_size);

// The top-left `width` × `height` of a standalone baseline JPEG stream, cut from its quantised
// coefficients (what `jpegtran -crop WxH+0+0` does): standard Huffman tables, no JFIF marker,
// an Adobe marker when the stream's components are RGB. False when the stream is not 8-bit
// baseline, is smaller than the cut, or decodes with warnings (damaged).
bool CropJpegCoefficients(std::string_view stream, int width, int height, std::string* out);

}  // namespace quire
