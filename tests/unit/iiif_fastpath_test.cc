// The delivery fast paths checked against libvips: the fixed-point Lanczos-3 shrink
// (resample.h) against vips reduce, the libjpeg edge-tile crop and the stored-tile pass-through
// (pyramid_index.h) against libvips renders and the raw TIFF tiles, renders decoded from the
// tile index (RenderIndexed) against the libvips-only Render, and a replaced pyramid file.
#include <gtest/gtest.h>
#include <tiffio.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numbers>
#include <random>
#include <string>
#include <thread>
#include <vector>
#include <vips/vips8>

#include "blob/pyramid_edges.h"
#include "blob/tiff_structure.h"
#include "core/vips_init.h"
#include "iiif/pyramid_index.h"
#include "iiif/renderer.h"
#include "iiif/resample.h"
#include "support/test_pyramid.h"

namespace quire::iiif {
namespace {

namespace fs = std::filesystem;
using vips::VImage;

// ---------------------------------------------------------------- images and comparisons

// A "photograph": smooth gradients and waves at several scales plus per-pixel noise, each
// band different. Deterministic for a seed.
std::vector<uint8_t> NoiseGradient(int w, int h, int bands, int seed) {
  std::vector<uint8_t> px(size_t(w) * h * bands);
  std::mt19937 rng(uint32_t(seed) * 7919u + 17u);
  std::uniform_int_distribution<int> noise(-10, 10);
  // Separable waves, tabulated: this runs for millions of pixels.
  std::vector<double> wx(size_t(w) * bands), wy(size_t(h) * bands), diag(size_t(w + h));
  for (int b = 0; b < bands; ++b) {
    for (int x = 0; x < w; ++x) wx[size_t(x) * bands + b] = std::sin((x + 13 * seed) / (9.0 + 7 * b));
    for (int y = 0; y < h; ++y) wy[size_t(y) * bands + b] = std::cos(y / (23.0 + 5 * b));
  }
  for (int d = 0; d < w + h; ++d) diag[size_t(d)] = 12 * std::sin(d / 3.1);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int b = 0; b < bands; ++b) {
        double v = 40 + 150.0 * x / w + 50.0 * y / h * (b % 2 ? -1 : 1) +
                   35 * wx[size_t(x) * bands + b] * wy[size_t(y) * bands + b] +
                   diag[size_t(x + y)] + noise(rng);
        px[(size_t(y) * w + x) * bands + b] = uint8_t(std::clamp(int(std::lround(v)), 0, 255));
      }
    }
  }
  return px;
}

VImage ToVips(const std::vector<uint8_t>& px, int w, int h, int bands) {
  return VImage::new_from_memory(const_cast<uint8_t*>(px.data()), px.size(), w, h, bands,
                                 VIPS_FORMAT_UCHAR)
      .copy(VImage::option()->set("interpretation", bands >= 3 ? VIPS_INTERPRETATION_sRGB
                                                               : VIPS_INTERPRETATION_B_W))
      .copy_memory();
}

VImage NoiseGradientImage(int w, int h, int bands, int seed) {
  return ToVips(NoiseGradient(w, h, bands, seed), w, h, bands);
}

std::vector<uint8_t> Pixels(const VImage& img) {
  size_t n = 0;
  void* mem = img.cast(VIPS_FORMAT_UCHAR).write_to_memory(&n);
  std::vector<uint8_t> out(static_cast<uint8_t*>(mem), static_cast<uint8_t*>(mem) + n);
  g_free(mem);
  return out;
}

struct DiffStats {
  double mean = 0;  // worst channel's mean |diff|
  int max = 0;
};

DiffStats Compare(const uint8_t* a, const uint8_t* b, size_t pixels, int bands) {
  std::vector<double> sum(size_t(bands), 0);
  DiffStats d;
  for (size_t i = 0; i < pixels; ++i) {
    for (int c = 0; c < bands; ++c) {
      int v = std::abs(int(a[i * bands + c]) - int(b[i * bands + c]));
      sum[size_t(c)] += v;
      d.max = std::max(d.max, v);
    }
  }
  for (double s : sum) d.mean = std::max(d.mean, s / double(pixels));
  return d;
}

DiffStats Compare(const VImage& a, const VImage& b) {
  EXPECT_EQ(a.width(), b.width());
  EXPECT_EQ(a.height(), b.height());
  EXPECT_EQ(a.bands(), b.bands());
  if (a.width() != b.width() || a.height() != b.height() || a.bands() != b.bands())
    return {1e9, 255};
  std::vector<uint8_t> pa = Pixels(a), pb = Pixels(b);
  return Compare(pa.data(), pb.data(), size_t(a.width()) * a.height(), a.bands());
}

VImage Decode(const std::string& bytes) {
  return VImage::new_from_buffer(bytes.data(), bytes.size(), "").copy_memory();
}

ResolvedRequest Resolve(const std::string& path, int w, int h, Limits limits = {}) {
  std::string parts[4];
  size_t start = 0;
  for (int i = 0; i < 3; ++i) {
    size_t slash = path.find('/', start);
    parts[i] = path.substr(start, slash - start);
    start = slash + 1;
  }
  parts[3] = path.substr(start);
  Result<ResolvedRequest> r =
      ResolveImageRequest(ApiVersion::kV3, parts[0], parts[1], parts[2], parts[3], w, h, limits);
  EXPECT_TRUE(r.ok()) << path << ": " << r.status().message();
  return r.ok() ? *r : ResolvedRequest{};
}

// The stored tile as a standalone stream the way the fast path must build it: SOI, [APP14
// Adobe transform 0 for RGB tiles], JPEGTables without SOI/EOI, the raw tile without its SOI.
std::string ExpectedTileStream(const std::string& file, int level, int col, int row) {
  TIFF* t = TIFFOpen(file.c_str(), "r");
  EXPECT_NE(t, nullptr);
  if (!t) return "";
  EXPECT_TRUE(TIFFSetDirectory(t, tdir_t(level)));
  uint32_t tw = 0, th = 0;
  TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw);
  TIFFGetField(t, TIFFTAG_TILELENGTH, &th);
  uint32_t tile = TIFFComputeTile(t, uint32_t(col) * tw, uint32_t(row) * th, 0, 0);
  uint64_t* counts = nullptr;
  TIFFGetField(t, TIFFTAG_TILEBYTECOUNTS, &counts);
  std::string raw(counts[tile], '\0');
  EXPECT_EQ(TIFFReadRawTile(t, tile, raw.data(), tmsize_t(raw.size())), tmsize_t(raw.size()));
  uint32_t tables_len = 0;
  const void* tables = nullptr;
  EXPECT_TRUE(TIFFGetField(t, TIFFTAG_JPEGTABLES, &tables_len, &tables));
  uint16_t photometric = 0;
  TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &photometric);
  std::string out("\xFF\xD8", 2);
  if (photometric == PHOTOMETRIC_RGB) {
    static const unsigned char adobe[] = {0xFF, 0xEE, 0x00, 0x0E, 'A',  'd',  'o',  'b',
                                          'e',  0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00};
    out.append(reinterpret_cast<const char*>(adobe), sizeof adobe);
  }
  out.append(static_cast<const char*>(tables) + 2, tables_len - 4);
  out.append(raw, 2);
  TIFFClose(t);
  return out;
}

