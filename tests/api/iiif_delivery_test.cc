// IIIF delivery against a live `quire serve` (spec/iiif.md): a 1000×1000 test card of 10×10
// coloured squares is ingested from a file:// origin, then every delivery URL is checked over
// HTTP — info.json 3.0 and 2.1, image requests decoded pixel by pixel (regions, sizes,
// rotations, mirroring, qualities, formats, aligned tiles), the HTTP contract (CORS, OPTIONS,
// HEAD, Link, validators and 304, Cache-Control), every error status, thumbnails and /file.
#include <gtest/gtest.h>
#include <vips/vips8>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <thread>

#include "core/vips_init.h"
#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/quire_process.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using vips::VImage;
using namespace std::chrono_literals;

constexpr int kSide = 1000;   // test card size
constexpr int kSquare = 100;  // each square
constexpr int kGrid = kSide / kSquare;
const std::string kV3Context = "http://iiif.io/api/image/3/context.json";
const std::string kV2Context = "http://iiif.io/api/image/2/context.json";
const std::string kLdJsonV3 =
    "application/ld+json;profile=\"http://iiif.io/api/image/3/context.json\"";

struct Rgb {
  int r, g, b;
};

// Every square has its own colour: red counts columns, green counts rows, blue both.
Rgb SquareColour(int col, int row) {
  return {20 + 23 * col, 20 + 23 * row, 240 - 11 * (col + row)};
}

std::string WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  return path;
}

std::string TestCardPng() {
  EXPECT_TRUE(quire::InitVips());
  VImage card = VImage::black(kSide, kSide, VImage::option()->set("bands", 3))
                    .cast(VIPS_FORMAT_UCHAR)
                    .copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_sRGB))
                    .copy_memory();
  for (int row = 0; row < kGrid; ++row)
    for (int col = 0; col < kGrid; ++col) {
      Rgb c = SquareColour(col, row);
      card.draw_rect({double(c.r), double(c.g), double(c.b)}, col * kSquare, row * kSquare,
                     kSquare, kSquare, VImage::option()->set("fill", true));
    }
  void* buf = nullptr;
  size_t len = 0;
  card.write_to_buffer(".png", &buf, &len);
  std::string out(static_cast<const char*>(buf), len);
  g_free(buf);
  return out;
}

// Decodes a response body; the image is flattened to 8-bit sRGB (alpha kept when present) so
// pixels can be compared whatever the format.
VImage DecodeBody(const std::string& bytes) {
  VImage img = VImage::new_from_buffer(bytes.data(), bytes.size(), "");
  return img;
}

std::vector<double> PixelAt(const VImage& img, int x, int y) { return img.getpoint(x, y); }

// Where the point (sx, sy) of the source image lands in the output of a request with region
// (rx, ry, rw, rh), output size (ow, oh) before rotation, mirroring and a rotation in 90s.
struct Transform {
  double rx, ry, rw, rh;
  int ow, oh;
  bool mirror = false;
  int rotation = 0;

  bool Map(double sx, double sy, double* ox, double* oy) const {
    if (sx < rx || sy < ry || sx >= rx + rw || sy >= ry + rh) return false;
    double u = (sx - rx) * ow / rw, v = (sy - ry) * oh / rh;
    if (mirror) u = ow - u;
    switch (rotation) {
      case 0: *ox = u, *oy = v; break;
      case 90: *ox = oh - v, *oy = u; break;
      case 180: *ox = ow - u, *oy = oh - v; break;
      case 270: *ox = v, *oy = ow - u; break;
      default: return false;
    }
    return true;
  }
  int OutWidth() const { return rotation % 180 == 0 ? ow : oh; }
  int OutHeight() const { return rotation % 180 == 0 ? oh : ow; }
};

// Checks the colour at the centre of every square inside the region (away from its edges).
void ExpectSquares(const VImage& img, const Transform& t, int tolerance, bool gray = false) {
  ASSERT_EQ(img.width(), t.OutWidth());
  ASSERT_EQ(img.height(), t.OutHeight());
  int checked = 0;
  for (int row = 0; row < kGrid; ++row)
    for (int col = 0; col < kGrid; ++col) {
      double cx = col * kSquare + kSquare / 2.0, cy = row * kSquare + kSquare / 2.0;
      // the whole inner half of the square must be in the region
      if (cx - 25 < t.rx || cy - 25 < t.ry || cx + 25 > t.rx + t.rw || cy + 25 > t.ry + t.rh)
        continue;
      double ox, oy;
      if (!t.Map(cx, cy, &ox, &oy)) continue;
      int x = std::clamp(int(ox), 0, img.width() - 1), y = std::clamp(int(oy), 0, img.height() - 1);
      auto p = PixelAt(img, x, y);
      Rgb want = SquareColour(col, row);
      SCOPED_TRACE("square col " + std::to_string(col) + " row " + std::to_string(row) +
                   " at output " + std::to_string(x) + "," + std::to_string(y));
      if (gray) {
        // the same conversion libvips makes, on a single pixel of the source colour
        VImage one = VImage::black(1, 1, VImage::option()->set("bands", 3))
                         .cast(VIPS_FORMAT_UCHAR)
                         .copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_sRGB))
                         .linear({1, 1, 1}, {double(want.r), double(want.g), double(want.b)})
                         .cast(VIPS_FORMAT_UCHAR)
                         .colourspace(VIPS_INTERPRETATION_B_W);
        double g = one.getpoint(0, 0)[0];
        ASSERT_GE(p.size(), 1u);
        EXPECT_NEAR(p[0], g, tolerance);
        if (p.size() >= 3) {
          EXPECT_NEAR(p[1], p[0], 2);
          EXPECT_NEAR(p[2], p[0], 2);
        }
      } else {
        ASSERT_GE(p.size(), 3u);
        EXPECT_NEAR(p[0], want.r, tolerance);
        EXPECT_NEAR(p[1], want.g, tolerance);
        EXPECT_NEAR(p[2], want.b, tolerance);
      }
      ++checked;
    }
  EXPECT_GT(checked, 0) << "the region holds no whole square to check";
}

