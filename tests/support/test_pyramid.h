// Writes a pyramid the way the ingest engine's contract describes it (tiled 256², JPEG Q85,
// one TIFF page per level), for tests of the renderer that build their own inputs.
#pragma once

#include <string>

#include <vips/vips8>

namespace quire::test {

// `rgbjpeg`: store JPEG tiles with Photometric RGB instead of YCbCr (the less common layout
// the stored-tile pass-through must also handle).
void WriteTestPyramid(const vips::VImage& img, const std::string& path, bool rgbjpeg = false);

}  // namespace quire::test
