// Ingest into S3 overlaps the uploads with the conversions (issue 10 §3 and its benchmark: a
// conversion thread hands the converted image to a store thread and starts on the next one).
// The S3 server sits behind a proxy that adds 120 ms to every round trip, as a bucket in
// another building would, and the server has one conversion thread:
//  - while an image's blobs go up, the next image is already being converted: two pyramids
//    are in scratch at once (one uploading, one being written), which a conversion thread
//    that stored its own image before taking the next could never show; every image still
//    lands whole, as the independent client (awscli) lists it;
//  - a graceful stop stores and records every conversion that ran to its end and hands the
//    rest back with their attempts (--ingest-attempts 1 would make a spent attempt final):
//    nothing is failed, and the restarted server completes the batch.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"
#include "support/s3_server.h"
#include "support/slow_proxy.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr int64_t kCustomer = 1;
constexpr int kImages = 8;
constexpr int kRoundTripMs = 120;

// s3:// storage through `proxy` instead of straight to the gateway.
std::string StorageThrough(const SlowProxy& proxy, const std::string& prefix) {
  const S3TestServer& s = S3Server();
  return "s3://" + s.bucket + "/" + prefix +
         "?endpoint=http://127.0.0.1:" + std::to_string(proxy.port()) + "&region=" + s.region +
         "&path_style=1";
}

// Pyramids being written or uploaded in the scratch directories below `root`.
int PyramidsIn(const std::string& root) {
  int n = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().filename().string().rfind("pyramid-", 0) == 0) ++n;
  return n;
}

json Members(OriginServer& origin, int64_t space) {
  json members = json::array();
  for (int i = 0; i < kImages; ++i) {
    const std::string id = "p-" + std::to_string(i);
    origin.Serve("/" + id, MakeJpeg(1600 + 40 * i, 1200, i), "image/jpeg");
    members.push_back(Member(space, id, origin.Url("/" + id), "image/jpeg"));
  }
  return members;
}

// One conversion thread, storage through the slow proxy, a data directory of the test's own.
class S3PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override { UseS3Credentials(); }
  // The server's flags, storing under the S3 prefix `name` + a unique suffix.
  std::vector<std::string> Flags(const std::string& name, std::vector<std::string> extra = {}) {
    std::vector<std::string> flags = {"--workers",
                                      "1",
                                      "--allow-private-origins",
                                      "--storage",
                                      StorageThrough(proxy_, prefix_ = UniqueS3Prefix(name)),
                                      "--cache-dir",
                                      tmp_.path() + "/cache"};
    flags.insert(flags.end(), extra.begin(), extra.end());
    return flags;
  }

  TempDir tmp_;
  OriginServer origin_;
  SlowProxy proxy_{std::stoi(S3Server().port), kRoundTripMs};
  std::string prefix_;
  const std::string data_ = tmp_.path() + "/data";
};