// A response body fit for a failure message: text as is, binary as its size.
std::string Brief(const HttpResult& r) {
  std::string type = r.Header("content-type");
  if (type.rfind("text/", 0) == 0 || type.find("json") != std::string::npos)
    return r.body.substr(0, 500);
  return "<" + std::to_string(r.body.size()) + " bytes of " + type + ">";
}

int MaxAge(const std::string& cache_control) {
  std::smatch m;
  static const std::regex re("max-age=([0-9]+)");
  if (!std::regex_search(cache_control, m, re)) return -1;
  return std::stoi(m[1].str());
}

class IiifDeliveryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(quire::InitVips());
    dir_ = new TempDir();
    origins_ = dir_->path() + "/origins";
    std::filesystem::create_directories(origins_);
    card_png_ = TestCardPng();
    WriteFile(origins_ + "/squares.png", card_png_);
    notes_ = "Quire test notes: served as is.\n";
    WriteFile(origins_ + "/notes.txt", notes_);

    server_ = new QuireProcess(dir_->path() + "/data",
                               {"--workers", "2", "--origin-file-root", origins_});
    api_ = new Api{server_->url(), server_->admin()};
    customer_ = api_->CreateCustomer("squaresco");
    space_ = api_->CreateSpace(customer_, "cards");
    json card = Member(space_, "card", "file://" + origins_ + "/squares.png", "image/png");
    card["deliveryChannels"] = json::array({json{{"channel", "iiif-img"}, {"policy", "default"}},
                                            json{{"channel", "thumbs"}, {"policy", "default"}},
                                            json{{"channel", "file"}, {"policy", "none"}}});
    json plain = Member(space_, "card-plain", "file://" + origins_ + "/squares.png", "image/png");
    json notes = Member(space_, "notes", "file://" + origins_ + "/notes.txt", "text/plain");
    notes["deliveryChannels"] = json::array({json{{"channel", "file"}}});
    long status = 0;
    json batch = api_->SubmitBatch(customer_, json::array({card, plain, notes}), &status);
    ASSERT_EQ(status, 201) << batch.dump(2);
    json done = api_->WaitForBatch(customer_, batch.at("id"), 60s);
    ASSERT_TRUE(done.contains("finished")) << done.dump(2);
    ASSERT_EQ(done["errors"], 0) << done.dump(2) << "\n" << server_->Log();
    ASSERT_EQ(done["completed"], 3) << done.dump(2);
  }
  static void TearDownTestSuite() {
    if (::testing::Test::HasFailure() && server_) std::cerr << "---- quire log (tail) ----\n"
                                                            << Tail(server_->Log());
    delete api_;
    delete server_;
    delete dir_;
    api_ = nullptr;
    server_ = nullptr;
  }
  static std::string Tail(const std::string& log) {
    return log.size() > 6000 ? log.substr(log.size() - 6000) : log;
  }

  static std::string Base(const std::string& root = "iiif-img", const std::string& id = "card",
                          const std::string& c = "") {
    return server_->url() + "/" + root + "/" + (c.empty() ? std::to_string(customer_) : c) + "/" +
           std::to_string(space_) + "/" + id;
  }
  static std::string V2Base(const std::string& id = "card") {
    return server_->url() + "/iiif-img/v2/" + std::to_string(customer_) + "/" +
           std::to_string(space_) + "/" + id;
  }
  static HttpResult Get(const std::string& url, const std::map<std::string, std::string>& h = {}) {
    return Http("GET", url, "", {}, h);
  }

  // GETs an image request, checks the status and content type, decodes and checks pixels.
  static void CheckImage(const std::string& base, const std::string& request,
                         const std::string& content_type, const Transform& t, int tolerance,
                         bool gray = false) {
    SCOPED_TRACE(request);
    auto r = Get(base + "/" + request);
    ASSERT_EQ(r.status, 200) << Brief(r);
    EXPECT_EQ(r.Header("content-type"), content_type);
    EXPECT_EQ(r.Header("access-control-allow-origin"), "*");
    VImage img = DecodeBody(r.body);
    ExpectSquares(img, t, tolerance, gray);
  }

  static TempDir* dir_;
  static std::string origins_, card_png_, notes_;
  static QuireProcess* server_;
  static Api* api_;
  static int64_t customer_, space_;
};

TempDir* IiifDeliveryTest::dir_ = nullptr;
std::string IiifDeliveryTest::origins_, IiifDeliveryTest::card_png_, IiifDeliveryTest::notes_;
QuireProcess* IiifDeliveryTest::server_ = nullptr;
Api* IiifDeliveryTest::api_ = nullptr;
int64_t IiifDeliveryTest::customer_ = 0, IiifDeliveryTest::space_ = 0;

// ---------------------------------------------------------------- info.json

TEST_F(IiifDeliveryTest, BaseUriRedirectsToInfoJson) {
  for (const std::string& base : {Base(), V2Base(), Base("thumbs")}) {
    auto r = Get(base);
    EXPECT_EQ(r.status, 303) << base << ": " << Brief(r);
    EXPECT_EQ(r.Header("location"), base + "/info.json");
    EXPECT_EQ(r.Header("access-control-allow-origin"), "*") << base;
  }
  // by customer name: stays in the requested form
  auto byname = Get(Base("iiif-img", "card", "squaresco"));
  EXPECT_EQ(byname.status, 303);
  EXPECT_EQ(byname.Header("location"), Base("iiif-img", "card", "squaresco") + "/info.json");
}

