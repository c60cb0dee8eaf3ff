#include "support/test_pyramid.h"

namespace quire::test {

void WriteTestPyramid(const vips::VImage& img, const std::string& path, bool rgbjpeg) {
  img.tiffsave(path.c_str(), vips::VImage::option()
                                 ->set("tile", true)
                                 ->set("tile_width", 256)
                                 ->set("tile_height", 256)
                                 ->set("pyramid", true)
                                 ->set("compression", VIPS_FOREIGN_TIFF_COMPRESSION_JPEG)
                                 ->set("Q", 85)
                                 ->set("rgbjpeg", rgbjpeg));
}

}  // namespace quire::test
