#include <gtest/gtest.h>
#include <jpeglib.h>
#include <tiffio.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <numbers>
#include <thread>
#include <vector>
#include <vips/vips8>

#include "core/vips_init.h"
#include "iiif/renderer.h"
#include "support/test_pyramid.h"

namespace quire::iiif {
namespace {

namespace fs = std::filesystem;
using vips::VImage;

// The IIIF validator's test image: 1000×1000, 10×10 squares of 100×100, each a distinct colour.
struct Rgb {
  int r, g, b;
};
Rgb SquareColour(int col, int row) {
  return {20 + 23 * col, 20 + 23 * row, (col + row) % 2 ? 210 : 40};
}
Rgb ColourAt(double x, double y) { return SquareColour(int(x) / 100, int(y) / 100); }

VImage SquaresImage() {
  std::vector<unsigned char> px(1000 * 1000 * 3);
  for (int y = 0; y < 1000; ++y) {
    for (int x = 0; x < 1000; ++x) {
      Rgb c = ColourAt(x, y);
      unsigned char* p = &px[(size_t(y) * 1000 + x) * 3];
      p[0] = c.r, p[1] = c.g, p[2] = c.b;
    }
  }
  // new_from_memory borrows `px`; copy_memory makes the image own its pixels.
  return VImage::new_from_memory(px.data(), px.size(), 1000, 1000, 3, VIPS_FORMAT_UCHAR)
      .copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_sRGB))
      .copy_memory();
}

class IiifRender : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(InitVips());
    dir_ =
        new fs::path(fs::temp_directory_path() / ("quire-iiif-render-" + std::to_string(getpid())));
    fs::create_directories(*dir_);
    VImage squares = SquaresImage();
    test::WriteTestPyramid(squares, Path("squares.tif"));
    test::WriteTestPyramid(squares, Path("squares-rgb.tif"), /*rgbjpeg=*/true);
    test::WriteTestPyramid(squares.colourspace(VIPS_INTERPRETATION_B_W), Path("squares-grey.tif"));
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string Path(const std::string& name) { return (*dir_ / name).string(); }

  static PyramidInfo Info(const std::string& name = "squares.tif") {
    Result<PyramidInfo> info = ReadPyramidInfo(Path(name));
    EXPECT_TRUE(info.ok()) << info.status().message();
    return info.ok() ? *info : PyramidInfo{};
  }

  static ResolvedRequest Resolve(const std::string& path, ApiVersion v = ApiVersion::kV3,
                                 Limits limits = {}) {
    std::string parts[4];
    size_t start = 0;
    for (int i = 0; i < 3; ++i) {
      size_t slash = path.find('/', start);
      parts[i] = path.substr(start, slash - start);
      start = slash + 1;
    }
    parts[3] = path.substr(start);
    Result<ResolvedRequest> r =
        ResolveImageRequest(v, parts[0], parts[1], parts[2], parts[3], 1000, 1000, limits);
    EXPECT_TRUE(r.ok()) << path << ": " << r.status().message();
    return r.ok() ? *r : ResolvedRequest{};
  }

  // Renders and decodes back into memory.
  static VImage RenderDecoded(const std::string& path, Rendered* raw = nullptr,
                              const std::string& file = "squares.tif", Limits limits = {}) {
    Result<Rendered> out = Render(Path(file), Info(file), Resolve(path, ApiVersion::kV3, limits));
    EXPECT_TRUE(out.ok()) << path << ": " << out.status().message();
    if (!out.ok()) return VImage::black(1, 1);
    if (raw) *raw = *out;
    return VImage::new_from_buffer(out->bytes, "").copy_memory();
  }

  static fs::path* dir_;
};
fs::path* IiifRender::dir_ = nullptr;

::testing::AssertionResult Near(const std::vector<double>& got, Rgb want, int tolerance) {
  if (got.size() < 3) return ::testing::AssertionFailure() << "not a colour pixel";
  int d = std::max({std::abs(int(got[0]) - want.r), std::abs(int(got[1]) - want.g),
                    std::abs(int(got[2]) - want.b)});
  if (d <= tolerance) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "got (" << got[0] << "," << got[1] << "," << got[2] << ") want (" << want.r << ","
         << want.g << "," << want.b << ")";
}

