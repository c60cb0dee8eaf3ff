#include "ingest/pyramid_check.h"

#include <sys/stat.h>
#include <tiffio.h>

#include <memory>

namespace quire {

namespace {

Status Incomplete(const std::string& why) {
  return Status::IOError("the written pyramid is incomplete: " + why);
}

std::string Dims(uint32_t w, uint32_t h) { return std::to_string(w) + "x" + std::to_string(h); }

}  // namespace

Status VerifyPyramid(const std::string& path, int width, int height, int tile) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Incomplete("the file is missing");
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);

  // libtiff's complaints go to libvips' error buffer (libvips installs the handlers); the
  // status below says what matters.
  std::unique_ptr<TIFF, void (*)(TIFF*)> tif(TIFFOpen(path.c_str(), "rm"), TIFFClose);
  if (!tif) return Incomplete("not a readable TIFF");

  uint32_t want_w = static_cast<uint32_t>(width), want_h = static_cast<uint32_t>(height);
  const uint32_t t = static_cast<uint32_t>(tile);
  for (int page = 0;; ++page) {
    uint32_t w = 0, h = 0, tw = 0, th = 0;
    TIFFGetField(tif.get(), TIFFTAG_IMAGEWIDTH, &w);
    TIFFGetField(tif.get(), TIFFTAG_IMAGELENGTH, &h);
    if (!TIFFIsTiled(tif.get())) return Incomplete("page " + std::to_string(page) + " is not tiled");
    TIFFGetField(tif.get(), TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(tif.get(), TIFFTAG_TILELENGTH, &th);
    if (w != want_w || h != want_h || tw != t || th != t) {
      return Incomplete("page " + std::to_string(page) + " is " + Dims(w, h) + " in " +
                        Dims(tw, th) + " tiles, expected " + Dims(want_w, want_h) + " in " +
                        Dims(t, t));
    }
    uint64_t* offsets = nullptr;
    uint64_t* counts = nullptr;
    if (!TIFFGetField(tif.get(), TIFFTAG_TILEOFFSETS, &offsets) ||
        !TIFFGetField(tif.get(), TIFFTAG_TILEBYTECOUNTS, &counts)) {
      return Incomplete("page " + std::to_string(page) + " has no tile directory");
    }
    uint32_t tiles = TIFFNumberOfTiles(tif.get());
    for (uint32_t i = 0; i < tiles; ++i) {
      if (counts[i] == 0 || offsets[i] == 0 || offsets[i] + counts[i] > file_size) {
        return Incomplete("tile " + std::to_string(i) + " of page " + std::to_string(page) +
                          " lies outside the file");
      }
    }
    bool last = want_w <= t && want_h <= t;
    bool more = TIFFReadDirectory(tif.get()) == 1;
    if (last) {
      if (more) return Incomplete("pages continue past the one-tile level");
      return Status::Ok();
    }
    if (!more) {
      return Incomplete("it ends after " + std::to_string(page + 1) + " pages at " +
                        Dims(want_w, want_h));
    }
    want_w = std::max<uint32_t>(1, want_w / 2);
    want_h = std::max<uint32_t>(1, want_h / 2);
  }
}

Status UsableAsPyramid(const std::string& path, int width, int height, int tile) {
  Status whole = VerifyPyramid(path, width, height, tile);
  if (!whole.ok()) {
    std::string why = whole.message();
    const std::string lead = "the written pyramid is incomplete: ";
    if (why.rfind(lead, 0) == 0) why = why.substr(lead.size());
    return Status::Invalid("use-original: the origin is not a pyramid Quire can serve as it is (" +
                           why + ")");
  }
  std::unique_ptr<TIFF, void (*)(TIFF*)> tif(TIFFOpen(path.c_str(), "rm"), TIFFClose);
  if (!tif) return Status::Invalid("use-original: the origin is not a readable TIFF");
  for (int page = 0;; ++page) {
    uint16_t compression = 0, bits = 0, samples = 0, planar = PLANARCONFIG_CONTIG;
    TIFFGetField(tif.get(), TIFFTAG_COMPRESSION, &compression);
    TIFFGetFieldDefaulted(tif.get(), TIFFTAG_BITSPERSAMPLE, &bits);
    TIFFGetFieldDefaulted(tif.get(), TIFFTAG_SAMPLESPERPIXEL, &samples);
    TIFFGetFieldDefaulted(tif.get(), TIFFTAG_PLANARCONFIG, &planar);
    if (compression != COMPRESSION_JPEG || bits != 8 || (samples != 1 && samples != 3) ||
        planar != PLANARCONFIG_CONTIG)
      return Status::Invalid("use-original: page " + std::to_string(page) +
                             " is not 8-bit greyscale or RGB in JPEG-compressed tiles");
    if (TIFFReadDirectory(tif.get()) != 1) return Status::Ok();
  }
}

}  // namespace quire
