#include "iiif/renderer.h"

#include "iiif/pyramid_index.h"
#include "iiif/resample.h"

#include <glib.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <memory>
#include <vector>
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

namespace {

// The steps after the region is cut out of its level: shared by both render paths.
Result<Rendered> Finish(vips::VImage img, const ResolvedRequest& r) {
  img = ResizeExactly(img, r.width, r.height);
  img = MirrorAndRotate(img, r);
  img = ApplyQuality(img, r.quality);
  return Rendered{Encode(img, r.format), std::string(ContentType(r.format))};
}

// Decoding a region ourselves holds all of it in memory at once (libvips would stream it):
// only for regions up to this many level pixels.
constexpr int64_t kMaxDirectDecodePixels = 4 * 1024 * 1024;
// Per-thread decode buffer kept between requests up to this size.
constexpr size_t kKeptBufferBytes = 8u << 20;

}  // namespace

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
    return Finish(img, r);
  } catch (const vips::VError& e) {
    return Status::IOError(std::string("render failed: ") + e.what());
  }
}

Result<Rendered> RenderIndexed(const PyramidIndex& index, const ResolvedRequest& r) {
  const PyramidInfo& info = index.info();
  if (info.levels.empty() || r.image_width != info.width || r.image_height != info.height) {
    return Status::Internal("request was not resolved against this pyramid");
  }
  const size_t k = ChooseLevel(info, r);
  const LevelRect rect = RegionOnLevel(info, k, r);
  const int w = rect.x1 - rect.x0, h = rect.y1 - rect.y0;
  const IndexedLevel& L = index.level(k);
  if (!L.jpeg || int64_t(w) * h > kMaxDirectDecodePixels) {
    auto path = index.RenderPath();
    if (!path.ok()) return path.status();
    return Render(*path, info, r);
  }
  const size_t bytes = size_t(w) * size_t(h) * size_t(L.samples);
  thread_local std::unique_ptr<unsigned char[]> kept;
  thread_local size_t kept_size = 0;
  std::unique_ptr<unsigned char[]> own;
  unsigned char* px;
  if (bytes <= kKeptBufferBytes) {
    if (kept_size < bytes) {
      kept.reset(new unsigned char[kKeptBufferBytes]);  // uninitialised: every byte is decoded
      kept_size = kKeptBufferBytes;
    }
    px = kept.get();
  } else {
    own.reset(new unsigned char[bytes]);
    px = own.get();
  }
  Status st = DecodeLevelRect(index, k, rect, px);
  if (st.code() == Code::kUnsupported) {
    auto path = index.RenderPath();
    if (!path.ok()) return path.status();
    return Render(*path, info, r);
  }
  if (!st.ok()) return st;
  // A pure shrink is done here (Lanczos-3, like libvips' default kernel, several times faster
  // than libvips 8.14's reduce); anything else is left to ResizeExactly.
  thread_local std::vector<unsigned char> shrunk;
  int iw = w, ih = h;
  size_t ibytes = bytes;
  if (r.width <= w && r.height <= h && (r.width < w || r.height < h)) {
    ibytes = size_t(r.width) * size_t(r.height) * size_t(L.samples);
    if (shrunk.size() < ibytes) shrunk.resize(ibytes);
    DownscaleLanczos3(px, w, h, L.samples, shrunk.data(), r.width, r.height);
    px = shrunk.data();
    iw = r.width, ih = r.height;
  }
  if (iw == r.width && ih == r.height && !r.mirror && std::fmod(r.rotation, 360.0) == 0 &&
      r.format == Format::kJpg && (r.quality == Quality::kDefault || r.quality == Quality::kColor)) {
    // Nothing left for libvips but the encode: libjpeg with jpegsave's exact settings.
    Rendered out;
    out.content_type = "image/jpeg";
    const bool ok = EncodeJpegLikeRender(px, size_t(iw) * L.samples, iw, ih, L.samples, &out.bytes);
    if (shrunk.size() > kKeptBufferBytes) std::vector<unsigned char>().swap(shrunk);
    if (!ok) return Status::IOError("render failed: jpeg encode");
    return out;
  }
  try {
    // Borrows px: the pipeline below runs to completion before it is reused or freed.
    vips::VImage img =
        vips::VImage::new_from_memory(px, ibytes, iw, ih, L.samples, VIPS_FORMAT_UCHAR)
            .copy(vips::VImage::option()->set(
                "interpretation", L.samples == 1 ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB));
    Result<Rendered> out = Finish(img, r);
    if (shrunk.size() > kKeptBufferBytes) std::vector<unsigned char>().swap(shrunk);
    return out;
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
