// Live batch streams (server-sent events) over real HTTP against one live server: every
// outcome once, the final `batch` event with `finished`, Last-Event-ID resume with nothing
// missed and nothing twice, another customer's batch hidden (404), heartbeats, and 1,000
// idle streams served without 1,000 threads.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <thread>

#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"
#include "support/raw_http.h"
#include "support/sse_client.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

class EventsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new TempDir();
    origin_ = new OriginServer();
    jpeg_ = new std::string(MakeJpeg(96, 64, 3));
    server_ = new QuireProcess(tmp_->path() + "/data", {"--workers", "2", "--allow-private-origins",
                                                        "--stream-heartbeat-ms", "400"});
    Api api{server_->url(), server_->admin()};
    space_ = api.CreateSpace(1, "events");
  }
  static void TearDownTestSuite() {
    delete server_;
    delete origin_;
    delete jpeg_;
    delete tmp_;
  }
  Api api() const { return Api{server_->url(), server_->admin()}; }

  // A batch of `n` images whose origins answer after `delay_ms`; members whose index is in
  // `missing` are 404 at the origin (they end in error).
  int64_t SubmitSlowBatch(const std::string& prefix, int n, int delay_ms,
                          const std::set<int>& missing = {}) {
    json members = json::array();
    for (int i = 0; i < n; ++i) {
      std::string path = "/" + prefix + std::to_string(i) + ".jpg";
      if (missing.count(i)) {
        OriginRoute r;
        r.status = 404;
        r.body = "gone";
        r.delay_ms = delay_ms;
        origin_->Route(path, r);
      } else {
        origin_->Serve(path, *jpeg_, "image/jpeg", delay_ms);
      }
      members.push_back(
          Member(space_, prefix + std::to_string(i), origin_->Url(path), "image/jpeg"));
    }
    json batch = api().SubmitBatch(1, members);
    EXPECT_TRUE(batch.contains("id")) << batch.dump();
    return batch.value("id", int64_t{0});
  }

  static std::string BatchStream(int64_t customer, int64_t batch) {
    return "/customers/" + std::to_string(customer) + "/queue/batches/" + std::to_string(batch) +
           "/stream";
  }

  static TempDir* tmp_;
  static OriginServer* origin_;
  static std::string* jpeg_;
  static QuireProcess* server_;
  static int64_t space_;
};
TempDir* EventsTest::tmp_ = nullptr;
OriginServer* EventsTest::origin_ = nullptr;
std::string* EventsTest::jpeg_ = nullptr;
QuireProcess* EventsTest::server_ = nullptr;
int64_t EventsTest::space_ = 0;

TEST_F(EventsTest, BatchStreamShowsEveryOutcomeOnceThenFinishedAndCloses) {
  int64_t batch = SubmitSlowBatch("all", 20, 120, {4, 13});
  SseClient sse(server_->url(), BatchStream(1, batch), server_->admin());
  ASSERT_EQ(sse.status(), 200) << sse.head();
  EXPECT_NE(sse.head().find("text/event-stream"), std::string::npos) << sse.head();

  std::set<std::string> ids;
  int images = 0, errors = 0, batch_events = 0;
  std::optional<json> last_batch;
  int64_t last_id = 0;
  auto started = std::chrono::steady_clock::now();
  while (auto e = sse.Next(30s)) {
    ASSERT_FALSE(last_batch && last_batch->contains("finished"))
        << "an event after the final batch event: " << e->data;
    int64_t id = std::stoll(e->id);
    EXPECT_GE(id, last_id) << "event ids go backwards";
    last_id = id;
    json data = json::parse(e->data);
    if (e->event == "image") {
      ++images;
      EXPECT_TRUE(ids.insert(data["id"].get<std::string>()).second) << "twice: " << e->data;
      EXPECT_EQ(data["space"], space_);
      if (data["state"] == "error") {
        ++errors;
        EXPECT_NE(data["error"].get<std::string>().find("404"), std::string::npos) << e->data;
      } else {
        EXPECT_EQ(data["state"], "completed") << e->data;
        EXPECT_EQ(data["error"], "");
      }
    } else {
      ASSERT_EQ(e->event, "batch");
      ++batch_events;
      last_batch = data;
      EXPECT_EQ(data["id"], batch);
    }
  }
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_TRUE(sse.closed()) << "the server closes the stream after finished";
  EXPECT_EQ(images, 20);
  EXPECT_EQ(ids.size(), 20u);
  EXPECT_EQ(errors, 2);
  ASSERT_TRUE(last_batch.has_value());
  EXPECT_TRUE(last_batch->contains("finished")) << last_batch->dump();
  EXPECT_EQ((*last_batch)["completed"], 18);
  EXPECT_EQ((*last_batch)["errors"], 2);
  // Coalesced: at most 4 a second (plus the first one at open).
  EXPECT_LE(batch_events, 2 + static_cast<int>(seconds * 4)) << batch_events << " in " << seconds;
}

