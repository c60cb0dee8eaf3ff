#include "ingest/processor.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <tiffio.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vips/vips8>

#include "blob/file_blob_store.h"
#include "core/vips_init.h"

namespace quire {
namespace {
namespace fs = std::filesystem;
using vips::VImage;

// The display image used throughout: top-left quadrant red, the rest blue.
VImage Quadrants(int width, int height) {
  VImage xyz = VImage::xyz(width, height);
  VImage mask = (xyz[0] < width / 2) & (xyz[1] < height / 2);
  return mask.ifthenelse(std::vector<double>{255, 0, 0}, std::vector<double>{0, 0, 255})
      .cast(VIPS_FORMAT_UCHAR)
      .copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_sRGB));
}

// Tells all eight orientations apart: top-left red, top-right green, bottom half blue.
VImage Marked(int width, int height) {
  VImage xyz = VImage::xyz(width, height);
  VImage top = xyz[1] < height / 2;
  VImage left = xyz[0] < width / 2;
  VImage top_colour =
      left.ifthenelse(std::vector<double>{255, 0, 0}, std::vector<double>{0, 255, 0});
  return top.ifthenelse(top_colour, std::vector<double>{0, 0, 255})
      .cast(VIPS_FORMAT_UCHAR)
      .copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_sRGB));
}

// The stored pixels that display as `display` under EXIF `orientation`.
VImage StoredFor(const VImage& display, int orientation) {
  switch (orientation) {
    case 2:
      return display.fliphor();
    case 3:
      return display.rot180();
    case 4:
      return display.flipver();
    case 5:
      return display.rot90().fliphor();
    case 6:
      return display.rot270();
    case 7:
      return display.rot270().fliphor();
    case 8:
      return display.rot90();
    default:
      return display;
  }
}

uint32_t Crc32(const std::string& data) {
  uint32_t crc = 0xffffffffu;
  for (unsigned char c : data) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

std::string Be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

std::string PngChunk(const std::string& type, const std::string& data) {
  return Be32(static_cast<uint32_t>(data.size())) + type + data + Be32(Crc32(type + data));
}

struct PyramidLevel {
  uint32_t width, height, tile_width, tile_height;
  uint16_t compression;
  bool tiled;
};

std::vector<PyramidLevel> ReadLevels(const std::string& path) {
  std::vector<PyramidLevel> levels;
  TIFF* tif = TIFFOpen(path.c_str(), "r");
  if (tif == nullptr) return levels;
  do {
    PyramidLevel l{};
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &l.width);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &l.height);
    l.tiled = TIFFIsTiled(tif);
    TIFFGetField(tif, TIFFTAG_TILEWIDTH, &l.tile_width);
    TIFFGetField(tif, TIFFTAG_TILELENGTH, &l.tile_height);
    TIFFGetField(tif, TIFFTAG_COMPRESSION, &l.compression);
    levels.push_back(l);
  } while (TIFFReadDirectory(tif));
  TIFFClose(tif);
  return levels;
}

class ProcessorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(InitVips()); }

  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "quire-proc-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    auto store = FileBlobStore::Open(dir_ + "/blobs");
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Save(const VImage& image, const std::string& name, vips::VOption* opts = nullptr) {
    std::string path = dir_ + "/" + name;
    image.write_to_file(path.c_str(), opts);
    return path;
  }

  Result<ProcessedImage> Process(const std::string& path, const ProcessOptions& o = {}) {
    return ProcessImage(path, o, *store_, kPrefix);
  }

  std::string PyramidPath() { return *store_->LocalPath(PyramidKey(kPrefix)); }

  // Pixel of the full-resolution level of the stored pyramid.
  std::vector<double> PyramidPixel(int x, int y) {
    return VImage::new_from_file(PyramidPath().c_str()).getpoint(x, y);
  }

  static void ExpectRed(const std::vector<double>& p) {
    ASSERT_EQ(p.size(), 3u);
    EXPECT_GT(p[0], 200);
    EXPECT_LT(p[1], 60);
    EXPECT_LT(p[2], 60);
  }
  static void ExpectBlue(const std::vector<double>& p) {
    ASSERT_EQ(p.size(), 3u);
    EXPECT_LT(p[0], 60);
    EXPECT_LT(p[1], 60);
    EXPECT_GT(p[2], 200);
  }

  void ExpectQuadrantsPreserved(int width, int height) {
    ExpectRed(PyramidPixel(width / 4, height / 4));
    ExpectBlue(PyramidPixel(3 * width / 4, 3 * height / 4));
    ExpectBlue(PyramidPixel(3 * width / 4, height / 4));
  }

  static constexpr char kPrefix[] = "1/2/img";
  std::string dir_;
  std::unique_ptr<FileBlobStore> store_;
};

