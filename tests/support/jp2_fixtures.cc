#include "support/jp2_fixtures.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/vips_init.h"
#include "support/ingest_fixtures.h"
#include "support/quire_process.h"
#include "support/run_command.h"

namespace quire::test {

using vips::VImage;

namespace {

void Init() {
  if (!quire::InitVips("quire-test")) throw std::runtime_error("libvips failed to start");
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void PutU32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + i] = static_cast<char>(v >> (24 - 8 * i));
}

size_t Find(const std::string& s, const std::string& what, size_t from = 0) {
  size_t at = s.find(what, from);
  if (at == std::string::npos) throw std::runtime_error("not a JP2 as opj_compress writes it");
  return at;
}

}  // namespace

VImage Rgb8Pixels(int w, int h, int seed) {
  // Softened a little: MakePng's colour noise is what the pyramid's chroma-subsampled JPEG
  // tiles lose most, and it would hide the decoder's own error behind theirs.
  return DecodeToImage(MakePng(w, h, seed))
      .gaussblur(1.5)
      .cast(VIPS_FORMAT_UCHAR)
      .copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_sRGB))
      .copy_memory();
}

VImage Rgb16Pixels(int w, int h, int seed) {
  VImage rgb = Rgb8Pixels(w, h, seed);
  VImage xy = VImage::xyz(w, h);
  VImage low = (xy[0] * 131 + xy[1] * 71) % 256;
  return (rgb.cast(VIPS_FORMAT_USHORT) * 256 + low)
      .cast(VIPS_FORMAT_USHORT)
      .copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_RGB16))
      .copy_memory();
}

VImage Grey8Pixels(int w, int h, int seed) {
  return Rgb8Pixels(w, h, seed)[1]
      .copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_B_W))
      .copy_memory();
}

VImage Grey16Pixels(int w, int h, int seed) {
  return Rgb16Pixels(w, h, seed)[1]
      .copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_GREY16))
      .copy_memory();
}

std::string MakeJp2(const VImage& pixels, const std::string& options, const std::string& suffix) {
  Init();
  TempDir dir;
  // opj_compress reads PPM (3 bands) and PGM (1 band), 8 or 16 bits.
  std::string in = dir.path() + (pixels.bands() == 1 ? "/in.pgm" : "/in.ppm");
  pixels.write_to_file(in.c_str());
  std::string out = dir.path() + "/out" + suffix;
  int rc = 0;
  std::string said = RunCommand(
      "opj_compress -i " + ShellQuote(in) + " -o " + ShellQuote(out) + " " + options + " 2>&1",
      &rc);
  if (rc != 0) throw std::runtime_error("opj_compress " + options + " failed: " + said);
  return ReadFile(out);
}

std::string AsJpx(std::string jp2) {
  size_t ftyp = Find(jp2, "ftyp");
  jp2.replace(ftyp + 4, 4, "jpx ");
  return jp2;
}

std::string CorruptCodestream(std::string jp2) {
  size_t soc = Find(jp2, "\xff\x4f\xff\x51");
  size_t sot = Find(jp2, "\xff\x90", soc);
  // Past the SOT segment (12 bytes) and SOD: the first packet headers become all ones.
  size_t from = sot + 14;
  size_t to = std::min(jp2.size(), from + 3000);
  for (size_t i = from; i < to; ++i) jp2[i] = '\xff';
  return jp2;
}

std::string ClaimSize(std::string jp2, uint32_t w, uint32_t h) {
  size_t ihdr = Find(jp2, "ihdr");
  PutU32(jp2, ihdr + 4, h);
  PutU32(jp2, ihdr + 8, w);
  // SIZ: marker, Lsiz, Rsiz, then Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz.
  size_t siz = Find(jp2, "\xff\x4f\xff\x51") + 2 + 2 + 2 + 2;
  PutU32(jp2, siz, w);
  PutU32(jp2, siz + 4, h);
  PutU32(jp2, siz + 8, 0);
  PutU32(jp2, siz + 12, 0);
  PutU32(jp2, siz + 16, w);
  PutU32(jp2, siz + 20, h);
  return jp2;
}

VImage DecodeToImage(const std::string& bytes) {
  Init();
  // The test process decodes JPEG 2000 itself (to know what the files hold); the server never
  // does.
  vips_operation_block_set("VipsForeignLoadJp2k", FALSE);
  VImage image = VImage::new_from_buffer(bytes.data(), bytes.size(), "");
  return image.copy_memory();
}

PixelDiff Compare(const VImage& a, const VImage& b) {
  if (a.width() != b.width() || a.height() != b.height() || a.bands() != b.bands())
    throw std::runtime_error("Compare: " + std::to_string(a.width()) + "x" +
                             std::to_string(a.height()) + "x" + std::to_string(a.bands()) + " vs " +
                             std::to_string(b.width()) + "x" + std::to_string(b.height()) + "x" +
                             std::to_string(b.bands()));
  VImage d = (a.cast(VIPS_FORMAT_FLOAT) - b.cast(VIPS_FORMAT_FLOAT)).abs();
  return {d.avg(), d.max()};
}

}  // namespace quire::test
