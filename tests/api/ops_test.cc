// Operations over real HTTP: /metrics (checked by Prometheus's own promtool), exact counters,
// X-Request-Id on every response and in the log, --log-format json, /readyz.
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"
#include "support/run_command.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// The value of one sample line (`name{labels}`) in an exposition; -1 when absent.
double Sample(const std::string& exposition, const std::string& series) {
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

std::string RunPromtool(const std::string& exposition, int* rc) {
  TempDir dir;
  std::string path = dir.path() + "/metrics.txt";
  std::ofstream(path) << exposition;
  return RunCommand("promtool check metrics < " + path + " 2>&1", rc);
}

class OpsTest : public ::testing::Test {
 protected:
  TempDir tmp_;
};

TEST_F(OpsTest, MetricsAreForAdministratorsAndPassPromtool) {
  OriginServer origin;
  origin.Serve("/a.jpg", MakeJpeg(400, 300, 1), "image/jpeg");
  origin.Serve("/b.jpg", MakeJpeg(300, 400, 2), "image/jpeg");
  origin.Status("/missing.jpg", 404);
  QuireProcess server(tmp_.path() + "/data", {"--workers", "1", "--allow-private-origins"});
  Api api{server.url(), server.admin()};

  EXPECT_EQ(Http("GET", server.url() + "/metrics").status, 401);
  int64_t customer = api.CreateCustomer("metrics-user");
  HttpResult key = Http("POST", server.url() + "/customers/" + std::to_string(customer) + "/keys",
                        "", server.admin());
  ASSERT_EQ(key.status, 201) << key.body;
  Credentials user{key.Json()["key"], key.Json()["secret"]};
  EXPECT_EQ(Http("GET", server.url() + "/metrics", "", user).status, 403);

  // Ingest: 2 completed, 1 error.
  int64_t space = api.CreateSpace(1, "metrics");
  json batch = api.SubmitBatch(
      1, json::array({Member(space, "a", origin.Url("/a.jpg"), "image/jpeg"),
                      Member(space, "b", origin.Url("/b.jpg"), "image/jpeg"),
                      Member(space, "m", origin.Url("/missing.jpg"), "image/jpeg")}));
  json done = api.WaitForBatch(1, batch["id"], 30s);
  ASSERT_TRUE(done.contains("finished")) << done.dump();

  HttpResult first = Http("GET", server.url() + "/metrics", "", server.admin());
  ASSERT_EQ(first.status, 200);
  EXPECT_NE(first.Header("content-type").find("text/plain; version=0.0.4"), std::string::npos);
  EXPECT_EQ(Sample(first.body, "quire_ingest_images_total{outcome=\"completed\"}"), 2);
  EXPECT_EQ(Sample(first.body, "quire_ingest_images_total{outcome=\"error\"}"), 1);
  EXPECT_GT(Sample(first.body, "quire_origin_bytes_total"), 1000);
  EXPECT_EQ(Sample(first.body, "quire_ingest_stage_seconds_count{stage=\"pyramid\"}"), 2);
  EXPECT_EQ(Sample(first.body, "quire_queue_waiting{queue=\"incoming\"}"), 0);
  EXPECT_EQ(Sample(first.body, "quire_batches_active"), 0);
  EXPECT_GT(Sample(first.body, "process_resident_memory_bytes"), 1 << 20);
  EXPECT_GT(Sample(first.body, "process_open_fds"), 3);

  // Counters move by exactly the requests made: 7 healthz, 3 tiles, 2 info.json, 1 thumb, and
  // the first scrape itself; nothing else.
  const std::string img = server.url() + "/iiif-img/1/" + std::to_string(space) + "/a";
  for (int i = 0; i < 7; ++i) ASSERT_EQ(Http("GET", server.url() + "/healthz").status, 200);
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(Http("GET", img + "/0,0,256,256/256,/0/default.jpg").status, 200);
  for (int i = 0; i < 2; ++i) ASSERT_EQ(Http("GET", img + "/info.json").status, 200);
  ASSERT_EQ(Http("GET",
                 server.url() + "/thumbs/1/" + std::to_string(space) + "/a/full/100,/0/default.jpg")
                .status,
            200);
  ASSERT_EQ(Http("GET", img + "/full/max/0/nope.gif").status, 400);
  HttpResult second = Http("GET", server.url() + "/metrics", "", server.admin());
  auto delta = [&](const std::string& series) {
    return std::max(0.0, Sample(second.body, series)) - std::max(0.0, Sample(first.body, series));
  };
  EXPECT_EQ(delta("quire_http_requests_total{family=\"api\",status=\"200\"}"), 8);
  EXPECT_EQ(delta("quire_http_requests_total{family=\"iiif-tile\",status=\"200\"}"), 3);
  EXPECT_EQ(delta("quire_http_requests_total{family=\"info\",status=\"200\"}"), 2);
  EXPECT_EQ(delta("quire_http_requests_total{family=\"thumbs\",status=\"200\"}"), 1);
  EXPECT_EQ(delta("quire_http_requests_total{family=\"iiif-render\",status=\"400\"}"), 1);
  EXPECT_EQ(delta("quire_http_request_seconds_count{family=\"iiif-tile\"}"), 3);

  int rc = -1;
  std::string report = RunPromtool(second.body, &rc);
  EXPECT_EQ(rc, 0) << report << "\n" << second.body;

  // A batch waiting on a stalled origin is active until it finishes.
  origin.Stall("/stalled.jpg");
  json waiting = api.SubmitBatch(
      1, json::array({Member(space, "st", origin.Url("/stalled.jpg"), "image/jpeg")}));
  ASSERT_TRUE(waiting.contains("id")) << waiting.dump();
  HttpResult third = Http("GET", server.url() + "/metrics", "", server.admin());
  EXPECT_EQ(Sample(third.body, "quire_batches_active"), 1) << third.body;
}

TEST_F(OpsTest, EveryResponseCarriesARequestIdThatTheLogNames) {
  QuireProcess server(tmp_.path() + "/data", {"--workers", "0"});
  HttpResult echoed =
      Http("GET", server.url() + "/healthz", "", {}, {{"X-Request-Id", "lb-42-abc"}});
  EXPECT_EQ(echoed.Header("x-request-id"), "lb-42-abc");
  HttpResult made = Http("GET", server.url() + "/customers/1");  // a 401 carries one too
  EXPECT_EQ(made.status, 401);
  std::string id = made.Header("x-request-id");
  EXPECT_TRUE(std::regex_match(id, std::regex("[0-9a-f]{16}"))) << id;
  HttpResult bad = Http("GET", server.url() + "/healthz", "", {}, {{"X-Request-Id", "has space"}});
  EXPECT_TRUE(std::regex_match(bad.Header("x-request-id"), std::regex("[0-9a-f]{16}")));
  HttpResult missing = Http("GET", server.url() + "/iiif-img/1/1/none/info.json");
  EXPECT_EQ(missing.status, 404);
  std::this_thread::sleep_for(1200ms);  // the log is flushed every second
  std::string log = server.Log();
  EXPECT_NE(log.find("GET /healthz 200 3 "), std::string::npos) << log;
  EXPECT_NE(log.find("rid=lb-42-abc"), std::string::npos) << log;
  EXPECT_NE(log.find("rid=" + id), std::string::npos) << log;
  EXPECT_NE(log.find("rid=" + missing.Header("x-request-id")), std::string::npos) << log;
}

TEST_F(OpsTest, JsonLogsAreOneObjectPerLine) {
  QuireProcess server(tmp_.path() + "/data", {"--workers", "0", "--log-format", "json"});
  HttpResult r = Http("GET", server.url() + "/healthz", "", {}, {{"X-Request-Id", "json-1"}});
  ASSERT_EQ(r.status, 200);
  Http("GET", server.url() + "/nowhere");
  server.Stop();
  std::istringstream in(server.Log());
  std::string line;
  int lines = 0;
  bool saw_access = false;
  while (std::getline(in, line)) {
    ++lines;
    json j = json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "not JSON: " << line;
    EXPECT_TRUE(j.contains("ts") && j.contains("level") && j.contains("msg")) << line;
    if (j.value("request_id", "") == "json-1") {
      saw_access = true;
      EXPECT_EQ(j["route"], "/healthz");
      EXPECT_EQ(j["status"], 200);
      EXPECT_EQ(j["method"], "GET");
      EXPECT_TRUE(j["micros"].is_number());
    }
  }
  EXPECT_GT(lines, 3);
  EXPECT_TRUE(saw_access) << server.Log();
}

// /readyz follows the blob storage: made read-only (a read-only bind mount over it, which
// stops root too) → 503 naming storage; writable again → 200.
TEST_F(OpsTest, ReadyzTurnsUnreadyWhenStorageCannotBeWritten) {
  QuireProcess server(tmp_.path() + "/data", {"--workers", "0"});
  EXPECT_EQ(Http("GET", server.url() + "/readyz").status, 200);

  std::string blobs = tmp_.path() + "/data/blobs";
  ASSERT_EQ(::mount(blobs.c_str(), blobs.c_str(), nullptr, MS_BIND, nullptr), 0)
      << "cannot bind-mount: " << std::strerror(errno);
  struct Unmount {
    std::string dir;
    ~Unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
  } unmount{blobs};
  ASSERT_EQ(::mount(nullptr, blobs.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr), 0)
      << std::strerror(errno);
  HttpResult down = Http("GET", server.url() + "/readyz");
  EXPECT_EQ(down.status, 503);
  EXPECT_NE(down.body.find("storage:"), std::string::npos) << down.body;
  EXPECT_EQ(down.Header("retry-after"), "5");
  EXPECT_EQ(Http("GET", server.url() + "/healthz").status, 200);  // alive, just not ready

  ASSERT_EQ(::mount(nullptr, blobs.c_str(), nullptr, MS_BIND | MS_REMOUNT, nullptr), 0);
  EXPECT_EQ(Http("GET", server.url() + "/readyz").status, 200);
}

}  // namespace
}  // namespace quire::test
