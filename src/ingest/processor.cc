#include "ingest/processor.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string_view>
#include <vips/vips8>

#include "blob/scratch_space.h"
#include "blob/pyramid_edges.h"
#include "blob/tiff_structure.h"
#include "core/decode_guard.h"
#include "core/vips_init.h"
#include "ingest/file_target.h"
#include "ingest/jpeg_dct.h"
#include "ingest/pyramid_check.h"

namespace quire {
namespace {

using vips::VError;
using vips::VImage;
using vips::VOption;

// Images needing a rotation are decoded into memory up to this size, else into scratch tiles.
constexpr int64_t kInMemoryReorientBytes = 16 << 20;

class Stopwatch {
 public:
  double LapMs() {
    auto now = std::chrono::steady_clock::now();
    double ms = std::chrono::duration<double, std::milli>(now - last_).count();
    last_ = now;
    return ms;
  }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

std::string FirstLine(const char* text) {
  std::string s = text ? text : "";
  size_t nl = s.find('\n');
  if (nl != std::string::npos) s.resize(nl);
  if (s.empty()) s = "unknown libvips error";
  return s;
}

// libvips appends to one process-wide error buffer and vips-cpp's VError copies it without
// clearing, so clear it after each failure: the next failure's first line is then its own.
// (Concurrent failures can still interleave; the message is advisory.)
std::string TakeVipsError(const VError& e) {
  std::string line = FirstLine(e.what());
  vips_error_clear();
  return line;
}

// A libvips failure while writing the pyramid is a decode failure of the source (kInvalid with
// the cause) unless it reports a problem with the output file (kIOError).
Status PyramidFailure(const VError& e) {
  std::string msg = e.what();
  vips_error_clear();
  for (const char* w : {"No space left", "Disk quota", "Read-only file system", "Permission denied",
                        "unable to open for write", "Write error"}) {
    if (msg.find(w) != std::string::npos) {
      return Status::IOError("cannot write the pyramid: " + FirstLine(msg.c_str()));
    }
  }
  return Status::Invalid(FirstLine(msg.c_str()));
}

int Orientation(const VImage& image) {
  if (image.get_typeof(VIPS_META_ORIENTATION) == 0) return 1;
  int o = image.get_int(VIPS_META_ORIENTATION);
  return o >= 1 && o <= 8 ? o : 1;
}

// True when the embedded ICC profile names itself sRGB (ASCII in v2 'desc', UTF-16 in v4 'mluc').
bool HasSrgbProfile(const VImage& image) {
  size_t len = 0;
  const void* data = image.get_blob(VIPS_META_ICC_NAME, &len);
  std::string_view bytes(static_cast<const char*>(data), len);
  static constexpr char kUtf16[] = {0, 's', 0, 'R', 0, 'G', 0, 'B'};
  return bytes.find("sRGB") != std::string_view::npos ||
         bytes.find(std::string_view(kUtf16, sizeof kUtf16)) != std::string_view::npos;
}

// 8-bit sRGB (3 bands) or 8-bit greyscale (1 band), alpha flattened on white. Returns the input
// untouched when it already is one of those.
VImage ToDeliveryColour(VImage image) {
  VipsInterpretation interp = image.interpretation();
  bool has_icc = image.get_typeof(VIPS_META_ICC_NAME) != 0;

  if (interp == VIPS_INTERPRETATION_CMYK && image.bands() >= 4) {
    image = image.icc_transform("srgb", VImage::option()
                                            ->set("input_profile", "cmyk")
                                            ->set("embedded", has_icc)
                                            ->set("intent", VIPS_INTENT_PERCEPTUAL)
                                            ->set("depth", 8));
  } else if (has_icc && image.bands() >= 3 &&
             (interp == VIPS_INTERPRETATION_sRGB || interp == VIPS_INTERPRETATION_RGB16) &&
             !HasSrgbProfile(image)) {
    // Adobe RGB, Display P3, ProPhoto ...: browsers treat JPEG tiles as sRGB.
    image = image.icc_transform("srgb", VImage::option()
                                            ->set("embedded", true)
                                            ->set("intent", VIPS_INTENT_PERCEPTUAL)
                                            ->set("depth", 8));
  }

  interp = image.interpretation();
  bool grey = interp == VIPS_INTERPRETATION_B_W || interp == VIPS_INTERPRETATION_GREY16;
  if (grey) {
    if (image.format() != VIPS_FORMAT_UCHAR) {
      image = interp == VIPS_INTERPRETATION_GREY16 ? image.colourspace(VIPS_INTERPRETATION_B_W)
                                                   : image.cast(VIPS_FORMAT_UCHAR);
    }
  } else if (interp != VIPS_INTERPRETATION_sRGB || image.format() != VIPS_FORMAT_UCHAR) {
    if (vips_colourspace_issupported(image.get_image())) {
      image = image.colourspace(VIPS_INTERPRETATION_sRGB);
    }
    if (image.format() != VIPS_FORMAT_UCHAR) image = image.cast(VIPS_FORMAT_UCHAR);
  }

  if (image.has_alpha()) {
    image = image.flatten(VImage::option()->set("background", std::vector<double>{255.0}));
    if (image.format() != VIPS_FORMAT_UCHAR) image = image.cast(VIPS_FORMAT_UCHAR);
  }
  int want = image.bands() >= 3 ? 3 : 1;
  if (image.bands() != want) {
    image = image.extract_band(0, VImage::option()->set("n", want));
  }
  if (want == 3 && image.interpretation() != VIPS_INTERPRETATION_sRGB) {
    image = image.copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_sRGB));
  } else if (want == 1 && image.interpretation() != VIPS_INTERPRETATION_B_W) {
    image = image.copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_B_W));
  }
  return image;
}

