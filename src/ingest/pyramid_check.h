// Checking a written pyramid before it is published: a derivative is recorded only when it
// is whole. A truncated file (a full disk, a crash) can still open as a valid TIFF with fewer
// levels or tiles pointing past its end; delivery would then serve errors or grey.
#pragma once

#include <string>

#include "core/status.h"

namespace quire {

// Ok when `path` is a tiled TIFF whose first page is width x height with tile x tile tiles,
// each next page halves the previous one (rounded down, at least 1 pixel) down to a page
// that fits in one tile, and every tile of every page lies within the file with a nonzero
// byte count. kIOError "the written pyramid is incomplete: ..." otherwise.
Status VerifyPyramid(const std::string& path, int width, int height, int tile);

// iiif-img policy use-original: Ok when the origin at `path` can be stored and served as it
// is — VerifyPyramid's structure (tile x tile tiles, each page half the previous one down to
// one tile, every tile inside the file) and, on every page, 8-bit greyscale or RGB samples,
// contiguous, in JPEG-compressed tiles (what delivery decodes and copies). kInvalid naming
// what is not so.
Status UsableAsPyramid(const std::string& path, int width, int height, int tile);

}  // namespace quire