TEST_F(IiifDeliveryTest, InfoJson3) {
  auto r = Get(Base() + "/info.json");
  ASSERT_EQ(r.status, 200) << Brief(r);
  EXPECT_EQ(r.Header("content-type"), kLdJsonV3);
  EXPECT_EQ(r.Header("access-control-allow-origin"), "*");
  EXPECT_NE(r.Header("link").find("<http://iiif.io/api/image/3/level2.json>;rel=\"profile\""),
            std::string::npos)
      << r.Header("link");
  EXPECT_FALSE(r.Header("etag").empty());
  EXPECT_FALSE(r.Header("last-modified").empty());
  json j = r.Json();
  ASSERT_TRUE(j.is_object()) << Brief(r);
  EXPECT_EQ(j["@context"], kV3Context);
  EXPECT_EQ(j["id"], Base());
  EXPECT_NE(j["id"].get<std::string>().back(), '/');
  EXPECT_EQ(j["type"], "ImageService3");
  EXPECT_EQ(j["protocol"], "http://iiif.io/api/image");
  EXPECT_EQ(j["profile"], "level2");
  EXPECT_EQ(j["width"], kSide);
  EXPECT_EQ(j["height"], kSide);
  ASSERT_TRUE(j["tiles"].is_array() && j["tiles"].size() == 1) << j.dump(2);
  EXPECT_EQ(j["tiles"][0]["width"], 256);
  EXPECT_EQ(j["tiles"][0].value("height", 256), 256);
  // 1000 px in 256 px tiles: levels 1000, 500, 250 at least (1, 2, 4)
  auto scales = j["tiles"][0]["scaleFactors"];
  ASSERT_TRUE(scales.is_array() && scales.size() >= 3) << j.dump(2);
  for (size_t i = 0; i < scales.size(); ++i) EXPECT_EQ(scales[i], 1 << i);
  // OpenSeadragon reads `sizes` as the pyramid's levels when there are log2(max scale factor)
  // of them or one more; thumbnail sizes are not levels, so that must never line up.
  EXPECT_NE(j["sizes"].size() + 1, scales.size()) << j.dump();
  EXPECT_NE(j["sizes"].size(), scales.size()) << j.dump();
  // sizes: exactly the stored thumbnails (policy boxes 1024, 400, 200, 100 → 1000, 400, …)
  std::set<std::pair<int, int>> sizes;
  for (auto& s : j["sizes"]) sizes.insert(std::make_pair(s["width"].get<int>(), s["height"].get<int>()));
  std::set<std::pair<int, int>> want = {{1000, 1000}, {400, 400}, {200, 200}, {100, 100}};
  EXPECT_EQ(sizes, want) << j["sizes"].dump();
  // and the same as the thumbnail service lists
  json tj = Get(Base("thumbs") + "/info.json").Json();
  std::set<std::pair<int, int>> tsizes;
  for (auto& s : tj["sizes"]) tsizes.insert(std::make_pair(s["width"].get<int>(), s["height"].get<int>()));
  EXPECT_EQ(tsizes, sizes);
  for (const char* k : {"extraQualities", "extraFormats", "extraFeatures"})
    EXPECT_TRUE(j[k].is_array() && !j[k].empty()) << k << ": " << j.dump(2);
  std::set<std::string> qualities(j["extraQualities"].begin(), j["extraQualities"].end());
  EXPECT_TRUE(qualities.count("gray") && qualities.count("bitonal") && qualities.count("color"));
  std::set<std::string> formats(j["extraFormats"].begin(), j["extraFormats"].end());
  // png, regionSquare, … are part of level 2 itself, so not "extra"
  for (const char* f : {"webp", "tif", "gif"}) EXPECT_TRUE(formats.count(f)) << f;
  std::set<std::string> features(j["extraFeatures"].begin(), j["extraFeatures"].end());
  for (const char* f : {"mirroring", "rotationArbitrary", "sizeUpscaling"})
    EXPECT_TRUE(features.count(f)) << f;
  ASSERT_TRUE(j.contains("maxArea") || j.contains("maxWidth")) << j.dump(2);
  if (j.contains("maxArea")) {
    EXPECT_GE(j["maxArea"].get<int64_t>(), int64_t(kSide) * kSide);
  }
  if (j.contains("maxWidth")) {
    EXPECT_GE(j["maxWidth"].get<int64_t>(), kSide);
  }
}

