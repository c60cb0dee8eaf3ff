// The TIFF structure extents of a real libvips pyramid: they hold every directory and its
// arrays (the tile index reads from them alone), none of the tile data, and round-trip.
#include "blob/tiff_structure.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/vips_init.h"
#include "iiif/pyramid_index.h"
#include "support/test_pyramid.h"

namespace quire {
namespace {
namespace fs = std::filesystem;

// A PyramidSource that may only answer from the extents: any other read fails the test.
class ExtentsOnly : public iiif::PyramidSource {
 public:
  explicit ExtentsOnly(std::vector<ByteExtent> e) : extents_(std::move(e)) {}
  Result<std::string> ReadAt(uint64_t offset, size_t n) const override {
    ADD_FAILURE() << "read outside the structure: " << offset << "+" << n;
    return Status::IOError("outside");
  }
  Result<std::string> LocalCopy() const override { return Status::Unsupported("none"); }
  bool ReadHeld(uint64_t offset, size_t n, char* out) const override {
    for (const auto& e : extents_) {
      if (offset >= e.offset && offset + n <= e.offset + e.bytes.size()) {
        std::memcpy(out, e.bytes.data() + (offset - e.offset), n);
        return true;
      }
    }
    return false;
  }

 private:
  std::vector<ByteExtent> extents_;
};

TEST(TiffStructureTest, IndexesAPyramidFromItsStructureAlone) {
  std::string dir = (fs::temp_directory_path() / ("quire-tiffs-" + std::to_string(::getpid()))).string();
  fs::create_directories(dir);
  const std::string tif = dir + "/p.tif";
  ASSERT_TRUE(InitVips());
  vips::VImage noise = vips::VImage::gaussnoise(3000, 2000).cast(VIPS_FORMAT_UCHAR);
  test::WriteTestPyramid(noise.bandjoin(noise).bandjoin(noise), tif);
  auto extents = ReadTiffStructure(tif);
  ASSERT_TRUE(extents.ok()) << extents.status().message();
  uint64_t held = 0;
  for (auto& e : *extents) held += e.bytes.size();
  const uint64_t size = fs::file_size(tif);
  EXPECT_LT(held, size / 20) << "structure only, not tile data";

  std::string version;
  auto decoded = DecodeTiffStructure(EncodeTiffStructure(*extents, "etag-1"), &version);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(version, "etag-1");
  ASSERT_EQ(decoded->size(), extents->size());

  auto local = iiif::PyramidIndex::Open(tif);
  ASSERT_TRUE(local.ok());
  iiif::FileIdentity id;
  id.size = int64_t(size);
  auto remote = iiif::PyramidIndex::OpenSource(std::make_shared<ExtentsOnly>(*decoded), id, "p");
  ASSERT_TRUE(remote.ok()) << remote.status().message();
  ASSERT_EQ((*remote)->level_count(), (*local)->level_count());
  for (size_t k = 0; k < (*local)->level_count(); ++k) {
    EXPECT_EQ((*remote)->level(k).offsets, (*local)->level(k).offsets) << k;
    EXPECT_EQ((*remote)->level(k).byte_counts, (*local)->level(k).byte_counts) << k;
    EXPECT_EQ((*remote)->level(k).tables_body, (*local)->level(k).tables_body) << k;
  }
  EXPECT_EQ(DecodeTiffStructure("junk", &version).status().code(), Code::kInvalid);
  std::ofstream(dir + "/not.tif") << "not a tiff at all";
  EXPECT_FALSE(ReadTiffStructure(dir + "/not.tif").ok());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace quire
