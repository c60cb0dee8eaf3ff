// A data volume that fills up during a batch: a real (small) tmpfs mounted under the test's
// temporary directory holds --data. The server must not crash, must never record an image as
// completed with a partial pyramid, must keep its database able to record outcomes, and must
// finish the batch exactly once space is back and the failed images are retried. Also: the
// scratch of a killed process is removed when the next one starts.
//
// Needs to mount tmpfs (root with CAP_SYS_ADMIN, as in CI); fails, not skips, when it cannot.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <tiffio.h>

#include <filesystem>
#include <thread>

#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"

namespace quire::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr int64_t kCustomer = 1;

class SmallVolume {
 public:
  SmallVolume(const std::string& dir, int mib) : dir_(dir) {
    fs::create_directories(dir);
    std::string opts = "size=" + std::to_string(mib) + "m";
    mounted_ = ::mount("tmpfs", dir.c_str(), "tmpfs", 0, opts.c_str()) == 0;
    error_ = mounted_ ? "" : std::strerror(errno);
  }
  ~SmallVolume() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  // Grows (or shrinks) the mounted tmpfs in place: space "freed" under a running server.
  bool Resize(int mib) {
    std::string opts = "size=" + std::to_string(mib) + "m";
    return ::mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT, opts.c_str()) == 0;
  }

 private:
  std::string dir_;
  bool mounted_ = false;
  std::string error_;
};

// The pyramid's pages, read with libtiff here rather than through Quire's own code.
std::vector<std::pair<uint32_t, uint32_t>> PyramidPages(const std::string& path) {
  std::vector<std::pair<uint32_t, uint32_t>> pages;
  TIFF* tif = TIFFOpen(path.c_str(), "rm");
  if (tif == nullptr) return pages;
  do {
    uint32_t w = 0, h = 0;
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
    // Decoding the last tile of the page proves its bytes are all there.
    std::vector<unsigned char> buf(TIFFTileSize(tif));
    if (TIFFReadEncodedTile(tif, TIFFNumberOfTiles(tif) - 1, buf.data(), buf.size()) < 0) w = 0;
    pages.emplace_back(w, h);
  } while (TIFFReadDirectory(tif));
  TIFFClose(tif);
  return pages;
}

// libvips halves each level (rounding down) until a level fits in one 256² tile.
std::vector<std::pair<uint32_t, uint32_t>> ExpectedPages(uint32_t w, uint32_t h) {
  std::vector<std::pair<uint32_t, uint32_t>> pages{{w, h}};
  while (w > 256 || h > 256) {
    w = std::max<uint32_t>(1, w / 2);
    h = std::max<uint32_t>(1, h / 2);
    pages.emplace_back(w, h);
  }
  return pages;
}

bool Alive(pid_t pid) {
  int status;
  return waitpid(pid, &status, WNOHANG) == 0;
}

class FullDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    volume_ = std::make_unique<SmallVolume>(tmp_.path() + "/vol", 20);
    ASSERT_TRUE(volume_->mounted()) << "cannot mount a tmpfs for the full-disk test: "
                                    << volume_->error();
    jpeg_ = MakeJpeg(3000, 2000, 7, 92);
  }

  // Queues `n` images of 3000x2000 and returns the batch id.
  int64_t Submit(Api& api, int64_t space, int n) {
    json members = json::array();
    for (int i = 0; i < n; ++i) {
      std::string id = "page-" + std::to_string(i);
      origin_.Serve("/" + id + ".jpg", jpeg_, "image/jpeg");
      members.push_back(Member(space, id, origin_.Url("/" + id + ".jpg"), "image/jpeg"));
    }
    long status = 0;
    json batch = api.SubmitBatch(kCustomer, members, &status);
    EXPECT_EQ(status, 201) << batch.dump();
    return batch.value("id", int64_t{0});
  }

  // Every completed image's stored pyramid has every level of its true size.
  void ExpectCompletedImagesWhole(Api& api, const json& batch, const std::string& data) {
    for (const json& image : api.All(batch["completedImages"])) {
      std::string id = image["id"];
      int64_t space = image["space"];
      std::string path = data + "/blobs/1/" + std::to_string(space) + "/" + id + "/image.tif";
      EXPECT_EQ(PyramidPages(path), ExpectedPages(image["width"], image["height"]))
          << id << " was recorded completed with an incomplete pyramid";
      HttpResult tile = Http("GET", api.base + "/iiif-img/1/" + std::to_string(space) + "/" + id +
                                        "/full/94,/0/default.jpg");
      EXPECT_EQ(tile.status, 200) << id;
      EXPECT_TRUE(Decode(tile.body).ok) << id;
    }
  }

  static std::vector<std::string> Flags(const std::string& min_free) {
    return {"--workers", "2", "--allow-private-origins", "--ingest-backoff-ms", "100",
            "--ingest-attempts", "3", "--lease-ms", "3000", "--min-free-bytes", min_free};
  }

  TempDir tmp_;
  std::unique_ptr<SmallVolume> volume_;
  OriginServer origin_;
  std::string jpeg_;
};