// Saves `image` as a tiled TIFF at `path` (created or truncated). A DecodeGuard stands
// between the pipeline and the writer and a GuardedFileTarget under it, so neither a failing
// decode nor a failing write (a full disk) reaches libvips 8.14's crash-prone error paths:
// the save runs to its end, and then a decode failure is kInvalid with its cause, a write
// failure or a volume under `reserve_bytes` free kIOError. On failure the file is removed.
// `pyramid`: JPEG-compressed pyramid of `tile`-square tiles at quality `q`; otherwise plain
// uncompressed 256-square tiles (scratch for a rotation).
Status SaveTiled(const VImage& image, const std::string& path, bool pyramid, int tile, int q,
                 int64_t reserve_bytes) {
  Result<std::unique_ptr<GuardedFileTarget>> out = GuardedFileTarget::Create(path, reserve_bytes);
  if (!out.ok()) {
    ::unlink(path.c_str());
    return out.status();
  }
  DecodeGuard* guard = nullptr;
  VImage guarded;  // owns *guard: it must outlive the checks below
  try {
    guarded = Guarded(image, &guard);
    VOption* options =
        VImage::option()->set("tile", true)->set("tile_width", tile)->set("tile_height", tile);
    if (pyramid) {
      options->set("pyramid", true)
          ->set("compression", VIPS_FOREIGN_TIFF_COMPRESSION_JPEG)
          ->set("Q", q);
    } else {
      options->set("strip", true);
    }
    guarded.tiffsave_target((*out)->target(), options);
  } catch (const VError& e) {
    ::unlink(path.c_str());
    return PyramidFailure(e);
  }
  Status written = (*out)->status();
  if (!written.ok()) {
    ::unlink(path.c_str());
    return written;
  }
  if (guard->failed) {
    ::unlink(path.c_str());
    std::lock_guard<std::mutex> lock(guard->mu);
    return Status::Invalid(guard->message);
  }
  return Status::Ok();
}

