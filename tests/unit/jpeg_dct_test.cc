// The DCT path of ingest (ingest/jpeg_dct.h), through ConvertImage as the workers call it:
// the full-resolution level's tiles decode to the source's pixels; orientations are the pixel
// path's; the lower levels stay close to the pixel path's; unsupported JPEGs take the pixel
// path and the stage log's route says why.
// jpeglib.h needs size_t and FILE declared before it.
#include <gtest/gtest.h>
#include <jpeglib.h>

#include <cmath>
#include <csetjmp>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <vips/vips8>

#include "blob/file_blob_store.h"
#include "core/vips_init.h"
#include "iiif/pyramid_index.h"
#include "ingest/processor.h"
#include "support/quire_process.h"

namespace quire {
namespace {
namespace fs = std::filesystem;
using vips::VImage;

struct Pixels {
  int width = 0, height = 0, samples = 0;
  std::vector<unsigned char> data;
  const unsigned char* at(int x, int y) const {
    return data.data() + (size_t(y) * size_t(width) + size_t(x)) * size_t(samples);
  }
};

// A detailed test picture: gradients, edges and noise, so every coefficient matters.
Pixels Picture(int width, int height, int samples, unsigned seed) {
  Pixels p{width, height, samples, {}};
  p.data.resize(size_t(width) * height * samples);
  std::mt19937 rng(seed);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < samples; ++c) {
        int v = (x * (c + 1) * 255 / width + y * 255 / height) / 2;
        if (((x / 37) + (y / 23)) % 3 == c) v = 255 - v;
        v += int(rng() % 41) - 20;
        p.data[(size_t(y) * width + x) * samples + c] = (unsigned char)std::clamp(v, 0, 255);
      }
  return p;
}

struct JpegSpec {
  int h = 2, v = 2;  // luma sampling (chroma 1x1)
  bool progressive = false;
  int restart_rows = 0;
  bool arithmetic = false;
  J_COLOR_SPACE stored = JCS_YCbCr;  // JCS_RGB: RGB-coded
  int samples = 3;
};

struct Jmp {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
};
[[noreturn]] void Throwish(j_common_ptr c) {
  std::longjmp(reinterpret_cast<Jmp*>(c->err)->jump, 1);
}

struct EncodeJob {
  const Pixels* p;
  const JpegSpec* spec;
  unsigned char* out;
  unsigned long size;
};
bool EncodeWith(EncodeJob* job) {
  jpeg_compress_struct c;
  Jmp err;
  c.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = Throwish;
  if (setjmp(err.jump)) {
    jpeg_destroy_compress(&c);
    return false;
  }
  jpeg_create_compress(&c);
  jpeg_mem_dest(&c, &job->out, &job->size);
  c.image_width = JDIMENSION(job->p->width);
  c.image_height = JDIMENSION(job->p->height);
  c.input_components = job->p->samples;
  c.in_color_space = job->p->samples == 3 ? JCS_RGB : JCS_GRAYSCALE;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 88, TRUE);
  if (job->p->samples == 3) {
    jpeg_set_colorspace(&c, job->spec->stored);
    c.comp_info[0].h_samp_factor = job->spec->h;
    c.comp_info[0].v_samp_factor = job->spec->v;
    for (int i = 1; i < 3; ++i) c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
  }
  if (job->spec->progressive) jpeg_simple_progression(&c);
  c.restart_in_rows = job->spec->restart_rows;
  c.arith_code = job->spec->arithmetic ? TRUE : FALSE;
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<unsigned char*>(job->p->at(0, int(c.next_scanline)));
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  return true;
}

std::string Encode(const Pixels& p, const JpegSpec& spec) {
  EncodeJob job{&p, &spec, nullptr, 0};
  bool ok = EncodeWith(&job);
  std::string out = ok ? std::string(reinterpret_cast<char*>(job.out), job.size) : "";
  std::free(job.out);
  return out;
}