// ---------------------------------------------------------------- Lanczos shrink

// The filter DownscaleLanczos3 documents, in double precision: separable Lanczos-3 stretched
// by the shrink factor, sample centres at (o + 0.5) / scale - 0.5, edges extended, weights
// normalised; vertical pass first, rounded to 8 bits between the passes as the two-pass
// fixed-point code does.
std::vector<uint8_t> ReferenceShrink(const std::vector<uint8_t>& in, int in_w, int in_h, int bands,
                                     int out_w, int out_h) {
  auto lanczos3 = [](double x) {
    x = std::fabs(x);
    if (x < 1e-12) return 1.0;
    if (x >= 3) return 0.0;
    const double px = std::numbers::pi * x;
    return 3 * std::sin(px) * std::sin(px / 3) / (px * px);
  };
  // One axis: n_in samples at stride `step` → n_out.
  auto pass = [&](const std::vector<uint8_t>& src, int w, int h, bool vertical, int n_out) {
    const int n_in = vertical ? h : w;
    const int ow = vertical ? w : n_out, oh = vertical ? n_out : h;
    std::vector<uint8_t> dst(size_t(ow) * oh * bands);
    const double scale = double(n_out) / n_in, support = 3 / scale;
    for (int o = 0; o < n_out; ++o) {
      const double centre = (o + 0.5) / scale - 0.5;
      std::vector<std::pair<int, double>> taps;
      double sum = 0;
      for (int j = int(std::floor(centre - support)); j <= int(std::ceil(centre + support)); ++j) {
        const double v = lanczos3((j - centre) * scale);
        if (v == 0) continue;
        taps.emplace_back(std::clamp(j, 0, n_in - 1), v);
        sum += v;
      }
      const int other = vertical ? w : h;
      for (int t = 0; t < other; ++t) {
        for (int b = 0; b < bands; ++b) {
          double acc = 0;
          for (auto [j, v] : taps) {
            const int x = vertical ? t : j, y = vertical ? j : t;
            acc += v * src[(size_t(y) * w + x) * bands + b];
          }
          const int x = vertical ? t : o, y = vertical ? o : t;
          dst[(size_t(y) * ow + x) * bands + b] =
              uint8_t(std::clamp(int(std::lround(acc / sum)), 0, 255));
        }
      }
    }
    return dst;
  };
  std::vector<uint8_t> v = out_h == in_h ? in : pass(in, in_w, in_h, true, out_h);
  return out_w == in_w ? v : pass(v, in_w, out_h, false, out_w);
}

class LanczosShrink : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(InitVips()); }

  // DownscaleLanczos3 against vips reduce (Lanczos-3, the same kernel and centre convention).
  static void CheckAgainstVips(int in_w, int in_h, int bands, int out_w, int out_h, int seed,
                               bool against_vips = true) {
    SCOPED_TRACE(std::to_string(in_w) + "x" + std::to_string(in_h) + "x" +
                 std::to_string(bands) + " -> " + std::to_string(out_w) + "x" +
                 std::to_string(out_h));
    std::vector<uint8_t> in = NoiseGradient(in_w, in_h, bands, seed);
    // Guard bytes around the output catch writes outside it.
    const size_t n = size_t(out_w) * out_h * bands;
    std::vector<uint8_t> out(n + 64, 0xA5);
    DownscaleLanczos3(in.data(), in_w, in_h, bands, out.data() + 32, out_w, out_h);
    for (int i = 0; i < 32; ++i) {
      ASSERT_EQ(out[size_t(i)], 0xA5) << "wrote before the output";
      ASSERT_EQ(out[32 + n + size_t(i)], 0xA5) << "wrote past the output";
    }
    // The documented filter, exactly: only fixed-point rounding apart.
    std::vector<uint8_t> exact = ReferenceShrink(in, in_w, in_h, bands, out_w, out_h);
    DiffStats e = Compare(out.data() + 32, exact.data(), size_t(out_w) * out_h, bands);
    EXPECT_LE(e.max, 1) << "against the double-precision filter";
    const bool tiny = out_w * out_h < 1000;  // a mean over a handful of pixels says little
    EXPECT_LT(e.mean, tiny ? 0.5 : 0.05) << "against the double-precision filter";
    if (!against_vips) return;
    VImage ref = ToVips(in, in_w, in_h, bands)
                     .reduce(double(in_w) / out_w, double(in_h) / out_h,
                             VImage::option()->set("kernel", VIPS_KERNEL_LANCZOS3));
    ASSERT_EQ(ref.width(), out_w);
    ASSERT_EQ(ref.height(), out_h);
    std::vector<uint8_t> want = Pixels(ref);
    DiffStats d = Compare(out.data() + 32, want.data(), size_t(out_w) * out_h, bands);
    if (!tiny) {
      EXPECT_LT(d.mean, 1.0);
    }
    EXPECT_LE(d.max, 3);
  }
};

TEST_F(LanczosShrink, MatchesVipsReduceAtSeveralRatios) {
  struct Case {
    int in_w, in_h, out_w, out_h;
  } cases[] = {
      {1200, 800, 600, 400},    // 2×
      {1001, 667, 271, 180},    // 3.7×
      {1200, 800, 152, 101},    // 7.9×
      {1500, 1000, 1024, 683},  // the !1024,1024 render from a level
      {900, 600, 530, 100},     // non-uniform: 1.7× across, 6× down
      {600, 600, 78, 540},      // non-uniform the other way
      {777, 333, 777, 101},     // vertical only
      {777, 333, 101, 333},     // horizontal only
      {1003, 517, 211, 97},     // widths off every SIMD step
  };
  for (int bands : {1, 3}) {
    for (const Case& c : cases) CheckAgainstVips(c.in_w, c.in_h, bands, c.out_w, c.out_h, bands);
  }
  // Two and four bands take the same kernel with other transposes.
  CheckAgainstVips(640, 480, 2, 213, 160, 5);
  CheckAgainstVips(640, 480, 4, 213, 160, 6);
}