// Applies EXIF `orientation` (2..8) to the sequentially loaded `image`. A horizontal flip
// streams; rotations and vertical flips read rows out of order, so the pixels are first
// decoded once: into memory when small, else into an uncompressed tiled TIFF in `scratch`
// that the rotation then reads tile by tile (bounded memory, unlike a whole-image buffer or
// an mmapped .v file), named in *temp_file for the caller to remove once the result has been
// consumed. Errors: kInvalid with the decoder's cause.
Result<VImage> Reorient(VImage image, int orientation, const std::string& scratch,
                        int64_t reserve_bytes, std::string* temp_file) {
  if (orientation >= 3) {
    int64_t bytes = int64_t{image.width()} * image.height() * image.bands() *
                    static_cast<int64_t>(vips_format_sizeof(image.format()));
    if (bytes <= kInMemoryReorientBytes) {
      image = image.copy_memory();
    } else {
      Result<std::string> tiles = NewScratchFile(scratch, "oriented", ".tif");
      if (!tiles.ok()) return tiles.status();
      QUIRE_RETURN_IF_ERROR(SaveTiled(image, *tiles, false, 256, 0, reserve_bytes));
      *temp_file = *tiles;
      image = VImage::new_from_file(tiles->c_str(),
                                    VImage::option()->set("access", VIPS_ACCESS_RANDOM));
    }
  }
  image.set(VIPS_META_ORIENTATION, orientation);
  return image.autorot();
}

// The bounding-box thumbnails of the image at `path` (longest side `longest`), largest
// first, sizes that come out the same kept once. Never upscaled. (size=VIPS_SIZE_DOWN would
// say so, but libvips 8.14 then sizes a pyramidal TIFF from its smallest level.) vips
// thumbnail opens a pyramid's nearest level, not the full image. Throws VError.
std::vector<EncodedThumbnail> EncodeThumbnails(const std::string& path, int longest,
                                               const ProcessOptions& options) {
  std::vector<int> boxes = options.thumbnail_sizes;
  std::sort(boxes.begin(), boxes.end(), std::greater<int>());
  std::vector<EncodedThumbnail> thumbs;
  for (int box : boxes) {
    if (box <= 0) continue;
    int fit = std::min(box, longest);
    VImage thumb = VImage::thumbnail(path.c_str(), fit, VImage::option()->set("height", fit));
    ThumbnailSize size{thumb.width(), thumb.height()};
    if (std::any_of(thumbs.begin(), thumbs.end(),
                    [&](const EncodedThumbnail& t) { return t.size == size; }))
      continue;
    void* buf = nullptr;
    size_t len = 0;
    thumb.write_to_buffer(".jpg", &buf, &len,
                          VImage::option()->set("Q", options.jpeg_quality)->set("strip", true));
    thumbs.push_back({size, std::string(static_cast<const char*>(buf), len)});
    g_free(buf);
  }
  return thumbs;
}

// Stores each thumbnail at its ThumbnailKey and appends its size to *sizes.
Status StoreThumbnails(BlobStore& blobs, const std::string& prefix,
                       const std::vector<EncodedThumbnail>& thumbs,
                       std::vector<ThumbnailSize>* sizes) {
  for (const EncodedThumbnail& t : thumbs) {
    QUIRE_RETURN_IF_ERROR(
        blobs.PutBytes(ThumbnailKey(prefix, t.size.width, t.size.height), t.jpeg));
    sizes->push_back(t.size);
  }
  return Status::Ok();
}

}  // namespace

static Status StorePyramidStructure(BlobStore& blobs, const std::string& prefix,
                                    const std::vector<ByteExtent>& structure) {
  // Tagged with the stored pyramid's version, so a reader can tell a stale one.
  Result<BlobStat> pyramid = blobs.Stat(PyramidKey(prefix));
  if (!pyramid.ok()) return pyramid.status();
  return blobs.PutBytes(PyramidIndexKey(prefix), EncodeTiffStructure(structure, pyramid->version));
}

ConvertedImage& ConvertedImage::operator=(ConvertedImage&& other) noexcept {
  if (this == &other) return *this;
  Discard();
  width = other.width;
  height = other.height;
  pyramid_path = std::move(other.pyramid_path);
  other.pyramid_path.clear();
  thumbnails = std::move(other.thumbnails);
  structure = std::move(other.structure);
  timings = other.timings;
  return *this;
}

