// Downloads run ahead of conversion (issue 17 §3): prefetcher threads claim and download
// while the conversion threads convert, within --fetch-concurrency and --scratch-bytes.
// - A slow origin: several downloads are held at once, and the bytes of downloads on disk
//   never exceed the scratch budget.
// - A graceful stop hands every prefetched job back without spending its attempt: with
//   --ingest-attempts 1 the restarted server completes the batch with no error.
// - An origin that limits each connection's rate and answers byte ranges is fetched over
//   several connections per image, never more at once than --fetch-connections, within the
//   scratch budget, every image intact.
// - A budget smaller than the largest origin allowed is refused at startup.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <vips/vips8>

#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"
#include "support/run_command.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr int64_t kCustomer = 1;

// The downloads in the file store's scratch directory (one per process below `scratch_root`)
// right now: their count and bytes on disk.
struct ScratchUse {
  int files = 0;
  int64_t bytes = 0;
};
ScratchUse Downloads(const std::string& scratch_root) {
  ScratchUse use;
  std::error_code ec;
  for (std::filesystem::recursive_directory_iterator it(scratch_root, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->path().filename().string().rfind("fetch-", 0) != 0) continue;
    std::error_code size_ec;
    auto size = std::filesystem::file_size(it->path(), size_ec);
    if (size_ec || size == 0) continue;  // converted and removed meanwhile, or not begun
    ++use.files;
    use.bytes += static_cast<int64_t>(size);
  }
  return use;
}

TEST(PrefetchTest, SlowDownloadsRunAheadWithinTheScratchBudget) {
  TempDir tmp;
  OriginServer origin;
  std::vector<std::string> bodies;
  size_t largest = 0;
  for (int i = 0; i < 10; ++i) {
    bodies.push_back(MakeJpeg(900, 700, i, 95));
    largest = std::max(largest, bodies.back().size());
  }
  // Room for two of the largest downloads and a half: a third must wait for room.
  const int64_t budget = static_cast<int64_t>(largest) * 5 / 2;
  QuireProcess server(
      tmp.path() + "/data",
      {"--workers", "1", "--allow-private-origins", "--fetch-concurrency", "6",
       "--max-origin-bytes", std::to_string(largest), "--scratch-bytes", std::to_string(budget)});
  Api api{server.url(), server.admin()};
  int64_t space = api.CreateSpace(kCustomer, "slow");
  json members = json::array();
  for (int i = 0; i < 10; ++i) {
    std::string path = "/slow-" + std::to_string(i) + ".jpg";
    // About 1.6 MB/s per connection: each download takes a good part of a second.
    origin.Trickle(path, bodies[static_cast<size_t>(i)], "image/jpeg", 16 * 1024, 10);
    members.push_back(Member(space, "slow-" + std::to_string(i), origin.Url(path), "image/jpeg"));
  }
  std::atomic<bool> done{false};
  ScratchUse most;
  int64_t most_bytes = 0;
  std::thread watcher([&] {
    const std::string scratch = tmp.path() + "/data/blobs/.tmp";
    while (!done.load()) {
      ScratchUse now = Downloads(scratch);
      most.files = std::max(most.files, now.files);
      most_bytes = std::max(most_bytes, now.bytes);
      std::this_thread::sleep_for(1ms);
    }
  });
  long status = 0;
  json batch = api.SubmitBatch(kCustomer, members, &status);
  ASSERT_EQ(status, 201) << batch.dump();
  json b = api.WaitForBatch(kCustomer, batch["id"], 60s);
  done = true;
  watcher.join();
  ASSERT_TRUE(b.contains("finished")) << b.dump(2) << server.Log();
  EXPECT_EQ(b["completed"], 10) << b.dump(2) << server.Log();
  EXPECT_EQ(b["errors"], 0);
  std::cout << "[ result ] budget " << budget << " bytes (largest origin " << largest
            << "): at most " << most.files << " downloads and " << most_bytes
            << " bytes on disk at once\n";
  EXPECT_LE(most_bytes, budget) << "the scratch budget was exceeded";
  EXPECT_GE(most.files, 2) << "downloads did not run ahead of the conversion";
  if (std::getenv("QUIRE_TEST_SHOW_LOG")) std::cerr << server.Log();
}

