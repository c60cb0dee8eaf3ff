// A pyramid's tile directory read once: per level the tile grid, every tile's file offset and
// byte count, the JPEGTables and what the tiles' colour encoding needs — plus an open file
// descriptor on the very file that was indexed. Serving a stored tile then costs one pread
// and a memcpy, with no libtiff at request time; a request that is a crop of one stored tile
// at its own resolution (the padded edge tiles, the small levels) is cut from the tile's
// coefficients (a Huffman decode and encode), or at worst costs one libjpeg decode and
// encode, instead of a libvips pipeline.
//
// Thread-safe: a PyramidIndex is immutable after Open; reads use pread on the shared fd.
// The fd keeps the indexed file alive even if the blob is replaced (rename over it) or
// deleted; callers key their caches by the file identity and drop stale indexes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "blob/pyramid_edges.h"
#include "core/status.h"
#include "iiif/renderer.h"
#include "iiif/request.h"

namespace quire::iiif {

// Which file a path named when it was looked at: a blob replaced by rename gets a new inode.
struct FileIdentity {
  uint64_t dev = 0, ino = 0;
  int64_t size = 0, mtime_ns = 0;
  bool operator==(const FileIdentity&) const = default;
};
// stat(2) of `path`; NotFound when missing.
Result<FileIdentity> StatIdentity(const std::string& path);

struct IndexedLevel {
  int width = 0, height = 0;
  int tiles_across = 0, tiles_down = 0;
  std::vector<uint64_t> offsets, byte_counts;  // per tile, row-major
  // Tiles are 8-bit contiguous baseline JPEG of the pyramid's tile size in a colour encoding
  // served as is (YCbCr or RGB with 3 samples, MinIsBlack with 1).
  bool jpeg = false;
  bool needs_adobe_rgb = false;  // Photometric RGB: APP14 transform 0 must precede the tables
  int samples = 0;
  std::string tables_body;  // JPEGTables without SOI and EOI ("" when none)
};

// Where a pyramid's bytes come from when it is not a local file (S3 through the delivery
// cache): reads of [offset, offset + n), and the whole file on demand for libvips.
class PyramidSource {
 public:
  virtual ~PyramidSource() = default;
  virtual Result<std::string> ReadAt(uint64_t offset, size_t n) const = 0;
  // ReadAt into the caller's `n` bytes at `out` (the tile paths: no allocation or copy).
  virtual Status ReadInto(uint64_t offset, size_t n, char* out) const {
    auto got = ReadAt(offset, n);
    if (!got.ok()) return got.status();
    if (got->size() != n) return Status::IOError("short read from a pyramid source");
    std::memcpy(out, got->data(), n);
    return Status::Ok();
  }
  virtual Result<std::string> LocalCopy() const = 0;
  // Bytes the source holds without a fetch (the pyramid's stored TIFF structure): true and
  // `out` filled when all of [offset, offset + n) is there.
  virtual bool ReadHeld(uint64_t, size_t, char*) const { return false; }
};

class PyramidIndex {
 public:
  // Opens `tiff_path`, walks every directory once (libtiff) and keeps the fd.
  static Result<std::shared_ptr<const PyramidIndex>> Open(const std::string& tiff_path);
  // The same from `source` (a pyramid of `identity.size` bytes named `name`): the
  // directories are read in 64 KiB blocks, tiles as their exact byte ranges.
  static Result<std::shared_ptr<const PyramidIndex>> OpenSource(
      std::shared_ptr<const PyramidSource> source, const FileIdentity& identity,
      const std::string& name);
  ~PyramidIndex();
  PyramidIndex(const PyramidIndex&) = delete;
  PyramidIndex& operator=(const PyramidIndex&) = delete;

  const PyramidInfo& info() const { return info_; }
  const FileIdentity& identity() const { return identity_; }
  // The local file (for OpenSource indexes: a name, not a path; use RenderPath).
  const std::string& path() const { return path_; }
  // A local file path libvips can open: the file itself, or the source's local copy.
  Result<std::string> RenderPath() const;
  const IndexedLevel& level(size_t k) const { return levels_[k]; }
  size_t level_count() const { return levels_.size(); }

