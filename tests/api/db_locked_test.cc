// The SQLite database file is unavailable for writing for a while: another process holds its
// write lock for 12 s (an operator's `sqlite3` shell in a transaction, a backup tool), longer
// than the 10 s a statement waits. PostgreSQL going away is db_outage_test.
//
// - Reads go on (WAL readers do not wait for the writer).
// - A write waits 10 s, then answers 503 with Retry-After — once, not after several waits —
//   and keeps nothing.
// - Images processed meanwhile are recorded when the lock is released: the batch finishes
//   exact, each image fetched once; afterwards writes work again.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
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

TEST(DatabaseLockedTest, WritesWaitThenAnswer503AndFinishedWorkIsRecordedAfterwards) {
  constexpr int kImages = 3;
  TempDir tmp;
  OriginServer origin;
  const std::string data = tmp.path() + "/data";
  QuireProcess server(data, {"--workers", "3", "--allow-private-origins"});
  Api api{server.url(), server.admin()};
  int64_t space = api.CreateSpace(kCustomer, "locked");
  json members = json::array();
  for (int i = 0; i < kImages; ++i) {
    std::string path = "/l-" + std::to_string(i) + ".jpg";
    origin.Serve(path, MakeJpeg(640, 480, 20 + i), "image/jpeg", 1000);
    members.push_back(Member(space, "l-" + std::to_string(i), origin.Url(path), "image/jpeg"));
  }
  long status = 0;
  json batch = api.SubmitBatch(kCustomer, members, &status);
  ASSERT_EQ(status, 201) << batch.dump();
  const std::string batch_url =
      api.base + "/customers/1/queue/batches/" + std::to_string(batch["id"].get<int64_t>());
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (origin.TotalRequests() < kImages && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  ASSERT_EQ(origin.TotalRequests(), kImages) << "the workers did not start fetching";

  // Another process takes the write lock while the images are being fetched.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((data + "/quire.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  auto locked_at = std::chrono::steady_clock::now();

  HttpResult read = Http("GET", batch_url, "", api.auth);
  EXPECT_EQ(read.status, 200) << read.body;
  auto before_write = std::chrono::steady_clock::now();
  HttpResult write = Http("POST", api.base + "/customers/1/queue",
                          json{{"member", json::array({Member(space, "late", origin.Url("/x"),
                                                              "image/jpeg")})}}
                              .dump(),
                          api.auth);
  auto waited = std::chrono::steady_clock::now() - before_write;
  EXPECT_EQ(write.status, 503) << write.body;
  EXPECT_FALSE(write.Header("retry-after").empty());
  EXPECT_GT(waited, 8s);
  EXPECT_LT(waited, 12s) << "a write waited for the lock more than once";

  std::this_thread::sleep_for(12s - (std::chrono::steady_clock::now() - locked_at));
  ASSERT_EQ(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);

  json b = api.WaitForBatch(kCustomer, batch["id"], 20s);
  ASSERT_TRUE(b.contains("finished")) << b.dump(2) << server.Log();
  EXPECT_EQ(b["completed"], kImages) << b.dump(2) << server.Log();
  EXPECT_EQ(b["errors"], 0);
  for (int i = 0; i < kImages; ++i)
    EXPECT_EQ(origin.Requests("/l-" + std::to_string(i) + ".jpg"), 1);
  // The refused write kept nothing; writes work again.
  EXPECT_EQ(api.Get("/customers/1/spaces/" + std::to_string(space) + "/images/late").status, 404);
  origin.Serve("/after.jpg", MakeJpeg(300, 200, 2), "image/jpeg");
  json after = api.SubmitBatch(
      kCustomer, json::array({Member(space, "after", origin.Url("/after.jpg"), "image/jpeg")}),
      &status);
  ASSERT_EQ(status, 201) << after.dump();
  EXPECT_EQ(api.WaitForBatch(kCustomer, after["id"], 15s).value("completed", 0), 1);
  EXPECT_EQ(server.AnsweredWith(500), 0) << server.Log();
}

}  // namespace
}  // namespace quire::test