TEST_F(LanczosShrink, TinyImagesAndOnePixelOutputs) {
  // Fewer input samples than the filter has taps: the edges fold onto the border.
  // libvips' reduce quantises its taps to 12 bits, which at shrinks of 10× and more moves it
  // several levels off the exact filter: those are checked against the exact filter only.
  CheckAgainstVips(5, 4, 3, 2, 2, 1);
  CheckAgainstVips(7, 7, 1, 3, 1, 2);
  CheckAgainstVips(33, 65, 1, 17, 32, 5);
  CheckAgainstVips(40, 30, 3, 1, 1, 3, /*against_vips=*/false);
  CheckAgainstVips(256, 256, 3, 1, 256, 4, false);
  CheckAgainstVips(1003, 517, 3, 37, 19, 7, false);
}

TEST_F(LanczosShrink, FlatImageStaysFlat) {
  // Weights sum to exactly one: no drift, no ringing on a constant.
  for (int bands : {1, 3}) {
    std::vector<uint8_t> in(size_t(999) * 701 * bands, 201), out(size_t(123) * 77 * bands, 0);
    DownscaleLanczos3(in.data(), 999, 701, bands, out.data(), 123, 77);
    for (uint8_t v : out) ASSERT_EQ(v, 201);
  }
}

TEST_F(LanczosShrink, EachBandOfAnRgbImageIsShrunkAsIfAlone) {
  // The filter treats every byte lane alike, so an RGB shrink must equal three grey ones:
  // this pins the RGB transposes (4-byte moves, band edges, the last column, rows left over
  // after the bands of 16) to the grey path's byte-by-byte ones, at sizes that hit each edge.
  struct Case {
    int in_w, in_h, out_w, out_h;
  } cases[] = {{1500, 1000, 1024, 683}, {257, 33, 100, 31}, {31, 17, 7, 16}, {2, 2, 1, 1},
               {600, 1, 5, 1},          {1, 600, 1, 7},    {1025, 769, 1023, 16}};
  for (const Case& c : cases) {
    std::vector<uint8_t> rgb = NoiseGradient(c.in_w, c.in_h, 3, c.out_w);
    std::vector<uint8_t> out(size_t(c.out_w) * c.out_h * 3);
    DownscaleLanczos3(rgb.data(), c.in_w, c.in_h, 3, out.data(), c.out_w, c.out_h);
    for (int band = 0; band < 3; ++band) {
      std::vector<uint8_t> grey(size_t(c.in_w) * c.in_h), alone(size_t(c.out_w) * c.out_h);
      for (size_t i = 0; i < grey.size(); ++i) grey[i] = rgb[i * 3 + size_t(band)];
      DownscaleLanczos3(grey.data(), c.in_w, c.in_h, 1, alone.data(), c.out_w, c.out_h);
      int differing = 0;
      for (size_t i = 0; i < alone.size(); ++i) differing += out[i * 3 + size_t(band)] != alone[i];
      EXPECT_EQ(differing, 0) << c.in_w << "x" << c.in_h << " -> " << c.out_w << "x" << c.out_h
                              << ", band " << band;
    }
  }
}

