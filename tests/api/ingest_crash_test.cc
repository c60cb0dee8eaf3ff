// Crash safety of ingest: the server is SIGKILLed (twice) or SIGTERMed in the middle of a
// batch and restarted on the same --data; the batch still finishes with every image counted
// exactly once, nothing left ingesting and an empty queue.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <set>
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
constexpr int kImages = 60;
constexpr int kOriginDelayMs = 50;

std::vector<std::string> ServerFlags() {
  return {"--workers",           "2",   "--allow-private-origins", "--lease-ms", "2000",
          "--ingest-backoff-ms", "100", "--ingest-attempts",       "3"};
}

class IngestCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A few distinct small images, each served under many paths, every response ~50 ms late.
    for (int v = 0; v < 4; ++v) {
      variants_.push_back(
          {MakeJpeg(320 + 40 * v, 240 + 20 * v, 100 + v), 320 + 40 * v, 240 + 20 * v});
    }
  }

  // Submits the 60-image batch; returns its id.
  int64_t Submit(Api& api, int64_t space, const std::string& prefix) {
    json members = json::array();
    for (int i = 0; i < kImages; ++i) {
      std::string id = prefix + "-" + std::to_string(i);
      const Variant& v = variants_[i % variants_.size()];
      origin_.Serve("/" + id + ".jpg", v.bytes, "image/jpeg", kOriginDelayMs);
      members.push_back(Member(space, id, origin_.Url("/" + id + ".jpg"), "image/jpeg"));
    }
    long status = 0;
    json batch = api.SubmitBatch(kCustomer, members, &status);
    EXPECT_EQ(status, 201) << batch.dump();
    return batch.value("id", int64_t{0});
  }

  // Polls until at least `n` images of the batch completed; returns the batch then.
  static json WaitForCompleted(Api& api, int64_t batch, int n) {
    auto deadline = std::chrono::steady_clock::now() + 30s;
    json b;
    while (std::chrono::steady_clock::now() < deadline) {
      b = api.Batch(kCustomer, batch);
      if (b.value("completed", 0) >= n) break;
      std::this_thread::sleep_for(10ms);
    }
    return b;
  }

  // Everything the spec promises about a finished batch after crashes.
  void ExpectExactlyFinished(Api& api, int64_t space, int64_t batch_id, const std::string& prefix) {
    json b = api.WaitForBatch(kCustomer, batch_id, 40s);
    ASSERT_TRUE(b.contains("finished")) << b.dump(2);
    EXPECT_EQ(b["count"], kImages);
    EXPECT_EQ(b["completed"].get<int>() + b["errors"].get<int>(), kImages) << b.dump(2);
    EXPECT_EQ(b["completed"], kImages) << b.dump(2);
    EXPECT_EQ(b["errors"], 0);
    EXPECT_EQ(b.value("estCompletion", ""), b["finished"].get<std::string>());

    // The counts equal the per-state member lists: nothing counted twice or lost.
    auto completed = api.All(b["completedImages"]);
    auto errors = api.All(b["errorImages"]);
    auto all = api.All(b["images"]);
    EXPECT_EQ(static_cast<int>(completed.size()), b["completed"].get<int>());
    EXPECT_EQ(static_cast<int>(errors.size()), b["errors"].get<int>());
    EXPECT_EQ(static_cast<int>(all.size()), kImages);
    std::set<std::string> distinct;
    for (auto& m : completed) distinct.insert(m["id"]);
    EXPECT_EQ(static_cast<int>(distinct.size()), kImages) << "each member completed once";

    for (int i = 0; i < kImages; ++i) {
      std::string id = prefix + "-" + std::to_string(i);
      SCOPED_TRACE(id);
      const Variant& v = variants_[i % variants_.size()];
      json a = api.Image(kCustomer, space, id);
      EXPECT_EQ(a["ingesting"], false);
      EXPECT_EQ(a["error"], "");
      EXPECT_EQ(a["width"], v.width);
      EXPECT_EQ(a["height"], v.height);
      EXPECT_EQ(a["batch"], b["@id"]);
      EXPECT_GE(origin_.Requests("/" + id + ".jpg"), 1);
    }
    // Derivatives of a sample are whole (an interrupted job must not leave a torn pyramid).
    for (int i = 0; i < kImages; i += 7) {
      std::string id = prefix + "-" + std::to_string(i);
      const Variant& v = variants_[i % variants_.size()];
      auto full = Http("GET", api.base + "/iiif-img/1/" + std::to_string(space) + "/" + id +
                                  "/full/max/0/default.jpg");
      ASSERT_EQ(full.status, 200) << id << ": " << full.body;
      Decoded d = Decode(full.body);
      EXPECT_TRUE(d.ok) << id;
      EXPECT_EQ(d.width, v.width);
      EXPECT_EQ(d.height, v.height);
    }

    json queue = api.Get("/customers/1/queue").Json();
    EXPECT_EQ(queue["size"], 0) << queue.dump(2);
    EXPECT_EQ(queue["batchesWaiting"], 0);
    EXPECT_EQ(queue["imagesWaiting"], 0);
    json global = Http("GET", api.base + "/queue").Json();
    EXPECT_EQ(global["incoming"], 0) << global.dump();
    EXPECT_EQ(global["priority"], 0);
    EXPECT_EQ(api.Get("/customers/1/queue/images").Json()["totalItems"], 0);
    EXPECT_EQ(api.Get("/customers/1/queue/active").Json()["totalItems"], 0);
  }

  struct Variant {
    std::string bytes;
    int width, height;
  };
  std::vector<Variant> variants_;
  OriginServer origin_;
  TempDir dir_;
};

