// The wall clock steps while images are being ingested (a wrong clock corrected by NTP, a VM
// restored from a snapshot). `quire serve` runs under libfaketime (Debian's libfaketime),
// whose offset this test changes by rewriting a file; the monotonic clock is left alone, as
// a real clock step leaves it.
//
// - Back by two hours while images wait out a retry: they are retried after their backoff,
//   not two hours later, and the server says what it did.
// - Forward by two hours while an image is being fetched: its lease looks expired, another
//   worker may take the image over; either way it is counted once, and the batch is exact.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr int64_t kCustomer = 1;
const char* kFaketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

class ClockStepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access(kFaketime, R_OK), 0)
        << kFaketime << " is missing (scripts/install-deps.sh installs libfaketime)";
    offset_file_ = tmp_.path() + "/faketime";
    SetOffset("+0");
  }

  // libfaketime reads the offset from the file at every clock call (FAKETIME_NO_CACHE).
  void SetOffset(const std::string& offset) {
    std::ofstream(offset_file_ + ".new") << offset << "\n";
    std::rename((offset_file_ + ".new").c_str(), offset_file_.c_str());
  }

  // The server process is started with libfaketime preloaded; the test process is not.
  std::unique_ptr<QuireProcess> Start(std::vector<std::string> flags) {
    setenv("LD_PRELOAD", kFaketime, 1);
    setenv("FAKETIME_TIMESTAMP_FILE", offset_file_.c_str(), 1);
    setenv("FAKETIME_NO_CACHE", "1", 1);
    setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1", 1);
    auto server = std::make_unique<QuireProcess>(tmp_.path() + "/data", flags);
    for (const char* name : {"LD_PRELOAD", "FAKETIME_TIMESTAMP_FILE", "FAKETIME_NO_CACHE",
                             "FAKETIME_DONT_FAKE_MONOTONIC"})
      unsetenv(name);
    return server;
  }

  TempDir tmp_;
  OriginServer origin_;
  std::string offset_file_;
};

TEST_F(ClockStepTest, ImagesWaitingForARetryAreNotDelayedByAClockSetBack) {
  constexpr int kImages = 3;
  auto server = Start({"--workers", "2", "--allow-private-origins", "--ingest-backoff-ms",
                       "3000", "--ingest-attempts", "5"});
  Api api{server->url(), server->admin()};
  int64_t space = api.CreateSpace(kCustomer, "clock-back");
  json members = json::array();
  for (int i = 0; i < kImages; ++i) {
    std::string path = "/p-" + std::to_string(i) + ".jpg";
    origin_.FailThenServe(path, 1, MakeJpeg(500, 400, i), "image/jpeg", 503);
    members.push_back(Member(space, "p-" + std::to_string(i), origin_.Url(path), "image/jpeg"));
  }
  long status = 0;
  json batch = api.SubmitBatch(kCustomer, members, &status);
  ASSERT_EQ(status, 201) << batch.dump();
  // Every image has failed once and waits 3 s for its retry...
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (origin_.TotalRequests() < kImages && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  ASSERT_EQ(origin_.TotalRequests(), kImages);
  // ...when the clock goes back two hours.
  SetOffset("-7200");
  auto stepped = std::chrono::steady_clock::now();

  json b = api.WaitForBatch(kCustomer, batch["id"], 30s);
  ASSERT_TRUE(b.contains("finished")) << "the retries waited for the old clock:\n"
                                      << b.dump(2) << server->Log();
  EXPECT_LT(std::chrono::steady_clock::now() - stepped, 15s);
  EXPECT_EQ(b["completed"], kImages) << b.dump(2);
  EXPECT_EQ(b["errors"], 0);
  EXPECT_NE(server->Log().find("the clock went back by 7"), std::string::npos) << server->Log();

  // Work submitted after the step runs at once.
  origin_.Serve("/after.jpg", MakeJpeg(300, 200, 9), "image/jpeg");
  json after = api.SubmitBatch(
      kCustomer, json::array({Member(space, "after", origin_.Url("/after.jpg"), "image/jpeg")}),
      &status);
  ASSERT_EQ(status, 201);
  EXPECT_EQ(api.WaitForBatch(kCustomer, after["id"], 15s).value("completed", 0), 1);
  EXPECT_EQ(server->AnsweredWith(500), 0);
}

TEST_F(ClockStepTest, AClockSetForwardThenBackCountsEveryImageOnce) {
  auto server = Start({"--workers", "3", "--allow-private-origins", "--ingest-backoff-ms",
                       "500", "--lease-ms", "20000"});
  Api api{server->url(), server->admin()};
  int64_t space = api.CreateSpace(kCustomer, "clock-forward");
  // Slow: still being fetched when the clock jumps ahead past its lease.
  origin_.Serve("/slow.jpg", MakeJpeg(700, 500, 4), "image/jpeg", 2000);
  long status = 0;
  json batch = api.SubmitBatch(
      kCustomer, json::array({Member(space, "slow", origin_.Url("/slow.jpg"), "image/jpeg")}),
      &status);
  ASSERT_EQ(status, 201);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (origin_.Requests("/slow.jpg") == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  ASSERT_EQ(origin_.Requests("/slow.jpg"), 1);
  SetOffset("+7200");

  json b = api.WaitForBatch(kCustomer, batch["id"], 30s);
  ASSERT_TRUE(b.contains("finished")) << b.dump(2) << server->Log();
  EXPECT_EQ(b["completed"], 1) << b.dump(2);
  EXPECT_EQ(b["errors"], 0) << b.dump(2);
  json image = api.Image(kCustomer, space, "slow");
  EXPECT_EQ(image["width"], 700);

  // The clock is corrected back; a retry scheduled under the fast clock is moved with it.
  origin_.FailThenServe("/later.jpg", 1, MakeJpeg(300, 200, 5), "image/jpeg", 503);
  json later = api.SubmitBatch(
      kCustomer, json::array({Member(space, "later", origin_.Url("/later.jpg"), "image/jpeg")}),
      &status);
  ASSERT_EQ(status, 201);
  deadline = std::chrono::steady_clock::now() + 10s;
  while (origin_.Requests("/later.jpg") == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  SetOffset("+0");
  json l = api.WaitForBatch(kCustomer, later["id"], 20s);
  ASSERT_TRUE(l.contains("finished")) << l.dump(2) << server->Log();
  EXPECT_EQ(l["completed"], 1);
  // The batch's own counts stay exact whatever the clock said.
  b = api.Batch(kCustomer, batch["id"]);
  EXPECT_EQ(b["completed"], 1);
  EXPECT_EQ(b["count"], 1);
  EXPECT_EQ(server->AnsweredWith(500), 0);
}

}  // namespace
}  // namespace quire::test
