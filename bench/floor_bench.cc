// The decode + encode floor of ingest (issue 17 §1): what it costs at least to turn the bench's
// JPEGs into the tiles of a 256² pyramid through pixels, with nothing else — no TIFF container,
// no thumbnails, no fetch, no database. Each image is decoded whole with libjpeg-turbo (to RGB),
// every level's tiles are encoded with libjpeg-turbo at Quire's quality (Q85, libjpeg's default
// 4:2:0 sampling, as libtiff's JPEG codec writes them), and each next level is the 2×2 box
// average of the last (libvips' pyramid shrink) until one tile holds it. THREADS images are
// worked on at once, like Quire's ingest workers.
//
//   floor_bench THREADS FILE...   → one JSON line: seconds, images, tiles, bytes
// jpeglib.h needs size_t and FILE declared before it.
#include <cstddef>
#include <cstdio>

#include <jpeglib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kTile = 256;
constexpr int kQuality = 85;

struct Image {
  int width = 0, height = 0;
  std::vector<unsigned char> rgb;  // width × height × 3
};

std::vector<unsigned char> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "floor_bench: cannot read %s\n", path.c_str());
    std::exit(1);
  }
  return std::vector<unsigned char>(std::istreambuf_iterator<char>(in), {});
}

Image Decode(const std::vector<unsigned char>& jpeg) {
  jpeg_decompress_struct d;
  jpeg_error_mgr err;
  d.err = jpeg_std_error(&err);  // a broken input ends the process: inputs are generated
  jpeg_create_decompress(&d);
  jpeg_mem_src(&d, jpeg.data(), jpeg.size());
  jpeg_read_header(&d, TRUE);
  d.out_color_space = JCS_RGB;
  jpeg_start_decompress(&d);
  Image img;
  img.width = static_cast<int>(d.output_width);
  img.height = static_cast<int>(d.output_height);
  img.rgb.resize(static_cast<size_t>(img.width) * img.height * 3);
  while (d.output_scanline < d.output_height) {
    JSAMPROW row = img.rgb.data() + static_cast<size_t>(d.output_scanline) * img.width * 3;
    jpeg_read_scanlines(&d, &row, 1);
  }
  jpeg_finish_decompress(&d);
  jpeg_destroy_decompress(&d);
  return img;
}

// Encodes the tile at (x0, y0) of `img` (clipped at the edges); returns its size in bytes.
size_t EncodeTile(const Image& img, int x0, int y0) {
  const int w = std::min(kTile, img.width - x0), h = std::min(kTile, img.height - y0);
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* out = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &out, &size);
  c.image_width = static_cast<JDIMENSION>(w);
  c.image_height = static_cast<JDIMENSION>(h);
  c.input_components = 3;
  c.in_color_space = JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, kQuality, TRUE);
  jpeg_start_compress(&c, TRUE);
  for (int y = 0; y < h; ++y) {
    JSAMPROW row = const_cast<unsigned char*>(img.rgb.data()) +
                   (static_cast<size_t>(y0 + y) * img.width + x0) * 3;
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::free(out);
  return size;
}

Image Halve(const Image& img) {
  Image half;
  half.width = std::max(1, img.width / 2);
  half.height = std::max(1, img.height / 2);
  half.rgb.resize(static_cast<size_t>(half.width) * half.height * 3);
  for (int y = 0; y < half.height; ++y) {
    const unsigned char* r0 = img.rgb.data() + static_cast<size_t>(2 * y) * img.width * 3;
    const unsigned char* r1 = r0 + (2 * y + 1 < img.height ? img.width * 3 : 0);
    unsigned char* out = half.rgb.data() + static_cast<size_t>(y) * half.width * 3;
    for (int x = 0; x < half.width; ++x) {
      const int a = 2 * x * 3, b = (2 * x + 1 < img.width ? 2 * x + 1 : 2 * x) * 3;
      for (int k = 0; k < 3; ++k)
        out[x * 3 + k] = static_cast<unsigned char>((r0[a + k] + r0[b + k] + r1[a + k] + r1[b + k] + 2) / 4);
    }
  }
  return half;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: floor_bench THREADS FILE...\n");
    return 2;
  }
  const int threads = std::max(1, std::atoi(argv[1]));
  std::vector<std::string> files(argv + 2, argv + argc);
  std::atomic<size_t> next{0};
  std::atomic<long long> tiles{0}, bytes{0};
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t i; (i = next++) < files.size();) {
        Image level = Decode(ReadFile(files[i]));
        for (;;) {
          for (int y = 0; y < level.height; y += kTile)
            for (int x = 0; x < level.width; x += kTile) {
              bytes += static_cast<long long>(EncodeTile(level, x, y));
              ++tiles;
            }
          if (level.width <= kTile && level.height <= kTile) break;
          level = Halve(level);
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("{\"seconds\": %.3f, \"images\": %zu, \"tiles\": %lld, \"bytes\": %lld}\n", seconds,
              files.size(), tiles.load(), bytes.load());
  return 0;
}
