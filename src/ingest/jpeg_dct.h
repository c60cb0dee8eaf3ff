// The DCT path of ingest: a JPEG source's full-resolution pyramid level cut from its quantised
// DCT coefficients instead of being decoded and encoded again. Each 256² tile is a new
// baseline JPEG stream holding the very coefficients (and quantisation tables) of the source
// blocks it covers, so the level is bit-faithful to the source — what `jpegtran -crop` does,
// for every tile in one read of the file. EXIF orientations become lossless coefficient
// transforms (flips negate odd frequencies, transposes swap them) where the MCU grid allows.
// A baseline (single-scan) source is streamed: one tile row of coefficients is held at a time
// and its tiles are encoded in place as the decoder passes them. Level 1 is computed from the
// same coefficients (a reduced IDCT) and handed to the caller, which makes levels 2.. with
// libvips; the pages it writes are copied tile for tile behind page 0.
//
// Taken only for what it can keep exact: 8-bit Huffman-coded (baseline or progressive, restart
// markers or not) greyscale or YCbCr with 4:4:4, 4:2:2 or 4:2:0 sampling. Everything else —
// arithmetic coding, other samplings, CMYK/YCCK, RGB-coded (Adobe transform 0), 12-bit, a
// flip or turn the MCU grid does not allow, coefficients over the memory budget, a stream
// libjpeg warns about — falls back to the pixel path with the reason (the stage log says it).
//
// Thread-safe: calls may run concurrently; a process-wide budget bounds the coefficient memory
// all of them hold at once.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"

namespace quire {

struct DctOptions {
  int tile = 256;
  // Coefficient memory (2 bytes per sample, the whole image) all concurrent cuts may hold at
  // once, process-wide; a source that would pass it takes the pixel path. 0: never cut.
  int64_t memory_budget = int64_t{160} << 20;
  // Level 1 is computed from the coefficients (a reduced IDCT, no second decode) into memory
  // up to this size; a larger one is left to the writer (libjpeg's scaled decode).
  int64_t half_image_max_bytes = int64_t{64} << 20;
  int64_t reserve_bytes = 0;  // as ProcessOptions::reserve_bytes
  std::string scratch_dir;    // for the lower levels' TIFF
};

struct DctOutcome {
  bool cut = false;      // the pyramid at tif_path is written, page 0 from coefficients
  std::string fallback;  // !cut: why the pixel path has to make it (nothing left at tif_path)
};

// Level 1 of the source in its stored orientation (before EXIF): floor(W/2) × floor(H/2),
// 8-bit, 3 bands (RGB, JFIF YCbCr converted) or 1 (grey), interleaved rows.
struct HalfImage {
  int width = 0, height = 0, bands = 0;
  std::vector<unsigned char> pixels;
};

// Writes lower levels: a tiled pyramid TIFF (page k = scale 1/2^k) of the source shown under
// its orientation at half size (floor), at `path` — from `half` when the DCT path made it from
// the coefficients, else (null) from the source.
using LowerLevelsWriter = std::function<Status(const HalfImage* half, const std::string& path)>;

// Makes the pyramid TIFF at `tif_path` for the JPEG at `jpeg_path` displayed under EXIF
// `orientation` (1..8): page 0 cut from the coefficients in tile² JPEG tiles (Photometric
// YCbCr with the source's subsampling, or MinIsBlack), then, when page 0 is over one tile,
// the pages `lower` writes (their tiles and tables copied raw). `!cut` with the reason when the
// source can not take this path (the caller makes the pixel pyramid). Errors: kIOError writing
// (a volume under reserve_bytes free included), and whatever `lower` returns; on any error or
// fallback nothing is left at tif_path.
Result<DctOutcome> MakeDctPyramid(const std::string& jpeg_path, int orientation,
                                  const DctOptions& options, const std::string& tif_path,
                                  const LowerLevelsWriter& lower);

}  // namespace quire
