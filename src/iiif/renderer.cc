#include "iiif/renderer.h"

#include <glib.h>
#include <tiffio.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <memory>
#include <vips/vips8>

namespace quire::iiif {
namespace {

// --- libtiff, with errors captured per handle instead of printed by the global handler ---

struct TiffErrors {
  std::string last;
};

int CaptureTiffError(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
  char buf[512];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  static_cast<TiffErrors*>(user)->last = std::string(module ? module : "tiff") + ": " + buf;
  return 1;  // handled: do not also call the process-wide handler
}

int IgnoreTiffWarning(TIFF*, void*, const char*, const char*, va_list) { return 1; }

struct TiffCloser {
  void operator()(TIFF* t) const { TIFFClose(t); }
};
using TiffPtr = std::unique_ptr<TIFF, TiffCloser>;

Result<TiffPtr> OpenTiff(const std::string& path, TiffErrors* errors) {
  TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetErrorHandlerExtR(opts, CaptureTiffError, errors);
  TIFFOpenOptionsSetWarningHandlerExtR(opts, IgnoreTiffWarning, nullptr);
  // "m": read() instead of mmap (mapping a large file costs more than the few KB read here);
  // "h": read only the header, the caller selects the directory it needs.
  TIFF* tif = TIFFOpenExt(path.c_str(), "rmh", opts);
  TIFFOpenOptionsFree(opts);
  if (!tif) return Status::IOError("cannot open pyramid " + path + ": " + errors->last);
  return TiffPtr(tif);
}

Status SelectLevel(TIFF* t, size_t k, const std::string& path, const TiffErrors& errors) {
  if (!TIFFSetDirectory(t, tdir_t(k))) {
    return Status::IOError("pyramid " + path + " has no level " + std::to_string(k) + ": " +
                           errors.last);
  }
  return Status::Ok();
}

// --- pyramid geometry ---

// How many level-0 pixels one pixel of level k covers, per axis. libvips builds each level by
// 2×2 block averaging, so a level whose size is W/2^k (rounded either way) maps exactly onto
// the 2^k grid; anything else is treated as a plain ratio.
struct LevelScale {
  double x, y;
};

LevelScale ScaleOfLevel(const PyramidInfo& info, size_t k) {
  const auto [lw, lh] = info.levels[k];
  const double p = std::ldexp(1.0, int(k));
  if (std::fabs(lw - info.width / p) < 1 && std::fabs(lh - info.height / p) < 1) return {p, p};
  return {double(info.width) / lw, double(info.height) / lh};
}

bool IsPowerOfTwoLevel(const PyramidInfo& info, size_t k) {
  return ScaleOfLevel(info, k).x == std::ldexp(1.0, int(k)) &&
         ScaleOfLevel(info, k).y == std::ldexp(1.0, int(k));
}

// The smallest level (largest downsample) whose copy of the region still has at least the
// output's pixel dimensions, so the final resize only ever shrinks (or upscales from level 0).
size_t ChooseLevel(const PyramidInfo& info, const ResolvedRequest& r) {
  for (size_t k = info.levels.size(); k-- > 1;) {
    LevelScale s = ScaleOfLevel(info, k);
    if (r.region.w / s.x >= r.width - 1e-6 && r.region.h / s.y >= r.height - 1e-6) return k;
  }
  return 0;
}

// --- libvips steps ---

vips::VImage ResizeExactly(vips::VImage img, int width, int height) {
  if (img.width() == width && img.height() == height) return img;
  img = img.resize(double(width) / img.width(),
                   vips::VImage::option()->set("vscale", double(height) / img.height()));
  // resize rounds its output size; pin it to the exact requested pixels.
  if (img.width() > width || img.height() > height) {
    img = img.extract_area(0, 0, std::min(width, img.width()), std::min(height, img.height()));
  }
  if (img.width() < width || img.height() < height) {
    img = img.embed(0, 0, width, height, vips::VImage::option()->set("extend", VIPS_EXTEND_COPY));
  }
  return img;
}

bool FormatHasAlpha(Format f) { return f != Format::kJpg; }

vips::VImage MirrorAndRotate(vips::VImage img, const ResolvedRequest& r) {
  if (r.mirror) img = img.flip(VIPS_DIRECTION_HORIZONTAL);
  double deg = std::fmod(r.rotation, 360.0);
  if (deg == 0) return img;
  if (deg == 90) return img.rot(VIPS_ANGLE_D90);
  if (deg == 180) return img.rot(VIPS_ANGLE_D180);
  if (deg == 270) return img.rot(VIPS_ANGLE_D270);
  // Arbitrary angle: the output is the bounding box of the rotated content; the corners are
  // transparent where the format allows it, white for jpg (IIIF 3.0 §4.3).
  std::vector<double> background;
  if (FormatHasAlpha(r.format)) {
    img = img.bandjoin_const({255});
    background.assign(img.bands(), 0);
  } else {
    background.assign(img.bands(), 255);
  }
  // vips_rotate turns the image clockwise on screen for positive angles (y points down).
  return img.rotate(deg, vips::VImage::option()
                             ->set("background", background)
                             ->set("interpolate", vips::VInterpolate::new_from_name("bilinear")));
}

vips::VImage ApplyQuality(vips::VImage img, Quality q) {
  if (q == Quality::kDefault || q == Quality::kColor) return img;
  const bool alpha = img.has_alpha();
  vips::VImage alpha_band;
  if (alpha) {
    alpha_band = img.extract_band(img.bands() - 1);
    img = img.extract_band(0, vips::VImage::option()->set("n", img.bands() - 1));
  }
  if (img.bands() >= 3) img = img.colourspace(VIPS_INTERPRETATION_B_W);
  if (q == Quality::kBitonal) {
    img = (img >= 128).copy(vips::VImage::option()->set("interpretation", VIPS_INTERPRETATION_B_W));
  }
  if (alpha) img = img.bandjoin(alpha_band);
  return img;
}

std::string Encode(vips::VImage img, Format f) {
  if (f == Format::kJpg && img.has_alpha()) {
    img = img.flatten(vips::VImage::option()->set("background", std::vector<double>{255}));
  }
  const char* suffix = ".jpg";
  vips::VOption* options = vips::VImage::option()->set("strip", true);
  switch (f) {
    case Format::kJpg:
      options->set("Q", 90);
      break;
    case Format::kPng:
      suffix = ".png";
      break;
    case Format::kWebp:
      suffix = ".webp";
      options->set("Q", 85);
      break;
    case Format::kTif:
      suffix = ".tif";
      options->set("compression", VIPS_FOREIGN_TIFF_COMPRESSION_DEFLATE);
      break;
    case Format::kGif:
      suffix = ".gif";
      break;
  }
  void* buf = nullptr;
  size_t len = 0;
  img.write_to_buffer(suffix, &buf, &len, options);
  std::string out(static_cast<const char*>(buf), len);
  g_free(buf);
  return out;
}

// --- stored tile pass-through ---

// APP14 "Adobe" with transform 0: tells JPEG decoders the three components are RGB, not
// YCbCr. libtiff suppresses this marker when it writes Photometric=RGB JPEG tiles, so without
// it every decoder would assume YCbCr and show false colours.
constexpr unsigned char kAdobeRgbMarker[] = {0xFF, 0xEE, 0x00, 0x0E, 'A',  'd',  'o',  'b',
                                             'e',  0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00};

bool StartsWithSoi(const std::string& s) {
  return s.size() >= 4 && uint8_t(s[0]) == 0xFF && uint8_t(s[1]) == 0xD8;
}
bool EndsWithEoi(const std::string& s) {
  return s.size() >= 4 && uint8_t(s[s.size() - 2]) == 0xFF && uint8_t(s[s.size() - 1]) == 0xD9;
}

}  // namespace

Result<PyramidInfo> ReadPyramidInfo(const std::string& tiff_path) {
  TiffErrors errors;
  Result<TiffPtr> tif = OpenTiff(tiff_path, &errors);
  if (!tif.ok()) return tif.status();
  QUIRE_RETURN_IF_ERROR(SelectLevel(tif->get(), 0, tiff_path, errors));
  PyramidInfo info;
  constexpr int kMaxLevels = 40;
  do {
    TIFF* t = tif->get();
    uint32_t w = 0, h = 0, tw = 0, th = 0;
    if (!TIFFIsTiled(t) || !TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w) ||
        !TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h) || !TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw) ||
        !TIFFGetField(t, TIFFTAG_TILELENGTH, &th) || w == 0 || h == 0 || w > INT32_MAX ||
        h > INT32_MAX) {
      return Status::IOError("not a tiled pyramid: " + tiff_path);
    }
    if (info.levels.empty()) {
      info.width = int(w), info.height = int(h);
      info.tile_width = int(tw), info.tile_height = int(th);
    }
    info.levels.emplace_back(int(w), int(h));
  } while (info.levels.size() < kMaxLevels && TIFFReadDirectory(tif->get()));
  return info;
}