TEST_F(ProcessorTest, JpegMakesPyramidAndThumbnails) {
  std::string src = Save(Quadrants(1200, 800), "src.jpg");
  auto r = Process(src);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->width, 1200);
  EXPECT_EQ(r->height, 800);

  std::vector<PyramidLevel> levels = ReadLevels(PyramidPath());
  ASSERT_GE(levels.size(), 4u);  // 1200, 600, 300, 150 ...
  EXPECT_EQ(levels[0].width, 1200u);
  EXPECT_EQ(levels[0].height, 800u);
  for (size_t k = 0; k < levels.size(); ++k) {
    EXPECT_TRUE(levels[k].tiled) << k;
    EXPECT_EQ(levels[k].tile_width, 256u) << k;
    EXPECT_EQ(levels[k].tile_height, 256u) << k;
    EXPECT_EQ(levels[k].compression, COMPRESSION_JPEG) << k;
    if (k > 0) {
      EXPECT_EQ(levels[k].width, levels[k - 1].width / 2) << k;
      EXPECT_EQ(levels[k].height, levels[k - 1].height / 2) << k;
    }
  }
  EXPECT_LE(levels.back().width, 256u);
  EXPECT_LE(levels.back().height, 256u);
  ExpectQuadrantsPreserved(1200, 800);

  ASSERT_EQ(r->thumbnails.size(), 4u);
  const int expected[4][2] = {{1024, 683}, {400, 267}, {200, 133}, {100, 67}};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(r->thumbnails[i].width, expected[i][0]);
    EXPECT_EQ(r->thumbnails[i].height, expected[i][1]);
    auto bytes = store_->GetBytes(ThumbnailKey(kPrefix, expected[i][0], expected[i][1]));
    ASSERT_TRUE(bytes.ok()) << i;
    VImage thumb = VImage::new_from_buffer(*bytes, "");
    EXPECT_EQ(thumb.width(), expected[i][0]);
    EXPECT_EQ(thumb.height(), expected[i][1]);
    ExpectRed(thumb.getpoint(thumb.width() / 4, thumb.height() / 4));
    ExpectBlue(thumb.getpoint(3 * thumb.width() / 4, 3 * thumb.height() / 4));
  }
  EXPECT_GT(r->timings.pyramid_ms, 0);
  EXPECT_TRUE(fs::is_empty(store_->ScratchDir()));
}

// The two halves the ingest pipeline runs on different threads: converting writes only
// scratch (nothing under the image's prefix), storing publishes it all and empties scratch,
// and a conversion dropped unstored leaves nothing behind.
TEST_F(ProcessorTest, ConvertingStoresNothingUntilTheStoreHalf) {
  std::string src = Save(Quadrants(1200, 800), "src.jpg");
  auto converted = ConvertImage(src, ProcessOptions{}, *store_);
  ASSERT_TRUE(converted.ok()) << converted.status().message();
  EXPECT_EQ(converted->width, 1200);
  ASSERT_EQ(converted->thumbnails.size(), 4u);
  EXPECT_FALSE(converted->structure.has_value()) << "local storage needs no structure blob";
  ASSERT_TRUE(fs::exists(converted->pyramid_path));
  auto listed = store_->List(std::string(kPrefix) + "/");
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty()) << "converting stored " << listed->front().key;

  auto stored = StoreConvertedImage(std::move(*converted), *store_, kPrefix);
  ASSERT_TRUE(stored.ok()) << stored.status().message();
  EXPECT_EQ(stored->width, 1200);
  EXPECT_EQ(stored->height, 800);
  EXPECT_EQ(stored->thumbnails.size(), 4u);
  EXPECT_GT(stored->timings.pyramid_ms, 0);
  ExpectQuadrantsPreserved(1200, 800);
  listed = store_->List(std::string(kPrefix) + "/");
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 5u);  // the pyramid and four thumbnails
  EXPECT_TRUE(fs::is_empty(store_->ScratchDir()));

  // Converted, then dropped: its scratch pyramid goes with it.
  std::string path;
  {
    auto dropped = ConvertImage(src, ProcessOptions{}, *store_);
    ASSERT_TRUE(dropped.ok());
    path = dropped->pyramid_path;
    ConvertedImage moved = std::move(*dropped);
    EXPECT_TRUE(dropped->pyramid_path.empty());
    EXPECT_EQ(moved.pyramid_path, path);
    EXPECT_TRUE(fs::exists(path));
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_TRUE(fs::is_empty(store_->ScratchDir()));
}

