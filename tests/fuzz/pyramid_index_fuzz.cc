// libFuzzer target for the tile index reader (src/iiif/pyramid_index.cc): any bytes are
// opened as a stored pyramid (as a damaged or hostile blob would be), then every level's
// first and last tile (and the stored cut of the last) are read the way delivery serves them. Beyond "no crash, ASan/UBSan
// clean": an index that opens has levels of positive size whose tile grids cover them.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "iiif/pyramid_index.h"

namespace {
void Check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fd = memfd_create("pyramid", MFD_CLOEXEC);
  if (fd < 0) return 0;
  if (size > 0 && write(fd, data, size) != static_cast<ssize_t>(size)) {
    close(fd);
    return 0;
  }
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  auto index = quire::iiif::PyramidIndex::Open(path);
  if (index.ok()) {
    const auto& idx = **index;
    for (size_t k = 0; k < idx.level_count(); ++k) {
      const auto& level = idx.level(k);
      Check(level.width > 0 && level.height > 0 && level.tiles_across > 0 && level.tiles_down > 0);
      Check(level.offsets.size() == level.byte_counts.size());
      (void)idx.TileJpeg(k, 0, 0);
      (void)idx.TileJpeg(k, level.tiles_across - 1, level.tiles_down - 1);
      // The edge tile table past the TIFF (blob/pyramid_edges.h), as delivery asks it.
      const int tw = idx.info().tile_width, th = idx.info().tile_height;
      const int col = level.tiles_across - 1, row = level.tiles_down - 1;
      (void)idx.EdgeJpeg(k, col, row, level.width - col * tw, level.height - row * th);
    }
  }
  close(fd);
  return 0;
}