TEST_F(LanczosShrink, ScratchReuseAndThreadsGiveTheSameResult) {
  // Per-thread scratch buffers are reused across calls of different sizes; results must not
  // depend on what ran before, nor on the thread.
  struct Case {
    int in_w, in_h, bands, out_w, out_h;
  } cases[] = {{1500, 1000, 3, 1024, 683}, {300, 200, 1, 77, 51}, {2000, 40, 3, 300, 13},
               {64, 1500, 3, 17, 400}};
  std::vector<std::vector<uint8_t>> inputs, expected;
  for (const Case& c : cases) {
    inputs.push_back(NoiseGradient(c.in_w, c.in_h, c.bands, c.out_w));
    std::vector<uint8_t> out(size_t(c.out_w) * c.out_h * c.bands);
    DownscaleLanczos3(inputs.back().data(), c.in_w, c.in_h, c.bands, out.data(), c.out_w, c.out_h);
    expected.push_back(std::move(out));
  }
  std::vector<int> mismatches(3, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round) {
        for (size_t i = 0; i < std::size(cases); ++i) {
          const Case& c = cases[(i + size_t(t)) % std::size(cases)];
          const size_t k = (i + size_t(t)) % std::size(cases);
          std::vector<uint8_t> out(size_t(c.out_w) * c.out_h * c.bands);
          DownscaleLanczos3(inputs[k].data(), c.in_w, c.in_h, c.bands, out.data(), c.out_w,
                            c.out_h);
          if (out != expected[k]) ++mismatches[size_t(t)];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

// ---------------------------------------------------------------- pyramids

class FastPath : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(InitVips());
    dir_ = new fs::path(fs::temp_directory_path() / ("quire-fastpath-" + std::to_string(getpid())));
    fs::create_directories(*dir_);
    test::WriteTestPyramid(NoiseGradientImage(1000, 700, 3, 1), Path("a1000x700.tif"));
    test::WriteTestPyramid(NoiseGradientImage(3001, 2049, 3, 2), Path("b3001x2049.tif"));
    test::WriteTestPyramid(NoiseGradientImage(1000, 700, 3, 3), Path("rgb1000x700.tif"), /*rgbjpeg=*/true);
    test::WriteTestPyramid(NoiseGradientImage(1000, 700, 1, 4), Path("grey1000x700.tif"));
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
  }
  static std::string Path(const std::string& name) { return (*dir_ / name).string(); }

  static std::shared_ptr<const PyramidIndex> Index(const std::string& name) {
    auto index = PyramidIndex::Open(Path(name));
    EXPECT_TRUE(index.ok()) << index.status().message();
    return index.ok() ? *index : nullptr;
  }

  // The level-0 region and output size a deep-zoom viewer asks for to get tile (col, row) of
  // level k: the tile's level pixels mapped back through the level's scale.
  static std::string TileRequest(const PyramidInfo& info, size_t k, int col, int row) {
    const LevelScale s = ScaleOfLevel(info, k);
    const auto [lw, lh] = info.levels[k];
    const int lx0 = col * info.tile_width, ly0 = row * info.tile_height;
    const int lx1 = std::min(lx0 + info.tile_width, lw), ly1 = std::min(ly0 + info.tile_height, lh);
    const int x = int(std::lround(lx0 * s.x)), y = int(std::lround(ly0 * s.y));
    const int w = std::min(int(std::lround(lx1 * s.x)), info.width) - x;
    const int h = std::min(int(std::lround(ly1 * s.y)), info.height) - y;
    return std::to_string(x) + "," + std::to_string(y) + "," + std::to_string(w) + "," +
           std::to_string(h) + "/" + std::to_string(lx1 - lx0) + "," + std::to_string(ly1 - ly0) +
           "/0/default.jpg";
  }

  static fs::path* dir_;
};
fs::path* FastPath::dir_ = nullptr;

TEST_F(FastPath, EdgeTilesMatchLibvips) {
  for (const char* file : {"a1000x700.tif", "b3001x2049.tif", "rgb1000x700.tif",
                           "grey1000x700.tif"}) {
    auto index = Index(file);
    ASSERT_TRUE(index);
    const PyramidInfo& info = index->info();
    ASSERT_EQ(info.tile_width, 256);
    ASSERT_GE(info.levels.size(), 3u);
    int checked = 0;
    for (size_t k = 0; k < info.levels.size(); ++k) {
      const IndexedLevel& L = index->level(k);
      ASSERT_TRUE(L.jpeg) << file << " level " << k;
      VImage level = VImage::tiffload(Path(file).c_str(), VImage::option()->set("page", int(k)));
      ASSERT_EQ(level.width(), L.width);
      ASSERT_EQ(level.height(), L.height);
      for (int row = 0; row < L.tiles_down; ++row) {
        for (int col = 0; col < L.tiles_across; ++col) {
          if (col != L.tiles_across - 1 && row != L.tiles_down - 1) continue;
          const std::string path = TileRequest(info, k, col, row);
          SCOPED_TRACE(std::string(file) + " level " + std::to_string(k) + " tile " +
                       std::to_string(col) + "," + std::to_string(row) + ": " + path);
          ResolvedRequest r = Resolve(path, info.width, info.height);
          ASSERT_EQ(ChooseLevel(info, r), k);
          const int cw = std::min(256, L.width - col * 256), ch = std::min(256, L.height - row * 256);
          ASSERT_EQ(r.width, cw);
          ASSERT_EQ(r.height, ch);

          const bool full_tile = cw == 256 && ch == 256;
          Result<std::optional<Rendered>> fast =
              full_tile ? IndexedStoredTile(*index, r) : IndexedCroppedTile(*index, r);
          ASSERT_TRUE(fast.ok()) << fast.status().message();
          ASSERT_TRUE(fast->has_value()) << "the fast path did not take the edge tile";
          EXPECT_EQ((*fast)->content_type, "image/jpeg");
          VImage got = Decode((*fast)->bytes);
          ASSERT_EQ(got.width(), cw);
          ASSERT_EQ(got.height(), ch);
          ASSERT_EQ(got.bands(), L.samples);

          // libvips rendering the same request.
          Result<Rendered> slow = Render(Path(file), info, r);
          ASSERT_TRUE(slow.ok()) << slow.status().message();
          // (The fast path serves the stored coefficients, which libvips re-encodes at Q90: a
          // little apart on this noisy image, further for RGB-coded tiles, which Render's
          // output codes as YCbCr.)
          DiffStats vs_render = Compare(got, Decode(slow->bytes));
          EXPECT_LT(vs_render.mean, L.needs_adobe_rgb ? 5.0 : 2.5);
          // And the stored level pixels themselves: a full tile is its stored bytes, and an
          // edge tile is cut from the stored tile's coefficients, so both decode to exactly
          // the pixels libvips reads from the level — but for the last column and row of a
          // cut, where the decoder's chroma upsampling (these tiles are 4:2:0) now repeats
          // the edge instead of blending in the padding beyond it.
          VImage stored = level.extract_area(col * 256, row * 256, cw, ch);
          const int iw = cw < 256 ? cw - 1 : cw, ih = ch < 256 ? ch - 1 : ch;
          if (iw > 0 && ih > 0) {
            DiffStats inside =
                Compare(got.extract_area(0, 0, iw, ih), stored.extract_area(0, 0, iw, ih));
            EXPECT_EQ(inside.max, 0) << "mean " << inside.mean;
          }
          EXPECT_LT(Compare(got, stored).mean, 0.5);
          if (!full_tile) {
            // Not a re-encode: Render's Q90 bytes would differ.
            EXPECT_NE((*fast)->bytes, slow->bytes);
          }
          ++checked;
        }
      }
    }
    EXPECT_GE(checked, int(info.levels.size())) << file;
  }
}

// Tiles the way OpenSeadragon asks for them (region in level-0 pixels a tile of 256·2^k, cut at
// the image edge; size its ceiling at that scale), through delivery's chain of fast paths:
// exact sizes, and the pixels libvips renders.
TEST_F(FastPath, ViewerTileRequestsThroughTheFastPathChain) {
  for (const char* file : {"a1000x700.tif", "b3001x2049.tif", "grey1000x700.tif"}) {
    auto index = Index(file);
    ASSERT_TRUE(index);
    const PyramidInfo& info = index->info();
    int stored = 0, cropped = 0, rendered = 0;
    for (int sf = 1; sf <= 32; sf *= 2) {
      const int span = 256 * sf;
      for (int y = 0; y < info.height; y += span) {
        for (int x = 0; x < info.width; x += span) {
          const int w = std::min(span, info.width - x), h = std::min(span, info.height - y);
          const int ow = (w + sf - 1) / sf, oh = (h + sf - 1) / sf;
          const std::string path = std::to_string(x) + "," + std::to_string(y) + "," +
                                   std::to_string(w) + "," + std::to_string(h) + "/" +
                                   std::to_string(ow) + "," + std::to_string(oh) + "/0/default.jpg";
          SCOPED_TRACE(std::string(file) + " " + path);
          ResolvedRequest r = Resolve(path, info.width, info.height);
          std::string bytes;
          bool is_stored = false;
          auto tile = IndexedStoredTile(*index, r);
          ASSERT_TRUE(tile.ok());
          if (tile->has_value()) {
            bytes = (*tile)->bytes, ++stored, is_stored = true;
          } else {
            auto crop = IndexedCroppedTile(*index, r);
            ASSERT_TRUE(crop.ok());
            if (crop->has_value()) {
              bytes = (*crop)->bytes, ++cropped, is_stored = true;  // the stored coefficients
            } else {
              auto render = RenderIndexed(*index, r);
              ASSERT_TRUE(render.ok()) << render.status().message();
              bytes = render->bytes, ++rendered;
            }
          }
          Result<Rendered> slow = Render(Path(file), info, r);
          ASSERT_TRUE(slow.ok());
          VImage got = Decode(bytes);
          ASSERT_EQ(got.width(), ow);
          ASSERT_EQ(got.height(), oh);
          // Stored and cropped tiles are checked against the level's pixels elsewhere;
          // libvips re-encodes them.
          EXPECT_LT(Compare(got, Decode(slow->bytes)).mean, is_stored ? 2.5 : 1.5);
        }
      }
      if (span >= info.width && span >= info.height) break;
    }
    EXPECT_GT(stored, 0) << file;
    EXPECT_GT(cropped, 0) << file;
    RecordProperty(std::string(file) + " stored/cropped/rendered",
                   std::to_string(stored) + "/" + std::to_string(cropped) + "/" +
                       std::to_string(rendered));
  }
}

TEST_F(FastPath, SmallLevelCropsAndSubTileRegions) {
  // Crops inside one stored tile at its own resolution (not tile-aligned): the libjpeg path.
  auto index = Index("b3001x2049.tif");
  ASSERT_TRUE(index);
  const PyramidInfo& info = index->info();
  for (const char* path : {"100,37,150,200/max/0/default.jpg", "2900,1800,101,200/max/0/color.jpg",
                           "256,512,256,256/max/0/default.jpg", "2048,1024,800,300/200,75/0/default.jpg",
                           "full/94,/0/default.jpg"}) {
    SCOPED_TRACE(path);
    ResolvedRequest r = Resolve(path, info.width, info.height);
    auto fast = IndexedCroppedTile(*index, r);
    ASSERT_TRUE(fast.ok());
    Result<Rendered> slow = Render(Path("b3001x2049.tif"), info, r);
    ASSERT_TRUE(slow.ok());
    if (!fast->has_value()) continue;  // not a single-tile crop: nothing to compare
    VImage got = Decode((*fast)->bytes);
    EXPECT_EQ(got.width(), r.width);
    EXPECT_EQ(got.height(), r.height);
    // (A crop from a tile's corner is its stored coefficients, which Render re-encodes.)
    EXPECT_LT(Compare(got, Decode(slow->bytes)).mean, 2.5);
  }
  // These must be taken by the crop path.
  for (const char* path : {"100,37,150,200/max/0/default.jpg", "2900,1800,101,200/max/0/color.jpg"}) {
    auto fast = IndexedCroppedTile(*index, Resolve(path, info.width, info.height));
    ASSERT_TRUE(fast.ok());
    EXPECT_TRUE(fast->has_value()) << path;
  }
  // And these must not: rotation, mirror, gray, png, a resize, several tiles.
  for (const char* path : {"100,37,150,200/max/90/default.jpg", "100,37,150,200/max/!0/default.jpg",
                           "100,37,150,200/max/0/gray.jpg", "100,37,150,200/max/0/default.png",
                           "100,37,150,200/70,/0/default.jpg", "200,200,150,150/max/0/default.jpg"}) {
    auto fast = IndexedCroppedTile(*index, Resolve(path, info.width, info.height));
    ASSERT_TRUE(fast.ok());
    EXPECT_FALSE(fast->has_value()) << path;
  }
}

// Ingest appends every padded edge tile cut to the image edge past the TIFF
// (blob/pyramid_edges.h): the file still reads the same through libvips, and delivery serves
// those tiles as stored bytes — the very cut it would otherwise make per request.
TEST_F(FastPath, EdgeTilesStoredPastTheTiffAreServedAsStored) {
  for (const char* file : {"a1000x700.tif", "b3001x2049.tif", "rgb1000x700.tif",
                           "grey1000x700.tif"}) {
    SCOPED_TRACE(file);
    const std::string copy = std::string(file) + ".edges.tif";
    fs::copy_file(Path(file), Path(copy), fs::copy_options::overwrite_existing);
    ASSERT_TRUE(AppendEdgeTiles(Path(copy)).ok());
    EXPECT_GT(fs::file_size(Path(copy)), fs::file_size(Path(file)));

    auto plain = Index(file);
    auto index = Index(copy);
    ASSERT_TRUE(plain && index);
    EXPECT_EQ(plain->edge_tile_count(), 0u);
    const PyramidInfo& info = index->info();
    ASSERT_EQ(info.levels.size(), plain->info().levels.size());
    size_t partial = 0;
    for (size_t k = 0; k < info.levels.size(); ++k) {
      // libvips reads every level exactly as before.
      VImage before = VImage::tiffload(Path(file).c_str(), VImage::option()->set("page", int(k)));
      VImage after = VImage::tiffload(Path(copy).c_str(), VImage::option()->set("page", int(k)));
      EXPECT_EQ(Compare(before, after).max, 0) << "level " << k;
      const IndexedLevel& L = index->level(k);
      for (int row = 0; row < L.tiles_down; ++row) {
        for (int col = 0; col < L.tiles_across; ++col) {
          const int cw = std::min(256, L.width - col * 256), ch = std::min(256, L.height - row * 256);
          if (cw == 256 && ch == 256) continue;
          ++partial;
          SCOPED_TRACE("level " + std::to_string(k) + " tile " + std::to_string(col) + "," +
                       std::to_string(row));
          auto stored = index->EdgeJpeg(k, col, row, cw, ch);
          ASSERT_TRUE(stored.ok() && stored->has_value());
          // The cut a pyramid without the trailer gets per request: the same bytes.
          auto tile = plain->TileJpeg(k, col, row);
          ASSERT_TRUE(tile.ok() && tile->has_value());
          std::string cut;
          ASSERT_TRUE(CropJpegCoefficients(**tile, cw, ch, &cut));
          EXPECT_EQ(**stored, cut);
          // And the request a viewer makes is answered with them.
          ResolvedRequest r = Resolve(TileRequest(info, k, col, row), info.width, info.height);
          auto served = IndexedCroppedTile(*index, r);
          ASSERT_TRUE(served.ok() && served->has_value());
          EXPECT_EQ((*served)->bytes, **stored);
          auto unstored = IndexedCroppedTile(*plain, r);
          ASSERT_TRUE(unstored.ok() && unstored->has_value());
          EXPECT_EQ((*unstored)->bytes, **stored);
          // No other size is served from the table.
          auto other = index->EdgeJpeg(k, col, row, cw - 1, ch);
          ASSERT_TRUE(other.ok());
          EXPECT_FALSE(other->has_value());
        }
      }
    }
    EXPECT_EQ(index->edge_tile_count(), partial);
    EXPECT_GT(partial, 0u);

    // The structure kept beside a pyramid on remote storage holds the table and footer.
    auto structure = ReadTiffStructure(Path(copy));
    ASSERT_TRUE(structure.ok());
    ASSERT_FALSE(structure->empty());
    const ByteExtent& last = structure->back();
    EXPECT_EQ(last.offset + last.bytes.size(), fs::file_size(Path(copy)));
    EXPECT_GE(last.bytes.size(), partial * kEdgeEntryBytes + kEdgeFooterBytes);
  }
}

// A trailer that does not describe itself consistently is not used at all: the edge tiles are
// then cut per request, and the pyramid still serves.
TEST_F(FastPath, AnInconsistentEdgeTrailerIsIgnored) {
  const std::string good = "b3001x2049.tif.good.tif";
  fs::copy_file(Path("b3001x2049.tif"), Path(good), fs::copy_options::overwrite_existing);
  ASSERT_TRUE(AppendEdgeTiles(Path(good)).ok());
  auto reference = Index(good);
  ASSERT_TRUE(reference);
  ASSERT_GT(reference->edge_tile_count(), 0u);
  std::string bytes;
  {
    std::ifstream in(Path(good), std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const size_t n = bytes.size();
  const uint64_t table = [&] {
    uint64_t v = 0;
    for (int i = 8; i-- > 0;) v = (v << 8) | uint8_t(bytes[n - kEdgeFooterBytes + size_t(i)]);
    return v;
  }();
  struct Case {
    const char* what;
    std::function<void(std::string&)> damage;
  };
  const Case cases[] = {
      {"magic", [&](std::string& b) { b[n - 1] ^= 0x20; }},
      {"format", [&](std::string& b) { b[n - 12] = 9; }},
      {"count", [&](std::string& b) { b[n - 16] = char(uint8_t(b[n - 16]) + 1); }},
      {"an entry past the table", [&](std::string& b) { b[size_t(table) + 31] = 0x7F; }},
      {"an entry's level", [&](std::string& b) { b[size_t(table)] = 40; }},
      {"an entry's width", [&](std::string& b) { b[size_t(table) + 12] = char(uint8_t(b[size_t(table) + 12]) + 1); }},
      {"a truncated file", [&](std::string& b) { b.pop_back(); }},
  };
  const PyramidInfo& info = reference->info();
  const IndexedLevel& L0 = reference->level(0);
  const std::string edge_request = TileRequest(info, 0, L0.tiles_across - 1, 0);
  auto expected = IndexedCroppedTile(*reference, Resolve(edge_request, info.width, info.height));
  ASSERT_TRUE(expected.ok() && expected->has_value());
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    std::string damaged = bytes;
    c.damage(damaged);
    const std::string name = std::string("damaged-") + std::to_string(&c - cases) + ".tif";
    {
      std::ofstream out(Path(name), std::ios::binary | std::ios::trunc);
      out.write(damaged.data(), std::streamsize(damaged.size()));
    }
    auto index = Index(name);
    ASSERT_TRUE(index);
    EXPECT_EQ(index->edge_tile_count(), 0u);
    auto served = IndexedCroppedTile(*index, Resolve(edge_request, info.width, info.height));
    ASSERT_TRUE(served.ok() && served->has_value());
    EXPECT_EQ((*served)->bytes, (*expected)->bytes);
  }
}

TEST_F(FastPath, InteriorTilesAreTheStoredBytes) {
  for (const char* file : {"a1000x700.tif", "b3001x2049.tif", "rgb1000x700.tif",
                           "grey1000x700.tif"}) {
    auto index = Index(file);
    ASSERT_TRUE(index);
    const PyramidInfo& info = index->info();
    int checked = 0;
    for (size_t k = 0; k < info.levels.size(); ++k) {
      if (!IsPowerOfTwoLevel(info, k)) continue;
      const IndexedLevel& L = index->level(k);
      const int sf = 1 << k, span = 256 * sf;
      for (int row = 0; row < L.tiles_down; ++row) {
        for (int col = 0; col < L.tiles_across; ++col) {
          if ((col + 1) * 256 > L.width || (row + 1) * 256 > L.height) continue;  // edge
          const std::string path = std::to_string(col * span) + "," + std::to_string(row * span) +
                                   "," + std::to_string(span) + "," + std::to_string(span) +
                                   "/256,256/0/default.jpg";
          SCOPED_TRACE(std::string(file) + " level " + std::to_string(k) + " " + path);
          ResolvedRequest r = Resolve(path, info.width, info.height);
          Result<std::optional<Rendered>> tile = TryStoredTile(Path(file), info, r);
          ASSERT_TRUE(tile.ok()) << tile.status().message();
          ASSERT_TRUE(tile->has_value());
          const std::string want = ExpectedTileStream(Path(file), int(k), col, row);
          ASSERT_EQ((*tile)->bytes.size(), want.size());
          EXPECT_TRUE((*tile)->bytes == want) << "stored tile bytes differ";
          // The same through the cached index.
          auto again = IndexedStoredTile(*index, r);
          ASSERT_TRUE(again.ok() && again->has_value());
          EXPECT_TRUE((*again)->bytes == want);
          ++checked;
        }
      }
    }
    EXPECT_GT(checked, 0) << file;
    if (std::string(file) == "b3001x2049.tif") {
      EXPECT_GE(checked, 11 * 8);
    }
  }
  // The RGB-photometric tiles decode to the right colours only with the Adobe marker:
  // compare with the stored level pixels.
  auto index = Index("rgb1000x700.tif");
  ResolvedRequest r = Resolve("256,256,256,256/256,256/0/default.jpg", 1000, 700);
  auto tile = TryStoredTile(Path("rgb1000x700.tif"), index->info(), r);
  ASSERT_TRUE(tile.ok() && tile->has_value());
  VImage level = VImage::tiffload(Path("rgb1000x700.tif").c_str());
  EXPECT_LT(Compare(Decode((*tile)->bytes), level.extract_area(256, 256, 256, 256)).mean, 0.5);
}

// Renders built from the index's tiles against libvips-only renders.
TEST_F(FastPath, IndexedRendersMatchLibvips) {
  struct Case {
    const char* file;
    const char* path;
    int w, h;  // expected output size
  } cases[] = {
      {"b3001x2049.tif", "full/!1024,1024/0/default.jpg", 1024, 699},
      {"b3001x2049.tif", "300,200,1400,1000/700,500/0/default.jpg", 700, 500},  // level 1, 4×3 tiles
      {"b3001x2049.tif", "600,400,1300,900/500,/0/default.jpg", 500, 346},
      {"b3001x2049.tif", "pct:10,20,50,40/max/0/default.jpg", 1501, 819},
      {"b3001x2049.tif", "pct:10,20,50,40/600,/0/default.jpg", 600, 327},
      {"b3001x2049.tif", "pct:66.6,50,33.4,50/,300/0/default.jpg", 0, 300},  // right/bottom edges
      {"b3001x2049.tif", "1000,1000,2001,1049/389,/0/default.jpg", 389, 204},
      {"b3001x2049.tif", "full/300,300/0/default.jpg", 300, 300},  // non-uniform
      {"b3001x2049.tif", "full/max/0/default.jpg", 3001, 2049},     // too big: libvips fallback
      {"b3001x2049.tif", "100,100,300,200/^600,400/0/default.jpg", 600, 400},  // upscale
      {"b3001x2049.tif", "full/!800,800/0/gray.jpg", 800, 546},
      {"b3001x2049.tif", "300,200,1400,1000/700,/0/default.png", 700, 500},
      {"b3001x2049.tif", "300,200,1400,1000/700,/90/default.jpg", 500, 700},
      {"b3001x2049.tif", "300,200,1400,1000/700,/!180/default.jpg", 700, 500},
      {"b3001x2049.tif", "300,200,1400,1000/700,/0/default.webp", 700, 500},
      {"a1000x700.tif", "full/!512,512/0/default.jpg", 512, 358},
      {"a1000x700.tif", "pct:5,5,90,90/450,/0/color.jpg", 450, 315},
      {"rgb1000x700.tif", "full/!512,512/0/default.jpg", 512, 358},
      {"grey1000x700.tif", "full/!512,512/0/default.jpg", 512, 358},
      {"grey1000x700.tif", "200,100,700,500/350,/0/default.png", 350, 250},
  };
  const Limits limits{4000, 4000, 0};
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.file) + " " + c.path);
    auto index = Index(c.file);
    ASSERT_TRUE(index);
    const PyramidInfo& info = index->info();
    ResolvedRequest r = Resolve(c.path, info.width, info.height, limits);
    Result<Rendered> fast = RenderIndexed(*index, r);
    ASSERT_TRUE(fast.ok()) << fast.status().message();
    Result<Rendered> slow = Render(Path(c.file), info, r);
    ASSERT_TRUE(slow.ok()) << slow.status().message();
    EXPECT_EQ(fast->content_type, slow->content_type);
    VImage a = Decode(fast->bytes), b = Decode(slow->bytes);
    if (c.w) {
      EXPECT_EQ(a.width(), c.w);
    }
    EXPECT_EQ(a.height(), c.h);
    const bool quarter = std::fmod(r.rotation, 180.0) == 90;
    EXPECT_EQ(a.width(), quarter ? r.height : r.width);
    EXPECT_EQ(a.height(), quarter ? r.width : r.height);
    DiffStats d = Compare(a, b);
    EXPECT_LT(d.mean, 2.0);
  }
}