TEST(PrefetchTest, AnOriginThatAnswersRangesIsFetchedOverSeveralConnectionsWithinTheLimit) {
  TempDir tmp;
  OriginServer origin;
  std::vector<std::string> bodies;
  size_t largest = 0;
  for (int i = 0; i < 6; ++i) {
    bodies.push_back(MakeJpeg(1400, 1000, 20 + i, 95));
    largest = std::max(largest, bodies.back().size());
  }
  const int64_t budget = static_cast<int64_t>(largest) * 3;
  QuireProcess server(tmp.path() + "/data",
                      {"--workers", "1", "--allow-private-origins", "--fetch-concurrency", "3",
                       "--fetch-connections", "7", "--fetch-range-bytes", "131072",
                       "--max-origin-bytes", std::to_string(largest),
                       "--scratch-bytes", std::to_string(budget)});
  Api api{server.url(), server.admin()};
  int64_t space = api.CreateSpace(kCustomer, "ranged");
  json members = json::array();
  for (int i = 0; i < 6; ++i) {
    std::string path = "/ranged-" + std::to_string(i) + ".jpg";
    OriginRoute r;
    r.body = bodies[static_cast<size_t>(i)];
    r.content_type = "image/jpeg";
    r.ranges = true;
    r.delay_ms = 20;
    r.trickle_bytes = 32 * 1024;  // about 1.6 MB/s per connection
    r.trickle_interval_ms = 20;
    origin.Route(path, r);
    members.push_back(Member(space, "ranged-" + std::to_string(i), origin.Url(path), "image/jpeg"));
  }
  long status = 0;
  json batch = api.SubmitBatch(kCustomer, members, &status);
  ASSERT_EQ(status, 201) << batch.dump();
  json b = api.WaitForBatch(kCustomer, batch["id"], 60s);
  ASSERT_TRUE(b.contains("finished")) << b.dump(2) << server.Log();
  EXPECT_EQ(b["completed"], 6) << b.dump(2) << server.Log();
  EXPECT_EQ(b["errors"], 0);
  int most_per_image = 0, ranged_requests = 0;
  for (int i = 0; i < 6; ++i) {
    const std::string path = "/ranged-" + std::to_string(i) + ".jpg";
    most_per_image = std::max(most_per_image, origin.MaxInFlight(path));
    for (const auto& req : origin.Received(path)) ranged_requests += req.headers.count("range");
  }
  std::cout << "[ result ] " << origin.TotalRequests() << " requests (" << ranged_requests
            << " ranged) for 6 images; at most " << most_per_image << " at once for one image, "
            << origin.MaxTotalInFlight() << " at once in all\n";
  EXPECT_EQ(ranged_requests, origin.TotalRequests());
  EXPECT_GE(most_per_image, 2) << "no image was fetched over parallel ranges";
  EXPECT_LE(origin.MaxTotalInFlight(), 7) << "more connections than --fetch-connections";
  // Each image came through whole: its last full-resolution tile (cut from the source's own
  // coefficients, so from the last bytes of the last range) equals the source's pixels there.
  for (int i = 0; i < 6; ++i) {
    HttpResult tile = api.Get("/iiif-img/" + std::to_string(kCustomer) + "/" +
                              std::to_string(space) + "/ranged-" + std::to_string(i) +
                              "/1280,768,120,232/120,/0/default.png");
    ASSERT_EQ(tile.status, 200) << tile.body;
    vips::VImage got = vips::VImage::new_from_buffer(tile.body.data(), tile.body.size(), "");
    vips::VImage src =
        vips::VImage::new_from_buffer(bodies[static_cast<size_t>(i)].data(),
                                      bodies[static_cast<size_t>(i)].size(), "")
            .extract_area(1280, 768, 120, 232);
    ASSERT_EQ(got.width(), 120);
    ASSERT_EQ(got.height(), 232);
    EXPECT_LE((got.cast(VIPS_FORMAT_INT) - src.cast(VIPS_FORMAT_INT)).abs().max(), 2.0)
        << "image " << i << " differs from its source in its last tile";
    HttpResult info = api.Get("/iiif-img/" + std::to_string(kCustomer) + "/" +
                              std::to_string(space) + "/ranged-" + std::to_string(i) +
                              "/info.json");
    ASSERT_EQ(info.status, 200) << info.body;
    json j = json::parse(info.body);
    EXPECT_EQ(j["width"], 1400);
    EXPECT_EQ(j["height"], 1000);
  }
}