TEST_F(IngestCrashTest, SigkillMidBatchThenRestartFinishesEveryImageExactlyOnce) {
  const std::string data = dir_.path() + "/data";
  auto server = std::make_unique<QuireProcess>(data, ServerFlags());
  Api api{server->url(), server->admin()};
  int64_t space = api.CreateSpace(kCustomer, "crash");
  int64_t batch = Submit(api, space, "k");
  ASSERT_GT(batch, 0);

  // First kill: a few images in.
  json before = WaitForCompleted(api, batch, 8);
  server->Kill();
  int at_first_kill = before.value("completed", 0);
  ASSERT_LT(at_first_kill, kImages) << "the kill must land mid-batch";
  std::string log1 = server->Log();

  // Restart on the same data; the killed process's leases expire (2 s) and are claimed again.
  server = std::make_unique<QuireProcess>(data, ServerFlags());
  api.base = server->url();
  json mid = api.Batch(kCustomer, batch);
  EXPECT_FALSE(mid.contains("finished"));
  EXPECT_GE(mid["completed"].get<int>(), at_first_kill) << "completed work survives the crash";
  EXPECT_EQ(mid["errors"], 0);

  // Second kill, further in.
  json before2 = WaitForCompleted(api, batch, std::min(kImages - 10, at_first_kill + 15));
  server->Kill();
  ASSERT_LT(before2.value("completed", 0), kImages) << "the second kill must land mid-batch";

  server = std::make_unique<QuireProcess>(data, ServerFlags());
  api.base = server->url();
  ExpectExactlyFinished(api, space, batch, "k");
  EXPECT_GT(origin_.TotalRequests(), kImages - 1);

  auto durations = IngestDurationsMs(log1 + server->Log());
  if (!durations.empty()) {
    int64_t sum = 0;
    for (int d : durations) sum += d;
    std::cout << "[ ingest ] " << durations.size() << " logged ingests, mean "
              << sum / static_cast<int64_t>(durations.size()) << " ms per image (origin delay "
              << kOriginDelayMs << " ms included)\n";
  }
  if (HasFailure()) std::cerr << "---- quire log ----\n" << server->Log();
}