TEST_F(IiifDeliveryTest, InfoJsonAsPlainJsonWhenAsked) {
  auto r = Get(Base() + "/info.json", {{"Accept", "application/json"}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("content-type"), "application/json");
  EXPECT_EQ(r.Json()["id"], Base());
  auto ld = Get(Base() + "/info.json", {{"Accept", "application/ld+json"}});
  EXPECT_EQ(ld.Header("content-type"), kLdJsonV3);
}

TEST_F(IiifDeliveryTest, InfoJson21) {
  auto r = Get(V2Base() + "/info.json");
  ASSERT_EQ(r.status, 200) << Brief(r);
  EXPECT_EQ(r.Header("content-type"),
            "application/ld+json;profile=\"http://iiif.io/api/image/2/context.json\"");
  EXPECT_EQ(r.Header("access-control-allow-origin"), "*");
  EXPECT_NE(r.Header("link").find("<http://iiif.io/api/image/2/level2.json>;rel=\"profile\""),
            std::string::npos)
      << r.Header("link");
  json j = r.Json();
  EXPECT_EQ(j["@context"], kV2Context);
  EXPECT_EQ(j["@id"], V2Base());
  EXPECT_EQ(j["protocol"], "http://iiif.io/api/image");
  ASSERT_TRUE(j["profile"].is_array() && !j["profile"].empty()) << j.dump(2);
  EXPECT_EQ(j["profile"][0], "http://iiif.io/api/image/2/level2.json");
  EXPECT_EQ(j["width"], kSide);
  EXPECT_EQ(j["height"], kSide);
  EXPECT_TRUE(j["tiles"].is_array());
  EXPECT_FALSE(j.contains("id"));
  // and v2 images render
  CheckImage(V2Base(), "full/full/0/default.png", "image/png", {0, 0, 1000, 1000, 1000, 1000}, 2);
  CheckImage(V2Base(), "0,0,500,500/250,/0/default.jpg", "image/jpeg",
             {0, 0, 500, 500, 250, 250}, 16);
  auto link = Get(V2Base() + "/full/500,/0/default.jpg").Header("link");
  EXPECT_NE(link.find("<" + V2Base() + "/full/500,/0/default.jpg>;rel=\"canonical\""),
            std::string::npos)
      << link;
}

TEST_F(IiifDeliveryTest, CustomerByName) {
  std::string base = Base("iiif-img", "card", "squaresco");
  auto r = Get(base + "/info.json");
  ASSERT_EQ(r.status, 200) << Brief(r);
  EXPECT_EQ(r.Json()["id"], base);
  CheckImage(base, "full/200,/0/default.png", "image/png", {0, 0, 1000, 1000, 200, 200}, 4);
  EXPECT_EQ(Get(Base("thumbs", "card", "squaresco") + "/info.json").status, 200);
  EXPECT_EQ(Get(Base("file", "card", "squaresco")).status, 200);
  auto none = Get(Base("iiif-img", "card", "nosuchco") + "/info.json");
  EXPECT_EQ(none.status, 404);
  EXPECT_EQ(none.Header("access-control-allow-origin"), "*");
}

// ---------------------------------------------------------------- image requests

TEST_F(IiifDeliveryTest, RegionsAndSizes) {
  const std::string b = Base();
  CheckImage(b, "full/max/0/default.png", "image/png", {0, 0, 1000, 1000, 1000, 1000}, 2);
  CheckImage(b, "full/500,/0/default.jpg", "image/jpeg", {0, 0, 1000, 1000, 500, 500}, 16);
  CheckImage(b, "full/,400/0/default.png", "image/png", {0, 0, 1000, 1000, 400, 400}, 4);
  CheckImage(b, "full/300,500/0/default.png", "image/png", {0, 0, 1000, 1000, 300, 500}, 4);
  CheckImage(b, "full/!400,300/0/default.png", "image/png", {0, 0, 1000, 1000, 300, 300}, 4);
  CheckImage(b, "full/pct:25/0/default.png", "image/png", {0, 0, 1000, 1000, 250, 250}, 4);
  CheckImage(b, "square/300,/0/default.jpg", "image/jpeg", {0, 0, 1000, 1000, 300, 300}, 16);
  CheckImage(b, "200,300,400,200/200,/0/default.jpg", "image/jpeg", {200, 300, 400, 200, 200, 100},
             16);
  CheckImage(b, "200,300,400,200/max/0/default.png", "image/png", {200, 300, 400, 200, 400, 200},
             2);
  CheckImage(b, "pct:10,10,50,50/250,250/0/default.png", "image/png",
             {100, 100, 500, 500, 250, 250}, 4);
  // cropped at the image edge
  CheckImage(b, "800,900,500,500/max/0/default.png", "image/png", {800, 900, 200, 100, 200, 100},
             2);
  // upscaling with ^
  CheckImage(b, "0,0,100,100/^200,/0/default.png", "image/png", {0, 0, 100, 100, 200, 200}, 2);
  CheckImage(b, "300,300,200,200/^pct:150/0/default.png", "image/png",
             {300, 300, 200, 200, 300, 300}, 2);
  // ^max: as large as maxArea allows
  json info = Get(b + "/info.json").Json();
  auto up = Get(b + "/0,0,100,100/^max/0/default.jpg");
  ASSERT_EQ(up.status, 200) << Brief(up);
  VImage upscaled = DecodeBody(up.body);
  EXPECT_EQ(upscaled.width(), upscaled.height());
  EXPECT_LE(int64_t(upscaled.width()) * upscaled.height(), info["maxArea"].get<int64_t>());
  EXPECT_GT(upscaled.width(), 1000);
}

TEST_F(IiifDeliveryTest, RotationAndMirroring) {
  const std::string b = Base();
  // a 600×300 region, 300×150 out: rotations swap the sides
  auto t = [](bool mirror, int rotation) {
    Transform x{0, 0, 600, 300, 300, 150};
    x.mirror = mirror;
    x.rotation = rotation;
    return x;
  };
  CheckImage(b, "0,0,600,300/300,/90/default.png", "image/png", t(false, 90), 4);
  CheckImage(b, "0,0,600,300/300,/180/default.png", "image/png", t(false, 180), 4);
  CheckImage(b, "0,0,600,300/300,/270/default.jpg", "image/jpeg", t(false, 270), 16);
  CheckImage(b, "0,0,600,300/300,/!0/default.png", "image/png", t(true, 0), 4);
  CheckImage(b, "0,0,600,300/300,/!90/default.png", "image/png", t(true, 90), 4);
  CheckImage(b, "0,0,600,300/300,/!180/default.jpg", "image/jpeg", t(true, 180), 16);

  // arbitrary angle: the bounding box grows; corners are transparent in png, white in jpg
  auto png = Get(b + "/full/200,/45/default.png");
  ASSERT_EQ(png.status, 200) << Brief(png);
  VImage p = DecodeBody(png.body);
  EXPECT_NEAR(p.width(), 283, 2);
  EXPECT_NEAR(p.height(), 283, 2);
  ASSERT_EQ(p.bands(), 4) << "transparent canvas";
  EXPECT_EQ(PixelAt(p, 0, 0)[3], 0);
  EXPECT_EQ(PixelAt(p, p.width() / 2, p.height() / 2)[3], 255);
  auto jpg = Get(b + "/full/200,/45/default.jpg");
  ASSERT_EQ(jpg.status, 200) << Brief(jpg);
  VImage j = DecodeBody(jpg.body);
  EXPECT_NEAR(j.width(), 283, 2);
  auto corner = PixelAt(j, 1, 1);
  for (double v : corner) EXPECT_GE(v, 240) << "white canvas";
}

TEST_F(IiifDeliveryTest, Qualities) {
  const std::string b = Base();
  Transform full200{0, 0, 1000, 1000, 200, 200};
  CheckImage(b, "full/200,/0/color.png", "image/png", full200, 4);
  CheckImage(b, "full/200,/0/gray.png", "image/png", full200, 4, /*gray=*/true);
  CheckImage(b, "full/200,/0/gray.jpg", "image/jpeg", full200, 10, /*gray=*/true);
  auto bitonal = Get(b + "/full/200,/0/bitonal.png");
  ASSERT_EQ(bitonal.status, 200) << Brief(bitonal);
  VImage bi = DecodeBody(bitonal.body);
  EXPECT_EQ(bi.width(), 200);
  // only black and white
  for (int y = 5; y < 200; y += 20)
    for (int x = 5; x < 200; x += 20) {
      double v = PixelAt(bi, x, y)[0];
      EXPECT_TRUE(v == 0 || v == 255) << x << "," << y << ": " << v;
    }
}

TEST_F(IiifDeliveryTest, EveryFormat) {
  const std::string b = Base();
  Transform full200{0, 0, 1000, 1000, 200, 200};
  struct F {
    const char* ext;
    const char* type;
    int tolerance;
  };
  for (F f : {F{"jpg", "image/jpeg", 20}, F{"png", "image/png", 4}, F{"webp", "image/webp", 20},
              F{"tif", "image/tiff", 4}, F{"gif", "image/gif", 16}}) {
    CheckImage(b, std::string("full/200,/0/default.") + f.ext, f.type, full200, f.tolerance);
  }
  // what each format begins with
  EXPECT_EQ(Get(b + "/full/200,/0/default.jpg").body.substr(0, 3), "\xFF\xD8\xFF");
  EXPECT_EQ(Get(b + "/full/200,/0/default.png").body.substr(1, 3), "PNG");
  EXPECT_EQ(Get(b + "/full/200,/0/default.gif").body.substr(0, 3), "GIF");
  EXPECT_EQ(Get(b + "/full/200,/0/default.webp").body.substr(8, 4), "WEBP");
}

TEST_F(IiifDeliveryTest, AlignedTilesAreValidJpegsWithTheRightPixels) {
  const std::string b = Base();
  struct T {
    std::string request;
    Transform t;
  };
  std::vector<T> tiles = {
      {"0,0,256,256/256,/0/default.jpg", {0, 0, 256, 256, 256, 256}},
      {"256,256,256,256/256,/0/default.jpg", {256, 256, 256, 256, 256, 256}},
      {"768,512,232,256/232,/0/default.jpg", {768, 512, 232, 256, 232, 256}},  // edge tile
      {"0,0,512,512/256,/0/default.jpg", {0, 0, 512, 512, 256, 256}},          // scale 2
      {"512,512,488,488/244,/0/default.jpg", {512, 512, 488, 488, 244, 244}},  // scale 2 edge
      {"full/250,/0/default.jpg", {0, 0, 1000, 1000, 250, 250}},               // scale 4
  };
  for (auto& tile : tiles) {
    SCOPED_TRACE(tile.request);
    auto r = Get(b + "/" + tile.request);
    ASSERT_EQ(r.status, 200) << Brief(r);
    EXPECT_EQ(r.Header("content-type"), "image/jpeg");
    ASSERT_GE(r.body.size(), 4u);
    EXPECT_EQ(r.body.substr(0, 2), "\xFF\xD8");
    EXPECT_EQ(r.body.substr(r.body.size() - 2), "\xFF\xD9");
    Decoded d = Decode(r.body);  // every pixel, failing on truncation
    ASSERT_TRUE(d.ok) << d.error;
    ExpectSquares(DecodeBody(r.body), tile.t, 20);
    // a second fetch (cached or not) is byte-identical
    EXPECT_TRUE(Get(b + "/" + tile.request).body == r.body);
  }
}

// ---------------------------------------------------------------- HTTP contract

TEST_F(IiifDeliveryTest, LinkHeadersNameProfileAndCanonicalUrl) {
  struct C {
    std::string request, canonical;
  };
  for (const C& c : std::vector<C>{
           {"full/500,/0/default.jpg", "full/500,500/0/default.jpg"},
           {"full/max/0/default.png", "full/max/0/default.png"},
           {"pct:10,10,50,50/250,250/0/default.png", "100,100,500,500/250,250/0/default.png"},
           {"0,0,256,256/256,/0/default.jpg", "0,0,256,256/max/0/default.jpg"},
           {"0,0,512,512/256,/0/default.jpg", "0,0,512,512/256,256/0/default.jpg"},
           {"full/1000,/0/default.jpg", "full/max/0/default.jpg"},
           {"square/300,/!90/color.webp", "full/300,300/!90/color.webp"},
       }) {
    auto r = Get(Base() + "/" + c.request);
    ASSERT_EQ(r.status, 200) << c.request << ": " << Brief(r);
    std::string link = r.Header("link");
    EXPECT_NE(link.find("<http://iiif.io/api/image/3/level2.json>;rel=\"profile\""),
              std::string::npos)
        << link;
    EXPECT_NE(link.find("<" + Base() + "/" + c.canonical + ">;rel=\"canonical\""),
              std::string::npos)
        << c.request << " → " << link;
    // the canonical URL itself serves the same image
    EXPECT_TRUE(Get(Base() + "/" + c.canonical).body == r.body) << c.canonical;
  }
  // canonical URLs name the customer by id even when asked by name
  auto byname = Get(Base("iiif-img", "card", "squaresco") + "/full/500,/0/default.jpg");
  EXPECT_NE(byname.Header("link").find("<" + Base() + "/full/500,500/0/default.jpg>;rel=\"canonical\""),
            std::string::npos)
      << byname.Header("link");
}

TEST_F(IiifDeliveryTest, CorsOnEveryDeliveryResponse) {
  std::map<std::string, long> urls = {
      {Base(), 303},
      {Base() + "/info.json", 200},
      {V2Base() + "/info.json", 200},
      {Base() + "/full/100,/0/default.jpg", 200},
      {Base() + "/0,0,256,256/256,/0/default.jpg", 200},
      {Base() + "/full/100,/0/default.jp2", 501},
      {Base() + "/nonsense/100,/0/default.jpg", 400},
      {Base("iiif-img", "nope") + "/info.json", 404},
      {Base("iiif-img", "nope") + "/full/max/0/default.jpg", 404},
      {Base() + "/full/max/0", 404},        // no such route shape
      {Base() + "/info.json/extra", 404},
      {Base("thumbs") + "/info.json", 200},
      {Base("thumbs") + "/full/!200,200/0/default.jpg", 200},
      {Base("thumbs") + "/full/333,/0/default.jpg", 404},
      {Base("file"), 200},
      {Base("file", "nope"), 404},
  };
  for (auto& [url, status] : urls) {
    auto r = Get(url, {{"Origin", "https://viewer.example"}});
    EXPECT_EQ(r.status, status) << url << ": " << Brief(r);
    EXPECT_EQ(r.Header("access-control-allow-origin"), "*") << url;
  }
  // 304 too
  auto first = Get(Base() + "/info.json");
  auto again = Get(Base() + "/info.json", {{"If-None-Match", first.Header("etag")}});
  EXPECT_EQ(again.status, 304);
  EXPECT_EQ(again.Header("access-control-allow-origin"), "*");
}

TEST_F(IiifDeliveryTest, OptionsPreflight) {
  for (const std::string& url :
       {Base() + "/info.json", Base() + "/0,0,256,256/256,/0/default.jpg", Base(),
        Base("thumbs") + "/info.json", Base("file"), V2Base() + "/info.json"}) {
    auto r = Http("OPTIONS", url, "", {},
                  {{"Origin", "https://viewer.example"},
                   {"Access-Control-Request-Method", "GET"},
                   {"Access-Control-Request-Headers", "if-none-match"}});
    EXPECT_TRUE(r.status == 204 || r.status == 200) << url << ": " << r.status;
    EXPECT_EQ(r.Header("access-control-allow-origin"), "*") << url;
    EXPECT_NE(r.Header("access-control-allow-methods").find("GET"), std::string::npos) << url;
    std::string allowed = r.Header("access-control-allow-headers");
    std::transform(allowed.begin(), allowed.end(), allowed.begin(), ::tolower);
    EXPECT_NE(allowed.find("if-none-match"), std::string::npos) << url;
  }
}

TEST_F(IiifDeliveryTest, HeadHasHeadersAndNoBody) {
  for (const std::string& url : {Base() + "/info.json", Base() + "/full/200,/0/default.png",
                                 Base("thumbs") + "/full/!100,100/0/default.jpg", Base("file")}) {
    auto get = Get(url);
    ASSERT_EQ(get.status, 200) << url;
    auto head = Http("HEAD", url);
    EXPECT_EQ(head.status, 200) << url;
    EXPECT_TRUE(head.body.empty()) << url;
    EXPECT_EQ(head.Header("content-type"), get.Header("content-type")) << url;
    EXPECT_EQ(head.Header("content-length"), std::to_string(get.body.size())) << url;
    EXPECT_EQ(head.Header("etag"), get.Header("etag")) << url;
    EXPECT_EQ(head.Header("access-control-allow-origin"), "*") << url;
  }
  // errors too
  auto missing = Http("HEAD", Base("iiif-img", "nope") + "/info.json");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.Header("access-control-allow-origin"), "*");
}