// No reserve at all: derivative writes meet ENOSPC themselves, in the middle of libvips' TIFF
// writer (which crashed the server) and of the thumbnails and the download.
TEST_F(FullDiskTest, WritesThatMeetENOSPCNeitherCrashNorRecordPartialPyramids) {
  std::string data = tmp_.path() + "/vol/data";
  QuireProcess server(data, Flags("0"));
  Api api{server.url(), server.admin()};
  int64_t space = api.CreateSpace(kCustomer, "full");
  int64_t batch_id = Submit(api, space, 10);

  json b = api.WaitForBatch(kCustomer, batch_id, 90s);
  ASSERT_TRUE(Alive(server.pid())) << "the server died on a full disk:\n" << server.Log();
  ASSERT_TRUE(b.contains("finished")) << b.dump(2) << server.Log();
  EXPECT_EQ(b["completed"].get<int>() + b["errors"].get<int>(), 10) << b.dump(2);
  EXPECT_GT(b["errors"].get<int>(), 0) << "the volume was expected to fill: " << b.dump(2);
  for (const json& image : api.All(b["errorImages"])) {
    std::string error = image.value("error", "");
    EXPECT_TRUE(error.find("No space left") != std::string::npos ||
                error.find("no space left") != std::string::npos)
        << image["id"] << ": " << error;
  }
  ExpectCompletedImagesWhole(api, b, data);

  // Space comes back; the failed images are retried and the batch closes exactly.
  ASSERT_TRUE(volume_->Resize(400));
  HttpResult retry = Http("POST", api.base + "/customers/1/queue/batches/" +
                                      std::to_string(batch_id) + "/retry",
                          "", api.auth);
  ASSERT_EQ(retry.status, 200) << retry.body;
  b = api.WaitForBatch(kCustomer, batch_id, 90s);
  EXPECT_EQ(b["completed"], 10) << b.dump(2) << server.Log();
  EXPECT_EQ(b["errors"], 0);
  ExpectCompletedImagesWhole(api, b, data);
  EXPECT_TRUE(Alive(server.pid()));
}

// With the reserve, ingest stops writing before the volume is full, so the database beside
// the blobs can always record outcomes: the batch finishes while the disk is still "full",
// each failure saying so, and the scratch holds nothing of the failed work.
TEST_F(FullDiskTest, TheReserveKeepsTheDatabaseRecordingOutcomes) {
  std::string data = tmp_.path() + "/vol/data";
  QuireProcess server(data, Flags(std::to_string(6 << 20)));
  Api api{server.url(), server.admin()};
  int64_t space = api.CreateSpace(kCustomer, "reserve");
  int64_t batch_id = Submit(api, space, 10);

  json b = api.WaitForBatch(kCustomer, batch_id, 90s);
  ASSERT_TRUE(b.contains("finished")) << b.dump(2) << server.Log();
  EXPECT_EQ(b["completed"].get<int>() + b["errors"].get<int>(), 10) << b.dump(2);
  ASSERT_GT(b["errors"].get<int>(), 0) << b.dump(2);
  for (const json& image : api.All(b["errorImages"])) {
    EXPECT_NE(image.value("error", "").find("no space left on the data volume"),
              std::string::npos)
        << image.dump();
  }
  EXPECT_EQ(server.Log().find("database or disk is full"), std::string::npos) << server.Log();
  ExpectCompletedImagesWhole(api, b, data);
  for (const auto& entry : fs::recursive_directory_iterator(data + "/blobs/.tmp")) {
    EXPECT_FALSE(entry.is_regular_file() && entry.path().extension() != ".lock")
        << "scratch left behind: " << entry.path();
  }

  ASSERT_TRUE(volume_->Resize(400));
  ASSERT_EQ(Http("POST", api.base + "/customers/1/queue/batches/" + std::to_string(batch_id) +
                             "/retry",
                 "", api.auth)
                .status,
            200);
  b = api.WaitForBatch(kCustomer, batch_id, 90s);
  EXPECT_EQ(b["completed"], 10) << b.dump(2) << server.Log();
  ExpectCompletedImagesWhole(api, b, data);
}

// A server killed mid-download leaves its scratch; the next one removes it at start, before
// ingesting anything (a full disk must not stay full because of a crash).
TEST(ScratchAfterCrashTest, TheNextServerRemovesTheDeadServersScratch) {
  TempDir tmp;
  std::string data = tmp.path() + "/data";
  OriginServer origin;
  std::string jpeg = MakeJpeg(800, 600, 3);
  // Headers and a first part of the body, then a trickle: the download stays in scratch.
  origin.Trickle("/slow.jpg", jpeg, "image/jpeg", 4096, 50);
  std::string dead_scratch;
  {
    QuireProcess server(data, {"--workers", "1", "--allow-private-origins"});
    Api api{server.url(), server.admin()};
    int64_t space = api.CreateSpace(kCustomer, "crash");
    api.SubmitBatch(kCustomer, json::array({Member(space, "slow", origin.Url("/slow.jpg"),
                                                   "image/jpeg")}));
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (dead_scratch.empty() && std::chrono::steady_clock::now() < deadline) {
      std::error_code ec;
      for (const auto& e : fs::recursive_directory_iterator(data + "/blobs/.tmp", ec))
        if (e.is_regular_file() && e.path().filename().string().rfind("fetch-", 0) == 0 &&
            e.file_size() > 0)
          dead_scratch = e.path().parent_path().string();
      std::this_thread::sleep_for(20ms);
    }
    ASSERT_FALSE(dead_scratch.empty()) << "no download appeared in scratch";
    server.Kill();
  }
  ASSERT_TRUE(fs::exists(dead_scratch));
  QuireProcess next(data, {"--workers", "0"});
  EXPECT_FALSE(fs::exists(dead_scratch)) << next.Log();
  EXPECT_NE(next.Log().find("removed the scratch of 1 stopped process"), std::string::npos)
      << next.Log();
}

}  // namespace
}  // namespace quire::test
