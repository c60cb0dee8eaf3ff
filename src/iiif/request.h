// IIIF Image API image requests (3.0 and 2.1): parse the four path segments
// `{region}/{size}/{rotation}/{quality}.{format}`, resolve them against one image's size and
// declared limits into concrete pixels, and print the canonical form of the result.
//
// Pure code: no libvips, no JSON, no I/O (the fuzzer builds this file alone). Thread-safe
// (no shared state). Segments must already be percent-decoded by the caller (`%5E` → `^`,
// `%21` → `!`).
//
// Errors: malformed or out-of-range → Status::Invalid (HTTP 400); a well-formed request the
// server does not implement (formats jp2/pdf, upscaling with no declared limits) →
// Status::Unsupported (HTTP 501).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace quire::iiif {

enum class ApiVersion { kV2, kV3 };

// Size limits declared in info.json (`maxWidth`, `maxHeight`, `maxArea`); 0 means "none".
// As in the spec, a missing maxHeight with a maxWidth means maxHeight = maxWidth.
struct Limits {
  int max_width = 0;
  int max_height = 0;
  int64_t max_area = 0;

  int EffectiveMaxHeight() const { return max_height > 0 ? max_height : max_width; }
  bool Any() const { return max_width > 0 || max_height > 0 || max_area > 0; }
};

enum class RegionKind { kFull, kSquare, kPixels, kPercent };
struct RegionSpec {
  RegionKind kind = RegionKind::kFull;
  int64_t x = 0, y = 0, w = 0, h = 0;     // kPixels
  double px = 0, py = 0, pw = 0, ph = 0;  // kPercent
};

enum class SizeKind {
  kMax,          // `max` (and `^max` with upscale)
  kFull,         // v2 only: `full`
  kWidth,        // `w,`
  kHeight,       // `,h`
  kWidthHeight,  // `w,h`
  kConfined,     // `!w,h`
  kPercent,      // `pct:n`
};
struct SizeSpec {
  SizeKind kind = SizeKind::kMax;
  bool upscale = false;  // v3 `^` prefix
  int64_t w = 0, h = 0;
  double pct = 0;
};

enum class Quality { kDefault, kColor, kGray, kBitonal };
enum class Format { kJpg, kPng, kWebp, kTif, kGif };

// The request as written, validated for syntax only.
struct ImageRequest {
  ApiVersion version = ApiVersion::kV3;
  RegionSpec region;
  SizeSpec size;
  bool mirror = false;
  double rotation = 0;  // degrees clockwise, [0, 360]
  Quality quality = Quality::kDefault;
  Format format = Format::kJpg;
};

struct PixelRect {
  int x = 0, y = 0, w = 0, h = 0;
};

// The request in concrete pixels for one image.
struct ResolvedRequest {
  ApiVersion version = ApiVersion::kV3;
  int image_width = 0, image_height = 0;
  Limits limits;
  PixelRect region;           // inside the image, w,h >= 1
  int width = 0, height = 0;  // output size before rotation, >= 1, within limits
  bool mirror = false;
  double rotation = 0;
  Quality quality = Quality::kDefault;
  Format format = Format::kJpg;

  bool upscaled() const { return width > region.w || height > region.h; }
};

Result<ImageRequest> ParseImageRequest(ApiVersion version, std::string_view region,
                                       std::string_view size, std::string_view rotation,
                                       std::string_view quality_format);

// REQUIRES: image_width, image_height >= 1.
Result<ResolvedRequest> ResolveImageRequest(const ImageRequest& request, int image_width,
                                            int image_height, const Limits& limits);

// Parse + resolve in one call.
Result<ResolvedRequest> ResolveImageRequest(ApiVersion version, std::string_view region,
                                            std::string_view size, std::string_view rotation,
                                            std::string_view quality_format, int image_width,
                                            int image_height, const Limits& limits);

// `region/size/rotation/quality.format` per the canonical URI rules of the request's version
// (3.0 §4.8, 2.1 §4.7). Two requests with the same canonical form render the same bytes, so it
// doubles as a cache key (together with the image id and version).
std::string CanonicalPath(const ResolvedRequest& request);

std::string_view FormatExtension(Format format);  // "jpg", ...
std::string_view ContentType(Format format);      // "image/jpeg", ...
std::string_view QualityName(Quality quality);    // "default", ...

}  // namespace quire::iiif