void ConvertedImage::Discard() {
  if (!pyramid_path.empty()) ::unlink(pyramid_path.c_str());
  pyramid_path.clear();
}

Result<ConvertedImage> ConvertImage(const std::string& source_path, const ProcessOptions& options,
                                    const BlobStore& blobs) {
  if (!InitVips()) return Status::Internal("libvips failed to start");
  ConvertedImage result;
  Stopwatch clock;

  // Messages name the source by its scratch path, which means nothing to the submitter.
  auto decode_error = [&](std::string cause) {
    for (size_t at; (at = cause.find(source_path)) != std::string::npos;) {
      cause.replace(at, source_path.size(), "source");
    }
    // libvips tries every loader that claims the bytes; when the trusted one rejects a damaged
    // file, the last word may come from a blocked fallback (magickload, svgload), which would
    // only confuse the submitter.
    if (cause.find("operation is blocked") != std::string::npos)
      cause = "the file is damaged or in a format Quire does not accept";
    return Status::Invalid("not a decodable image: " + cause);
  };

  // Probe: header only. Sequential access lets the loader stream straight into the pyramid.
  VImage source;
  int orientation = 1;
  int stored_width = 0, stored_height = 0;  // before orientation
  bool jpeg = false, colour_as_is = false;
  try {
    source =
        VImage::new_from_file(source_path.c_str(), VImage::option()
                                                       ->set("access", VIPS_ACCESS_SEQUENTIAL)
                                                       ->set("fail_on", VIPS_FAIL_ON_TRUNCATED));
    orientation = Orientation(source);
    bool swap = orientation >= 5;
    result.width = swap ? source.height() : source.width();
    result.height = swap ? source.width() : source.height();
    int64_t pixels = int64_t{result.width} * result.height;
    if (pixels > options.max_pixels) {
      return Status::Invalid("image is " + std::to_string(result.width) + "x" +
                             std::to_string(result.height) + " pixels, over the limit of " +
                             std::to_string(options.max_pixels));
    }
    stored_width = source.width();
    stored_height = source.height();
    const char* loader = nullptr;
    jpeg = vips_image_get_string(source.get_image(), "vips-loader", &loader) == 0 && loader &&
           std::string_view(loader).starts_with("jpegload");
    VipsImage* loaded = source.get_image();
    source = ToDeliveryColour(source);
    colour_as_is = source.get_image() == loaded;
  } catch (const VError& e) {
    return decode_error(TakeVipsError(e));
  }
  result.timings.probe_ms = clock.LapMs();

  // Pyramid: the one decode of the source happens here (or in Reorient).
  Result<std::string> tif = NewScratchFile(blobs.ScratchDir(), "pyramid", ".tif");
  if (!tif.ok()) return tif.status();
  bool written = false;  // the pyramid at *tif is whole: the origin as it is, or the DCT path's
  if (options.use_original) {
    // The origin is the pyramid: checked, then copied byte for byte (no decode, no re-encode).
    Status usable =
        orientation == 1
            ? UsableAsPyramid(source_path, result.width, result.height, options.tile_size)
            : Status::Invalid("use-original: the origin has an EXIF orientation");
    if (!usable.ok()) {
      ::unlink(tif->c_str());
      return usable;
    }
    std::error_code ec;
    std::filesystem::copy_file(source_path, *tif, std::filesystem::copy_options::overwrite_existing,
                               ec);
    if (ec) {
      ::unlink(tif->c_str());
      return Status::IOError("cannot copy the origin: " + ec.message());
    }
    written = true;
  }
  if (!written && jpeg && !colour_as_is) {
    result.timings.pyramid_route = "pixels: its colours need converting (ICC profile or CMYK)";
  } else if (!written && jpeg) {
    // The full resolution from the coefficients; below it level 1 from them too (or, when
    // too big for memory, libjpeg's scaled decode), then libvips' pyramid.
    auto lower = [&](const HalfImage* made, const std::string& path) -> Status {
      std::string temp;
      auto remove_temp = [&] {
        if (!temp.empty()) ::unlink(temp.c_str());
      };
      try {
        VImage half;
        if (made != nullptr) {
          half = VImage::new_from_memory(const_cast<unsigned char*>(made->pixels.data()),
                                         made->pixels.size(), made->width, made->height,
                                         made->bands, VIPS_FORMAT_UCHAR);
          half = half.copy(VImage::option()->set("interpretation", made->bands == 1
                                                                       ? VIPS_INTERPRETATION_B_W
                                                                       : VIPS_INTERPRETATION_sRGB));
        } else {
          half =
              VImage::jpegload(source_path.c_str(), VImage::option()
                                                        ->set("shrink", 2)
                                                        ->set("access", VIPS_ACCESS_SEQUENTIAL)
                                                        ->set("fail_on", VIPS_FAIL_ON_TRUNCATED));
          // libjpeg rounds a scaled size up, the pyramid's levels round down.
          half = half.crop(0, 0, std::max(1, stored_width / 2), std::max(1, stored_height / 2));
          half = ToDeliveryColour(half);
        }
        if (orientation != 1) {
          Result<VImage> oriented =
              Reorient(half, orientation, blobs.ScratchDir(), options.reserve_bytes, &temp);
          if (!oriented.ok()) return oriented.status();
          half = *oriented;
        }
        Status st = SaveTiled(half, path, true, options.tile_size, 85, options.reserve_bytes);
        remove_temp();
        return st;
      } catch (const VError& e) {
        remove_temp();
        return PyramidFailure(e);
      }
    };
    DctOptions dct;
    dct.tile = options.tile_size;
    dct.memory_budget = options.dct_memory_budget;
    dct.reserve_bytes = options.reserve_bytes;
    dct.scratch_dir = blobs.ScratchDir();
    Result<DctOutcome> cut = MakeDctPyramid(source_path, orientation, dct, *tif, lower);
    if (!cut.ok()) {
      ::unlink(tif->c_str());
      const Status& st = cut.status();
      return st.code() == Code::kInvalid ? decode_error(st.message()) : st;
    }
    if (cut->cut) {
      written = true;
      result.timings.pyramid_route = "dct";
    } else {
      result.timings.pyramid_route = "pixels: " + cut->fallback;
    }
  }
  std::string reorient_tiles;
  auto remove_tif = [&] { ::unlink(tif->c_str()); };
  auto remove_temps = [&] {
    if (!reorient_tiles.empty()) ::unlink(reorient_tiles.c_str());
  };
  try {
    if (!written && orientation != 1) {
      Result<VImage> oriented =
          Reorient(source, orientation, blobs.ScratchDir(), options.reserve_bytes, &reorient_tiles);
      if (!oriented.ok()) {
        remove_tif();
        const Status& st = oriented.status();
        return st.code() == Code::kInvalid ? decode_error(st.message()) : st;
      }
      source = *oriented;
    }
  } catch (const VError& e) {
    remove_temps();
    remove_tif();
    Status st = PyramidFailure(e);
    return st.code() == Code::kInvalid ? decode_error(st.message()) : st;
  }
  Status saved = written
                     ? Status::Ok()
                     : SaveTiled(source, *tif, true, options.tile_size, 85, options.reserve_bytes);
  remove_temps();
  if (!saved.ok()) return saved.code() == Code::kInvalid ? decode_error(saved.message()) : saved;
  // Only a whole pyramid is published: a write that went wrong unnoticed (or a file cut
  // short) must not become a completed image with missing levels.
  if (Status whole = VerifyPyramid(*tif, result.width, result.height, options.tile_size);
      !whole.ok()) {
    vips_error_clear();
    remove_tif();
    return whole;
  }
  source = VImage();  // close the source file
  // The padded edge tiles, cut as viewers ask for them, go past the TIFF: delivery serves
  // them as stored bytes instead of transcoding each request (blob/pyramid_edges.h). Not
  // after a use-original pyramid, which is stored byte for byte as it came.
  if (Status edges = options.use_original ? Status::Ok()
                                          : AppendEdgeTiles(*tif, options.reserve_bytes);
      !edges.ok()) {
    remove_tif();
    return edges;
  }
  result.timings.pyramid_ms = clock.LapMs();

  // Thumbnails from the pyramid.
  std::vector<EncodedThumbnail> thumbs;
  try {
    thumbs = EncodeThumbnails(*tif, std::max(result.width, result.height), options);
  } catch (const VError& e) {
    remove_tif();
    return Status::Internal("cannot make thumbnails from the pyramid: " + TakeVipsError(e));
  }
  result.timings.thumbnails_ms = clock.LapMs();

  // Remote storage: the pyramid's TIFF structure goes beside it (blob/tiff_structure.h).
  if (blobs.IsRemote()) {
    Result<std::vector<ByteExtent>> structure = ReadTiffStructure(*tif);
    if (structure.ok()) result.structure = std::move(*structure);
  }
  result.pyramid_path = *tif;
  result.thumbnails = std::move(thumbs);
  return result;
}

