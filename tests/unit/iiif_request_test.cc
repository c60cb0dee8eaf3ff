#include <gtest/gtest.h>

#include <string>

#include "iiif/request.h"

namespace quire::iiif {
namespace {

// Splits "region/size/rotation/quality.format" and resolves it.
Result<ResolvedRequest> Resolve(ApiVersion v, const std::string& path, int w, int h,
                                Limits limits = {}) {
  std::string parts[4];
  size_t start = 0;
  for (int i = 0; i < 3; ++i) {
    size_t slash = path.find('/', start);
    parts[i] = path.substr(start, slash - start);
    start = slash + 1;
  }
  parts[3] = path.substr(start);
  return ResolveImageRequest(v, parts[0], parts[1], parts[2], parts[3], w, h, limits);
}

Result<ResolvedRequest> V3(const std::string& path, int w = 1000, int h = 1000,
                           Limits limits = {}) {
  return Resolve(ApiVersion::kV3, path, w, h, limits);
}
Result<ResolvedRequest> V2(const std::string& path, int w = 1000, int h = 1000,
                           Limits limits = {}) {
  return Resolve(ApiVersion::kV2, path, w, h, limits);
}

struct Expect {
  int x, y, rw, rh, w, h;
};
void ExpectResolved(const Result<ResolvedRequest>& r, Expect e) {
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->region.x, e.x);
  EXPECT_EQ(r->region.y, e.y);
  EXPECT_EQ(r->region.w, e.rw);
  EXPECT_EQ(r->region.h, e.rh);
  EXPECT_EQ(r->width, e.w);
  EXPECT_EQ(r->height, e.h);
}

Code CodeOf(const Result<ResolvedRequest>& r) { return r.status().code(); }

TEST(IiifRequest, Regions) {
  ExpectResolved(V3("full/max/0/default.jpg"), {0, 0, 1000, 1000, 1000, 1000});
  ExpectResolved(V3("square/max/0/default.jpg", 300, 200), {50, 0, 200, 200, 200, 200});
  ExpectResolved(V3("square/max/0/default.jpg", 200, 300), {0, 50, 200, 200, 200, 200});
  ExpectResolved(V3("125,15,120,140/max/0/default.jpg", 300, 200), {125, 15, 120, 140, 120, 140});
  // Examples from the spec (3.0 §4.1): the same regions by percent, and cropped at the edge.
  ExpectResolved(V3("pct:41.6,7.5,40,70/max/0/default.jpg", 300, 200),
                 {125, 15, 120, 140, 120, 140});
  ExpectResolved(V3("125,15,200,200/max/0/default.jpg", 300, 200), {125, 15, 175, 185, 175, 185});
  ExpectResolved(V3("pct:41.6,7.5,66.6,100/max/0/default.jpg", 300, 200),
                 {125, 15, 175, 185, 175, 185});
  ExpectResolved(V3("900,900,99999999999,5/max/0/default.jpg"), {900, 900, 100, 5, 100, 5});
  ExpectResolved(V3("pct:99.99,99.94,500,500/max/0/default.jpg"), {999, 999, 1, 1, 1, 1});
  ExpectResolved(V3("pct:10,10,0.001,0.001/max/0/default.jpg"), {100, 100, 1, 1, 1, 1});
}

TEST(IiifRequest, RegionRejections) {
  EXPECT_EQ(CodeOf(V3("1000,0,10,10/max/0/default.jpg")), Code::kInvalid);  // outside
  EXPECT_EQ(CodeOf(V3("0,1000,10,10/max/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("0,0,0,10/max/0/default.jpg")), Code::kInvalid);  // zero size
  EXPECT_EQ(CodeOf(V3("0,0,10,0/max/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("pct:100,0,10,10/max/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("pct:0,0,0,10/max/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("pct:0,0,1e3,10/max/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("pct:-1,0,10,10/max/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("-1,0,10,10/max/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("1,2,3/max/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("1,2,3,4,5/max/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("1.5,2,3,4/max/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("99999999999999999999,0,1,1/max/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("Full/max/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("/max/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3(" 1,2,3,4/max/0/default.jpg")), Code::kInvalid);
}

TEST(IiifRequest, SizesV3) {
  ExpectResolved(V3("full/500,/0/default.jpg", 1000, 800), {0, 0, 1000, 800, 500, 400});
  ExpectResolved(V3("full/,400/0/default.jpg", 1000, 800), {0, 0, 1000, 800, 500, 400});
  ExpectResolved(V3("full/pct:50/0/default.jpg", 1000, 800), {0, 0, 1000, 800, 500, 400});
  ExpectResolved(V3("full/225,100/0/default.jpg", 300, 200), {0, 0, 300, 200, 225, 100});
  ExpectResolved(V3("full/!225,100/0/default.jpg", 300, 200), {0, 0, 300, 200, 150, 100});
  // !w,h never exceeds the region without ^, and never the box.
  ExpectResolved(V3("full/!2000,2000/0/default.jpg", 300, 200), {0, 0, 300, 200, 300, 200});
  ExpectResolved(V3("full/1000,/0/default.jpg"), {0, 0, 1000, 1000, 1000, 1000});
  // Upscaling with ^, bounded by the limits (spec examples: 300x200 image, maxWidth 360).
  Limits l{360, 0, 0};
  ExpectResolved(V3("full/^max/0/default.jpg", 300, 200, l), {0, 0, 300, 200, 360, 240});
  ExpectResolved(V3("full/^360,/0/default.jpg", 300, 200, l), {0, 0, 300, 200, 360, 240});
  ExpectResolved(V3("full/^,240/0/default.jpg", 300, 200, l), {0, 0, 300, 200, 360, 240});
  ExpectResolved(V3("full/^pct:120/0/default.jpg", 300, 200, l), {0, 0, 300, 200, 360, 240});
  ExpectResolved(V3("full/^360,360/0/default.jpg", 300, 200, l), {0, 0, 300, 200, 360, 360});
  ExpectResolved(V3("full/^!360,360/0/default.jpg", 300, 200, l), {0, 0, 300, 200, 360, 240});
  ExpectResolved(V3("full/^!1000,1000/0/default.jpg", 300, 200, l), {0, 0, 300, 200, 360, 240});
  // ^ forms that do not upscale are fine without limits.
  ExpectResolved(V3("full/^100,/0/default.jpg"), {0, 0, 1000, 1000, 100, 100});
  ExpectResolved(V3("full/^max/0/default.jpg"), {0, 0, 1000, 1000, 1000, 1000});
}

TEST(IiifRequest, MaxRespectsLimits) {
  ExpectResolved(V3("full/max/0/default.jpg", 300, 200, {200, 0, 0}), {0, 0, 300, 200, 200, 133});
  ExpectResolved(V3("full/max/0/default.jpg", 2000, 1000, {4000, 400, 0}),
                 {0, 0, 2000, 1000, 800, 400});
  Result<ResolvedRequest> r = V3("full/max/0/default.jpg", 3000, 2000, {0, 0, 1000000});
  ASSERT_TRUE(r.ok());
  EXPECT_LE(int64_t(r->width) * r->height, 1000000);
  EXPECT_GE(int64_t(r->width) * r->height, 990000);
  ExpectResolved(V2("full/max/0/default.jpg", 300, 200, {200, 0, 0}), {0, 0, 300, 200, 200, 133});
}

TEST(IiifRequest, SizeRejectionsV3) {
  EXPECT_EQ(CodeOf(V3("full/1001,/0/default.jpg")), Code::kInvalid);  // needs ^
  EXPECT_EQ(CodeOf(V3("full/,1001/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("full/1001,10/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("full/pct:101/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("0,0,10,10/11,/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("full/full/0/default.jpg")), Code::kInvalid);  // 2.1 only
  EXPECT_EQ(CodeOf(V3("full/0,/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("full/,0/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("full/pct:0/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("full/pct:0.01/0/default.jpg")), Code::kInvalid);  // < 1 pixel
  EXPECT_EQ(CodeOf(V3("full/1,/0/default.jpg", 5000, 10)), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("full/!100,100/0/default.jpg", 1000, 1)), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("full/,/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("full/!10,/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("full/^^10,/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("full/!^10,10/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("full/10,10,10/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("full/+10,/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("full/99999999999999999999,/0/default.jpg")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("full/pct:1e308/0/default.jpg")), Code::kInvalid);
  // Over the limits.
  EXPECT_EQ(CodeOf(V3("full/^361,/0/default.jpg", 300, 200, {360, 0, 0})), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("full/^9223372036854775807,/0/default.jpg", 300, 200, {360, 0, 0})),
            Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("full/^pct:99999999999/0/default.jpg", 300, 200, {360, 0, 0})),
            Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("full/500,500/0/default.jpg", 1000, 1000, {0, 0, 200000})), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("full/full/0/default.jpg", 1000, 1000, {500, 0, 0})), Code::kInvalid);
  // Upscaling without declared limits is not implemented (501).
  EXPECT_EQ(CodeOf(V3("full/^1001,/0/default.jpg")), Code::kUnsupported);
  EXPECT_EQ(CodeOf(V3("full/^pct:100000000000000000000000/0/default.jpg")), Code::kUnsupported);
  EXPECT_EQ(CodeOf(V3("full/^!2000,2000/0/default.jpg")), Code::kUnsupported);
}

TEST(IiifRequest, SizesV2) {
  ExpectResolved(V2("full/full/0/default.jpg", 300, 200), {0, 0, 300, 200, 300, 200});
  ExpectResolved(V2("full/max/0/default.jpg", 300, 200), {0, 0, 300, 200, 300, 200});
  ExpectResolved(V2("full/150,/0/default.jpg", 300, 200), {0, 0, 300, 200, 150, 100});
  ExpectResolved(V2("full/,150/0/default.jpg", 300, 200), {0, 0, 300, 200, 225, 150});
  ExpectResolved(V2("full/pct:50/0/default.jpg", 300, 200), {0, 0, 300, 200, 150, 100});
  ExpectResolved(V2("full/225,100/0/default.jpg", 300, 200), {0, 0, 300, 200, 225, 100});
  ExpectResolved(V2("full/!225,100/0/default.jpg", 300, 200), {0, 0, 300, 200, 150, 100});
  ExpectResolved(V2("square/full/0/default.jpg", 300, 200), {50, 0, 200, 200, 200, 200});
  // 2.1 scales above full size without ^, within the declared limits.
  Limits l{600, 0, 0};
  ExpectResolved(V2("full/600,/0/default.jpg", 300, 200, l), {0, 0, 300, 200, 600, 400});
  ExpectResolved(V2("full/pct:200/0/default.jpg", 300, 200, l), {0, 0, 300, 200, 600, 400});
  ExpectResolved(V2("full/!1000,1000/0/default.jpg", 300, 200, l), {0, 0, 300, 200, 600, 400});
  // ... and with no limits, !w,h stays at the region size; explicit upscales are 501.
  ExpectResolved(V2("full/!1000,1000/0/default.jpg", 300, 200), {0, 0, 300, 200, 300, 200});
  EXPECT_EQ(CodeOf(V2("full/600,/0/default.jpg", 300, 200)), Code::kUnsupported);
  EXPECT_EQ(CodeOf(V2("full/601,/0/default.jpg", 300, 200, l)), Code::kInvalid);
  EXPECT_EQ(CodeOf(V2("full/^max/0/default.jpg")), Code::kInvalid);  // no ^ in 2.1
  EXPECT_EQ(CodeOf(V2("full/^100,/0/default.jpg")), Code::kInvalid);
}

TEST(IiifRequest, RotationQualityFormat) {
  Result<ResolvedRequest> r = V3("full/max/!22.5/gray.png");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->mirror);
  EXPECT_DOUBLE_EQ(r->rotation, 22.5);
  EXPECT_EQ(r->quality, Quality::kGray);
  EXPECT_EQ(r->format, Format::kPng);
  EXPECT_TRUE(V3("full/max/360/bitonal.webp").ok());
  EXPECT_TRUE(V3("full/max/0.5/color.tif").ok());
  EXPECT_TRUE(V3("full/max/90/default.gif").ok());
  for (const char* bad :
       {"full/max/361/default.jpg", "full/max/-90/default.jpg", "full/max/1e2/default.jpg",
        "full/max//default.jpg", "full/max/!/default.jpg", "full/max/!!90/default.jpg",
        "full/max/9.9.9/default.jpg", "full/max/nan/default.jpg", "full/max/0/grey.jpg",
        "full/max/0/default", "full/max/0/.jpg", "full/max/0/default.", "full/max/0/default.jpeg",
        "full/max/0/default.JPG", "full/max/0/default.exe", "full/max/0/jp2.default"}) {
    EXPECT_EQ(CodeOf(V3(bad)), Code::kInvalid) << bad;
  }
  // Valid IIIF formats we do not produce: 501; but a syntax error elsewhere still wins.
  EXPECT_EQ(CodeOf(V3("full/max/0/default.jp2")), Code::kUnsupported);
  EXPECT_EQ(CodeOf(V2("full/full/0/default.pdf")), Code::kUnsupported);
  EXPECT_EQ(CodeOf(V3("full/max/0/fancy.jp2")), Code::kInvalid);
  EXPECT_EQ(CodeOf(V3("nope/max/0/default.jp2")), Code::kInvalid);
}

std::string Canonical(const Result<ResolvedRequest>& r) {
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? CanonicalPath(*r) : "";
}

TEST(IiifRequest, CanonicalV3) {
  EXPECT_EQ(Canonical(V3("full/max/0/default.jpg")), "full/max/0/default.jpg");
  EXPECT_EQ(Canonical(V3("0,0,1000,1000/1000,1000/0/default.jpg")), "full/max/0/default.jpg");
  EXPECT_EQ(Canonical(V3("pct:0,0,100,100/pct:100/0/default.jpg")), "full/max/0/default.jpg");
  EXPECT_EQ(Canonical(V3("square/max/0/default.jpg")), "full/max/0/default.jpg");
  EXPECT_EQ(Canonical(V3("square/max/0/default.jpg", 300, 200)), "50,0,200,200/max/0/default.jpg");
  EXPECT_EQ(Canonical(V3("full/150,/0/color.png", 300, 200)), "full/150,100/0/color.png");
  EXPECT_EQ(Canonical(V3("full/!225,100/360/gray.jpg", 300, 200)), "full/150,100/360/gray.jpg");
  EXPECT_EQ(Canonical(V3("125,15,200,200/pct:50/!90.50/bitonal.webp", 300, 200)),
            "125,15,175,185/88,93/!90.5/bitonal.webp");
  EXPECT_EQ(Canonical(V3("full/max/000.250/default.jpg")), "full/max/0.25/default.jpg");
  EXPECT_EQ(Canonical(V3("full/max/.5/default.jpg")), "full/max/0.5/default.jpg");
  EXPECT_EQ(Canonical(V3("full/max/90.000/default.jpg")), "full/max/90/default.jpg");
  Limits l{360, 0, 0};
  EXPECT_EQ(Canonical(V3("full/^max/0/default.jpg", 300, 200, l)), "full/^max/0/default.jpg");
  EXPECT_EQ(Canonical(V3("full/^360,/0/default.jpg", 300, 200, l)), "full/^max/0/default.jpg");
  EXPECT_EQ(Canonical(V3("full/^330,/0/default.jpg", 300, 200, l)), "full/^330,220/0/default.jpg");
  EXPECT_EQ(Canonical(V3("full/^300,/0/default.jpg", 300, 200, l)), "full/max/0/default.jpg");
  EXPECT_EQ(Canonical(V3("full/max/0/default.jpg", 300, 200, {200, 0, 0})),
            "full/max/0/default.jpg");
  EXPECT_EQ(Canonical(V3("full/200,133/0/default.jpg", 300, 200, {200, 0, 0})),
            "full/max/0/default.jpg");
}

TEST(IiifRequest, CanonicalV2) {
  EXPECT_EQ(Canonical(V2("full/full/0/default.jpg")), "full/full/0/default.jpg");
  EXPECT_EQ(Canonical(V2("full/max/0/default.jpg")), "full/full/0/default.jpg");
  EXPECT_EQ(Canonical(V2("square/full/0/default.jpg")), "full/full/0/default.jpg");
  EXPECT_EQ(Canonical(V2("full/,100/0/default.jpg", 300, 200)), "full/150,/0/default.jpg");
  EXPECT_EQ(Canonical(V2("full/!225,100/0/default.jpg", 300, 200)), "full/150,/0/default.jpg");
  EXPECT_EQ(Canonical(V2("full/225,100/!0/gray.jpg", 300, 200)), "full/225,100/!0/gray.jpg");
  EXPECT_EQ(Canonical(V2("full/max/0/default.jpg", 300, 200, {200, 0, 0})),
            "full/200,/0/default.jpg");
  EXPECT_EQ(Canonical(V2("0,0,10,10/full/0/default.jpg")), "0,0,10,10/full/0/default.jpg");
}

// Resolving a canonical path gives the same request back: the canonical form is a safe cache
// key.
TEST(IiifRequest, CanonicalIsAFixedPoint) {
  const Limits limits[] = {{}, {360, 0, 0}, {0, 0, 50000}, {500, 300, 0}};
  const char* sizes3[] = {"max",    "^max",    "150,",      ",150",  "pct:33.3", "^pct:150",
                          "100,57", "!100,57", "^!1000,70", "^400,", "7,"};
  const char* sizes2[] = {"full",   "max",     "150,",     ",150", "pct:33.3", "pct:150",
                          "100,57", "!100,57", "!1000,70", "400,", "7,"};
  const char* regions[] = {"full", "square", "10,20,203,101", "pct:10.5,3,50,97.5",
                           "250,100,5000,5000"};
  for (ApiVersion v : {ApiVersion::kV3, ApiVersion::kV2}) {
    for (const Limits& l : limits) {
      for (const char* region : regions) {
        for (const char* size : v == ApiVersion::kV3 ? sizes3 : sizes2) {
          std::string path = std::string(region) + "/" + size + "/!7.25/gray.png";
          Result<ResolvedRequest> r = Resolve(v, path, 300, 200, l);
          if (!r.ok()) continue;
          std::string canonical = CanonicalPath(*r);
          Result<ResolvedRequest> again = Resolve(v, canonical, 300, 200, l);
          ASSERT_TRUE(again.ok()) << path << " -> " << canonical;
          EXPECT_EQ(CanonicalPath(*again), canonical) << path;
          EXPECT_EQ(again->width, r->width) << path;
          EXPECT_EQ(again->height, r->height) << path;
          EXPECT_EQ(again->region.x, r->region.x) << path;
          EXPECT_EQ(again->region.w, r->region.w) << path;
        }
      }
    }
  }
}

}  // namespace
}  // namespace quire::iiif