// For every square centre of the source inside `region`, maps it to output pixels with
// `to_output` and checks the colour there. Returns how many squares were checked.
int CheckSquares(const VImage& img, int rx, int ry, int rw, int rh,
                 const std::function<std::pair<double, double>(double, double)>& to_output,
                 int tolerance = 16) {
  int checked = 0;
  for (int row = 0; row < 10; ++row) {
    for (int col = 0; col < 10; ++col) {
      double cx = col * 100 + 50, cy = row * 100 + 50;
      if (cx < rx + 10 || cy < ry + 10 || cx > rx + rw - 10 || cy > ry + rh - 10) continue;
      auto [ox, oy] = to_output(cx, cy);
      int ix = int(ox), iy = int(oy);
      if (ix < 0 || iy < 0 || ix >= img.width() || iy >= img.height()) continue;
      std::vector<double> px = img.getpoint(ix, iy);
      EXPECT_TRUE(Near(px, SquareColour(col, row), tolerance))
          << "square " << col << "," << row << " at output " << ix << "," << iy;
      ++checked;
    }
  }
  return checked;
}

// Source → output for an unrotated region scaled to w×h.
std::function<std::pair<double, double>(double, double)> Scaled(int rx, int ry, int rw, int rh,
                                                                int w, int h) {
  return [=](double x, double y) { return std::pair{(x - rx) * w / rw, (y - ry) * h / rh}; };
}

TEST_F(IiifRender, ReadsRealLevelSizes) {
  PyramidInfo info = Info();
  EXPECT_EQ(info.width, 1000);
  EXPECT_EQ(info.height, 1000);
  EXPECT_EQ(info.tile_width, 256);
  EXPECT_EQ(info.tile_height, 256);
  ASSERT_GE(info.levels.size(), 3u);
  EXPECT_EQ(info.levels[0], std::pair(1000, 1000));
  EXPECT_EQ(info.levels[1], std::pair(500, 500));
  EXPECT_EQ(info.levels[2], std::pair(250, 250));
  EXPECT_FALSE(ReadPyramidInfo(Path("missing.tif")).ok());
}

TEST_F(IiifRender, FullImage) {
  Rendered raw;
  VImage img = RenderDecoded("full/max/0/default.jpg", &raw);
  EXPECT_EQ(raw.content_type, "image/jpeg");
  EXPECT_EQ(img.width(), 1000);
  EXPECT_EQ(img.height(), 1000);
  EXPECT_EQ(CheckSquares(img, 0, 0, 1000, 1000, Scaled(0, 0, 1000, 1000, 1000, 1000)), 100);
}

TEST_F(IiifRender, Regions) {
  VImage a = RenderDecoded("150,250,300,200/max/0/default.jpg");
  EXPECT_EQ(a.width(), 300);
  EXPECT_EQ(a.height(), 200);
  EXPECT_GT(CheckSquares(a, 150, 250, 300, 200, Scaled(150, 250, 300, 200, 300, 200)), 0);

  VImage b = RenderDecoded("pct:20,30,40,10/max/0/default.jpg");
  EXPECT_EQ(b.width(), 400);
  EXPECT_EQ(b.height(), 100);
  EXPECT_EQ(CheckSquares(b, 200, 300, 400, 100, Scaled(200, 300, 400, 100, 400, 100)), 4);

  VImage c = RenderDecoded("square/max/0/default.jpg");
  EXPECT_EQ(c.width(), 1000);

  VImage d = RenderDecoded("850,920,500,500/max/0/default.jpg");  // past the edge: cropped
  EXPECT_EQ(d.width(), 150);
  EXPECT_EQ(d.height(), 80);
  EXPECT_TRUE(Near(d.getpoint(100, 40), SquareColour(9, 9), 16));
  EXPECT_TRUE(Near(d.getpoint(20, 40), SquareColour(8, 9), 16));
}