TEST_F(FastPath, IndexedGrayBitonalAndRotation) {
  auto index = Index("b3001x2049.tif");
  ASSERT_TRUE(index);
  const PyramidInfo& info = index->info();
  auto both = [&](const std::string& path, VImage* fast, VImage* slow) {
    ResolvedRequest r = Resolve(path, info.width, info.height);
    Result<Rendered> f = RenderIndexed(*index, r);
    Result<Rendered> s = Render(Path("b3001x2049.tif"), info, r);
    ASSERT_TRUE(f.ok() && s.ok());
    *fast = Decode(f->bytes);
    *slow = Decode(s->bytes);
  };
  VImage f, s;
  // Gray: one band, close to libvips.
  both("full/!600,600/0/gray.png", &f, &s);
  EXPECT_EQ(f.bands(), 1);
  EXPECT_EQ(f.width(), 600);
  EXPECT_LT(Compare(f, s).mean, 2.0);

  // Bitonal: only 0 and 255, and the same pixels as libvips but for the few that sit at the
  // threshold (the two shrinks differ by a level or two).
  both("full/!600,600/0/bitonal.png", &f, &s);
  EXPECT_EQ(f.bands(), 1);
  EXPECT_EQ(((f != 0) & (f != 255)).max(), 0);
  EXPECT_EQ(f.min(), 0);
  EXPECT_EQ(f.max(), 255);
  std::vector<uint8_t> pf = Pixels(f), ps = Pixels(s);
  ASSERT_EQ(pf.size(), ps.size());
  size_t differ = 0;
  for (size_t i = 0; i < pf.size(); ++i) differ += pf[i] != ps[i];
  EXPECT_LT(double(differ) / double(pf.size()), 0.03);

  // Arbitrary rotation: bounding box and background as libvips, content close.
  both("300,200,1400,1000/700,500/30/default.png", &f, &s);
  EXPECT_EQ(f.width(), s.width());
  EXPECT_EQ(f.height(), s.height());
  EXPECT_EQ(f.bands(), 4);
  EXPECT_EQ(f.getpoint(0, 0)[3], 0);
  EXPECT_LT(Compare(f, s).mean, 2.0);
  both("300,200,1400,1000/700,500/30/default.jpg", &f, &s);
  EXPECT_EQ(f.bands(), 3);
  EXPECT_GE(f.getpoint(1, 1)[0], 245);  // white corner
  EXPECT_LT(Compare(f, s).mean, 2.0);
}