Result<ProcessedImage> StoreConvertedImage(ConvertedImage image, BlobStore& blobs,
                                           const std::string& prefix) {
  Stopwatch clock;
  ProcessedImage result;
  result.width = image.width;
  result.height = image.height;
  result.timings = image.timings;
  if (image.pyramid_path.empty()) return Status::Internal("the converted pyramid is gone");
  QUIRE_RETURN_IF_ERROR(blobs.PutFile(PyramidKey(prefix), image.pyramid_path));
  image.pyramid_path.clear();  // consumed by the store
  if (image.structure)
    QUIRE_RETURN_IF_ERROR(StorePyramidStructure(blobs, prefix, *image.structure));
  QUIRE_RETURN_IF_ERROR(StoreThumbnails(blobs, prefix, image.thumbnails, &result.thumbnails));
  result.timings.store_ms = clock.LapMs();
  return result;
}

Result<ProcessedImage> ProcessImage(const std::string& source_path, const ProcessOptions& options,
                                    BlobStore& blobs, const std::string& prefix) {
  Result<ConvertedImage> converted = ConvertImage(source_path, options, blobs);
  if (!converted.ok()) return converted.status();
  return StoreConvertedImage(std::move(*converted), blobs, prefix);
}

Result<std::vector<ThumbnailSize>> StoreFrameThumbnails(const std::string& frame_path,
                                                        const ProcessOptions& options,
                                                        BlobStore& blobs,
                                                        const std::string& prefix) {
  if (!InitVips()) return Status::Internal("libvips failed to start");
  std::vector<EncodedThumbnail> thumbs;
  try {
    VImage frame = VImage::new_from_file(frame_path.c_str());
    thumbs = EncodeThumbnails(frame_path, std::max(frame.width(), frame.height()), options);
  } catch (const VError& e) {
    return Status::Internal("cannot make thumbnails from the poster frame: " + TakeVipsError(e));
  }
  std::vector<ThumbnailSize> sizes;
  QUIRE_RETURN_IF_ERROR(StoreThumbnails(blobs, prefix, thumbs, &sizes));
  return sizes;
}

Status StoreOriginal(const std::string& source_path, BlobStore& blobs, const std::string& prefix) {
  // PutFile consumes its input, so hand it a second name for the same bytes: a hard link when
  // the scratch directory shares the filesystem, a copy otherwise.
  std::string dir = blobs.ScratchDir();
  std::string path = dir + "/original-XXXXXX";
  int fd = ::mkstemp(path.data());
  if (fd < 0) {
    return Status::IOError("cannot create scratch file in " + dir + ": " + std::strerror(errno));
  }
  ::close(fd);
  ::unlink(path.c_str());
  if (::link(source_path.c_str(), path.c_str()) != 0) {
    std::error_code ec;
    std::filesystem::copy_file(source_path, path, ec);
    if (ec) {
      ::unlink(path.c_str());
      return Status::IOError("cannot copy " + source_path + ": " + ec.message());
    }
  }
  Status st = blobs.PutFile(OriginalKey(prefix), path);
  if (!st.ok()) ::unlink(path.c_str());
  return st;
}

}  // namespace quire