TEST_F(IiifRender, EverySizeForm) {
  struct Case {
    const char* path;
    int w, h;
  } cases[] = {
      {"full/500,/0/default.jpg", 500, 500},     {"full/,250/0/default.jpg", 250, 250},
      {"full/400,200/0/default.jpg", 400, 200},  {"full/!300,200/0/default.jpg", 200, 200},
      {"full/pct:10/0/default.jpg", 100, 100},   {"full/max/0/default.jpg", 1000, 1000},
      {"full/77,/0/default.jpg", 77, 77},        {"300,300,200,100/150,/0/default.jpg", 150, 75},
      {"full/^1500,/0/default.jpg", 1500, 1500}, {"full/^max/0/default.jpg", 2000, 2000},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path);
    VImage img = RenderDecoded(c.path, nullptr, "squares.tif", Limits{2000, 0, 0});
    ASSERT_EQ(img.width(), c.w);
    ASSERT_EQ(img.height(), c.h);
    ResolvedRequest r = Resolve(c.path, ApiVersion::kV3, Limits{2000, 0, 0});
    EXPECT_GT(CheckSquares(img, r.region.x, r.region.y, r.region.w, r.region.h,
                           Scaled(r.region.x, r.region.y, r.region.w, r.region.h, c.w, c.h),
                           c.w < 200 ? 30 : 16),
              0);
  }
}

TEST_F(IiifRender, RotationsAndMirroring) {
  // 400×200 output of the region 0,0,1000,500: 40×40 squares, 5 rows.
  const int w = 400, h = 200;
  auto base = Scaled(0, 0, 1000, 500, w, h);
  struct Case {
    const char* rotation;
    int out_w, out_h;
    std::function<std::pair<double, double>(double, double)> map;
  } cases[] = {
      {"0", w, h, base},
      {"90", h, w,
       [&](double x, double y) {
         auto [u, v] = base(x, y);
         return std::pair{h - 1 - v, u};
       }},
      {"180", w, h,
       [&](double x, double y) {
         auto [u, v] = base(x, y);
         return std::pair{w - 1 - u, h - 1 - v};
       }},
      {"270", h, w,
       [&](double x, double y) {
         auto [u, v] = base(x, y);
         return std::pair{v, w - 1 - u};
       }},
      {"!0", w, h,
       [&](double x, double y) {
         auto [u, v] = base(x, y);
         return std::pair{w - 1 - u, v};
       }},
      {"!90", h, w,  // mirror first, then rotate
       [&](double x, double y) {
         auto [u, v] = base(x, y);
         u = w - 1 - u;
         return std::pair{h - 1 - v, u};
       }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.rotation);
    VImage img = RenderDecoded(std::string("0,0,1000,500/400,200/") + c.rotation + "/default.jpg");
    ASSERT_EQ(img.width(), c.out_w);
    ASSERT_EQ(img.height(), c.out_h);
    EXPECT_EQ(CheckSquares(img, 0, 0, 1000, 500, c.map), 50);
  }
}

TEST_F(IiifRender, ArbitraryRotationIsClockwiseOnBackground) {
  const double t = 30 * std::numbers::pi / 180;
  // 200×200 output: content rotated clockwise around the centre, bounding box ~273×273.
  VImage png = RenderDecoded("full/200,200/30/default.png");
  const double side = 200 * (std::cos(t) + std::sin(t));
  EXPECT_NEAR(png.width(), side, 2);
  EXPECT_NEAR(png.height(), side, 2);
  ASSERT_EQ(png.bands(), 4);
  EXPECT_EQ(png.getpoint(0, 0)[3], 0);      // transparent corner
  auto rotated = [&](double x, double y) {  // source → output
    double u = x / 5 - 100, v = y / 5 - 100;
    return std::pair{u * std::cos(t) - v * std::sin(t) + png.width() / 2.0,
                     u * std::sin(t) + v * std::cos(t) + png.height() / 2.0};
  };
  EXPECT_EQ(CheckSquares(png, 0, 0, 1000, 1000, rotated, 20), 100);

  VImage jpg = RenderDecoded("full/200,200/30/default.jpg");
  ASSERT_EQ(jpg.bands(), 3);
  EXPECT_TRUE(Near(jpg.getpoint(1, 1), Rgb{255, 255, 255}, 8));  // white corner
  ASSERT_NEAR(jpg.width(), png.width(), 1);
  EXPECT_EQ(CheckSquares(jpg, 0, 0, 1000, 1000, rotated, 20), 100);
}

