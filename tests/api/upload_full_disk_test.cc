// Uploads on a data volume that is nearly full: a real 48 MiB tmpfs holds --data (as in
// full_disk_test). An upload that would eat into the reserve kept for the database is refused
// with 503 — from its Content-Length before the body is read, or while a chunked body arrives —
// and leaves no scratch file, blob or row; once refused, the server still takes uploads that
// fit. Needs to mount tmpfs (root with CAP_SYS_ADMIN, as in CI); fails, not skips, otherwise.
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <cstring>
#include <filesystem>

#include "support/http_client.h"
#include "support/quire_process.h"

namespace quire::test {
namespace {

namespace fs = std::filesystem;

int ScratchUploads(const std::string& dir) {
  int n = 0;
  for (auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename().string().rfind("upload-", 0) == 0) ++n;
  return n;
}

TEST(UploadFullDiskTest, UploadsThatWouldFillTheVolumeAre503AndKeepNothing) {
  TempDir tmp;
  std::string volume = tmp.path() + "/vol";
  fs::create_directories(volume);
  ASSERT_EQ(::mount("tmpfs", volume.c_str(), "tmpfs", 0, "size=48m"), 0)
      << "cannot mount a tmpfs: " << std::strerror(errno);
  struct Unmount {
    std::string dir;
    ~Unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
  } unmount{volume};
  {
    QuireProcess server(volume + "/data", {"--workers", "0", "--min-free-bytes",
                                           std::to_string(16 << 20)});
    std::string url = server.url() + "/customers/1/uploads";
    auto rows = [&] { return Http("GET", url, "", server.admin()).Json()["totalItems"]; };
    std::string big(40 << 20, 'x');
    auto announced = Http("POST", url, big, server.admin());
    EXPECT_EQ(announced.status, 503) << announced.body;
    EXPECT_NE(announced.body.find("no space left"), std::string::npos) << announced.body;
    auto chunked = Http("POST", url, big, server.admin(), {{"Transfer-Encoding", "chunked"}});
    EXPECT_EQ(chunked.status, 503) << chunked.body;
    EXPECT_EQ(ScratchUploads(volume), 0);
    EXPECT_EQ(rows(), 0);
    EXPECT_FALSE(fs::exists(volume + "/data/blobs/uploads/1"));
    auto fits = Http("POST", url, std::string(4 << 20, 'y'), server.admin());
    EXPECT_EQ(fits.status, 201) << fits.body;
    EXPECT_EQ(rows(), 1);
  }
}

}  // namespace
}  // namespace quire::test