struct DecodeJob {
  const std::string* jpeg;
  bool fancy;
  Pixels* out;
};
bool DecodeWith(DecodeJob* job) {
  jpeg_decompress_struct d;
  Jmp err;
  d.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = Throwish;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&d);
    return false;
  }
  jpeg_create_decompress(&d);
  jpeg_mem_src(&d, reinterpret_cast<const unsigned char*>(job->jpeg->data()), job->jpeg->size());
  jpeg_read_header(&d, TRUE);
  d.do_fancy_upsampling = job->fancy ? TRUE : FALSE;
  d.dct_method = JDCT_ISLOW;
  d.out_color_space = d.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&d);
  Pixels& p = *job->out;
  p.width = int(d.output_width);
  p.height = int(d.output_height);
  p.samples = int(d.output_components);
  p.data.resize(size_t(p.width) * p.height * p.samples);
  while (d.output_scanline < d.output_height) {
    JSAMPROW row = p.data.data() + size_t(d.output_scanline) * p.width * p.samples;
    jpeg_read_scanlines(&d, &row, 1);
  }
  jpeg_finish_decompress(&d);
  jpeg_destroy_decompress(&d);
  return true;
}

Pixels Decode(const std::string& jpeg, bool fancy) {
  Pixels p;
  DecodeJob job{&jpeg, fancy, &p};
  EXPECT_TRUE(DecodeWith(&job));
  return p;
}

// Sets EXIF orientation on a JPEG (libvips writes the APP1 block).
std::string WithOrientation(const std::string& jpeg, int orientation) {
  if (orientation == 1) return jpeg;
  // A minimal big-endian EXIF APP1 with one IFD0 entry (Orientation, SHORT).
  std::string exif = "Exif";
  exif += std::string(2, '\0');
  const unsigned char tiff[] = {'M',  'M',  0, 42, 0, 0, 0, 8, 0, 1,
                                0x01, 0x12, 0, 3,  0, 0, 0, 1, 0, (unsigned char)orientation,
                                0,    0,    0, 0,  0, 0};
  exif.append(reinterpret_cast<const char*>(tiff), sizeof tiff);
  const size_t len = exif.size() + 2;
  std::string app1 = "\xFF\xE1";
  app1 += char(len >> 8);
  app1 += char(len & 0xFF);
  return jpeg.substr(0, 2) + app1 + exif + jpeg.substr(2);
}

// Where stored pixel (sx, sy) shows under EXIF orientation o, for a stored W×H image.
void Oriented(int o, int W, int H, int x, int y, int* sx, int* sy) {
  switch (o) {
    case 2:
      *sx = W - 1 - x, *sy = y;
      break;
    case 3:
      *sx = W - 1 - x, *sy = H - 1 - y;
      break;
    case 4:
      *sx = x, *sy = H - 1 - y;
      break;
    case 5:
      *sx = y, *sy = x;
      break;
    case 6:
      *sx = y, *sy = H - 1 - x;
      break;
    case 7:
      *sx = W - 1 - y, *sy = H - 1 - x;
      break;
    case 8:
      *sx = W - 1 - y, *sy = x;
      break;
    default:
      *sx = x, *sy = y;
  }
}

class JpegDctTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(InitVips()); }
  void SetUp() override {
    auto store = FileBlobStore::Open(dir_ + "/blobs");
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
  }

  std::string Write(const std::string& bytes, const std::string& name) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  // Converts and keeps the pyramid; returns the route.
  std::string Convert(const std::string& path, ProcessOptions o = {}) {
    auto c = ConvertImage(path, o, *store_);
    EXPECT_TRUE(c.ok()) << c.status().message();
    if (!c.ok()) return "";
    width_ = c->width, height_ = c->height;
    fs::rename(c->pyramid_path, dir_ + "/pyramid.tif");
    c->pyramid_path.clear();
    return c->timings.pyramid_route;
  }

  // Level k of the kept pyramid decoded tile by tile (each tile its own JPEG stream, as a
  // viewer gets it), assembled and cropped to the level.
  Pixels Level(size_t k, bool fancy) {
    auto index = iiif::PyramidIndex::Open(dir_ + "/pyramid.tif");
    EXPECT_TRUE(index.ok()) << index.status().message();
    Pixels all;
    if (!index.ok()) return all;
    const iiif::IndexedLevel& L = (*index)->level(k);
    EXPECT_TRUE(L.jpeg);
    all.width = L.width, all.height = L.height, all.samples = L.samples;
    all.data.assign(size_t(L.width) * L.height * L.samples, 0);
    const int t = (*index)->info().tile_width;
    for (int row = 0; row < L.tiles_down; ++row)
      for (int col = 0; col < L.tiles_across; ++col) {
        auto jpeg = (*index)->TileJpeg(k, col, row);
        EXPECT_TRUE(jpeg.ok() && jpeg->has_value());
        if (!jpeg.ok() || !jpeg->has_value()) return all;
        Pixels tile = Decode(**jpeg, fancy);
        EXPECT_EQ(tile.width, t);
        EXPECT_EQ(tile.height, t);
        for (int y = 0; y < t && row * t + y < L.height; ++y) {
          const int n = std::min(t, L.width - col * t) * L.samples;
          std::memcpy(
              all.data.data() + (size_t(row * t + y) * L.width + size_t(col) * t) * L.samples,
              tile.at(0, y), size_t(n));
        }
      }
    return all;
  }

  test::TempDir tmp_;
  const std::string dir_ = tmp_.path();
  std::unique_ptr<FileBlobStore> store_;
  int width_ = 0, height_ = 0;
};