TEST_F(IiifDeliveryTest, ValidatorsAndRevalidation) {
  for (const std::string& url :
       {Base() + "/info.json", V2Base() + "/info.json", Base() + "/full/300,/0/default.jpg",
        Base() + "/0,0,256,256/256,/0/default.jpg", Base("thumbs") + "/info.json",
        Base("thumbs") + "/full/!200,200/0/default.jpg", Base("file")}) {
    SCOPED_TRACE(url);
    auto r = Get(url);
    ASSERT_EQ(r.status, 200) << Brief(r);
    std::string etag = r.Header("etag"), modified = r.Header("last-modified");
    ASSERT_FALSE(etag.empty());
    ASSERT_FALSE(modified.empty());
    EXPECT_EQ(etag.front(), '"');
    EXPECT_EQ(Get(url).Header("etag"), etag) << "stable";
    auto inm = Get(url, {{"If-None-Match", etag}});
    EXPECT_EQ(inm.status, 304);
    EXPECT_TRUE(inm.body.empty());
    EXPECT_EQ(inm.Header("etag"), etag);
    EXPECT_EQ(Get(url, {{"If-None-Match", "W/" + etag}}).status, 304) << "weak comparison";
    EXPECT_EQ(Get(url, {{"If-None-Match", "\"x\", " + etag}}).status, 304);
    EXPECT_EQ(Get(url, {{"If-None-Match", "\"something-else\""}}).status, 200);
    EXPECT_EQ(Get(url, {{"If-Modified-Since", modified}}).status, 304);
    EXPECT_EQ(Get(url, {{"If-Modified-Since", "Sat, 01 Jan 2000 00:00:00 GMT"}}).status, 200);
    // If-None-Match wins over If-Modified-Since (RFC 9110 §13.1.3)
    EXPECT_EQ(Get(url, {{"If-None-Match", "\"something-else\""}, {"If-Modified-Since", modified}})
                  .status,
              200);
  }
  // different images and different renders have different tags
  EXPECT_NE(Get(Base() + "/full/300,/0/default.jpg").Header("etag"),
            Get(Base() + "/full/301,/0/default.jpg").Header("etag"));
  EXPECT_NE(Get(Base() + "/info.json").Header("etag"), Get(V2Base() + "/info.json").Header("etag"));
}