TEST_F(S3PipelineTest, TheNextImageIsConvertedWhileTheLastOneUploads) {
  QuireProcess server(data_, Flags("pipeline"));
  Api api{server.url(), server.admin()};
  int64_t space = api.CreateSpace(kCustomer, "pipeline");
  long status = 0;
  json batch = api.SubmitBatch(kCustomer, Members(origin_, space), &status);
  ASSERT_EQ(status, 201) << batch.dump();

  // Watch scratch while the batch runs.
  std::atomic<bool> done{false};
  std::atomic<int> most{0};
  std::thread watcher([&] {
    while (!done) {
      int n = PyramidsIn(data_ + "/scratch");
      if (n > most) most = n;
      std::this_thread::sleep_for(1ms);
    }
  });
  json b = api.WaitForBatch(kCustomer, batch["id"], 120s);
  done = true;
  watcher.join();
  ASSERT_TRUE(b.contains("finished")) << b.dump(2) << server.Log();
  EXPECT_EQ(b["completed"], kImages) << b.dump(2) << server.Log();
  EXPECT_EQ(b["errors"], 0) << b.dump(2);
  EXPECT_GE(most.load(), 2) << "no image was converted while another one uploaded\n"
                            << server.Log();
  EXPECT_EQ(PyramidsIn(data_ + "/scratch"), 0) << "a pyramid was left in scratch";
  EXPECT_GT(proxy_.requests(), kImages) << "the storage did not go through the proxy";

  // Every image whole in the bucket, as another client sees it: the pyramid, its structure
  // and 4 thumbnails (iiif-img and thumbs, the default channels).
  std::vector<std::string> keys = AwsListKeys(prefix_);
  for (int i = 0; i < kImages; ++i) {
    const std::string base =
        std::to_string(kCustomer) + "/" + std::to_string(space) + "/p-" + std::to_string(i) + "/";
    int under = 0;
    bool pyramid = false;
    for (const std::string& k : keys) {
      if (k.rfind(base, 0) != 0) continue;
      ++under;
      if (k == base + "image.tif") pyramid = true;
    }
    EXPECT_TRUE(pyramid) << base << " has no pyramid";
    EXPECT_GE(under, 6) << base << " has " << under << " objects";
    json image = api.Image(kCustomer, space, "p-" + std::to_string(i));
    EXPECT_EQ(image["width"], 1600 + 40 * i) << image.dump();
    HttpResult tile = Http("GET", server.url() + "/iiif-img/1/" + std::to_string(space) + "/p-" +
                                      std::to_string(i) + "/0,0,256,256/256,/0/default.jpg");
    EXPECT_EQ(tile.status, 200);
    EXPECT_TRUE(Decode(tile.body).ok);
  }
  std::cout << "[ result ] at most " << most.load() << " pyramids in scratch at once; "
            << proxy_.requests() << " round trips of " << kRoundTripMs << " ms\n";
}

TEST_F(S3PipelineTest, AGracefulStopStoresWhatWasConvertedAndHandsBackTheRest) {
  const std::vector<std::string> flags = Flags("pipestop", {"--ingest-attempts", "1"});
  auto server = std::make_unique<QuireProcess>(data_, flags);
  Api api{server->url(), server->admin()};
  int64_t space = api.CreateSpace(kCustomer, "pipestop");
  long status = 0;
  json batch = api.SubmitBatch(kCustomer, Members(origin_, space), &status);
  ASSERT_EQ(status, 201) << batch.dump();
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (api.Batch(kCustomer, batch["id"]).value("completed", 0) < 2 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  ASSERT_EQ(server->Stop(), 0) << server->Log();
  EXPECT_EQ(PyramidsIn(data_ + "/scratch"), 0) << "a pyramid was left in scratch";

  server = std::make_unique<QuireProcess>(data_, flags, /*seed_admin=*/false);
  api.base = server->url();
  json mid = api.Batch(kCustomer, batch["id"]);
  EXPECT_GE(mid["completed"].get<int>(), 2) << mid.dump(2);
  EXPECT_LT(mid["completed"].get<int>(), kImages) << "the stop must land mid-batch";
  EXPECT_EQ(mid["errors"], 0) << "the stop failed an image\n" << mid.dump(2);
  json b = api.WaitForBatch(kCustomer, batch["id"], 90s);
  ASSERT_TRUE(b.contains("finished")) << b.dump(2) << server->Log();
  EXPECT_EQ(b["completed"], kImages) << b.dump(2) << server->Log();
  EXPECT_EQ(b["errors"], 0) << b.dump(2);
  std::vector<json> images = api.All(server->url() + "/customers/1/queue/batches/" +
                                     std::to_string(batch["id"].get<int64_t>()) + "/images");
  EXPECT_EQ(images.size(), static_cast<size_t>(kImages));
  for (const json& image : images) EXPECT_GT(image.value("width", 0), 0) << image.dump();
  std::cout << "[ result ] stopped at " << mid["completed"] << "/" << kImages
            << " completed, no error; the restart finished the rest\n";
}

}  // namespace
}  // namespace quire::test