// Every sampling, baseline and progressive, with and without restart markers, at a size that
// is not a multiple of the MCU: the full-resolution level decodes to exactly the source's
// pixels (the same decoder on both: libjpeg's box upsampling, so a pixel depends on its own
// blocks only; with 4:4:4 the default upsampling too).
TEST_F(JpegDctTest, FullResolutionTilesAreTheSourcesPixels) {
  const Pixels picture = Picture(1001, 777, 3, 7);
  struct Case {
    const char* name;
    JpegSpec spec;
  };
  const Case cases[] = {
      {"4:2:0 baseline", {2, 2, false, 0}},   {"4:2:0 progressive", {2, 2, true, 0}},
      {"4:2:0 restarts", {2, 2, false, 1}},   {"4:2:2 baseline", {2, 1, false, 0}},
      {"4:2:2 progressive", {2, 1, true, 3}}, {"4:4:4 baseline", {1, 1, false, 0}},
      {"4:4:4 progressive", {1, 1, true, 2}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::string jpeg = Encode(picture, c.spec);
    ASSERT_FALSE(jpeg.empty());
    EXPECT_EQ(Convert(Write(jpeg, "src.jpg")), "dct");
    EXPECT_EQ(width_, 1001);
    EXPECT_EQ(height_, 777);
    for (bool fancy : {false, c.spec.h == 1 && c.spec.v == 1}) {
      Pixels source = Decode(jpeg, fancy);
      Pixels level = Level(0, fancy);
      ASSERT_EQ(level.width, 1001);
      ASSERT_EQ(level.height, 777);
      EXPECT_TRUE(level.data == source.data) << "fancy upsampling " << fancy;
    }
  }
  // Greyscale.
  const Pixels grey = Picture(300, 259, 1, 3);
  std::string jpeg = Encode(grey, JpegSpec{1, 1, true, 1, false, JCS_GRAYSCALE, 1});
  EXPECT_EQ(Convert(Write(jpeg, "grey.jpg")), "dct");
  Pixels level = Level(0, true);
  EXPECT_EQ(level.samples, 1);
  EXPECT_TRUE(level.data == Decode(jpeg, true).data);
}

// The eight EXIF orientations on sizes the MCU grid allows (and transposes on any size): the
// level shows the source as the pixel path shows it. Flips and turns move whole coefficient
// blocks, so the coefficients are the source's; only the IDCT's rounding between its row and
// column passes can differ in the last bit where the transform turns or mirrors a block
// sideways (orientation 4, a vertical flip, is exact).
TEST_F(JpegDctTest, OrientationsAreLosslessBlockTransforms) {
  struct Size {
    int w, h;
    JpegSpec spec;
  };
  for (Size size : {Size{768, 528, {2, 2}}, Size{520, 392, {1, 1, true}}}) {
    const Pixels picture = Picture(size.w, size.h, 3, 11);
    const std::string plain = Encode(picture, size.spec);
    const Pixels source = Decode(plain, false);
    double unturned = 0;
    for (int o = 1; o <= 8; ++o) {
      SCOPED_TRACE("orientation " + std::to_string(o) + " of " + std::to_string(size.w));
      EXPECT_EQ(Convert(Write(WithOrientation(plain, o), "o.jpg")), "dct");
      const bool turned = o >= 5;
      ASSERT_EQ(width_, turned ? size.h : size.w);
      ASSERT_EQ(height_, turned ? size.w : size.h);
      Pixels level = Level(0, false);
      int worst = 0;
      int64_t off = 0;
      for (int y = 0; y < level.height; ++y)
        for (int x = 0; x < level.width; ++x) {
          int sx, sy;
          Oriented(o, size.w, size.h, x, y, &sx, &sy);
          for (int c = 0; c < 3; ++c) {
            int d = std::abs(int(level.at(x, y)[c]) - int(source.at(sx, sy)[c]));
            worst = std::max(worst, d);
            off += d != 0;
          }
        }
      EXPECT_LE(worst, o == 1 || o == 4 ? 0 : 3);
      EXPECT_LT(double(off) / (3.0 * level.width * level.height), turned ? 0.06 : 0.02);
      // The same orientation as the pixel path (libvips' autorot), seen at a coarse level.
      ProcessOptions pixels;
      pixels.dct_memory_budget = 0;
      std::string dct_copy = dir_ + "/dct.tif";
      fs::rename(dir_ + "/pyramid.tif", dct_copy);
      EXPECT_EQ(Convert(dir_ + "/o.jpg", pixels), "pixels: the DCT path is off");
      VImage a = VImage::new_from_file(dct_copy.c_str());
      VImage b = VImage::new_from_file((dir_ + "/pyramid.tif").c_str());
      // Re-encoding this picture's noise at Q85 costs the pixel path some levels; a wrong
      // turn or mirror would cost tens more.
      double apart = (a - b).abs().avg();
      if (o == 1) unturned = apart;
      EXPECT_LT(apart, unturned * 1.2 + 0.5);
    }
  }
  // A transpose does not care about partial MCUs.
  const Pixels odd = Picture(1001, 777, 3, 5);
  EXPECT_EQ(Convert(Write(WithOrientation(Encode(odd, JpegSpec{}), 5), "t.jpg")), "dct");
  EXPECT_EQ(width_, 777);
}

// Below full resolution the levels come from libjpeg's scaled IDCT and libvips' pyramid: close
// to the pixel path's (the libvips reference), and the pyramid is whole for delivery.
TEST_F(JpegDctTest, LowerLevelsStayCloseToThePixelPath) {
  const Pixels picture = Picture(2000, 1500, 3, 13);
  const std::string path = Write(Encode(picture, JpegSpec{}), "src.jpg");
  ASSERT_EQ(Convert(path), "dct");
  std::string dct = dir_ + "/dct.tif";
  fs::rename(dir_ + "/pyramid.tif", dct);
  ProcessOptions pixels;
  pixels.dct_memory_budget = 0;
  ASSERT_EQ(Convert(path, pixels), "pixels: the DCT path is off");
  // The reference: the source decoded whole and box-shrunk as libvips' pyramid does.
  VImage reference = VImage::new_from_file(path.c_str()).cast(VIPS_FORMAT_FLOAT);
  for (int page = 1; page <= 3; ++page) {
    SCOPED_TRACE(page);
    reference = reference.shrink(2, 2).crop(0, 0, reference.width() / 2, reference.height() / 2);
    VImage a = VImage::new_from_file(dct.c_str(), VImage::option()->set("page", page));
    VImage b =
        VImage::new_from_file((dir_ + "/pyramid.tif").c_str(), VImage::option()->set("page", page));
    ASSERT_EQ(a.width(), b.width());
    ASSERT_EQ(a.height(), b.height());
    ASSERT_EQ(a.width(), reference.width());
    double dct_error = (a.cast(VIPS_FORMAT_FLOAT) - reference).abs().avg();
    double pixel_error = (b.cast(VIPS_FORMAT_FLOAT) - reference).abs().avg();
    EXPECT_LT(dct_error, pixel_error * 1.1 + 0.25) << "pixel path " << pixel_error;
  }
  // The whole image, stored and thumbnailed as any other.
  auto r = ProcessImage(path, ProcessOptions{}, *store_, "1/2/x");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->timings.pyramid_route, "dct");
  EXPECT_EQ(r->thumbnails.size(), 4u);
}