TEST_F(EventsTest, ResumeWithLastEventIdMissesNothingAndRepeatsNothing) {
  int64_t batch = SubmitSlowBatch("resume", 20, 150);
  std::set<std::string> first;
  std::string last_id;
  {
    SseClient sse(server_->url(), BatchStream(1, batch), server_->admin());
    ASSERT_EQ(sse.status(), 200) << sse.head();
    while (first.size() < 7) {
      auto e = sse.Next(30s);
      ASSERT_TRUE(e.has_value()) << "stream ended after " << first.size() << " images";
      if (e->event != "image") continue;
      first.insert(json::parse(e->data)["id"].get<std::string>());
      last_id = e->id;
    }
    sse.Disconnect();
  }
  // Let some outcomes happen while nobody listens.
  std::this_thread::sleep_for(400ms);
  SseClient again(server_->url(), BatchStream(1, batch), server_->admin(), last_id);
  ASSERT_EQ(again.status(), 200) << again.head();
  std::set<std::string> rest;
  bool finished = false;
  while (auto e = again.Next(30s)) {
    json data = json::parse(e->data);
    if (e->event == "image") {
      std::string id = data["id"];
      EXPECT_EQ(first.count(id), 0u) << id << " was sent before the disconnect";
      EXPECT_TRUE(rest.insert(id).second) << id << " twice";
      EXPECT_GT(std::stoll(e->id), std::stoll(last_id));
    } else if (data.contains("finished")) {
      finished = true;
    }
  }
  EXPECT_EQ(rest.size(), 13u);
  EXPECT_TRUE(finished);
  EXPECT_TRUE(again.closed());
  // A finished batch's stream replays it from the start and closes at once.
  SseClient replay(server_->url(), BatchStream(1, batch), server_->admin());
  int images = 0;
  while (auto e = replay.Next(10s))
    if (e->event == "image") ++images;
  EXPECT_EQ(images, 20);
  EXPECT_TRUE(replay.closed());
}

TEST_F(EventsTest, AnotherCustomersBatchStreamIsNotFound) {
  int64_t batch = SubmitSlowBatch("mine", 1, 0);
  int64_t other = api().CreateCustomer("events-other");
  HttpResult key = Http("POST", server_->url() + "/customers/" + std::to_string(other) + "/keys",
                        "", server_->admin());
  ASSERT_EQ(key.status, 201) << key.body;
  Credentials them{key.Json()["key"], key.Json()["secret"]};
  // Their own customer path, our batch id: not found (as for the batch GET).
  EXPECT_EQ(Http("GET", server_->url() + BatchStream(other, batch), "", them).status, 404);
  SseClient theirs(server_->url(), BatchStream(other, batch), them);
  EXPECT_EQ(theirs.status(), 404);
  // Our customer path with their key: not found either.
  SseClient ours(server_->url(), BatchStream(1, batch), them);
  EXPECT_EQ(ours.status(), 404);
  SseClient anonymous(server_->url(), BatchStream(1, batch), {});
  EXPECT_EQ(anonymous.status(), 401);
  SseClient missing(server_->url(), BatchStream(1, 999999), server_->admin());
  EXPECT_EQ(missing.status(), 404);
  SseClient bad_id(server_->url(), BatchStream(1, batch), server_->admin(), "yesterday");
  EXPECT_EQ(bad_id.status(), 400);
  EXPECT_TRUE(api().WaitForBatch(1, batch, 30s).contains("finished"));
}

