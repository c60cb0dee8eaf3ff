// Turning a fetched source file into the delivery derivatives: a tiled pyramidal TIFF and
// bounding-box thumbnails, via libvips. Pipeline: probe -> orient -> colour -> pyramid ->
// thumbnails (from the pyramid) -> store. The source is decoded once, streaming. A JPEG the
// DCT path can take is not decoded to pixels at full resolution at all (ingest/jpeg_dct.h).
// Thread-safe: calls may run concurrently (each is its own libvips pipeline).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "blob/asset_keys.h"  // the keys written under `prefix`
#include "blob/blob_store.h"
#include "blob/tiff_structure.h"  // ByteExtent
#include "core/status.h"
#include "model/asset.h"  // ThumbnailSize

namespace quire {

struct ProcessOptions {
  int64_t max_pixels = 1000000000;
  std::vector<int> thumbnail_sizes{1024, 400, 200, 100};  // bounding boxes, longest side
  int tile_size = 256;
  int jpeg_quality = 85;
  // Writing scratch and derivatives stops (kIOError) once the volume holding them has less
  // than this free, so the database beside them can still record outcomes. 0: no check.
  int64_t reserve_bytes = 0;
  // The DCT path for JPEG sources (ingest/jpeg_dct.h): coefficient memory all concurrent
  // conversions may hold; 0 makes every pyramid through pixels.
  int64_t dct_memory_budget = int64_t{160} << 20;
  // iiif-img policy use-original: an origin that already is a pyramid delivery can serve
  // (UsableAsPyramid) is stored as it is instead of being converted.
  bool use_original = false;
};

struct StageTimings {
  double probe_ms = 0, pyramid_ms = 0, thumbnails_ms = 0, store_ms = 0;
  double sandbox_ms = 0;  // the decode in the sandbox (media/), when the format went there
  // How a JPEG's pyramid was made, for the stage log: "dct" (full resolution cut from the
  // coefficients) or "pixels: <why not>"; empty for other formats.
  std::string pyramid_route;
};

struct ProcessedImage {
  int width = 0;  // after EXIF orientation
  int height = 0;
  std::vector<ThumbnailSize> thumbnails;  // distinct sizes, largest first
  StageTimings timings;
};

// A thumbnail encoded in memory, before it is stored.
struct EncodedThumbnail {
  ThumbnailSize size;
  std::string jpeg;
};

// Everything ProcessImage makes before it stores anything: the checked pyramid in a scratch
// file, the encoded thumbnails, and (for remote storage) the pyramid's TIFF structure. Owns
// the scratch file: it is removed when the value is destroyed unless StoreConvertedImage
// consumed it. Move-only.
class ConvertedImage {
 public:
  ConvertedImage() = default;
  ConvertedImage(ConvertedImage&& other) noexcept { *this = std::move(other); }
  ConvertedImage& operator=(ConvertedImage&& other) noexcept;
  ConvertedImage(const ConvertedImage&) = delete;
  ConvertedImage& operator=(const ConvertedImage&) = delete;
  ~ConvertedImage() { Discard(); }
  // Removes the pyramid's scratch file (if still held).
  void Discard();

  int width = 0;  // after EXIF orientation
  int height = 0;
  std::string pyramid_path;                  // the scratch file; empty once stored or discarded
  std::vector<EncodedThumbnail> thumbnails;  // distinct sizes, largest first
  std::optional<std::vector<ByteExtent>> structure;  // remote storage only
  StageTimings timings;                              // store_ms is StoreConvertedImage's
};

// The CPU half of ProcessImage: decode, pyramid into scratch, verification, thumbnails. Stores
// nothing (`blobs` gives the scratch directory and says whether storage is remote). Errors as
// ProcessImage's.
Result<ConvertedImage> ConvertImage(const std::string& source_path, const ProcessOptions& options,
                                    const BlobStore& blobs);

// The I/O half: stores the pyramid (consuming its scratch file), its structure when remote, and
// the thumbnails under `prefix`, and sets image.timings.store_ms. On failure some blobs may
// already be written, as with ProcessImage.
Result<ProcessedImage> StoreConvertedImage(ConvertedImage image, BlobStore& blobs,
                                           const std::string& prefix);

// Decodes `source_path` once and stores, under `prefix`:
//  - image.tif: tiffsave(tile, tile_size square tiles, pyramid, JPEG Q=85, no subifd), so
//    level k (scale 1/2^k) is TIFF page k; 8-bit sRGB (3 bands) or greyscale (1 band), EXIF
//    orientation applied, alpha flattened on white, CMYK and tagged non-sRGB RGB converted;
//  - thumb-WxH.jpg for each bounding box in options.thumbnail_sizes (never upscaled; boxes
//    that give the same WxH are stored once), made from the written pyramid.
// The pixel limit is judged from the header, before any decoding.
// The pyramid is checked whole (VerifyPyramid) before anything is stored.
// Errors: kInvalid "not a decodable image: ..." or "image is WxH pixels, over the limit of N"
// (permanent); kIOError for storage (a full volume included: transient). On failure some blobs
// under `prefix` may already be written; the caller decides whether to DeletePrefix.
Result<ProcessedImage> ProcessImage(const std::string& source_path, const ProcessOptions& options,
                                    BlobStore& blobs, const std::string& prefix);

// A video's thumbnails (thumbs channel) from its poster frame `frame_path` (a JPEG): stores
// thumb-WxH.jpg for each box of options.thumbnail_sizes as ProcessImage does, and returns the
// sizes, largest first.
Result<std::vector<ThumbnailSize>> StoreFrameThumbnails(const std::string& frame_path,
                                                        const ProcessOptions& options,
                                                        BlobStore& blobs,
                                                        const std::string& prefix);

// The `file` channel: stores the source bytes as-is at OriginalKey(prefix). The source file is
// left in place.
Status StoreOriginal(const std::string& source_path, BlobStore& blobs, const std::string& prefix);

}  // namespace quire