TEST_F(ProcessorTest, ThumbnailsNeverUpscaleAndCollapse) {
  std::string src = Save(Quadrants(300, 150), "small.png");
  ProcessOptions o;
  o.thumbnail_sizes = {100, 1024, 400, 2000};
  auto r = Process(src, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->thumbnails.size(), 2u);  // 2000, 1024 and 400 all give 300x150
  EXPECT_EQ(r->thumbnails[0].width, 300);
  EXPECT_EQ(r->thumbnails[0].height, 150);
  EXPECT_EQ(r->thumbnails[1].width, 100);
  EXPECT_EQ(r->thumbnails[1].height, 50);
  EXPECT_TRUE(store_->Exists(ThumbnailKey(kPrefix, 300, 150)));
  EXPECT_TRUE(store_->Exists(ThumbnailKey(kPrefix, 100, 50)));
  std::vector<PyramidLevel> levels = ReadLevels(PyramidPath());
  ASSERT_GE(levels.size(), 1u);
  EXPECT_EQ(levels[0].width, 300u);
}

TEST_F(ProcessorTest, LoadsCommonFormats) {
  VImage q = Quadrants(640, 480);
  for (std::string name : {"a.png", "a.tif", "a.webp", "a.gif", "a.jp2"}) {
    SCOPED_TRACE(name);
    std::string src;
    try {
      src = Save(q, name, name == "a.webp" ? VImage::option()->set("lossless", true) : nullptr);
    } catch (const vips::VError& e) {
      continue;  // this libvips build cannot write the format
    }
    auto r = Process(src);
    if (name == "a.jp2" && !r.ok()) continue;  // jp2k loader may be blocked as untrusted
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->width, 640);
    EXPECT_EQ(r->height, 480);
    ExpectQuadrantsPreserved(640, 480);
  }
}

TEST_F(ProcessorTest, AppliesExifOrientation) {
  // Orientation 6: the stored pixels are the display image turned 90 degrees anticlockwise.
  VImage stored = Quadrants(600, 400).rot270().copy();
  stored.set(VIPS_META_ORIENTATION, 6);
  std::string src = Save(stored, "rotated.jpg");
  ASSERT_EQ(VImage::new_from_file(src.c_str()).width(), 400);
  auto r = Process(src);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->width, 600);
  EXPECT_EQ(r->height, 400);
  EXPECT_EQ(ReadLevels(PyramidPath())[0].width, 600u);
  ExpectQuadrantsPreserved(600, 400);
  EXPECT_EQ(r->thumbnails[1].width, 400);
  EXPECT_EQ(r->thumbnails[1].height, 267);
}

TEST_F(ProcessorTest, AppliesEveryExifOrientation) {
  VImage display = Marked(240, 160);
  for (int orientation = 1; orientation <= 8; ++orientation) {
    SCOPED_TRACE(orientation);
    VImage stored = StoredFor(display, orientation).copy();
    stored.set(VIPS_META_ORIENTATION, orientation);
    // libvips' own autorot agrees with the construction.
    ASSERT_EQ(stored.autorot().width(), 240);
    ASSERT_EQ(stored.autorot().getpoint(200, 40)[1], 255);
    std::string name = std::to_string(orientation);  // (GCC 12 -Wrestrict misfires on "o" + ...)
    name += ".jpg";
    std::string src = Save(stored, name);
    auto r = Process(src);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->width, 240);
    EXPECT_EQ(r->height, 160);
    ExpectRed(PyramidPixel(40, 40));
    std::vector<double> green = PyramidPixel(200, 40);
    EXPECT_GT(green[1], 200);
    EXPECT_LT(green[0], 60);
    ExpectBlue(PyramidPixel(120, 140));
  }
}