TEST_F(EventsTest, CustomerStreamShowsEveryBatchAndHeartbeats) {
  SseClient sse(server_->url(), "/customers/1/queue/stream", server_->admin());
  ASSERT_EQ(sse.status(), 200) << sse.head();
  // Idle: only heartbeats (every 400 ms on this server).
  EXPECT_FALSE(sse.Next(1200ms).has_value());
  EXPECT_FALSE(sse.closed());
  EXPECT_GE(sse.comments(), 2);
  int64_t a = SubmitSlowBatch("cust-a", 3, 50);
  int64_t b = SubmitSlowBatch("cust-b", 2, 50);
  std::map<int64_t, int> images;
  std::set<int64_t> finished;
  while (finished.size() < 2) {
    auto e = sse.Next(30s);
    ASSERT_TRUE(e.has_value()) << "customer stream ended";
    json data = json::parse(e->data);
    if (e->event == "image") ++images[data["batch"].get<int64_t>()];
    if (e->event == "batch" && data.contains("finished"))
      finished.insert(data["id"].get<int64_t>());
  }
  EXPECT_EQ(images[a], 3);
  EXPECT_EQ(images[b], 2);
  EXPECT_FALSE(sse.closed()) << "a customer stream stays open";
}

TEST_F(EventsTest, RetryOfAFinishedBatchReopensItOnTheStream) {
  int64_t batch = SubmitSlowBatch("retry", 2, 600, {1});  // the retried fetch takes 0.6 s
  ASSERT_TRUE(api().WaitForBatch(1, batch, 30s).contains("finished"));
  SseClient sse(server_->url(), "/customers/1/queue/stream", server_->admin());
  ASSERT_EQ(sse.status(), 200) << sse.head();
  // The hub has taken the stream once its opening comment arrives.
  EXPECT_FALSE(sse.Next(300ms).has_value());
  ASSERT_GE(sse.comments(), 1);
  HttpResult retried = Http(
      "POST",
      server_->url() + BatchStream(1, batch).substr(0, BatchStream(1, batch).size() - 7) + "/retry",
      "", server_->admin());
  ASSERT_EQ(retried.status, 200) << retried.body;
  // No outcome yet, but the batch's state changed: it is reopened, with its error cleared.
  bool reopened = false, failed_again = false;
  while (!failed_again) {
    auto e = sse.Next(20s);
    ASSERT_TRUE(e.has_value()) << "customer stream ended";
    json data = json::parse(e->data);
    if (e->event == "batch" && data["id"] == batch && !data.contains("finished")) {
      EXPECT_FALSE(failed_again) << "the reopened state comes before the new outcome";
      reopened = true;
    }
    if (e->event == "image" && data["batch"] == batch) failed_again = true;
  }
  EXPECT_TRUE(reopened);
}

