#include "iiif/renderer.h"

#include "iiif/pyramid_index.h"

#include <glib.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <memory>
#include <vips/vips8>

namespace quire::iiif {
namespace {

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

}  // namespace

Result<PyramidInfo> ReadPyramidInfo(const std::string& tiff_path) {
  auto index = PyramidIndex::Open(tiff_path);
  if (!index.ok()) return index.status();
  return (*index)->info();
}

Result<Rendered> Render(const std::string& tiff_path, const PyramidInfo& info,
                        const ResolvedRequest& r) {
  if (info.levels.empty() || r.image_width != info.width || r.image_height != info.height) {
    return Status::Internal("request was not resolved against this pyramid");
  }
  try {
    const size_t k = ChooseLevel(info, r);
    const auto [lw, lh] = info.levels[k];
    // tiffload directly: no loader sniffing (opening the file once per candidate format).
    vips::VImage level = vips::VImage::tiffload(
        tiff_path.c_str(),
        vips::VImage::option()->set("page", int(k))->set("access", VIPS_ACCESS_RANDOM));
    if (level.width() != lw || level.height() != lh) {
      return Status::IOError("pyramid changed since its info was read: " + tiff_path);
    }
    // The region in level pixels, edges rounded to the nearest level pixel.
    const LevelRect rect = RegionOnLevel(info, k, r);
    vips::VImage img = level.extract_area(rect.x0, rect.y0, rect.x1 - rect.x0, rect.y1 - rect.y0);
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
  (void)info;  // the index reads the same directory from the file
  auto index = PyramidIndex::Open(tiff_path);
  if (!index.ok()) return index.status();
  return IndexedStoredTile(**index, r);
}

}  // namespace quire::iiif