TEST_F(IiifDeliveryTest, CacheControl) {
  for (const std::string& url :
       {Base() + "/full/300,/0/default.jpg", Base() + "/0,0,256,256/256,/0/default.jpg",
        Base("thumbs") + "/full/!200,200/0/default.jpg"}) {
    std::string cc = Get(url).Header("cache-control");
    EXPECT_NE(cc.find("public"), std::string::npos) << url << ": " << cc;
    EXPECT_GE(MaxAge(cc), 7 * 86400) << url << ": " << cc;
  }
  std::string info = Get(Base() + "/info.json").Header("cache-control");
  EXPECT_GT(MaxAge(info), 0) << info;
}

// ---------------------------------------------------------------- errors

TEST_F(IiifDeliveryTest, MalformedRequestsAre400) {
  for (const char* bad : {
           "nonsense/max/0/default.jpg",   "0,0,0,10/max/0/default.jpg",
           "2000,2000,10,10/max/0/default.jpg", "0,0,10/max/0/default.jpg",
           "pct:0,0,0,50/max/0/default.jpg",  "full/huge/0/default.jpg",
           "full/0,/0/default.jpg",          "full/2000,/0/default.jpg",  // over full without ^
           "full/pct:200/0/default.jpg",     "full/full/0/default.jpg",   // v3 has no `full` size
           "full/max/361/default.jpg",       "full/max/-1/default.jpg",
           "full/max/ninety/default.jpg",    "full/max/0/sepia.jpg",
           "full/max/0/default.bmp",         "full/max/0/default",
           "full/max/0/default.",            "full/^99999,/0/default.jpg",  // over maxArea
       }) {
    auto r = Get(Base() + "/" + bad);
    EXPECT_EQ(r.status, 400) << bad << ": " << Brief(r);
    EXPECT_EQ(r.Header("access-control-allow-origin"), "*") << bad;
    EXPECT_FALSE(r.body.empty()) << bad;
    EXPECT_LT(r.body.size(), 1000u) << bad;
  }
}