Result<Rendered> Render(const std::string& tiff_path, const PyramidInfo& info,
                        const ResolvedRequest& r) {
  if (info.levels.empty() || r.image_width != info.width || r.image_height != info.height) {
    return Status::Internal("request was not resolved against this pyramid");
  }
  try {
    const size_t k = ChooseLevel(info, r);
    const auto [lw, lh] = info.levels[k];
    const LevelScale s = ScaleOfLevel(info, k);
    vips::VImage level = vips::VImage::new_from_file(
        tiff_path.c_str(),
        vips::VImage::option()->set("page", int(k))->set("access", VIPS_ACCESS_RANDOM));
    if (level.width() != lw || level.height() != lh) {
      return Status::IOError("pyramid changed since its info was read: " + tiff_path);
    }
    // The region in level pixels, edges rounded to the nearest level pixel.
    int x0 = std::clamp(int(std::lround(r.region.x / s.x)), 0, lw - 1);
    int y0 = std::clamp(int(std::lround(r.region.y / s.y)), 0, lh - 1);
    int x1 = std::clamp(int(std::lround((r.region.x + r.region.w) / s.x)), x0 + 1, lw);
    int y1 = std::clamp(int(std::lround((r.region.y + r.region.h) / s.y)), y0 + 1, lh);
    vips::VImage img = level.extract_area(x0, y0, x1 - x0, y1 - y0);
    img = ResizeExactly(img, r.width, r.height);
    img = MirrorAndRotate(img, r);
    img = ApplyQuality(img, r.quality);
    return Rendered{Encode(img, r.format), std::string(ContentType(r.format))};
  } catch (const vips::VError& e) {
    return Status::IOError(std::string("render failed: ") + e.what());
  }
}