  // The stored tile (col, row) of level k as a standalone JPEG stream: SOI [APP14] tables
  // tile-without-SOI. nullopt when the level's tiles can not be served that way.
  Result<std::optional<std::string>> TileJpeg(size_t k, int col, int row) const;
  // The padded tile (col, row) of level k cut to width × height, as ingest stored it past the
  // TIFF (blob/pyramid_edges.h). nullopt when the pyramid has no such cut tile.
  Result<std::optional<std::string>> EdgeJpeg(size_t k, int col, int row, int width,
                                              int height) const;
  size_t edge_tile_count() const { return edges_.size(); }

 private:
  PyramidIndex() = default;
  void KeepEdges(std::vector<EdgeTile> edges);
  std::string path_;
  int fd_ = -1;
  std::shared_ptr<const PyramidSource> source_;  // when not a local file
  FileIdentity identity_;
  PyramidInfo info_;
  std::vector<IndexedLevel> levels_;
  std::vector<EdgeTile> edges_;  // sorted by level, row, col
};

// Same contract as TryStoredTile, from the index: exactly one full interior stored tile at
// one level, unrotated, unmirrored, default/color quality, jpg → the stored bytes.
Result<std::optional<Rendered>> IndexedStoredTile(const PyramidIndex& index,
                                                  const ResolvedRequest& request);

// When Render would take a crop of one stored tile at the level it picks and encode it
// without resizing (no rotation, mirror or quality change, jpg). A crop from the tile's
// top-left corner (the padded edge tiles, the small levels) is cut from the tile's quantised
// coefficients: its pixels are the stored tile's, at its stored quality, as an interior tile's
// are. Any other crop is decoded with libjpeg, cropped and encoded at Q90 like Render.
// nullopt when not applicable.
Result<std::optional<Rendered>> IndexedCroppedTile(const PyramidIndex& index,
                                                   const ResolvedRequest& request);

// Decodes the level-k pixels of `rect` (8-bit, index.level(k).samples per pixel, rows of
// (x1-x0)*samples bytes) into `out` from the stored JPEG tiles, as libvips' tiffload would.
// Unsupported when the level's tiles are not JPEG this code reads.
Status DecodeLevelRect(const PyramidIndex& index, size_t k, const struct LevelRect& rect,
                       unsigned char* out);

// Render() on the indexed file: the region's tiles are decoded here (DecodeLevelRect) when it
// is small enough, then resized, rotated, etc. and encoded by libvips exactly as Render does.
// Falls back to Render for anything else.
Result<Rendered> RenderIndexed(const PyramidIndex& index, const ResolvedRequest& request);

// Encodes 8-bit pixels (1 or 3 samples, rows `stride` bytes apart) as Render's jpg output:
// what libvips jpegsave writes with Q=90 and strip (no JFIF/EXIF/ICC, 4:4:4, baseline,
// standard Huffman tables). False on failure.
bool EncodeJpegLikeRender(const unsigned char* pixels, size_t stride, int width, int height,
                          int samples, std::string* out);

// --- pyramid geometry shared with the renderer ---

// How many level-0 pixels one pixel of level k covers, per axis.
struct LevelScale {
  double x, y;
};
LevelScale ScaleOfLevel(const PyramidInfo& info, size_t k);
bool IsPowerOfTwoLevel(const PyramidInfo& info, size_t k);
// The smallest level whose copy of the region still has at least the output's pixel size.
size_t ChooseLevel(const PyramidInfo& info, const ResolvedRequest& r);
// The region in level-k pixels, edges rounded to the nearest level pixel, never empty.
struct LevelRect {
  int x0, y0, x1, y1;
};
LevelRect RegionOnLevel(const PyramidInfo& info, size_t k, const ResolvedRequest& r);

}  // namespace quire::iiif
