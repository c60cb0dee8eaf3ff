// libFuzzer target for the IIIF request parser/resolver (src/iiif/request.cc).
// Input: 6 header bytes (image width, height, limits and API version), then the four path
// segments "region/size/rotation/quality.format". Beyond "no crash, ASan/UBSan clean" it
// checks the resolver's contract: a resolved request lies inside the image and the limits,
// and its canonical path resolves to itself (it is used as a cache key).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "iiif/request.h"

using namespace quire::iiif;
using quire::Result;

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

Result<ResolvedRequest> ResolvePath(ApiVersion v, std::string_view path, int w, int h,
                                    const Limits& limits) {
  std::string_view seg[4];
  for (int i = 0; i < 3; ++i) {
    size_t slash = path.find('/');
    seg[i] = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
  }
  seg[3] = path;
  return ResolveImageRequest(v, seg[0], seg[1], seg[2], seg[3], w, h, limits);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 6) return 0;
  // Sizes from 1 to ~16M pixels a side, skewed towards small images.
  auto side = [](uint8_t a, uint8_t b) {
    int v = (a << 8) | b;
    return 1 + ((v & 0x8000) ? (v & 0x7FFF) * 512 : (v & 0x7FFF));
  };
  const int width = side(data[0], data[1]);
  const int height = side(data[2], data[3]);
  const ApiVersion version = (data[4] & 1) ? ApiVersion::kV2 : ApiVersion::kV3;
  Limits limits;
  switch ((data[4] >> 1) & 3) {
    case 0:
      break;
    case 1:
      limits.max_width = 1 + data[5] * 40;
      break;
    case 2:
      limits.max_area = int64_t(1 + data[5]) * 100000;
      break;
    case 3:
      limits.max_width = 1 + data[5] * 40, limits.max_height = 1 + data[5] * 20;
      break;
  }
  std::string_view path(reinterpret_cast<const char*>(data + 6), size - 6);

  Result<ResolvedRequest> r = ResolvePath(version, path, width, height, limits);
  if (!r.ok()) {
    Check(r.status().code() == quire::Code::kInvalid ||
          r.status().code() == quire::Code::kUnsupported);
    return 0;
  }
  const PixelRect& g = r->region;
  Check(g.x >= 0 && g.y >= 0 && g.w >= 1 && g.h >= 1);
  Check(int64_t(g.x) + g.w <= width && int64_t(g.y) + g.h <= height);
  Check(r->width >= 1 && r->height >= 1);
  if (limits.max_width) Check(r->width <= limits.max_width);
  if (limits.EffectiveMaxHeight()) Check(r->height <= limits.EffectiveMaxHeight());
  if (limits.max_area) Check(int64_t(r->width) * r->height <= limits.max_area);
  if (!limits.Any()) Check(r->width <= g.w && r->height <= g.h);

  std::string canonical = CanonicalPath(*r);
  Result<ResolvedRequest> again = ResolvePath(version, canonical, width, height, limits);
  Check(again.ok());
  Check(CanonicalPath(*again) == canonical);
  Check(again->width == r->width && again->height == r->height);
  Check(again->region.x == g.x && again->region.y == g.y && again->region.w == g.w &&
        again->region.h == g.h);
  (void)ContentType(r->format);
  return 0;
}
