#include "iiif/request.h"

#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <optional>
#include <vector>

namespace quire::iiif {
namespace {

// Output sides beyond this cannot be rendered or even represented safely; anything computed
// above it is rejected before it is narrowed to int.
constexpr double kMaxSide = 1'000'000'000.0;

Status Bad(std::string what) { return Status::Invalid(std::move(what)); }

// A non-negative decimal integer: digits only, no sign, no spaces. nullopt if malformed or
// too large for int64 (e.g. "99999999999999999999").
std::optional<int64_t> ParseInteger(std::string_view s) {
  if (s.empty()) return std::nullopt;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// A non-negative decimal per 3.0 §4.7: only digits and at most one ".", at least one digit
// (so no sign, exponent, "inf" or "nan"). nullopt if malformed or not finite.
std::optional<double> ParseDecimal(std::string_view s) {
  if (s.empty()) return std::nullopt;
  int dots = 0, digits = 0;
  for (char c : s) {
    if (c == '.') {
      ++dots;
    } else if (c >= '0' && c <= '9') {
      ++digits;
    } else {
      return std::nullopt;
    }
  }
  if (dots > 1 || digits == 0) return std::nullopt;
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, std::chars_format::fixed);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::vector<std::string_view> SplitCommas(std::string_view s) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t comma = s.find(',', start);
    if (comma == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
}

Result<RegionSpec> ParseRegion(std::string_view s) {
  RegionSpec r;
  if (s == "full") return r;
  if (s == "square") {
    r.kind = RegionKind::kSquare;
    return r;
  }
  bool pct = s.substr(0, 4) == "pct:";
  if (pct) s.remove_prefix(4);
  std::vector<std::string_view> parts = SplitCommas(s);
  if (parts.size() != 4) return Bad("region must be full, square, x,y,w,h or pct:x,y,w,h");
  if (pct) {
    double v[4];
    for (int i = 0; i < 4; ++i) {
      std::optional<double> d = ParseDecimal(parts[i]);
      if (!d) return Bad("region percentages must be non-negative decimal numbers");
      v[i] = *d;
    }
    if (v[2] <= 0 || v[3] <= 0) return Bad("region width and height must be greater than 0");
    r.kind = RegionKind::kPercent;
    r.px = v[0], r.py = v[1], r.pw = v[2], r.ph = v[3];
    return r;
  }
  int64_t v[4];
  for (int i = 0; i < 4; ++i) {
    std::optional<int64_t> n = ParseInteger(parts[i]);
    if (!n) return Bad("region x,y,w,h must be non-negative integers");
    v[i] = *n;
  }
  if (v[2] == 0 || v[3] == 0) return Bad("region width and height must be greater than 0");
  r.kind = RegionKind::kPixels;
  r.x = v[0], r.y = v[1], r.w = v[2], r.h = v[3];
  return r;
}

Result<SizeSpec> ParseSize(ApiVersion version, std::string_view s) {
  SizeSpec z;
  if (version == ApiVersion::kV3 && !s.empty() && s[0] == '^') {
    z.upscale = true;
    s.remove_prefix(1);
  }
  if (s == "max") return z;
  if (s == "full") {
    // 2.1 only; 3.0 replaced it with `max`.
    if (version == ApiVersion::kV3 || z.upscale) return Bad("size full is not valid in 3.0");
    z.kind = SizeKind::kFull;
    return z;
  }
  if (s.substr(0, 4) == "pct:") {
    std::optional<double> n = ParseDecimal(s.substr(4));
    if (!n) return Bad("size pct:n needs a non-negative decimal n");
    if (*n <= 0) return Bad("size pct:n must be greater than 0");
    // 3.0: n > 100 needs `^`. 2.1 allows scaling above full size (bounded by limits).
    if (version == ApiVersion::kV3 && !z.upscale && *n > 100) {
      return Bad("size pct:n above 100 requires ^");
    }
    z.kind = SizeKind::kPercent;
    z.pct = *n;
    return z;
  }
  bool confined = !s.empty() && s[0] == '!';
  if (confined) s.remove_prefix(1);
  std::vector<std::string_view> parts = SplitCommas(s);
  if (parts.size() != 2) return Bad("malformed size");
  std::optional<int64_t> w, h;
  if (!parts[0].empty()) {
    w = ParseInteger(parts[0]);
    if (!w) return Bad("size width must be a non-negative integer");
  }
  if (!parts[1].empty()) {
    h = ParseInteger(parts[1]);
    if (!h) return Bad("size height must be a non-negative integer");
  }
  if ((w && *w == 0) || (h && *h == 0)) return Bad("size width and height must be at least 1");
  if (confined) {
    if (!w || !h) return Bad("size !w,h needs both w and h");
    z.kind = SizeKind::kConfined;
  } else if (w && h) {
    z.kind = SizeKind::kWidthHeight;
  } else if (w) {
    z.kind = SizeKind::kWidth;
  } else if (h) {
    z.kind = SizeKind::kHeight;
  } else {
    return Bad("size needs a width or a height");
  }
  z.w = w.value_or(0);
  z.h = h.value_or(0);
  return z;
}

struct Dims {
  double w, h;
};

// Largest factor the region may be scaled by within the declared limits (+inf if none).
double LimitScale(int rw, int rh, const Limits& limits) {
  double s = INFINITY;
  if (limits.max_width > 0) s = std::min(s, double(limits.max_width) / rw);
  if (limits.EffectiveMaxHeight() > 0) s = std::min(s, double(limits.EffectiveMaxHeight()) / rh);
  if (limits.max_area > 0) s = std::min(s, std::sqrt(double(limits.max_area) / rw / rh));
  return s;
}

bool WithinLimits(int64_t w, int64_t h, const Limits& limits) {
  if (limits.max_width > 0 && w > limits.max_width) return false;
  if (limits.EffectiveMaxHeight() > 0 && h > limits.EffectiveMaxHeight()) return false;
  if (limits.max_area > 0 && w * h > limits.max_area) return false;  // both <= kMaxSide
  return true;
}

// The region scaled by `scale` with sides rounded down, then shrunk by whole pixels until
// inside the limits (guards against floating-point error at the boundary).
Dims ScaledWithin(int rw, int rh, double scale, const Limits& limits) {
  int64_t w = std::max<int64_t>(1, int64_t(std::floor(rw * scale + 1e-9)));
  int64_t h = std::max<int64_t>(1, int64_t(std::floor(rh * scale + 1e-9)));
  for (int i = 0; i < 4 && !WithinLimits(w, h, limits); ++i) {
    if (w > 1) --w;
    if (h > 1) --h;
  }
  return {double(w), double(h)};
}

// `max` (upscale=false) or `^max` (upscale=true).
Dims MaxDims(int rw, int rh, bool upscale, const Limits& limits) {
  double s = LimitScale(rw, rh, limits);
  if (!upscale || !std::isfinite(s)) s = std::min(s, 1.0);
  if (s == 1.0) return {double(rw), double(rh)};
  return ScaledWithin(rw, rh, s, limits);
}

// The other side for an aspect-preserving `w,` or `,h` request.
double HeightForWidth(double w, int rw, int rh) { return std::round(w * rh / rw); }
double WidthForHeight(double h, int rw, int rh) { return std::round(h * rw / rh); }

Result<PixelRect> ResolveRegion(const RegionSpec& r, int W, int H) {
  switch (r.kind) {
    case RegionKind::kFull:
      return PixelRect{0, 0, W, H};
    case RegionKind::kSquare: {
      int side = std::min(W, H);
      return PixelRect{(W - side) / 2, (H - side) / 2, side, side};
    }
    case RegionKind::kPixels: {
      if (r.x >= W || r.y >= H) return Bad("region is entirely outside the image");
      // Cropped at the image edge; x < W so W - x cannot overflow.
      return PixelRect{int(r.x), int(r.y), int(std::min<int64_t>(r.w, W - r.x)),
                       int(std::min<int64_t>(r.h, H - r.y))};
    }
    case RegionKind::kPercent: {
      if (r.px >= 100 || r.py >= 100) return Bad("region is entirely outside the image");
      // Edges are rounded independently so adjacent pct regions tile without gaps. A region
      // that starts inside the image keeps at least one pixel.
      int64_t x0 = std::min<int64_t>(std::llround(r.px * W / 100), W - 1);
      int64_t y0 = std::min<int64_t>(std::llround(r.py * H / 100), H - 1);
      int64_t x1 = std::llround(std::min(r.px + r.pw, 100.0) * W / 100);
      int64_t y1 = std::llround(std::min(r.py + r.ph, 100.0) * H / 100);
      x1 = std::clamp<int64_t>(x1, x0 + 1, W);
      y1 = std::clamp<int64_t>(y1, y0 + 1, H);
      return PixelRect{int(x0), int(y0), int(x1 - x0), int(y1 - y0)};
    }
  }
  return Bad("unknown region");
}

Result<Dims> ResolveSize(const ImageRequest& req, int rw, int rh, const Limits& limits) {
  const SizeSpec& z = req.size;
  const bool v3 = req.version == ApiVersion::kV3;
  // 3.0: only `^` forms may exceed the region. 2.1 has no `^`: upscaling is allowed by any
  // form (2.1 §4.2 "MAY support scaling above the full size"), bounded by the limits below.
  const bool may_upscale = !v3 || z.upscale;
  switch (z.kind) {
    case SizeKind::kMax:
      return MaxDims(rw, rh, v3 && z.upscale, limits);
    case SizeKind::kFull:
      return Dims{double(rw), double(rh)};
    case SizeKind::kWidth:
      if (!may_upscale && z.w > rw) return Bad("size w, is wider than the region; use ^w,");
      if (double(z.w) > kMaxSide) break;
      return Dims{double(z.w), HeightForWidth(double(z.w), rw, rh)};
    case SizeKind::kHeight:
      if (!may_upscale && z.h > rh) return Bad("size ,h is taller than the region; use ^,h");
      if (double(z.h) > kMaxSide) break;
      return Dims{WidthForHeight(double(z.h), rw, rh), double(z.h)};
    case SizeKind::kWidthHeight:
      if (!may_upscale && (z.w > rw || z.h > rh)) {
        return Bad("size w,h is larger than the region; use ^w,h");
      }
      return Dims{double(z.w), double(z.h)};
    case SizeKind::kPercent:
      return Dims{std::round(rw * z.pct / 100), std::round(rh * z.pct / 100)};
    case SizeKind::kConfined: {
      // As large as possible within w,h and the limits; 3.0 without `^` also within the
      // region. 2.1 may upscale within declared limits; with none declared it stays at the
      // region size (best fit, rather than an error, is what viewers expect from !w,h).
      double s = std::min(double(z.w) / rw, double(z.h) / rh);
      if (!v3 && !limits.Any()) s = std::min(s, 1.0);
      if (v3 && !z.upscale) s = std::min(s, 1.0);
      double ls = LimitScale(rw, rh, limits);
      if (s >= ls) return ScaledWithin(rw, rh, ls, limits);
      // Exact on the binding side, rounded (but never past the box) on the other.
      double w, h;
      if (double(z.w) / rw <= double(z.h) / rh && s == double(z.w) / rw) {
        w = double(z.w);
        h = std::min(HeightForWidth(w, rw, rh), double(z.h));
      } else if (s == double(z.h) / rh) {
        h = double(z.h);
        w = std::min(WidthForHeight(h, rw, rh), double(z.w));
      } else {  // capped at the region size
        w = rw, h = rh;
      }
      return Dims{w, h};
    }
  }
  return Dims{INFINITY, INFINITY};
}

bool ParseQuality(std::string_view s, Quality* q) {
  if (s == "default")
    *q = Quality::kDefault;
  else if (s == "color")
    *q = Quality::kColor;
  else if (s == "gray")
    *q = Quality::kGray;
  else if (s == "bitonal")
    *q = Quality::kBitonal;
  else
    return false;
  return true;
}

std::string FormatDegrees(double d) {
  if (d == std::floor(d)) return std::to_string(int64_t(d));  // d in [0, 360]
  // Shortest fixed notation that round-trips: leading 0, no trailing zeros (3.0 §4.7).
  char buf[400];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::fixed);
  if (ec != std::errc()) return std::to_string(d);
  return std::string(buf, end);
}

std::string RectString(const PixelRect& r) {
  return std::to_string(r.x) + "," + std::to_string(r.y) + "," + std::to_string(r.w) + "," +
         std::to_string(r.h);
}

}  // namespace

Result<ImageRequest> ParseImageRequest(ApiVersion version, std::string_view region,
                                       std::string_view size, std::string_view rotation,
                                       std::string_view quality_format) {
  ImageRequest req;
  req.version = version;

  Result<RegionSpec> r = ParseRegion(region);
  if (!r.ok()) return r.status();
  req.region = *r;

  Result<SizeSpec> z = ParseSize(version, size);
  if (!z.ok()) return z.status();
  req.size = *z;

  if (!rotation.empty() && rotation[0] == '!') {
    req.mirror = true;
    rotation.remove_prefix(1);
  }
  std::optional<double> deg = ParseDecimal(rotation);
  if (!deg) return Bad("rotation must be a decimal number of degrees, optionally after !");
  if (*deg > 360) return Bad("rotation must be between 0 and 360");
  req.rotation = *deg;

  size_t dot = quality_format.rfind('.');
  if (dot == std::string_view::npos) return Bad("expected {quality}.{format}");
  if (!ParseQuality(quality_format.substr(0, dot), &req.quality)) {
    return Bad("quality must be default, color, gray or bitonal");
  }
  std::string_view fmt = quality_format.substr(dot + 1);
  if (fmt == "jpg")
    req.format = Format::kJpg;
  else if (fmt == "png")
    req.format = Format::kPng;
  else if (fmt == "webp")
    req.format = Format::kWebp;
  else if (fmt == "tif")
    req.format = Format::kTif;
  else if (fmt == "gif")
    req.format = Format::kGif;
  // IIIF formats we do not produce: a valid request that is not implemented (501). Checked
  // last so that any syntax error elsewhere still wins as a 400.
  else if (fmt == "jp2" || fmt == "pdf")
    return Status::Unsupported("format not supported: " + std::string(fmt));
  else
    return Bad("format must be jpg, png, webp, tif or gif");
  return req;
}

Result<ResolvedRequest> ResolveImageRequest(const ImageRequest& req, int image_width,
                                            int image_height, const Limits& limits) {
  if (image_width < 1 || image_height < 1) return Status::Internal("image has no pixels");
  Result<PixelRect> region = ResolveRegion(req.region, image_width, image_height);
  if (!region.ok()) return region.status();
  const int rw = region->w, rh = region->h;

  Result<Dims> dims = ResolveSize(req, rw, rh, limits);
  if (!dims.ok()) return dims.status();
  double w = dims->w, h = dims->h;

  if (w < 1 || h < 1) return Bad("the requested size is less than one pixel");
  const bool upscaled = w > rw || h > rh;
  if (upscaled && !limits.Any()) {
    // Upscaling is only offered together with declared limits (3.0 §5.7 requires maxWidth or
    // maxArea for sizeUpscaling); without them it is a valid request we do not implement.
    return Status::Unsupported("upscaling is not supported for this image");
  }
  if (w > kMaxSide || h > kMaxSide || !WithinLimits(int64_t(w), int64_t(h), limits)) {
    return Bad("the requested size exceeds maxWidth, maxHeight or maxArea");
  }

  ResolvedRequest out;
  out.version = req.version;
  out.image_width = image_width;
  out.image_height = image_height;
  out.limits = limits;
  out.region = *region;
  out.width = int(w);
  out.height = int(h);
  out.mirror = req.mirror;
  out.rotation = req.rotation;
  out.quality = req.quality;
  out.format = req.format;
  return out;
}

Result<ResolvedRequest> ResolveImageRequest(ApiVersion version, std::string_view region,
                                            std::string_view size, std::string_view rotation,
                                            std::string_view quality_format, int image_width,
                                            int image_height, const Limits& limits) {
  Result<ImageRequest> req = ParseImageRequest(version, region, size, rotation, quality_format);
  if (!req.ok()) return req.status();
  return ResolveImageRequest(*req, image_width, image_height, limits);
}

std::string CanonicalPath(const ResolvedRequest& r) {
  std::string out;
  const PixelRect& g = r.region;
  if (g.x == 0 && g.y == 0 && g.w == r.image_width && g.h == r.image_height) {
    out = "full";
  } else {
    out = RectString(g);
  }
  out += '/';

  const std::string wh = std::to_string(r.width) + "," + std::to_string(r.height);
  if (r.version == ApiVersion::kV3) {
    // `max` / `^max` when the output is exactly that size, else `w,h` or `^w,h` (3.0 §4.8).
    Dims max = MaxDims(g.w, g.h, false, r.limits);
    Dims upmax = MaxDims(g.w, g.h, true, r.limits);
    if (r.width == max.w && r.height == max.h) {
      out += "max";
    } else if (r.upscaled() && r.width == upmax.w && r.height == upmax.h) {
      out += "^max";
    } else {
      out += (r.upscaled() ? "^" : "") + wh;
    }
  } else {
    // 2.1 §4.7: `full` for the unscaled region, `w,` when the aspect ratio is kept (i.e. `w,`
    // resolves to this exact height), `w,h` otherwise.
    if (r.width == g.w && r.height == g.h) {
      out += "full";
    } else if (r.height == HeightForWidth(r.width, g.w, g.h)) {
      out += std::to_string(r.width) + ",";
    } else {
      out += wh;
    }
  }
  out += '/';
  if (r.mirror) out += '!';
  out += FormatDegrees(r.rotation);
  out += '/';
  out += QualityName(r.quality);
  out += '.';
  out += FormatExtension(r.format);
  return out;
}

std::string_view FormatExtension(Format format) {
  switch (format) {
    case Format::kJpg:
      return "jpg";
    case Format::kPng:
      return "png";
    case Format::kWebp:
      return "webp";
    case Format::kTif:
      return "tif";
    case Format::kGif:
      return "gif";
  }
  return "jpg";
}

std::string_view ContentType(Format format) {
  switch (format) {
    case Format::kJpg:
      return "image/jpeg";
    case Format::kPng:
      return "image/png";
    case Format::kWebp:
      return "image/webp";
    case Format::kTif:
      return "image/tiff";
    case Format::kGif:
      return "image/gif";
  }
  return "application/octet-stream";
}

std::string_view QualityName(Quality quality) {
  switch (quality) {
    case Quality::kDefault:
      return "default";
    case Quality::kColor:
      return "color";
    case Quality::kGray:
      return "gray";
    case Quality::kBitonal:
      return "bitonal";
  }
  return "default";
}

}  // namespace quire::iiif
