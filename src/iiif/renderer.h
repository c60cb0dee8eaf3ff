// Renders resolved IIIF image requests from a tiled pyramidal TIFF derivative (libvips
// `tiffsave tile pyramid compression=jpeg`, 256×256 tiles, page k = level at scale 2^k,
// 8-bit sRGB or greyscale, no alpha).
//
// Thread-safe: every call opens its own file handles and holds no shared state, so worker
// threads may render concurrently. REQUIRES: quire::InitVips() has been called (Render only).
// libvips and libtiff failures are returned as Status, never thrown.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "iiif/request.h"

namespace quire::iiif {

struct PyramidInfo {
  int width = 0, height = 0;                // level 0
  std::vector<std::pair<int, int>> levels;  // (width, height) per TIFF page, level 0 first
  int tile_width = 0, tile_height = 0;
};

// Walks the TIFF directories (no pixel decoding). Cheap, and cacheable by the caller as long
// as the file does not change.
Result<PyramidInfo> ReadPyramidInfo(const std::string& tiff_path);

struct Rendered {
  std::string bytes;
  std::string content_type;
};

// The general path: picks the smallest level that still has at least the output resolution,
// reads only the tiles under the region, resizes to the exact output size, mirrors, rotates
// (non-multiples of 90° on white for jpg, transparent otherwise), applies the quality and
// encodes (jpg Q90 without metadata, png, webp, tif, gif).
// REQUIRES: `info` was read from `tiff_path`; `request` was resolved against
// info.width × info.height.
Result<Rendered> Render(const std::string& tiff_path, const PyramidInfo& info,
                        const ResolvedRequest& request);

// The fast path for what deep-zoom viewers ask for: when `request` is exactly one full
// interior stored tile at one level, unrotated, unmirrored, default/color quality, jpg, the
// answer is the stored JPEG tile bytes behind the file's JPEGTables — no decode, no encode.
// Returns nullopt when not applicable (the caller then uses Render).
Result<std::optional<Rendered>> TryStoredTile(const std::string& tiff_path, const PyramidInfo& info,
                                              const ResolvedRequest& request);

}  // namespace quire::iiif
