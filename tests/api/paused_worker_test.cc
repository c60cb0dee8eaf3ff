// A worker paused (SIGSTOP) past its lease while it holds a job: another process takes the
// job over and records the outcome; when the paused one resumes, its late heartbeat and its
// conversion (or outcome) are refused, so the image is counted exactly once and its derivatives stay whole.
#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

TEST(PausedWorkerTest, AnOutcomeFromALostLeaseIsRefused) {
  TempDir tmp;
  OriginServer origin;
  // Slow enough that the first worker is certainly still fetching when it is paused.
  origin.Serve("/page.jpg", MakeJpeg(800, 600, 12), "image/jpeg", 1500);
  const std::string data = tmp.path() + "/data";
  const std::vector<std::string> flags = {"--workers", "1", "--allow-private-origins",
                                          "--lease-ms", "1000"};
  QuireProcess first(data, flags);
  Api api{first.url(), first.admin()};
  int64_t space = api.CreateSpace(1, "paused");
  json batch = api.SubmitBatch(1, json::array({Member(space, "p1", origin.Url("/page.jpg"), "image/jpeg")}));
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (origin.Requests("/page.jpg") == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  ASSERT_EQ(origin.Requests("/page.jpg"), 1);
  ASSERT_EQ(kill(first.pid(), SIGSTOP), 0);

  // A second process on the same data takes the job once the paused lease runs out.
  QuireProcess second(data, flags, /*seed_admin=*/false);
  Api api2{second.url(), first.admin()};
  json done = api2.WaitForBatch(1, batch["id"], 20s);
  ASSERT_TRUE(done.contains("finished")) << done.dump() << second.Log();
  EXPECT_EQ(done["completed"], 1);
  EXPECT_EQ(origin.Requests("/page.jpg"), 2);

  // The paused worker wakes up with a stale lease and finishes its copy of the work.
  ASSERT_EQ(kill(first.pid(), SIGCONT), 0);
  std::this_thread::sleep_for(3s);
  json after = api2.Batch(1, batch["id"]);
  EXPECT_EQ(after["completed"], 1) << after.dump();
  EXPECT_EQ(after["errors"], 0) << after.dump();
  EXPECT_EQ(after["finished"], done["finished"]) << "finished must be stamped once";
  json image = api2.Image(1, space, "p1");
  EXPECT_EQ(image["width"], 800);
  EXPECT_EQ(image.value("error", ""), "");
  HttpResult tile = Http("GET", second.url() + "/iiif-img/1/" + std::to_string(space) +
                                    "/p1/full/max/0/default.jpg");
  EXPECT_EQ(tile.status, 200);
  EXPECT_TRUE(Decode(tile.body).ok);
  // Refused either as it turns to the conversion (the download was done when it paused) or
  // when it records the outcome.
  std::string log = first.Log();
  size_t refused = log.find("lease lost before conversion");
  if (refused == std::string::npos) refused = log.find("recording the outcome of job");
  ASSERT_NE(refused, std::string::npos)
      << "the resumed worker's work should have been refused:\n" << log;
  std::printf("resumed worker: %s\n", log.substr(refused, log.find('\n', refused) - refused).c_str());
}

}  // namespace
}  // namespace quire::test
