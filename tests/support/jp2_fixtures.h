// JPEG 2000 test files, made at test time by Debian's OpenJPEG encoder (`opj_compress`, from
// libopenjp2-tools) from pixels the test knows, and damaged copies of them.
#pragma once

#include <string>
#include <vips/vips8>

namespace quire::test {

// The sources: 8-bit sRGB pixels (MakePng's, softened), and 16-bit ones whose low byte
// carries its own pattern (so a decoder that dropped it would be seen).
vips::VImage Rgb8Pixels(int w, int h, int seed);
vips::VImage Rgb16Pixels(int w, int h, int seed);   // interpretation RGB16
vips::VImage Grey8Pixels(int w, int h, int seed);   // B_W
vips::VImage Grey16Pixels(int w, int h, int seed);  // GREY16

// `pixels` encoded by opj_compress with `options` (e.g. "-r 20 -t 256,256"; "" is lossless,
// untiled). `suffix` ".jp2" gives a JP2 file, ".j2k" a raw codestream. Throws when the
// encoder fails.
std::string MakeJp2(const vips::VImage& pixels, const std::string& options,
                    const std::string& suffix = ".jp2");

// The JP2 with its file-type brand changed to JPX ("jpx ", JPEG 2000 part 2), as
// image/jpx files carry it.
std::string AsJpx(std::string jp2);
// The JP2 with its first tile's packet data overwritten (OpenJPEG refuses the packet headers).
std::string CorruptCodestream(std::string jp2);
// The JP2 with its header (ihdr box and SIZ marker) claiming `w` x `h` in one tile: a small
// file whose decoder allocates for the whole claimed size.
std::string ClaimSize(std::string jp2, uint32_t w, uint32_t h);

// Encoded bytes decoded into memory (any format libvips reads, JPEG 2000 included).
vips::VImage DecodeToImage(const std::string& bytes);
// Mean and largest absolute difference of two images of the same size and bands.
struct PixelDiff {
  double mean = 0, max = 0;
};
PixelDiff Compare(const vips::VImage& a, const vips::VImage& b);

}  // namespace quire::test