TEST_F(EventsTest, ThousandIdleStreamsNeedNoThreadEach) {
  // This process holds the client ends: raise its descriptor limit like the server does.
  rlimit lim;
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
  ASSERT_GE(lim.rlim_cur, 1100u);

  int64_t before = server_->StatusKib("Threads");
  ASSERT_GT(before, 0);
  std::string req = "GET /customers/1/queue/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " +
                    Base64("admin:admin-secret") + "\r\n\r\n";
  std::vector<int> fds;
  for (int i = 0; i < 1000; ++i) {
    int fd = Connect(Port(server_->url()));
    if (fd < 0) {
      std::string log = server_->Log();
      std::this_thread::sleep_for(1200ms);  // the log is flushed every second
      std::string state;
      std::ifstream status("/proc/" + std::to_string(server_->pid()) + "/status");
      for (std::string line; std::getline(status, line);)
        if (line.rfind("State:", 0) == 0) state = line;
      int wstatus = 0;
      if (waitpid(server_->pid(), &wstatus, WNOHANG) == server_->pid())
        state += WIFSIGNALED(wstatus) ? " signal " + std::to_string(WTERMSIG(wstatus))
                                      : " exit " + std::to_string(WEXITSTATUS(wstatus));
      log = server_->Log();
      FAIL() << "connection " << i << ": " << std::strerror(errno) << " (server " << state
             << ")\nserver log ends:\n"
             << log.substr(log.size() > 3000 ? log.size() - 3000 : 0);
    }
    SendAll(fd, req);
    fds.push_back(fd);
  }
  int open = 0;
  for (int fd : fds) {
    ReadResult r = ReadFor(fd, 10s, "stream open");
    if (r.bytes.find("200 OK") != std::string::npos && !r.closed) ++open;
  }
  EXPECT_EQ(open, 1000);
  int64_t during = server_->StatusKib("Threads");
  EXPECT_LE(during, before + 2) << "threads: " << before << " before, " << during
                                << " with 1000 streams";
  // The server still answers promptly, and the streams stay alive (heartbeats arrive).
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(api().Get("/customers/1/queue").status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  int beating = 0;
  for (size_t i = 0; i < fds.size(); i += 50) {
    ReadResult r = ReadFor(fds[i], 3s, ":\n\n");
    if (r.bytes.find(":\n\n") != std::string::npos) ++beating;
  }
  EXPECT_EQ(beating, 20);
  for (int fd : fds) ::close(fd);
}

// A stream on an API-only node sees the outcomes a worker node records: the store's
// LISTEN/NOTIFY carries them. On SQLite events stay in one process, so this needs PostgreSQL.
TEST(ClusterEvents, StreamOnFrontNodeSeesOutcomesOfWorkerNode) {
  const char* backend = std::getenv("QUIRE_TEST_BACKEND");
  if (backend == nullptr || std::string(backend) != "postgresql")
    GTEST_SKIP() << "cross-node events travel by PostgreSQL NOTIFY (events_test_postgresql)";
  TempDir tmp;
  OriginServer origin;
  origin.Serve("/c.jpg", MakeJpeg(64, 48, 9), "image/jpeg", 100);
  QuireProcess front(tmp.path() + "/data", {"--workers", "0", "--allow-private-origins"});
  Api api{front.url(), front.admin()};
  int64_t space = api.CreateSpace(1, "cluster");
  json members = json::array();
  for (int i = 0; i < 6; ++i)
    members.push_back(Member(space, "c" + std::to_string(i), origin.Url("/c.jpg"), "image/jpeg"));
  int64_t batch = api.SubmitBatch(1, members)["id"].get<int64_t>();
  SseClient sse(front.url(), "/customers/1/queue/batches/" + std::to_string(batch) + "/stream",
                front.admin());
  ASSERT_EQ(sse.status(), 200) << sse.head();
  auto worker =
      QuireProcess::Worker(tmp.path() + "/worker", {"--database", front.database_url(), "--workers",
                                                    "2", "--allow-private-origins", "--storage",
                                                    "file:" + tmp.path() + "/data/blobs"});
  int images = 0;
  bool finished = false;
  while (auto e = sse.Next(30s)) {
    if (e->event == "image") ++images;
    if (e->event == "batch" && json::parse(e->data).contains("finished")) finished = true;
  }
  EXPECT_EQ(images, 6);
  EXPECT_TRUE(finished);
  EXPECT_TRUE(sse.closed());
}

}  // namespace
}  // namespace quire::test