Result<std::optional<Rendered>> TryStoredTile(const std::string& tiff_path, const PyramidInfo& info,
                                              const ResolvedRequest& r) {
  const std::optional<Rendered> no;
  const int tw = info.tile_width, th = info.tile_height;
  if (r.mirror || std::fmod(r.rotation, 360.0) != 0 || r.format != Format::kJpg ||
      (r.quality != Quality::kDefault && r.quality != Quality::kColor) || tw <= 0 || th <= 0 ||
      r.width != tw || r.height != th || r.region.w % tw != 0 || r.region.h % th != 0) {
    return no;
  }
  // The level is fixed by the region size: region = one tile at scale factor 2^k.
  const int sf = r.region.w / tw;
  if (r.region.h / th != sf || (sf & (sf - 1)) != 0) return no;
  const size_t k = size_t(std::countr_zero(unsigned(sf)));
  if (k >= info.levels.size() || !IsPowerOfTwoLevel(info, k)) return no;
  const int64_t span_x = int64_t(tw) * sf, span_y = int64_t(th) * sf;
  if (r.region.x % span_x != 0 || r.region.y % span_y != 0) return no;
  const int64_t col = r.region.x / span_x, row = r.region.y / span_y;
  const auto [lw, lh] = info.levels[k];
  // Edge tiles are padded in the file; those need decode + crop.
  if ((col + 1) * tw > lw || (row + 1) * th > lh) return no;

  TiffErrors errors;
  Result<TiffPtr> opened = OpenTiff(tiff_path, &errors);
  if (!opened.ok()) return opened.status();
  TIFF* t = opened->get();
  QUIRE_RETURN_IF_ERROR(SelectLevel(t, k, tiff_path, errors));
  uint16_t compression = 0, planar = PLANARCONFIG_CONTIG, bits = 0, samples = 0, photometric = 0;
  uint32_t ftw = 0, fth = 0;
  TIFFGetField(t, TIFFTAG_COMPRESSION, &compression);
  TIFFGetFieldDefaulted(t, TIFFTAG_PLANARCONFIG, &planar);
  TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &bits);
  TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &samples);
  TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &photometric);
  TIFFGetField(t, TIFFTAG_TILEWIDTH, &ftw);
  TIFFGetField(t, TIFFTAG_TILELENGTH, &fth);
  if (compression != COMPRESSION_JPEG || planar != PLANARCONFIG_CONTIG || bits != 8 ||
      ftw != uint32_t(tw) || fth != uint32_t(th)) {
    return no;
  }
  // A JPEG stream says nothing about its colour space except through markers; decide whether
  // the bare tile decodes to the right colours.
  bool needs_adobe_rgb = false;
  if (samples == 3 && photometric == PHOTOMETRIC_YCBCR) {
    // What libvips writes: YCbCr components 1,2,3 and no marker, which every decoder reads
    // as YCbCr (the JFIF default).
  } else if (samples == 3 && photometric == PHOTOMETRIC_RGB) {
    needs_adobe_rgb = true;
  } else if (samples == 1 && photometric == PHOTOMETRIC_MINISBLACK) {
  } else {
    return no;  // MinIsWhite, CMYK, alpha ...: not passed through as is
  }

  const uint32_t tile = TIFFComputeTile(t, uint32_t(col * tw), uint32_t(row * th), 0, 0);
  uint64_t* byte_counts = nullptr;
  if (!TIFFGetField(t, TIFFTAG_TILEBYTECOUNTS, &byte_counts) || !byte_counts ||
      tile >= TIFFNumberOfTiles(t)) {
    return Status::IOError("cannot locate tile in " + tiff_path + ": " + errors.last);
  }
  const uint64_t size = byte_counts[tile];
  if (size < 4 || size > (64u << 20)) return no;
  std::string raw(size, '\0');
  if (TIFFReadRawTile(t, tile, raw.data(), tmsize_t(size)) != tmsize_t(size)) {
    return Status::IOError("cannot read tile from " + tiff_path + ": " + errors.last);
  }
  if (!StartsWithSoi(raw) || !EndsWithEoi(raw)) return no;

  uint32_t tables_len = 0;
  const void* tables_data = nullptr;
  std::string tables;
  if (TIFFGetField(t, TIFFTAG_JPEGTABLES, &tables_len, &tables_data) && tables_data &&
      tables_len > 0) {
    tables.assign(static_cast<const char*>(tables_data), tables_len);
    if (!StartsWithSoi(tables) || !EndsWithEoi(tables)) return no;
  }

  // SOI [APP14] tables-without-SOI/EOI tile-without-SOI. The tile keeps its own EOI.
  Rendered out;
  out.content_type = "image/jpeg";
  out.bytes.reserve(tables.size() + raw.size() + sizeof kAdobeRgbMarker);
  out.bytes.append("\xFF\xD8", 2);
  if (needs_adobe_rgb) {
    out.bytes.append(reinterpret_cast<const char*>(kAdobeRgbMarker), sizeof kAdobeRgbMarker);
  }
  if (!tables.empty()) out.bytes.append(tables, 2, tables.size() - 4);
  out.bytes.append(raw, 2, std::string::npos);
  return std::optional<Rendered>(std::move(out));
}

}  // namespace quire::iiif