TEST_F(ProcessorTest, RotatesLargeImagesThroughScratchTiles) {
  // 18 MB of pixels: over the in-memory threshold, so rotation reads scratch tiles.
  VImage stored = StoredFor(Marked(3000, 2000), 8).copy();
  stored.set(VIPS_META_ORIENTATION, 8);
  std::string src = Save(stored, "big-rotated.jpg");
  auto r = Process(src);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->width, 3000);
  EXPECT_EQ(r->height, 2000);
  ExpectRed(PyramidPixel(500, 500));
  std::vector<double> green = PyramidPixel(2500, 500);
  EXPECT_GT(green[1], 200);
  ExpectBlue(PyramidPixel(1500, 1700));
  EXPECT_TRUE(fs::is_empty(store_->ScratchDir()));
}

TEST_F(ProcessorTest, SixteenBitPngBecomesEightBit) {
  VImage q16 = (Quadrants(320, 240).cast(VIPS_FORMAT_USHORT) * 257)
                   .cast(VIPS_FORMAT_USHORT)
                   .copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_RGB16));
  std::string src = Save(q16, "deep.png");
  ASSERT_EQ(VImage::new_from_file(src.c_str()).format(), VIPS_FORMAT_USHORT);
  auto r = Process(src);
  ASSERT_TRUE(r.ok()) << r.status().message();
  VImage pyramid = VImage::new_from_file(PyramidPath().c_str());
  EXPECT_EQ(pyramid.format(), VIPS_FORMAT_UCHAR);
  EXPECT_EQ(pyramid.bands(), 3);
  ExpectQuadrantsPreserved(320, 240);
}

TEST_F(ProcessorTest, CmykJpegBecomesSrgb) {
  VImage cmyk =
      Quadrants(320, 240).icc_transform("cmyk", VImage::option()->set("input_profile", "srgb"));
  std::string src = Save(cmyk, "cmyk.jpg");
  ASSERT_EQ(VImage::new_from_file(src.c_str()).interpretation(), VIPS_INTERPRETATION_CMYK);
  auto r = Process(src);
  ASSERT_TRUE(r.ok()) << r.status().message();
  VImage pyramid = VImage::new_from_file(PyramidPath().c_str());
  EXPECT_EQ(pyramid.bands(), 3);
  // Through a CMYK gamut the primaries dull a little: check the dominant channel.
  std::vector<double> red = PyramidPixel(80, 60);
  EXPECT_GT(red[0], 150);
  EXPECT_GT(red[0], red[1] + 80);
  EXPECT_GT(red[0], red[2] + 80);
  std::vector<double> blue = PyramidPixel(240, 180);
  EXPECT_GT(blue[2], blue[0] + 50);
  EXPECT_GT(blue[2], blue[1] + 20);
}

TEST_F(ProcessorTest, GreyscaleStaysOneBand) {
  VImage grey = (VImage::xyz(256, 200)[0])
                    .cast(VIPS_FORMAT_UCHAR)
                    .copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_B_W));
  std::string src = Save(grey, "grey.png");
  auto r = Process(src);
  ASSERT_TRUE(r.ok()) << r.status().message();
  VImage pyramid = VImage::new_from_file(PyramidPath().c_str());
  EXPECT_EQ(pyramid.bands(), 1);
  EXPECT_NEAR(pyramid.getpoint(200, 100)[0], 200, 6);
  EXPECT_NEAR(pyramid.getpoint(20, 100)[0], 20, 6);
}

TEST_F(ProcessorTest, AlphaIsFlattenedOnWhite) {
  VImage xyz = VImage::xyz(300, 200);
  VImage alpha = (xyz[0] < 150).ifthenelse(0, 255).cast(VIPS_FORMAT_UCHAR);
  VImage rgba = VImage::black(300, 200, VImage::option()->set("bands", 3))
                    .new_from_image(std::vector<double>{255, 0, 0})
                    .cast(VIPS_FORMAT_UCHAR)
                    .bandjoin(alpha)
                    .copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_sRGB));
  std::string src = Save(rgba, "alpha.png");
  ASSERT_EQ(VImage::new_from_file(src.c_str()).bands(), 4);
  auto r = Process(src);
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::vector<double> transparent = PyramidPixel(40, 100);
  ASSERT_EQ(transparent.size(), 3u);
  for (double v : transparent) EXPECT_GT(v, 240);
  ExpectRed(PyramidPixel(260, 100));
}

