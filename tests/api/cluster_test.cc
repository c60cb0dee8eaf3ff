// Distributed mode (platform spec §1) with real processes: one PostgreSQL 15 of this test's
// own (it is restarted under load, so it cannot be the shared one), two API nodes
// (`quire serve --workers 0`) and two worker nodes (`quire worker`) over a shared file: blob
// directory, all on loopback.
//
// - Caches are invalidated across nodes: a change made through node A is seen through node B
//   within a second (well inside the caches' own lifetimes of 2 s and 5 s).
// - 300 images in 3 batches from 2 customers; a worker is SIGKILLed mid-batch, then an API
//   node; PostgreSQL is restarted once under load. Every batch ends exact, every image has one
//   recorded outcome, no image was fetched by two workers at once, no request got a 500.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
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

class ClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new TempDir();
    char pg_template[] = "/tmp/quire-cluster-pg-XXXXXX";
    pg_dir_ = mkdtemp(pg_template);
    // A PostgreSQL that cannot start fails the suite (SetUp checks `pg_started_`).
    pg_started_ = PgTestServer("start " + pg_dir_ + " 5432 >/dev/null") == 0;
    if (!pg_started_) return;
    std::string admin = "postgresql:///postgres?host=" + pg_dir_ + "&port=5432&user=postgres";
    Status made = CreatePostgresDatabase(admin, "quire");
    if (!made.ok()) {
      pg_started_ = false;
      return;
    }
    db_url_ = "postgresql:///quire?host=" + pg_dir_ + "&port=5432&user=postgres";
    blobs_ = root_->path() + "/blobs";
    // One node first, so that it alone migrates and seeds the administrator; the others
    // start together and find the schema at its version.
    api_[0] = StartApi(0);
    api_[1] = StartApi(1);
    for (int i = 0; i < 2; ++i) workers_[i] = StartWorker(i);
  }

  static void TearDownTestSuite() {
    for (auto& w : workers_) w.reset();
    for (auto& a : api_) a.reset();
    if (!pg_dir_.empty()) PgTestServer("stop " + pg_dir_);
    delete root_;
    root_ = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(pg_started_) << "the cluster's PostgreSQL did not start (see " << pg_dir_
                             << "/server.log)";
  }

  static std::vector<std::string> NodeFlags(const std::string& node) {
    return {"--database",
            db_url_,
            "--storage",
            "file:" + blobs_,
            "--node-id",
            node,
            "--db-pool",
            "4",
            "--lease-ms",
            "2000",
            "--allow-private-origins",
            "--ingest-backoff-ms",
            "200"};
  }

  static std::unique_ptr<QuireProcess> StartApi(int i) {
    auto flags = NodeFlags("api-" + std::to_string(i + 1));
    flags.insert(flags.end(), {"--workers", "0"});
    return std::make_unique<QuireProcess>(root_->path() + "/api" + std::to_string(i), flags);
  }

  static std::unique_ptr<QuireProcess> StartWorker(int i) {
    auto flags = NodeFlags("worker-" + std::to_string(i + 1));
    flags.insert(flags.end(), {"--workers", "2"});
    return QuireProcess::Worker(root_->path() + "/worker" + std::to_string(i), flags);
  }

  static Api ApiOf(int i) { return Api{api_[i]->url(), api_[i]->admin()}; }

  static inline TempDir* root_ = nullptr;
  static inline std::string pg_dir_, db_url_, blobs_;
  static inline bool pg_started_ = false;
  static inline std::unique_ptr<QuireProcess> api_[2], workers_[2];
  OriginServer origin_;
};

// Polls `probe` until it returns true; the time it took, or nullopt after `limit`.
template <typename F>
std::optional<std::chrono::milliseconds> TimeUntil(F probe, std::chrono::milliseconds limit) {
  auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < limit) {
    if (probe())
      return std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - start);
    std::this_thread::sleep_for(10ms);
  }
  return std::nullopt;
}