TEST_F(IiifDeliveryTest, UnknownImagesAre404) {
  for (const std::string& url :
       {Base("iiif-img", "nope") + "/info.json", Base("iiif-img", "nope") + "/full/max/0/default.jpg",
        Base("iiif-img", "nope"), server_->url() + "/iiif-img/99/1/card/info.json",
        server_->url() + "/iiif-img/" + std::to_string(customer_) + "/999/card/info.json",
        Base("thumbs", "nope") + "/info.json", Base("file", "nope"),
        // the notes asset has only the file channel
        Base("iiif-img", "notes") + "/info.json", Base("thumbs", "notes") + "/info.json",
        // card-plain has no file channel
        Base("file", "card-plain")}) {
    auto r = Get(url);
    EXPECT_EQ(r.status, 404) << url << ": " << Brief(r);
    EXPECT_EQ(r.Header("access-control-allow-origin"), "*") << url;
  }
}

TEST_F(IiifDeliveryTest, ValidButUnsupportedIs501) {
  for (const char* req : {"full/max/0/default.jp2", "full/200,/0/default.pdf"}) {
    auto r = Get(Base() + "/" + req);
    EXPECT_EQ(r.status, 501) << req << ": " << Brief(r);
    EXPECT_EQ(r.Header("access-control-allow-origin"), "*");
  }
}

TEST_F(IiifDeliveryTest, ImageStillIngestingIs404SayingSo) {
  TempDir dir;
  QuireProcess idle(dir.path() + "/data", {"--workers", "0", "--origin-file-root", origins_});
  Api api{idle.url(), idle.admin()};
  int64_t c = api.CreateCustomer("waiting");
  int64_t s = api.CreateSpace(c, "s");
  long status = 0;
  json b = api.SubmitBatch(
      c, json::array({Member(s, "pending", "file://" + origins_ + "/squares.png", "image/png")}),
      &status);
  ASSERT_EQ(status, 201) << b.dump();
  std::string base = idle.url() + "/iiif-img/" + std::to_string(c) + "/" + std::to_string(s) +
                     "/pending";
  for (const std::string& url : {base + "/info.json", base + "/full/max/0/default.jpg",
                                 idle.url() + "/thumbs/" + std::to_string(c) + "/" +
                                     std::to_string(s) + "/pending/info.json"}) {
    auto r = Get(url);
    EXPECT_EQ(r.status, 404) << url;
    EXPECT_NE(r.body.find("ingest"), std::string::npos) << Brief(r);
    EXPECT_NE(r.body.find("still"), std::string::npos) << Brief(r);
    EXPECT_EQ(r.Header("access-control-allow-origin"), "*");
  }
}