TEST_F(FastPath, IndexedRendersReadTheIndexedFile) {
  // Renders small enough to decode from the index never reopen the path: with the file
  // unlinked after indexing, they still succeed (through the open descriptor) and match.
  const std::string copy = Path("unlinked.tif");
  fs::copy_file(Path("b3001x2049.tif"), copy, fs::copy_options::overwrite_existing);
  auto index = PyramidIndex::Open(copy);
  ASSERT_TRUE(index.ok());
  ASSERT_EQ(::unlink(copy.c_str()), 0);
  const PyramidInfo& info = (*index)->info();
  for (const char* path : {"full/!1024,1024/0/default.jpg", "300,200,1400,1000/700,500/0/default.jpg",
                           "300,200,1400,1000/700,500/90/gray.png",
                           "2900,2000,101,49/max/0/default.jpg"}) {
    SCOPED_TRACE(path);
    ResolvedRequest r = Resolve(path, info.width, info.height);
    Result<Rendered> fast = RenderIndexed(**index, r);
    ASSERT_TRUE(fast.ok()) << fast.status().message();
    Result<Rendered> slow = Render(Path("b3001x2049.tif"), info, r);
    ASSERT_TRUE(slow.ok());
    EXPECT_LT(Compare(Decode(fast->bytes), Decode(slow->bytes)).mean, 2.0);
  }
}