TEST_F(ClusterTest, ChangesThroughOneNodeAreSeenThroughTheOtherWithinASecond) {
  Api a = ApiOf(0), b = ApiOf(1);
  int64_t space = a.CreateSpace(1, "invalidation");
  origin_.Serve("/inv.jpg", MakeJpeg(400, 300, 7), "image/jpeg");
  long status = 0;
  json batch = a.SubmitBatch(
      1, json::array({Member(space, "inv", origin_.Url("/inv.jpg"), "image/jpeg")}), &status);
  ASSERT_EQ(status, 201) << batch.dump();
  json done = a.WaitForBatch(1, batch["id"], 30s);
  ASSERT_EQ(done.value("completed", 0), 1) << done.dump(2);

  // Node B serves the image, and caches what it looked up.
  std::string info = b.base + "/iiif-img/1/" + std::to_string(space) + "/inv/info.json";
  ASSERT_EQ(Http("GET", info).status, 200);
  ASSERT_EQ(Http("GET", info).status, 200);
  std::string pixels =
      b.base + "/iiif-img/1/" + std::to_string(space) + "/inv/full/max/0/default.jpg";
  ASSERT_EQ(Http("GET", pixels).status, 200);
  std::string manifest = b.base + "/iiif-manifest/1/" + std::to_string(space) + "/inv";
  ASSERT_EQ(Http("GET", manifest).status, 200);
  ASSERT_EQ(Http("GET", manifest).body.find("example.org/roles/staff"), std::string::npos);
  // Restricted through node A: node B stops serving its pixels (info.json stays public,
  // spec/presentation-auth.md §5.5).
  HttpResult patched =
      Http("PATCH", a.base + "/customers/1/spaces/" + std::to_string(space) + "/images/inv",
           json{{"roles", json::array({"https://example.org/roles/staff"})}}.dump(), a.auth);
  ASSERT_EQ(patched.status, 200) << patched.body;
  auto seen = TimeUntil([&] { return Http("GET", pixels).status == 401; }, 3s);
  ASSERT_TRUE(seen) << "node B still serves the restricted image";
  std::cout << "[ result ] image change seen through the other node after " << seen->count()
            << " ms\n";
  EXPECT_LT(seen->count(), 1000);
  // Node B keeps the image's manifest serialized; the change reaches it too.
  auto rebuilt = TimeUntil(
      [&] {
        return Http("GET", manifest).body.find("example.org/roles/staff") != std::string::npos;
      },
      3s);
  ASSERT_TRUE(rebuilt) << "node B still serves the old manifest";
  EXPECT_LT(rebuilt->count(), 1000);

  // A key made and used, then deleted through node A: node B refuses it.
  HttpResult key = Http("POST", a.base + "/customers/1/keys", "{}", a.auth);
  ASSERT_EQ(key.status, 201) << key.body;
  Credentials k{key.Json()["key"], key.Json()["secret"]};
  ASSERT_EQ(Http("GET", b.base + "/customers/1", "", k).status, 200);
  ASSERT_EQ(Http("GET", b.base + "/customers/1", "", k).status, 200);
  std::string key_url = a.base + "/customers/1/keys/" + k.key;
  ASSERT_EQ(Http("DELETE", key_url, "", a.auth).status, 204);
  auto refused =
      TimeUntil([&] { return Http("GET", b.base + "/customers/1", "", k).status == 401; }, 6s);
  ASSERT_TRUE(refused) << "node B still accepts the deleted key";
  std::cout << "[ result ] key deletion seen through the other node after " << refused->count()
            << " ms\n";
  EXPECT_LT(refused->count(), 1000);

  // A IIIF Auth session opened through node A opens the image on node B (which keeps it);
  // the grant revoked through node A: node B refuses the cookie.
  std::string roles = a.base + "/customers/1/roles";
  ASSERT_EQ(
      Http("PUT", roles + "/staff", json{{"label", "Staff"}, {"provider", "grant"}}.dump(), a.auth)
          .status,
      201);
  patched = Http("PATCH", a.base + "/customers/1/spaces/" + std::to_string(space) + "/images/inv",
                 json{{"roles", json::array({roles + "/staff"})}}.dump(), a.auth);
  ASSERT_EQ(patched.status, 200) << patched.body;
  HttpResult grant = Http("POST", roles + "/staff/grants", "{}", a.auth);
  ASSERT_EQ(grant.status, 201) << grant.body;
  HttpResult redeemed =
      Http("POST", a.base + "/auth/v2/grant/" + grant.Json()["code"].get<std::string>(), "");
  std::string set_cookie = redeemed.Header("set-cookie");
  ASSERT_EQ(set_cookie.rfind("quire-auth-1=", 0), 0u) << redeemed.status << " " << set_cookie;
  std::map<std::string, std::string> cookie{{"Cookie", set_cookie.substr(0, set_cookie.find(';'))}};
  auto opened = TimeUntil([&] { return Http("GET", pixels, "", {}, cookie).status == 200; }, 3s);
  ASSERT_TRUE(opened) << "node B does not open the image for the session";
  ASSERT_EQ(Http("GET", pixels, "", {}, cookie).status, 200);
  ASSERT_EQ(
      Http("DELETE", roles + "/staff/grants/" + grant.Json()["id"].get<std::string>(), "", a.auth)
          .status,
      204);
  auto closed = TimeUntil([&] { return Http("GET", pixels, "", {}, cookie).status == 401; }, 3s);
  ASSERT_TRUE(closed) << "node B still opens the image for the revoked session";
  std::cout << "[ result ] grant revocation seen through the other node after " << closed->count()
            << " ms\n";
  EXPECT_LT(closed->count(), 1000);
}