// What the DCT path does not cut goes through pixels, and the route says why.
TEST_F(JpegDctTest, UnsupportedJpegsTakeThePixelPathAndSaySo) {
  const Pixels picture = Picture(640, 480, 3, 17);
  struct Case {
    const char* name;
    JpegSpec spec;
    const char* route;
  };
  const Case cases[] = {
      {"arithmetic", {2, 2, false, 0, true}, "pixels: arithmetic-coded JPEG"},
      {"4:4:0", {1, 2}, "pixels: JPEG sampling 1x2 1x1 1x1"},
      {"4:1:1", {4, 1}, "pixels: JPEG sampling 4x1 1x1 1x1"},
      {"RGB-coded", {1, 1, false, 0, false, JCS_RGB}, "pixels: RGB-coded JPEG"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::string jpeg = Encode(picture, c.spec);
    ASSERT_FALSE(jpeg.empty());
    std::string route = Convert(Write(jpeg, "u.jpg"));
    EXPECT_EQ(route.rfind(c.route, 0), 0u) << route;
    EXPECT_EQ(width_, 640);
    // The pixel path made it: close to the source.
    VImage level = VImage::new_from_file((dir_ + "/pyramid.tif").c_str());
    VImage source = VImage::new_from_file((dir_ + "/u.jpg").c_str());
    EXPECT_LT((level - source).abs().avg(), 16.0);  // a re-encoded noisy picture, not garbage
  }
  // A flip that would move a partial MCU.
  std::string route =
      Convert(Write(WithOrientation(Encode(Picture(1001, 777, 3, 2), JpegSpec{}), 2), "f.jpg"));
  EXPECT_NE(route.find("orientation 2 would move the partial MCU"), std::string::npos) << route;
  // 4:2:2 turned on its side.
  route =
      Convert(Write(WithOrientation(Encode(Picture(512, 384, 3, 2), JpegSpec{2, 1}), 6), "s.jpg"));
  EXPECT_NE(route.find("transposes the 4:2:2 MCU"), std::string::npos) << route;
  // CMYK: colours converted, so pixels.
  VImage cmyk = VImage::black(320, 240, VImage::option()->set("bands", 4)) + 60;
  cmyk = cmyk.cast(VIPS_FORMAT_UCHAR)
             .copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_CMYK));
  cmyk.write_to_file((dir_ + "/cmyk.jpg").c_str());
  EXPECT_EQ(Convert(dir_ + "/cmyk.jpg").rfind("pixels: its colours need converting", 0), 0u);
  // Coefficients over the budget.
  ProcessOptions tight;
  tight.dct_memory_budget = 100 << 10;
  route = Convert(Write(Encode(picture, JpegSpec{}), "b.jpg"), tight);
  EXPECT_NE(route.find("the DCT budget (1 MiB) is taken"), std::string::npos) << route;
  // 12-bit (this libjpeg reads 8-bit samples only): refused by both paths, nothing left behind.
  const unsigned char twelve[] = {0xFF, 0xD8, 0xFF, 0xC1, 0x00, 0x0B, 0x0C, 0x00, 0x08,
                                  0x00, 0x08, 0x01, 0x01, 0x11, 0x00, 0xFF, 0xD9};
  auto refused = ConvertImage(
      Write(std::string(reinterpret_cast<const char*>(twelve), sizeof twelve), "12.jpg"),
      ProcessOptions{}, *store_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kInvalid) << refused.status().message();
  EXPECT_TRUE(fs::is_empty(store_->ScratchDir()));
  // A damaged stream (libjpeg patches it with a warning): the pixel path judges it, as always.
  std::string cut = Encode(picture, JpegSpec{});
  cut.resize(cut.size() * 2 / 3);
  auto damaged = ConvertImage(Write(cut, "d.jpg"), ProcessOptions{}, *store_);
  ASSERT_FALSE(damaged.ok());
  EXPECT_EQ(damaged.status().code(), Code::kInvalid);
  EXPECT_TRUE(fs::is_empty(store_->ScratchDir()));
}

}  // namespace
}  // namespace quire
