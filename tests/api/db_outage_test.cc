// The database goes away while images are being processed (platform spec §1, "an outage of
// any component loses no accepted work"). One `quire serve` on a PostgreSQL of this test's
// own, which is stopped while the workers are fetching and started again seconds later:
//
// - while it is away, API requests answer 503 with Retry-After (never 500), /readyz says
//   not ready, /healthz stays up, and a delivery request for an image already served is
//   answered 200 or 503;
// - the work finished during the outage is kept in memory and recorded once the database is
//   back: the batch finishes within seconds (not after the 60 s lease runs out), every image
//   completed, each origin fetched exactly once, one outcome per image in ingest_log.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"
#include "support/test_database.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr int64_t kCustomer = 1;

class DatabaseOutageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pg_template[] = "/tmp/quire-outage-pg-XXXXXX";
    pg_dir_ = mkdtemp(pg_template);
    ASSERT_EQ(PgTestServer("start " + pg_dir_ + " 5432 >/dev/null"), 0)
        << "PostgreSQL did not start (see " << pg_dir_ << "/server.log)";
    std::string admin = "postgresql:///postgres?host=" + pg_dir_ + "&port=5432&user=postgres";
    ASSERT_TRUE(CreatePostgresDatabase(admin, "quire").ok());
    db_url_ = "postgresql:///quire?host=" + pg_dir_ + "&port=5432&user=postgres";
  }

  void TearDown() override {
    if (!pg_dir_.empty()) PgTestServer("stop " + pg_dir_);
  }

  TempDir tmp_;
  OriginServer origin_;
  std::string pg_dir_, db_url_;
};

TEST_F(DatabaseOutageTest, WorkFinishedWhileTheDatabaseIsAwayIsRecordedWhenItReturns) {
  constexpr int kImages = 4;
  // The default 60 s lease: an outcome dropped during the outage would only come back when the
  // lease ran out, long after the deadline below.
  QuireProcess server(tmp_.path() + "/data", {"--database", db_url_, "--workers", "4",
                                              "--allow-private-origins", "--db-pool", "4"});
  Api api{server.url(), server.admin()};
  int64_t space = api.CreateSpace(kCustomer, "outage");

  // An image delivered before the outage, to ask for during it.
  origin_.Serve("/before.jpg", MakeJpeg(400, 300, 3), "image/jpeg");
  long status = 0;
  json first = api.SubmitBatch(
      kCustomer, json::array({Member(space, "before", origin_.Url("/before.jpg"), "image/jpeg")}),
      &status);
  ASSERT_EQ(status, 201) << first.dump();
  ASSERT_EQ(api.WaitForBatch(kCustomer, first["id"], 30s).value("completed", 0), 1);
  const std::string tile =
      api.base + "/iiif-img/1/" + std::to_string(space) + "/before/full/100,/0/default.jpg";
  ASSERT_EQ(Http("GET", tile).status, 200);

  // Slow origins: the fetches are still running when the database goes away.
  json members = json::array();
  for (int i = 0; i < kImages; ++i) {
    std::string id = "page-" + std::to_string(i);
    origin_.Serve("/" + id + ".jpg", MakeJpeg(800 + 16 * i, 600, 10 + i), "image/jpeg", 1500);
    members.push_back(Member(space, id, origin_.Url("/" + id + ".jpg"), "image/jpeg"));
  }
  json batch = api.SubmitBatch(kCustomer, members, &status);
  ASSERT_EQ(status, 201) << batch.dump();
  const int64_t batch_id = batch["id"];
  const std::string batch_url =
      api.base + "/customers/1/queue/batches/" + std::to_string(batch_id);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (origin_.TotalRequests() < 1 + kImages && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  ASSERT_EQ(origin_.TotalRequests(), 1 + kImages) << "the workers did not start fetching";

  ASSERT_EQ(PgTestServer("halt " + pg_dir_), 0);
  auto outage_start = std::chrono::steady_clock::now();
  // The fetches (1.5 s) and the processing end while the database is away.
  std::this_thread::sleep_for(500ms);
  HttpResult read = Http("GET", batch_url, "", api.auth);
  EXPECT_EQ(read.status, 503) << read.body;
  EXPECT_FALSE(read.Header("retry-after").empty());
  HttpResult write = Http("POST", api.base + "/customers/1/queue",
                          json{{"member", json::array({Member(space, "late", origin_.Url("/x"),
                                                              "image/jpeg")})}}
                              .dump(),
                          api.auth);
  EXPECT_EQ(write.status, 503) << write.body;
  EXPECT_EQ(Http("GET", api.base + "/readyz").status, 503);
  EXPECT_EQ(Http("GET", api.base + "/healthz").status, 200);
  long tile_status = Http("GET", tile).status;
  EXPECT_TRUE(tile_status == 200 || tile_status == 503) << tile_status;
  std::this_thread::sleep_for(4s - (std::chrono::steady_clock::now() - outage_start));
  ASSERT_EQ(PgTestServer("resume " + pg_dir_), 0) << "PostgreSQL did not start again";
  auto back = std::chrono::steady_clock::now();

  json b = api.WaitForBatch(kCustomer, batch_id, 20s);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - back);
  ASSERT_TRUE(b.contains("finished")) << "the batch did not finish within 20 s of the database "
                                         "returning:\n"
                                      << b.dump(2) << server.Log();
  EXPECT_LT(took, 15s);
  EXPECT_EQ(b["completed"], kImages) << b.dump(2) << server.Log();
  EXPECT_EQ(b["errors"], 0) << b.dump(2);
  for (int i = 0; i < kImages; ++i)
    EXPECT_EQ(origin_.Requests("/page-" + std::to_string(i) + ".jpg"), 1)
        << "page-" << i << " was fetched again: its first outcome was lost";
  EXPECT_EQ(QueryInt(db_url_, "SELECT COUNT(*) FROM ingest_log"), 1 + kImages);
  EXPECT_EQ(QueryInt(db_url_, "SELECT COUNT(*) FROM jobs"), 0);
  EXPECT_EQ(Http("GET", api.base + "/readyz").status, 200);
  EXPECT_EQ(server.AnsweredWith(500), 0) << server.Log();
}

}  // namespace
}  // namespace quire::test