TEST_F(ClusterTest, KilledNodesAndADatabaseRestartLoseNothingAndCountExactly) {
  constexpr int kPerBatch = 100;
  Api a = ApiOf(0), b = ApiOf(1);
  const int64_t outcomes_before = QueryInt(db_url_, "SELECT COUNT(*) FROM ingest_log");
  int64_t second = a.CreateCustomer("second");
  ASSERT_GT(second, 0);
  int64_t space1 = a.CreateSpace(1, "cluster-1");
  int64_t space2 = a.CreateSpace(second, "cluster-2");
  std::vector<std::string> variants;
  for (int v = 0; v < 4; ++v) variants.push_back(MakeJpeg(320 + 40 * v, 240 + 20 * v, 50 + v));
  std::vector<std::string> paths;
  auto members = [&](int64_t space, const std::string& prefix) {
    json list = json::array();
    for (int i = 0; i < kPerBatch; ++i) {
      std::string id = prefix + "-" + std::to_string(i);
      origin_.Serve("/" + id + ".jpg", variants[i % variants.size()], "image/jpeg", 60);
      paths.push_back("/" + id + ".jpg");
      list.push_back(Member(space, id, origin_.Url("/" + id + ".jpg"), "image/jpeg"));
    }
    return list;
  };
  struct Submitted {
    int64_t customer, id;
  };
  std::vector<Submitted> batches;
  long status = 0;
  json b1 = a.SubmitBatch(1, members(space1, "one"), &status);
  ASSERT_EQ(status, 201) << b1.dump();
  json b2 = b.SubmitBatch(second, members(space2, "two"), &status);
  ASSERT_EQ(status, 201) << b2.dump();
  json b3 = a.SubmitBatch(1, members(space1, "three"), &status);
  ASSERT_EQ(status, 201) << b3.dump();
  batches = {{1, b1["id"]}, {second, b2["id"]}, {1, b3["id"]}};

  // Load on both API nodes all along: batch reads and listings. A killed node refuses
  // connections (status 0); a 500 (or any answer but 200 and 503) is a failure.
  std::atomic<bool> stop{false};
  std::atomic<bool> api0_dead{false};
  std::mutex mu;
  std::map<long, int> statuses;
  std::vector<std::string> bad;
  std::vector<std::thread> load;
  for (int t = 0; t < 2; ++t) {
    load.emplace_back([&, t] {
      int n = 0;
      while (!stop) {
        int node = (n + t) % 2;
        if (node == 0 && api0_dead) node = 1;
        const Submitted& s = batches[static_cast<size_t>(n) % batches.size()];
        std::string url = api_[node]->url() + "/customers/" + std::to_string(s.customer) +
                          (n % 3 == 0 ? "/queue" : "/queue/batches/" + std::to_string(s.id));
        HttpResult r = Http("GET", url, "", api_[node]->admin());
        {
          std::lock_guard<std::mutex> lock(mu);
          ++statuses[r.status];
          if (r.status >= 500 && r.status != 503) bad.push_back(url + " -> " + r.body);
          // Every URL loaded exists: only 200, 503 (database away) or no answer (node killed).
          if (r.status != 200 && r.status != 503 && r.status != 0)
            bad.push_back(url + " -> " + std::to_string(r.status) + " " + r.body);
          if (r.status == 503 && r.Header("retry-after").empty())
            bad.push_back(url + " -> 503 without Retry-After");
        }
        ++n;
        std::this_thread::sleep_for(5ms);
      }
    });
  }
  auto completed = [&] {
    int64_t sum = 0;
    for (auto& s : batches) {
      json j = b.Batch(s.customer, s.id);
      if (j.is_object()) sum += j.value("completed", int64_t{0}) + j.value("errors", int64_t{0});
    }
    return sum;
  };
  auto wait_for = [&](int64_t n) {
    return TimeUntil([&] { return completed() >= n; }, 60s).has_value();
  };

  EXPECT_TRUE(wait_for(50)) << "no progress";
  workers_[0]->Kill();  // mid-batch: its leases must expire and the other worker take them
  EXPECT_TRUE(wait_for(110));
  api_[0]->Kill();
  api0_dead = true;
  EXPECT_TRUE(wait_for(170));
  ASSERT_EQ(PgTestServer("restart " + pg_dir_), 0) << "PostgreSQL did not restart";
  // Back at full strength: the killed nodes come back (the worker takes back its own dead
  // process's leases at start).
  workers_[0] = StartWorker(0);
  api_[0] = StartApi(0);
  api0_dead = false;

  bool all_done = TimeUntil(
                      [&] {
                        for (auto& s : batches)
                          if (!b.Batch(s.customer, s.id).contains("finished")) return false;
                        return true;
                      },
                      120s)
                      .has_value();
  stop = true;
  for (auto& t : load) t.join();
  ASSERT_TRUE(all_done) << "batches did not finish:\n" << workers_[1]->Log();

  for (auto& s : batches) {
    json j = b.Batch(s.customer, s.id);
    EXPECT_EQ(j["completed"].get<int64_t>() + j["errors"].get<int64_t>(), j["count"].get<int64_t>())
        << j.dump(2);
    EXPECT_EQ(j["completed"], kPerBatch) << j.dump(2);
    auto images = b.All("/customers/" + std::to_string(s.customer) + "/queue/batches/" +
                        std::to_string(s.id) + "/completedImages");
    EXPECT_EQ(images.size(), static_cast<size_t>(kPerBatch));
  }
  // One recorded outcome per image per batch: the store logs each outcome it accepts.
  EXPECT_EQ(QueryInt(db_url_, "SELECT COUNT(*) FROM ingest_log") - outcomes_before, 3 * kPerBatch);
  EXPECT_EQ(QueryInt(db_url_, "SELECT COUNT(*) FROM jobs"), 0);
  EXPECT_EQ(QueryInt(db_url_,
                     "SELECT COUNT(*) FROM batch_assets WHERE state != 'completed' "
                     "AND batch IN (" +
                         std::to_string(batches[0].id) + "," + std::to_string(batches[1].id) + "," +
                         std::to_string(batches[2].id) + ")"),
            0);
  // Never two workers on one image at once: no origin path was ever fetched concurrently.
  int refetched = 0;
  for (const std::string& p : paths) {
    EXPECT_LE(origin_.MaxInFlight(p), 1) << p;
    refetched += origin_.Requests(p) > 1;
  }
  std::lock_guard<std::mutex> lock(mu);
  std::string summary;
  for (auto& [code, n] : statuses) summary += " " + std::to_string(code) + ":" + std::to_string(n);
  std::cout << "[ result ] load statuses" << summary << "; images fetched more than once "
            << refetched << "\n";
  EXPECT_TRUE(bad.empty()) << bad.size() << " bad answers, first: " << bad.front();
}

}  // namespace
}  // namespace quire::test
