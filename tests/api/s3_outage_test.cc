// S3 outage: with its own radosgw (scripts/s3-test-server.sh in a temp dir, so stopping it
// disturbs no other test), the gateway is stopped in the middle of a 20-image batch and
// started again. No image fails for the outage and the counts are exact; while it is down,
// cached tiles are still served and uncached ones answer 503 with Retry-After. The
// gateway's access log also gives the GETs a cold tile costs.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <thread>

#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

int RunScript(const std::string& cmd, const std::string& dir) {
  pid_t pid = fork();
  if (pid == 0) {
    setenv("S3_BUCKETS", "outage", 1);
    execl(QUIRE_S3_SCRIPT, QUIRE_S3_SCRIPT, cmd.c_str(), dir.c_str(), (char*)nullptr);
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

std::map<std::string, std::string> ReadEnv(const std::string& path) {
  std::map<std::string, std::string> env;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    size_t eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return env;
}

// GETs radosgw has answered so far (its access log lines for GET, whole or ranged).
int CountGets(const std::string& dir) {
  std::ifstream in(dir + "/log/client.rgw.a.log");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  static const std::regex re("\"GET [^\"]*\" (200|206|404) ");
  return int(std::distance(std::sregex_iterator(text.begin(), text.end(), re),
                           std::sregex_iterator()));
}

// The count once radosgw's log thread has written what it answered (stable for 200 ms).
int RangedGets(const std::string& dir) {
  int last = CountGets(dir);
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    int now = CountGets(dir);
    if (now == last) return now;
    last = now;
  }
  return last;
}

TEST(S3OutageTest, ABatchSurvivesTheGatewayStoppingAndCachedTilesKeepServing) {
  TempDir dir;
  const std::string s3dir = dir.path() + "/s3";
  ASSERT_EQ(RunScript("start", s3dir), 0) << "the S3 test server must start";
  struct Stopper {
    std::string d;
    ~Stopper() { RunScript("stop", d); }
  } stopper{s3dir};
  auto env = ReadEnv(s3dir + "/s3.env");
  setenv("QUIRE_S3_ACCESS_KEY", env["S3_ACCESS_KEY"].c_str(), 1);
  setenv("QUIRE_S3_SECRET_KEY", env["S3_SECRET_KEY"].c_str(), 1);
  const std::string storage = "s3://outage/q?endpoint=" + env["S3_ENDPOINT"] +
                              "&region=us-east-1&path_style=1&max_attempts=3&backoff_ms=50";

  OriginServer origin;
  QuireProcess server(dir.path() + "/data",
                      {"--workers", "2", "--allow-private-origins", "--storage", storage,
                       "--ingest-attempts", "40", "--ingest-backoff-ms", "200", "--cache-bytes",
                       std::to_string(64 << 20)});
  Api api{server.url(), server.admin()};
  ASSERT_EQ(api.CreateSpace(1, "outage"), 1);
  auto tile = [&](const std::string& id, int col, int row) {
    return Http("GET", server.url() + "/iiif-img/1/1/" + id + "/" + std::to_string(col * 256) +
                           "," + std::to_string(row * 256) + ",256,256/256,256/0/default.jpg");
  };

  // A first image, some of whose tiles are then cached.
  origin.Serve("/warm", MakeJpeg(2000, 1500, 99), "image/jpeg");
  json first = api.SubmitBatch(1, json::array({Member(1, "warm", origin.Url("/warm"), "image/jpeg")}));
  json first_done = api.WaitForBatch(1, first.at("id"), 60s);
  ASSERT_EQ(first_done["completed"], 1) << first_done.dump(2);

  // GETs per tile: the first tile of a cold image reads the TIFF structure stored beside the
  // pyramid (one GET) and the tile (one ranged GET); every further cold tile is one ranged GET.
  int before = RangedGets(s3dir);
  ASSERT_EQ(tile("warm", 0, 0).status, 200);
  int first_tile_gets = RangedGets(s3dir) - before;
  before = RangedGets(s3dir);
  ASSERT_EQ(tile("warm", 1, 0).status, 200);
  ASSERT_EQ(tile("warm", 2, 1).status, 200);
  int next_tiles_gets = RangedGets(s3dir) - before;
  before = RangedGets(s3dir);
  ASSERT_EQ(tile("warm", 1, 0).status, 200);
  int warm_gets = RangedGets(s3dir) - before;
  std::cout << "[ s3 ] GETs: first tile of a cold image " << first_tile_gets
            << ", two more cold tiles " << next_tiles_gets << ", a warm tile " << warm_gets
            << "\n";
  EXPECT_EQ(first_tile_gets, 2);
  EXPECT_EQ(next_tiles_gets, 2);
  EXPECT_EQ(warm_gets, 0);

  // The batch; the gateway goes away once some images are done.
  json members = json::array();
  for (int i = 0; i < 20; ++i) {
    std::string id = "o-" + std::to_string(i);
    origin.Serve("/" + id, MakeJpeg(900 + 20 * i, 700, i), "image/jpeg");
    json m = Member(1, id, origin.Url("/" + id), "image/jpeg");
    m["deliveryChannels"] = json::array({"iiif-img", "thumbs", "file"});
    members.push_back(m);
  }
  json batch = api.SubmitBatch(1, members);
  const int64_t batch_id = batch.at("id");
  for (int i = 0; i < 600 && api.Batch(1, batch_id).value("completed", 0) < 3; ++i)
    std::this_thread::sleep_for(20ms);
  ASSERT_EQ(RunScript("stop-rgw", s3dir), 0);
  auto down_at = std::chrono::steady_clock::now();

  // Down: the cached tiles are served, an uncached one is "try later".
  auto cached = tile("warm", 1, 0);
  EXPECT_EQ(cached.status, 200) << cached.body;
  EXPECT_TRUE(Decode(cached.body).ok);
  auto uncached = tile("warm", 3, 3);
  EXPECT_EQ(uncached.status, 503) << uncached.body;
  EXPECT_FALSE(uncached.Header("retry-after").empty());
  json during = api.Batch(1, batch_id);
  EXPECT_EQ(during["errors"], 0) << during.dump(2);

  std::this_thread::sleep_until(down_at + 4s);  // long enough for ingest attempts to fail
  ASSERT_EQ(RunScript("start-rgw", s3dir), 0);

  json done = api.WaitForBatch(1, batch_id, 180s);
  ASSERT_TRUE(done.contains("finished")) << done.dump(2);
  EXPECT_EQ(done["count"], 20);
  EXPECT_EQ(done["completed"], 20) << done.dump(2);
  EXPECT_EQ(done["errors"], 0);
  EXPECT_NE(server.Log().find("retrying in"), std::string::npos)
      << "the outage was seen by ingest (and retried)";
  for (int i = 0; i < 20; ++i) {
    std::string id = "o-" + std::to_string(i);
    auto t = tile(id, 0, 0);
    EXPECT_EQ(t.status, 200) << id << ": " << t.body;
    EXPECT_TRUE(Decode(t.body).ok) << id;
  }
  EXPECT_EQ(tile("warm", 3, 3).status, 200);
  if (HasFailure()) std::cerr << server.Log();
}

}  // namespace
}  // namespace quire::test