// With the default one-minute lease, a restart on the same host does not wait for the dead
// process's leases to run out: it sees that process is gone and takes its jobs back at once.
TEST_F(IngestCrashTest, RestartTakesBackADeadProcesssLeasesWithoutWaitingForThem) {
  const std::string data = dir_.path() + "/data";
  std::vector<std::string> flags = {"--workers", "2", "--allow-private-origins",
                                    "--ingest-backoff-ms", "100"};  // default --lease-ms 60000
  auto server = std::make_unique<QuireProcess>(data, flags);
  Api api{server->url(), server->admin()};
  int64_t space = api.CreateSpace(kCustomer, "leases");
  int64_t batch = Submit(api, space, "l");
  ASSERT_GT(batch, 0);
  json before = WaitForCompleted(api, batch, 6);
  server->Kill();
  ASSERT_LT(before.value("completed", 0), kImages) << "the kill must land mid-batch";

  auto restarted = std::chrono::steady_clock::now();
  server = std::make_unique<QuireProcess>(data, flags);
  api.base = server->url();
  ExpectExactlyFinished(api, space, batch, "l");
  auto took = std::chrono::steady_clock::now() - restarted;
  EXPECT_LT(took, 30s) << "the dead process's 60 s leases were waited out";
  EXPECT_NE(server->Log().find("no longer running"), std::string::npos) << server->Log();
}

TEST_F(IngestCrashTest, SigtermMidBatchHandsWorkBackAndRestartCompletesEverything) {
  const std::string data = dir_.path() + "/data";
  auto server = std::make_unique<QuireProcess>(data, ServerFlags());
  Api api{server->url(), server->admin()};
  int64_t space = api.CreateSpace(kCustomer, "term");
  int64_t batch = Submit(api, space, "t");
  ASSERT_GT(batch, 0);

  json before = WaitForCompleted(api, batch, 10);
  auto t0 = std::chrono::steady_clock::now();
  int rc = server->Stop();
  auto stop_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  EXPECT_EQ(rc, 0) << server->Log();
  std::cout << "[ stop   ] SIGTERM after " << before.value("completed", 0)
            << " completed; exited in " << stop_ms << " ms\n";
  EXPECT_LT(stop_ms, 5000) << "a graceful stop drains quickly";
  std::string log1 = server->Log();

  // Straight after a graceful stop nothing is leased: the restarted server does not have to
  // wait for any lease to expire, so it finishes the rest at its usual pace.
  server = std::make_unique<QuireProcess>(data, ServerFlags());
  api.base = server->url();
  json mid = api.Batch(kCustomer, batch);
  EXPECT_GE(mid["completed"].get<int>(), before.value("completed", 0));
  EXPECT_LT(mid["completed"].get<int>(), kImages) << "the stop must land mid-batch";
  EXPECT_EQ(mid["errors"], 0);
  ExpectExactlyFinished(api, space, batch, "t");
  if (std::getenv("QUIRE_TEST_SHOW_LOG")) std::cerr << log1;
  if (HasFailure())
    std::cerr << "---- quire log (1st run) ----\n"
              << log1 << "---- quire log ----\n"
              << server->Log();
}