TEST_F(IiifRender, GrayAndBitonal) {
  VImage gray = RenderDecoded("full/200,/0/gray.png");
  EXPECT_EQ(gray.bands(), 1);
  for (int row = 0; row < 10; ++row) {
    Rgb c = SquareColour(3, row);
    VImage one = (VImage::black(1, 1) + std::vector<double>{double(c.r), double(c.g), double(c.b)})
                     .cast(VIPS_FORMAT_UCHAR)
                     .copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_sRGB));
    double expected = one.colourspace(VIPS_INTERPRETATION_B_W).getpoint(0, 0)[0];
    EXPECT_NEAR(gray.getpoint(70, row * 20 + 10)[0], expected, 4) << row;
  }
  VImage bitonal = RenderDecoded("full/200,/0/bitonal.png");
  EXPECT_EQ(bitonal.bands(), 1);
  VImage neither = (bitonal != 0) & (bitonal != 255);
  EXPECT_EQ(neither.max(), 0);  // every pixel black or white
  EXPECT_EQ(bitonal.min(), 0);
  EXPECT_EQ(bitonal.max(), 255);
  // Dark top-left square, light bottom-right square.
  EXPECT_EQ(bitonal.getpoint(10, 10)[0], 0);
  EXPECT_EQ(bitonal.getpoint(190, 190)[0], 255);
}

TEST_F(IiifRender, EveryFormatDecodes) {
  struct Case {
    const char* ext;
    const char* type;
    const char* loader;
    int tolerance;
  } cases[] = {{"jpg", "image/jpeg", "jpegload_buffer", 16},
               {"png", "image/png", "pngload_buffer", 2},
               {"webp", "image/webp", "webpload_buffer", 16},
               {"tif", "image/tiff", "tiffload_buffer", 2},
               {"gif", "image/gif", "gifload_buffer", 24}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.ext);
    Rendered raw;
    VImage img = RenderDecoded(std::string("100,100,600,400/300,/0/default.") + c.ext, &raw);
    EXPECT_EQ(raw.content_type, c.type);
    EXPECT_STREQ(img.get_string("vips-loader"), c.loader);
    ASSERT_EQ(img.width(), 300);
    ASSERT_EQ(img.height(), 200);
    EXPECT_EQ(
        CheckSquares(img, 100, 100, 600, 400, Scaled(100, 100, 600, 400, 300, 200), c.tolerance),
        24);
  }
}

// Decodes a JPEG with libjpeg itself (not through libvips) to RGB.
std::vector<unsigned char> DecodeWithLibjpeg(const std::string& bytes, int* w, int* h) {
  jpeg_decompress_struct cinfo;
  jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  *w = int(cinfo.output_width), *h = int(cinfo.output_height);
  std::vector<unsigned char> px(size_t(*w) * *h * 3);
  while (cinfo.output_scanline < cinfo.output_height) {
    unsigned char* row = &px[size_t(cinfo.output_scanline) * *w * 3];
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return px;
}

std::string RawTile(const std::string& file, int level, int x, int y) {
  TIFF* t = TIFFOpen(file.c_str(), "r");
  EXPECT_NE(t, nullptr);
  TIFFSetDirectory(t, level);
  uint32_t tile = TIFFComputeTile(t, x, y, 0, 0);
  uint64_t* counts = nullptr;
  TIFFGetField(t, TIFFTAG_TILEBYTECOUNTS, &counts);
  std::string raw(counts[tile], '\0');
  TIFFReadRawTile(t, tile, raw.data(), tmsize_t(raw.size()));
  TIFFClose(t);
  return raw;
}

TEST_F(IiifRender, StoredTileMatchesSlowPathAndStoredBytes) {
  struct Case {
    const char* file;
    const char* path;
    int level, x, y;  // tile origin in level pixels
  } cases[] = {
      {"squares.tif", "256,256,256,256/256,256/0/default.jpg", 0, 256, 256},
      {"squares.tif", "512,0,256,256/256,/0/color.jpg", 0, 512, 0},
      {"squares.tif", "0,0,512,512/256,256/0/default.jpg", 1, 0, 0},
      {"squares-rgb.tif", "256,512,256,256/256,256/0/default.jpg", 0, 256, 512},
      {"squares-grey.tif", "256,256,256,256/max/0/default.jpg", 0, 256, 256},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.file) + " " + c.path);
    PyramidInfo info = Info(c.file);
    ResolvedRequest r = Resolve(c.path);
    Result<std::optional<Rendered>> fast = TryStoredTile(Path(c.file), info, r);
    ASSERT_TRUE(fast.ok()) << fast.status().message();
    ASSERT_TRUE(fast->has_value());
    const std::string& bytes = (*fast)->bytes;
    EXPECT_EQ((*fast)->content_type, "image/jpeg");

    // The stored entropy-coded tile, byte for byte, after the tables.
    std::string raw = RawTile(Path(c.file), c.level, c.x, c.y);
    ASSERT_GT(bytes.size(), raw.size());
    EXPECT_EQ(bytes.substr(bytes.size() - (raw.size() - 2)), raw.substr(2));

    // Same pixels as the slow path, decoded by libvips and by libjpeg directly.
    Result<Rendered> slow = Render(Path(c.file), info, r);
    ASSERT_TRUE(slow.ok());
    VImage a = VImage::new_from_buffer(bytes, "").copy_memory();
    VImage b = VImage::new_from_buffer(slow->bytes, "").copy_memory();
    ASSERT_EQ(a.width(), 256);
    ASSERT_EQ(a.height(), 256);
    ASSERT_EQ(a.bands(), b.bands());
    VImage diff = (a - b).abs();
    EXPECT_LT(diff.avg(), 2.0);
    EXPECT_LT(diff.max(), 40);

    int w = 0, h = 0;
    std::vector<unsigned char> px = DecodeWithLibjpeg(bytes, &w, &h);
    ASSERT_EQ(w, 256);
    ASSERT_EQ(h, 256);
    if (a.bands() == 3) {
      // Colours right: compare the libjpeg decode with the source squares at square centres.
      int s = c.level == 0 ? 1 : 2;
      for (int ty = 50; ty < 256; ty += 100 / s) {
        for (int tx = 50; tx < 256; tx += 100 / s) {
          double sx = (c.x + tx) * s, sy = (c.y + ty) * s;
          if (int(sx) % 100 < 20 || int(sx) % 100 > 80 || int(sy) % 100 < 20 ||
              int(sy) % 100 > 80) {
            continue;
          }
          const unsigned char* p = &px[(size_t(ty) * 256 + tx) * 3];
          EXPECT_TRUE(Near({double(p[0]), double(p[1]), double(p[2])}, ColourAt(sx, sy), 16))
              << tx << "," << ty;
        }
      }
    }
  }
}