TEST(PrefetchTest, AGracefulStopHandsEveryPrefetchedJobBack) {
  TempDir tmp;
  OriginServer origin;
  const std::string data = tmp.path() + "/data";
  const std::vector<std::string> flags = {
      "--workers",         "1", "--allow-private-origins", "--fetch-concurrency", "4",
      "--ingest-attempts", "1"};
  constexpr int kImages = 16;
  std::string body = MakeJpeg(1600, 1200, 7);
  auto server = std::make_unique<QuireProcess>(data, flags);
  Api api{server->url(), server->admin()};
  int64_t space = api.CreateSpace(kCustomer, "stop");
  json members = json::array();
  for (int i = 0; i < kImages; ++i) {
    std::string path = "/p-" + std::to_string(i) + ".jpg";
    origin.Serve(path, body, "image/jpeg");
    members.push_back(Member(space, "p-" + std::to_string(i), origin.Url(path), "image/jpeg"));
  }
  long status = 0;
  json batch = api.SubmitBatch(kCustomer, members, &status);
  ASSERT_EQ(status, 201) << batch.dump();
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (api.Batch(kCustomer, batch["id"]).value("completed", 0) < 2 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  ASSERT_EQ(server->Stop(), 0) << server->Log();
  std::string log1 = server->Log();
  EXPECT_NE(log1.find("handed back to the queue"), std::string::npos)
      << "no downloaded image was waiting at the stop\n"
      << log1;

  // An attempt spent on a handed-back job would now be final ("interrupted"), and a lease
  // left behind would hold its image for a minute.
  server = std::make_unique<QuireProcess>(data, flags);
  api.base = server->url();
  json mid = api.Batch(kCustomer, batch["id"]);
  EXPECT_LT(mid["completed"].get<int>(), kImages) << "the stop must land mid-batch";
  json b = api.WaitForBatch(kCustomer, batch["id"], 40s);
  ASSERT_TRUE(b.contains("finished")) << b.dump(2) << server->Log();
  EXPECT_EQ(b["completed"], kImages) << b.dump(2) << server->Log();
  EXPECT_EQ(b["errors"], 0) << b.dump(2);
  std::cout << "[ result ] stopped at " << mid["completed"] << "/" << kImages
            << " completed; the restart finished the rest with no error\n";
}

TEST(PrefetchTest, AScratchBudgetBelowTheLargestOriginIsRefusedAtStartup) {
  TempDir tmp;
  std::string cmd = std::string(QUIRE_BINARY) + " serve --listen 127.0.0.1:0 --data " + tmp.path() +
                    "/data --max-origin-bytes 1000000 --scratch-bytes 999999 2>&1";
  int rc = 0;
  std::string out = RunCommand(cmd, &rc);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("--scratch-bytes (999999) must be at least --max-origin-bytes (1000000)"),
            std::string::npos)
      << out;
}

TEST(PrefetchTest, FewerConnectionsThanDownloadsAreRefusedAtStartup) {
  TempDir tmp;
  std::string cmd = std::string(QUIRE_BINARY) + " serve --listen 127.0.0.1:0 --data " + tmp.path() +
                    "/data --fetch-concurrency 8 --fetch-connections 4 2>&1";
  int rc = 0;
  std::string out = RunCommand(cmd, &rc);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("--fetch-connections (4) must be at least --fetch-concurrency (8)"),
            std::string::npos)
      << out;
}

}  // namespace
}  // namespace quire::test