TEST_F(IiifDeliveryTest, FullLargeRenderLaneAnswers503WithRetryAfter) {
  TempDir dir;
  QuireProcess lane(dir.path() + "/data",
                    {"--workers", "1", "--origin-file-root", origins_, "--render-lane", "0"});
  Api api{lane.url(), lane.admin()};
  int64_t c = api.CreateCustomer("busy");
  int64_t s = api.CreateSpace(c, "s");
  long status = 0;
  json b = api.SubmitBatch(
      c, json::array({Member(s, "card", "file://" + origins_ + "/squares.png", "image/png")}),
      &status);
  ASSERT_EQ(status, 201) << b.dump();
  json done = api.WaitForBatch(c, b.at("id"), 60s);
  ASSERT_EQ(done["completed"], 1) << done.dump(2);
  std::string base =
      lane.url() + "/iiif-img/" + std::to_string(c) + "/" + std::to_string(s) + "/card";
  // full-size renders take the lane, which holds none
  for (const char* req : {"full/max/0/default.jpg", "full/max/0/default.png",
                          "full/1000,/90/default.jpg", "0,0,1000,1000/max/0/gray.jpg"}) {
    auto r = Get(base + "/" + req);
    EXPECT_EQ(r.status, 503) << req << ": " << Brief(r);
    EXPECT_FALSE(r.Header("retry-after").empty()) << req;
    EXPECT_GT(std::atoi(r.Header("retry-after").c_str()), 0) << req;
    EXPECT_EQ(r.Header("access-control-allow-origin"), "*");
  }
  // tile traffic and small renders are never turned away
  for (const char* req : {"0,0,256,256/256,/0/default.jpg", "full/250,/0/default.jpg",
                          "256,256,256,256/256,/0/default.png", "full/500,/0/default.jpg"}) {
    auto r = Get(base + "/" + req);
    EXPECT_EQ(r.status, 200) << req << ": " << Brief(r);
  }
  EXPECT_EQ(Get(base + "/info.json").status, 200);
}

// ---------------------------------------------------------------- thumbs and file

TEST_F(IiifDeliveryTest, ThumbnailService) {
  auto info = Get(Base("thumbs") + "/info.json");
  ASSERT_EQ(info.status, 200) << Brief(info);
  EXPECT_EQ(info.Header("access-control-allow-origin"), "*");
  EXPECT_EQ(info.Header("content-type"), kLdJsonV3);
  EXPECT_NE(info.Header("link").find("level0"), std::string::npos) << info.Header("link");
  json j = info.Json();
  EXPECT_EQ(j["@context"], kV3Context);
  EXPECT_EQ(j["id"], Base("thumbs"));
  EXPECT_EQ(j["type"], "ImageService3");
  EXPECT_EQ(j["protocol"], "http://iiif.io/api/image");
  EXPECT_EQ(j["profile"], "level0");
  EXPECT_FALSE(j.contains("tiles"));
  EXPECT_EQ(j["width"], 1000);
  EXPECT_EQ(j["height"], 1000);
  ASSERT_EQ(j["sizes"].size(), 4u) << j.dump(2);

  struct C {
    std::string size;
    int w, h;
  };
  for (const C& c : std::vector<C>{{"!200,200", 200, 200},
                                   {"200,200", 200, 200},
                                   {"400,", 400, 400},
                                   {",100", 100, 100},
                                   {"!100,100", 100, 100},
                                   {"max", 1000, 1000},
                                   {"1000,1000", 1000, 1000}}) {
    SCOPED_TRACE(c.size);
    auto r = Get(Base("thumbs") + "/full/" + c.size + "/0/default.jpg");
    ASSERT_EQ(r.status, 200) << Brief(r);
    EXPECT_EQ(r.Header("content-type"), "image/jpeg");
    EXPECT_EQ(r.Header("access-control-allow-origin"), "*");
    EXPECT_GE(MaxAge(r.Header("cache-control")), 86400);
    ExpectSquares(DecodeBody(r.body), {0, 0, 1000, 1000, c.w, c.h}, c.w >= 200 ? 20 : 30);
  }
  for (const char* size : {"300,", "!300,300", "300,300", "150,150", "pct:50", "^400,"}) {
    auto r = Get(Base("thumbs") + "/full/" + std::string(size) + "/0/default.jpg");
    EXPECT_EQ(r.status == 404 || r.status == 400, true) << size << ": " << r.status;
    if (std::string(size) != "pct:50" && std::string(size) != "^400,") {
      EXPECT_EQ(r.status, 404) << size;
    }
    EXPECT_EQ(r.Header("access-control-allow-origin"), "*");
  }
}

TEST_F(IiifDeliveryTest, FileChannelServesTheOriginalBytes) {
  auto png = Get(Base("file"));
  ASSERT_EQ(png.status, 200) << Brief(png);
  EXPECT_EQ(png.Header("content-type"), "image/png");
  EXPECT_TRUE(png.body == card_png_) << "original bytes";
  EXPECT_EQ(png.Header("access-control-allow-origin"), "*");
  auto notes = Get(Base("file", "notes"));
  ASSERT_EQ(notes.status, 200) << Brief(notes);
  EXPECT_EQ(notes.Header("content-type").rfind("text/plain", 0), 0u) << notes.Header("content-type");
  EXPECT_EQ(notes.body, notes_);
}

}  // namespace
}  // namespace quire::test