TEST_F(FastPath, DecodeLevelRectMatchesTiffload) {
  auto index = Index("b3001x2049.tif");
  ASSERT_TRUE(index);
  for (size_t k : {size_t(0), size_t(1), size_t(3)}) {
    const IndexedLevel& L = index->level(k);
    VImage level =
        VImage::tiffload(Path("b3001x2049.tif").c_str(), VImage::option()->set("page", int(k)));
    for (LevelRect rect : {LevelRect{0, 0, L.width, std::min(L.height, 300)},
                           LevelRect{L.width - 300 > 0 ? L.width - 300 : 0, 17, L.width, L.height},
                           LevelRect{255, 255, std::min(L.width, 257), std::min(L.height, 513)},
                           LevelRect{L.width - 1, L.height - 1, L.width, L.height}}) {
      SCOPED_TRACE("level " + std::to_string(k) + " rect " + std::to_string(rect.x0) + "," +
                   std::to_string(rect.y0) + "-" + std::to_string(rect.x1) + "," +
                   std::to_string(rect.y1));
      const int w = rect.x1 - rect.x0, h = rect.y1 - rect.y0;
      std::vector<uint8_t> px(size_t(w) * h * 3);
      Status st = DecodeLevelRect(*index, k, rect, px.data());
      ASSERT_TRUE(st.ok()) << st.message();
      std::vector<uint8_t> want = Pixels(level.extract_area(rect.x0, rect.y0, w, h));
      DiffStats d = Compare(px.data(), want.data(), size_t(w) * h, 3);
      // libvips decodes the same tiles with the same libjpeg: identical or within rounding.
      EXPECT_LE(d.max, 1);
    }
  }
}