TEST_F(IiifRender, StoredTileNotApplicable) {
  PyramidInfo info = Info();
  for (const char* path : {
           "768,768,256,256/232,232/0/default.jpg",  // edge tile: padded in the file
           "768,768,232,232/max/0/default.jpg",      // the cropped edge tile
           "256,256,256,256/256,256/90/default.jpg", "256,256,256,256/256,256/!0/default.jpg",
           "256,256,256,256/256,256/0/gray.jpg", "256,256,256,256/256,256/0/default.png",
           "256,256,256,256/128,128/0/default.jpg", "250,256,256,256/256,256/0/default.jpg",
           "0,0,768,768/256,256/0/default.jpg",      // scale factor 3
           "512,512,512,512/256,256/0/default.jpg",  // level-1 edge tile (level is 500 wide)
       }) {
    SCOPED_TRACE(path);
    Result<std::optional<Rendered>> fast = TryStoredTile(Path("squares.tif"), info, Resolve(path));
    ASSERT_TRUE(fast.ok());
    EXPECT_FALSE(fast->has_value());
  }
}

TEST_F(IiifRender, ConcurrentRenders) {
  PyramidInfo info = Info();
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < 5; ++j) {
        ResolvedRequest r =
            Resolve("256,0,256,256/128,/" + std::to_string(90 * (i % 4)) + "/default.png");
        Result<Rendered> out = Render(Path("squares.tif"), info, r);
        if (!out.ok() || out->bytes.empty()) ++failures[i];
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int f : failures) EXPECT_EQ(f, 0);
}

TEST_F(IiifRender, ErrorsAreStatuses) {
  PyramidInfo info = Info();
  ResolvedRequest r = Resolve("full/max/0/default.jpg");
  Result<Rendered> missing = Render(Path("missing.tif"), info, r);
  EXPECT_FALSE(missing.ok());
  std::FILE* f = std::fopen(Path("junk.tif").c_str(), "wb");
  std::fputs("II*\0junk", f);
  std::fclose(f);
  EXPECT_FALSE(Render(Path("junk.tif"), info, r).ok());
  EXPECT_FALSE(ReadPyramidInfo(Path("junk.tif")).ok());
}

}  // namespace
}  // namespace quire::iiif