// A worker blocked on a stalled origin (default 5-minute download timeout) must not hold up a
// graceful stop: the download is abandoned, the job handed back without spending an attempt,
// and the restarted server ingests it once the origin answers.
TEST_F(IngestCrashTest, SigtermDoesNotWaitForAStalledOrigin) {
  const std::string data = dir_.path() + "/data";
  std::vector<std::string> flags = {"--workers", "2", "--allow-private-origins",
                                    "--ingest-attempts", "1"};
  auto server = std::make_unique<QuireProcess>(data, flags);
  Api api{server->url(), server->admin()};
  int64_t space = api.CreateSpace(kCustomer, "stalled");
  origin_.Stall("/stuck-1.jpg");
  origin_.Stall("/stuck-2.jpg");
  json members = json::array({
      Member(space, "stuck-1", origin_.Url("/stuck-1.jpg"), "image/jpeg"),
      Member(space, "stuck-2", origin_.Url("/stuck-2.jpg"), "image/jpeg"),
  });
  long status = 0;
  json batch = api.SubmitBatch(kCustomer, members, &status);
  ASSERT_EQ(status, 201) << batch.dump();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while ((origin_.Requests("/stuck-1.jpg") == 0 || origin_.Requests("/stuck-2.jpg") == 0) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  ASSERT_EQ(origin_.Requests("/stuck-1.jpg"), 1);
  ASSERT_EQ(origin_.Requests("/stuck-2.jpg"), 1);

  auto t0 = std::chrono::steady_clock::now();
  int rc = server->Stop();
  auto stop_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  EXPECT_EQ(rc, 0);
  EXPECT_LT(stop_ms, 5000) << "SIGTERM waited for stalled downloads";
  std::cout << "[ stop   ] SIGTERM with 2 stalled downloads exited in " << stop_ms << " ms\n";
  std::string log1 = server->Log();

  // Nothing recorded: with --ingest-attempts 1, an abandoned download counted as a transient
  // failure would already be final.
  std::string jpeg = MakeJpeg(300, 200, 77);
  origin_.Serve("/stuck-1.jpg", jpeg, "image/jpeg");
  origin_.Serve("/stuck-2.jpg", jpeg, "image/jpeg");
  server = std::make_unique<QuireProcess>(data, flags);
  api.base = server->url();
  json mid = api.Batch(kCustomer, batch["id"]);
  EXPECT_EQ(mid["errors"], 0) << mid.dump(2);
  json done = api.WaitForBatch(kCustomer, batch["id"], 20s);
  ASSERT_TRUE(done.contains("finished")) << done.dump(2) << server->Log();
  EXPECT_EQ(done["completed"], 2);
  EXPECT_EQ(done["errors"], 0);
  for (auto id : {"stuck-1", "stuck-2"}) {
    json a = api.Image(kCustomer, space, id);
    EXPECT_EQ(a["error"], "") << id;
    EXPECT_EQ(a["width"], 300) << id;
  }
  if (HasFailure()) std::cerr << "---- quire log (1st run) ----\n" << log1;
}

// An image the process dies on every time (here: the process is SIGKILLed while working on it)
// must not be retried forever: once it has been claimed more than --ingest-attempts times
// without an outcome it fails with an error saying so, and the rest of the batch is unaffected.
TEST_F(IngestCrashTest, AnImageThatKeepsKillingTheServerEventuallyFails) {
  const std::string data = dir_.path() + "/data";
  std::vector<std::string> flags = {
      "--workers", "2", "--allow-private-origins", "--lease-ms", "1000", "--ingest-attempts", "2"};
  origin_.Stall("/poison.jpg");
  origin_.Serve("/fine.jpg", variants_[0].bytes, "image/jpeg");
  auto server = std::make_unique<QuireProcess>(data, flags);
  Api api{server->url(), server->admin()};
  int64_t space = api.CreateSpace(kCustomer, "poison");
  json members = json::array({
      Member(space, "poison", origin_.Url("/poison.jpg"), "image/jpeg"),
      Member(space, "fine", origin_.Url("/fine.jpg"), "image/jpeg"),
  });
  long status = 0;
  json batch = api.SubmitBatch(kCustomer, members, &status);
  ASSERT_EQ(status, 201) << batch.dump();
  int64_t batch_id = batch["id"];

  for (int kill = 1; kill <= 2; ++kill) {
    // Wait until this process works on the poison image, then kill it there.
    auto deadline = std::chrono::steady_clock::now() + 15s;
    while (origin_.Requests("/poison.jpg") < kill && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(10ms);
    ASSERT_EQ(origin_.Requests("/poison.jpg"), kill) << server->Log();
    // The fine image is downloaded alongside (prefetch) and done in milliseconds: kill only
    // once it is, so that the poison image is the only one each crash interrupts.
    while (api.Batch(kCustomer, batch_id).value("completed", 0) < 1 &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(10ms);
    server->Kill();
    server = std::make_unique<QuireProcess>(data, flags);
    api.base = server->url();
  }
  json done = api.WaitForBatch(kCustomer, batch_id, 20s);
  ASSERT_TRUE(done.contains("finished")) << done.dump(2) << server->Log();
  EXPECT_EQ(done["completed"], 1);
  EXPECT_EQ(done["errors"], 1);
  json poison = api.Image(kCustomer, space, "poison");
  std::string error = poison["error"];
  std::cout << "[ result ] poison: " << error << "\n";
  EXPECT_NE(error.find("interrupted"), std::string::npos) << error;
  EXPECT_EQ(poison["ingesting"], false);
  EXPECT_EQ(origin_.Requests("/poison.jpg"), 2) << "not fetched a third time";
  EXPECT_EQ(api.Image(kCustomer, space, "fine")["error"], "");
  EXPECT_EQ(api.Get("/customers/1/queue").Json()["size"], 0);
}

}  // namespace
}  // namespace quire::test