// ---------------------------------------------------------------- a replaced pyramid

TEST_F(FastPath, ReplacedFileIsNoticed) {
  const std::string path = Path("replaced.tif");
  test::WriteTestPyramid(NoiseGradientImage(1000, 700, 3, 11), path);
  const std::string interior = "256,256,256,256/256,256/0/default.jpg";
  const std::string edge = "768,512,232,188/max/0/default.jpg";
  ResolvedRequest ri = Resolve(interior, 1000, 700), re = Resolve(edge, 1000, 700);

  auto first = PyramidIndex::Open(path);
  ASSERT_TRUE(first.ok());
  const std::string old_tile = ExpectedTileStream(path, 0, 1, 1);
  auto t1 = IndexedStoredTile(**first, ri);
  ASSERT_TRUE(t1.ok() && t1->has_value());
  EXPECT_EQ((*t1)->bytes, old_tile);
  auto e1 = IndexedCroppedTile(**first, re);
  ASSERT_TRUE(e1.ok() && e1->has_value());

  // Replaced the way the blob store does it: a new file renamed over the old name.
  test::WriteTestPyramid(NoiseGradientImage(1000, 700, 3, 12), path + ".new");
  ASSERT_EQ(::rename((path + ".new").c_str(), path.c_str()), 0);
  const std::string new_tile = ExpectedTileStream(path, 0, 1, 1);
  ASSERT_NE(new_tile, old_tile);
  Result<FileIdentity> id = StatIdentity(path);
  ASSERT_TRUE(id.ok());
  EXPECT_FALSE(*id == (*first)->identity()) << "callers key their caches by this identity";
  // The old index still reads the old file consistently (its descriptor keeps it alive).
  auto stale = IndexedStoredTile(**first, ri);
  ASSERT_TRUE(stale.ok() && stale->has_value());
  EXPECT_EQ((*stale)->bytes, old_tile);
  // A fresh read serves the new bytes.
  auto t2 = TryStoredTile(path, (*first)->info(), ri);
  ASSERT_TRUE(t2.ok() && t2->has_value());
  EXPECT_EQ((*t2)->bytes, new_tile);
  auto second = PyramidIndex::Open(path);
  ASSERT_TRUE(second.ok());
  auto e2 = IndexedCroppedTile(**second, re);
  ASSERT_TRUE(e2.ok() && e2->has_value());
  EXPECT_NE((*e2)->bytes, (*e1)->bytes);
  Result<Rendered> slow = Render(path, (*second)->info(), re);
  ASSERT_TRUE(slow.ok());
  EXPECT_LT(Compare(Decode((*e2)->bytes), Decode(slow->bytes)).mean, 1.5);

  // Rewritten in place (same inode, other content and size): the identity changes too.
  test::WriteTestPyramid(NoiseGradientImage(1000, 700, 3, 13).extract_area(0, 0, 900, 650), path);
  Result<FileIdentity> id3 = StatIdentity(path);
  ASSERT_TRUE(id3.ok());
  EXPECT_FALSE(*id3 == (*second)->identity());
  auto third = PyramidIndex::Open(path);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ((*third)->info().width, 900);
  auto t3 = TryStoredTile(path, (*third)->info(), Resolve(interior, 900, 650));
  ASSERT_TRUE(t3.ok() && t3->has_value());
  EXPECT_EQ((*t3)->bytes, ExpectedTileStream(path, 0, 1, 1));

  // Gone: NotFound, which delivery turns into a 404.
  ASSERT_EQ(::unlink(path.c_str()), 0);
  auto gone = PyramidIndex::Open(path);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().code(), Code::kNotFound);
  EXPECT_EQ(StatIdentity(path).status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace quire::iiif