TEST_F(ProcessorTest, TruncatedJpegIsNotDecodable) {
  std::string full = Save(Quadrants(1000, 800), "full.jpg");
  std::string bytes;
  {
    std::ifstream in(full, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    bytes = s.str();
  }
  std::string src = dir_ + "/truncated.jpg";
  std::ofstream(src, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  auto r = Process(src);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_EQ(r.status().message().rfind("not a decodable image: ", 0), 0u) << r.status().message();
  EXPECT_FALSE(store_->Exists(PyramidKey(kPrefix)));
  EXPECT_TRUE(fs::is_empty(store_->ScratchDir()));
}

TEST_F(ProcessorTest, TruncatedRotatedJpegIsNotDecodable) {
  VImage stored = StoredFor(Marked(3000, 2000), 6).copy();
  stored.set(VIPS_META_ORIENTATION, 6);
  std::string full = Save(stored, "full.jpg");
  fs::resize_file(full, fs::file_size(full) / 2);
  auto r = Process(full);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_EQ(r.status().message().rfind("not a decodable image: ", 0), 0u) << r.status().message();
  EXPECT_TRUE(fs::is_empty(store_->ScratchDir()));
}

TEST_F(ProcessorTest, ConcurrentJobsDoNotInterfere) {
  std::string good = Save(Quadrants(1600, 1200), "good.jpg");
  std::string bad = Save(Quadrants(1600, 1200), "bad.jpg");
  fs::resize_file(bad, fs::file_size(bad) / 3);
  std::vector<Status> results(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      auto r = ProcessImage(i % 2 ? bad : good, ProcessOptions{}, *store_,
                            "1/2/job" + std::to_string(i));
      results[i] = r.status();
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 4; ++i) {
    if (i % 2) {
      EXPECT_EQ(results[i].code(), Code::kInvalid) << i;
    } else {
      EXPECT_TRUE(results[i].ok()) << i << ": " << results[i].message();
    }
  }
  EXPECT_TRUE(fs::is_empty(store_->ScratchDir()));
}

TEST_F(ProcessorTest, HtmlIsNotDecodable) {
  std::string src = dir_ + "/page.jpg";
  std::ofstream(src) << "<!doctype html><html><body>Not found</body></html>\n";
  auto r = Process(src);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_EQ(r.status().message().rfind("not a decodable image: ", 0), 0u) << r.status().message();
  EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
  EXPECT_EQ(r.status().message().find(dir_), std::string::npos) << r.status().message();
  EXPECT_TRUE(fs::is_empty(store_->ScratchDir()));
}

TEST_F(ProcessorTest, HugePngHeaderFailsFast) {
  std::string ihdr = Be32(100000) + Be32(100000) + std::string("\x08\x02\x00\x00\x00", 5);
  std::string png = std::string("\x89PNG\r\n\x1a\n", 8) + PngChunk("IHDR", ihdr) +
                    PngChunk("IDAT", std::string("\x78\x9c\x03\x00\x00\x00\x00\x01", 8)) +
                    PngChunk("IEND", "");
  std::string src = dir_ + "/bomb.png";
  std::ofstream(src, std::ios::binary) << png;
  auto start = std::chrono::steady_clock::now();
  auto r = Process(src);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalid);
  EXPECT_EQ(r.status().message(), "image is 100000x100000 pixels, over the limit of 1000000000");
  EXPECT_LT(elapsed, std::chrono::milliseconds(500));
  EXPECT_FALSE(store_->Exists(PyramidKey(kPrefix)));
}

TEST_F(ProcessorTest, PixelLimitUsesOrientedSize) {
  VImage stored = Quadrants(600, 400).rot270().copy();
  stored.set(VIPS_META_ORIENTATION, 6);
  std::string src = Save(stored, "rotated.jpg");
  ProcessOptions o;
  o.max_pixels = 100000;
  auto r = Process(src, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "image is 600x400 pixels, over the limit of 100000");
}

TEST_F(ProcessorTest, StoreOriginalKeepsBytesAndSource) {
  std::string src = dir_ + "/anything.bin";
  std::ofstream(src, std::ios::binary) << std::string("\x00\x01raw bytes", 11);
  ASSERT_TRUE(StoreOriginal(src, *store_, kPrefix).ok());
  EXPECT_TRUE(fs::exists(src));
  auto bytes = store_->GetBytes(OriginalKey(kPrefix));
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, std::string("\x00\x01raw bytes", 11));
  EXPECT_EQ(OriginalKey(kPrefix), "1/2/img/original");
  EXPECT_EQ(PyramidKey(kPrefix), "1/2/img/image.tif");
  EXPECT_EQ(ThumbnailKey(kPrefix, 400, 267), "1/2/img/thumb-400x267.jpg");
}

}  // namespace
}  // namespace quire
