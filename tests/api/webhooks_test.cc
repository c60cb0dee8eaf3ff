// Webhooks over real HTTP against a live server and a loopback receiver: signatures verify,
// failed deliveries are retried with growing backoff until a 2xx (and never after), the
// deliveries log shows every attempt, a SIGKILL between attempts loses nothing, a receiver
// that never answers times out without holding up ingest, and private receiver addresses
// are refused unless --allow-private-origins.
#include <gtest/gtest.h>
#include <openssl/hmac.h>

#include <cstdlib>
#include <set>
#include <thread>

#include "core/time_util.h"
#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// The receiver's side of Quire-Signature: t=UNIX,v1=HEX(HMAC-SHA256(secret, t + "." + body)).
bool SignatureVerifies(const std::string& header, const std::string& secret,
                       const std::string& body) {
  size_t comma = header.find(",v1=");
  if (header.rfind("t=", 0) != 0 || comma == std::string::npos) return false;
  std::string t = header.substr(2, comma - 2);
  std::string v1 = header.substr(comma + 4);
  std::string text = t + "." + body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(text.data()), text.size(), mac, &len);
  char hex[2 * EVP_MAX_MD_SIZE + 1] = {};
  for (unsigned i = 0; i < len; ++i) std::snprintf(hex + 2 * i, 3, "%02x", mac[i]);
  long age = std::labs(static_cast<long>(std::time(nullptr)) - std::stol(t));
  return v1 == hex && age < 300;
}

constexpr const char* kSecret = "a-receiver-secret-of-some-length";

class WebhooksTest : public ::testing::Test {
 protected:
  static std::vector<std::string> Flags() {
    return {"--workers",
            "2",
            "--allow-private-origins",
            "--webhook-backoff-ms",
            "400",
            "--webhook-timeout-ms",
            "1000"};
  }
  static void SetUpTestSuite() {
    tmp_ = new TempDir();
    origin_ = new OriginServer();
    origin_->Serve("/ok.jpg", MakeJpeg(80, 60, 5), "image/jpeg");
    origin_->Status("/missing.jpg", 404);
    server_ = new QuireProcess(tmp_->path() + "/data", Flags());
    space_ = Api{server_->url(), server_->admin()}.CreateSpace(1, "hooks");
  }
  static void TearDownTestSuite() {
    delete server_;
    delete origin_;
    delete tmp_;
  }
  static Api api() { return Api{server_->url(), server_->admin()}; }

  static json CreateHook(const std::string& url, const json& events) {
    HttpResult r =
        Http("POST", server_->url() + "/customers/1/webhooks",
             json{{"url", url}, {"events", events}, {"secret", kSecret}}.dump(), server_->admin());
    EXPECT_EQ(r.status, 201) << r.body;
    return r.Json();
  }
  static int64_t Submit(const std::vector<std::pair<std::string, std::string>>& members) {
    json m = json::array();
    for (auto& [id, path] : members)
      m.push_back(Member(space_, id, origin_->Url(path), "image/jpeg"));
    return api().SubmitBatch(1, m)["id"].get<int64_t>();
  }
  static std::vector<json> Deliveries(int64_t hook) {
    return api().All(server_->url() + "/customers/1/webhooks/" + std::to_string(hook) +
                     "/deliveries");
  }
  // Waits until `path` of the receiver has seen `n` requests.
  static bool WaitForRequests(const std::string& path, int n, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (origin_->Requests(path) < n) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(10ms);
    }
    return true;
  }

  static TempDir* tmp_;
  static OriginServer* origin_;
  static QuireProcess* server_;
  static int64_t space_;
};
TempDir* WebhooksTest::tmp_ = nullptr;
OriginServer* WebhooksTest::origin_ = nullptr;
QuireProcess* WebhooksTest::server_ = nullptr;
int64_t WebhooksTest::space_ = 0;

TEST_F(WebhooksTest, SignedDeliveryRetriedUntilAcknowledgedAndLogged) {
  OriginRoute flaky;
  flaky.status = 200;
  flaky.body = "thanks";
  flaky.fail_first = 3;
  flaky.fail_status = 500;
  origin_->Route("/hook-finished", flaky);
  origin_->Serve("/hook-failed", "ok", "text/plain");
  json finished_hook = CreateHook(origin_->Url("/hook-finished"), {"batch.finished"});
  json failed_hook = CreateHook(origin_->Url("/hook-failed"), {"image.failed"});
  EXPECT_EQ(finished_hook["secret"], kSecret) << "the secret is shown at creation";
  EXPECT_FALSE(api().Get(finished_hook["@id"]).Json().contains("secret")) << "and never again";

  int64_t batch = Submit({{"w1", "/ok.jpg"}, {"w2", "/missing.jpg"}});
  ASSERT_TRUE(WaitForRequests("/hook-finished", 4, 20s)) << origin_->Requests("/hook-finished");
  std::this_thread::sleep_for(1500ms);  // an acknowledged delivery is never sent again
  auto got = origin_->Received("/hook-finished");
  ASSERT_EQ(got.size(), 4u);
  for (const ReceivedRequest& r : got) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.headers.at("quire-event-id"), got[0].headers.at("quire-event-id"));
    EXPECT_EQ(r.headers.at("quire-event-type"), "batch.finished");
    EXPECT_TRUE(SignatureVerifies(r.headers.at("quire-signature"), kSecret, r.body))
        << r.headers.at("quire-signature");
    EXPECT_FALSE(
        SignatureVerifies(r.headers.at("quire-signature"), "another-secret-entirely", r.body));
    EXPECT_EQ(r.body, got[0].body) << "the same body on every attempt";
  }
  json body = json::parse(got[0].body);
  EXPECT_EQ(body["type"], "batch.finished");
  EXPECT_EQ(body["id"], got[0].headers.at("quire-event-id"));
  EXPECT_EQ(body["batch"]["id"], batch);
  EXPECT_EQ(body["batch"]["customer"], 1);
  EXPECT_EQ(body["batch"]["count"], 2);
  EXPECT_EQ(body["batch"]["completed"], 1);
  EXPECT_EQ(body["batch"]["errors"], 1);
  EXPECT_TRUE(body["batch"].contains("finished"));
  EXPECT_TRUE(body["batch"].contains("submitted"));
  EXPECT_EQ(body["batch"]["superseded"], false);

  auto log = Deliveries(finished_hook["id"]);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0]["status"], "delivered");
  EXPECT_EQ(log[0]["event"], "batch.finished");
  EXPECT_EQ(log[0]["attempts"], 4);
  EXPECT_EQ(log[0]["eventId"], got[0].headers.at("quire-event-id"));
  ASSERT_EQ(log[0]["attemptLog"].size(), 4u);
  std::vector<int> statuses;
  for (auto& a : log[0]["attemptLog"]) statuses.push_back(a["status"]);
  EXPECT_EQ(statuses, (std::vector<int>{500, 500, 500, 200}));
  EXPECT_NE(log[0]["attemptLog"][0]["error"].get<std::string>().find("500"), std::string::npos);
  // Backoff doubles: 0.4 s, 0.8 s, 1.6 s between the attempts.
  std::vector<int64_t> at;
  for (auto& a : log[0]["attemptLog"]) at.push_back(*ParseIso8601(a["at"]));
  EXPECT_GE(at[1] - at[0], 350);
  EXPECT_GE(at[2] - at[1], 750);
  EXPECT_GE(at[3] - at[2], 1500);

  // image.failed went to its own webhook, once, for the one failed member.
  ASSERT_TRUE(WaitForRequests("/hook-failed", 1, 10s));
  auto failed = origin_->Received("/hook-failed");
  ASSERT_EQ(failed.size(), 1u);
  json image = json::parse(failed[0].body);
  EXPECT_EQ(image["type"], "image.failed");
  EXPECT_EQ(image["image"]["id"], "w2");
  EXPECT_NE(image["image"]["error"].get<std::string>().find("404"), std::string::npos);
  EXPECT_TRUE(SignatureVerifies(failed[0].headers.at("quire-signature"), kSecret, failed[0].body));
  ASSERT_EQ(Http("DELETE", finished_hook["@id"], "", server_->admin()).status, 204);
  ASSERT_EQ(Http("DELETE", failed_hook["@id"], "", server_->admin()).status, 204);
  EXPECT_EQ(api().Get(finished_hook["@id"]).status, 404);
}

TEST_F(WebhooksTest, KilledBetweenAttemptsDeliversAfterRestart) {
  OriginRoute flaky;
  flaky.status = 204;
  flaky.fail_first = 2;
  flaky.fail_status = 503;
  origin_->Route("/hook-kill", flaky);
  json hook = CreateHook(origin_->Url("/hook-kill"), {"batch.finished"});
  int64_t batch = Submit({{"k1", "/ok.jpg"}});
  ASSERT_TRUE(api().WaitForBatch(1, batch, 20s).contains("finished"));
  // Kill as soon as a failed attempt is recorded and the next one is scheduled.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    auto log = Deliveries(hook["id"]);
    if (!log.empty() && log[0]["status"] == "pending" && log[0]["attempts"].get<int>() >= 1) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no failed attempt recorded";
    std::this_thread::sleep_for(5ms);
  }
  server_->Kill();
  int before = origin_->Requests("/hook-kill");
  delete server_;
  server_ = new QuireProcess(tmp_->path() + "/data", Flags());
  ASSERT_TRUE(WaitForRequests("/hook-kill", 3, 20s)) << origin_->Requests("/hook-kill");
  EXPECT_GE(before, 1);
  std::this_thread::sleep_for(1500ms);
  auto got = origin_->Received("/hook-kill");
  EXPECT_EQ(got.size(), 3u) << "acknowledged once, never sent again";
  for (auto& r : got)
    EXPECT_EQ(r.headers.at("quire-event-id"), got[0].headers.at("quire-event-id"));
  auto log = Deliveries(hook["id"]);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0]["status"], "delivered");
  EXPECT_EQ(log[0]["attempts"], 3);
  EXPECT_EQ(log[0]["attemptLog"].size(), 3u);
  EXPECT_EQ(log[0]["attemptLog"][2]["status"], 204);
  // The restarted server has another port.
  ASSERT_EQ(
      Http("DELETE",
           server_->url() + "/customers/1/webhooks/" + std::to_string(hook["id"].get<int64_t>()),
           "", server_->admin())
          .status,
      204);
}

TEST_F(WebhooksTest, SilentReceiverTimesOutWithoutHoldingUpIngest) {
  origin_->Stall("/hook-silent");
  json hook = CreateHook(origin_->Url("/hook-silent"), {"image.completed", "batch.finished"});
  auto started = std::chrono::steady_clock::now();
  int64_t batch = Submit({{"s1", "/ok.jpg"},
                          {"s2", "/ok.jpg"},
                          {"s3", "/ok.jpg"},
                          {"s4", "/ok.jpg"},
                          {"s5", "/ok.jpg"},
                          {"s6", "/ok.jpg"}});
  json done = api().WaitForBatch(1, batch, 20s);
  ASSERT_TRUE(done.contains("finished")) << done.dump();
  EXPECT_EQ(done["completed"], 6);
  // 7 deliveries, each waiting 1 s for an answer on 2 sender threads, would take 3.5 s+.
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s) << "ingest waited for the receiver";
  ASSERT_TRUE(WaitForRequests("/hook-silent", 2, 10s));
  std::vector<json> log;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  bool timed_out = false;
  while (!timed_out && std::chrono::steady_clock::now() < deadline) {
    log = Deliveries(hook["id"]);
    for (auto& d : log)
      if (d["lastError"].get<std::string>().find("no answer within 1000 ms") != std::string::npos)
        timed_out = true;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(timed_out) << json(log).dump();
  EXPECT_EQ(log.size(), 7u);
  ASSERT_EQ(Http("DELETE", hook["@id"], "", server_->admin()).status, 204);
}

TEST_F(WebhooksTest, ResourceValidatesAndPages) {
  auto post = [](const json& body) {
    return Http("POST", server_->url() + "/customers/1/webhooks", body.dump(), server_->admin());
  };
  EXPECT_EQ(post({{"url", "ftp://example.org/x"}, {"events", {"batch.finished"}}}).status, 400);
  EXPECT_EQ(post({{"url", "http://example.org/x"}, {"events", {"batch.done"}}}).status, 400);
  EXPECT_EQ(post({{"url", "http://example.org/x"}, {"events", json::array()}}).status, 400);
  EXPECT_EQ(post({{"events", {"batch.finished"}}}).status, 400);
  EXPECT_EQ(
      post({{"url", "http://example.org/x"}, {"events", {"batch.finished"}}, {"secret", "short"}})
          .status,
      400);
  HttpResult made = post({{"url", origin_->Url("/anything")}, {"events", {"image.failed"}}});
  ASSERT_EQ(made.status, 201) << made.body;
  EXPECT_EQ(made.Json()["secret"].get<std::string>().size(), 64u) << "generated when absent";
  std::string url = made.Json()["@id"];
  HttpResult patched = Http(
      "PATCH", url, json{{"events", {"batch.finished", "image.failed"}}}.dump(), server_->admin());
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_EQ(patched.Json()["events"], json({"batch.finished", "image.failed"}));
  EXPECT_EQ(Http("PATCH", url, json{{"url", "gopher://x"}}.dump(), server_->admin()).status, 400);
  auto all = api().All(server_->url() + "/customers/1/webhooks");
  bool listed = false;
  for (auto& w : all) listed = listed || w["@id"] == url;
  EXPECT_TRUE(listed);
  // Another customer sees none of it.
  int64_t other = api().CreateCustomer("hooks-other");
  HttpResult key = Http("POST", server_->url() + "/customers/" + std::to_string(other) + "/keys",
                        "", server_->admin());
  Credentials them{key.Json()["key"], key.Json()["secret"]};
  EXPECT_EQ(Http("GET", url, "", them).status, 404);
  EXPECT_EQ(Http("GET",
                 server_->url() + "/customers/" + std::to_string(other) + "/webhooks/" +
                     std::to_string(made.Json()["id"].get<int64_t>()),
                 "", them)
                .status,
            404);
  EXPECT_EQ(Http("DELETE", url, "", server_->admin()).status, 204);
  EXPECT_EQ(Http("DELETE", url, "", server_->admin()).status, 404);
}

TEST(WebhookAddressGuard, PrivateReceiversRefusedUnlessAllowed) {
  TempDir tmp;
  QuireProcess strict(tmp.path() + "/data", {"--workers", "0"});
  auto post = [&](const std::string& url) {
    return Http("POST", strict.url() + "/customers/1/webhooks",
                json{{"url", url}, {"events", {"batch.finished"}}}.dump(), strict.admin());
  };
  for (const char* url :
       {"http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://10.1.2.3/hook",
        "http://169.254.169.254/latest", "http://[::1]:9/hook", "http://192.168.0.10/x"}) {
    HttpResult r = post(url);
    EXPECT_EQ(r.status, 400) << url << ": " << r.body;
    EXPECT_NE(r.body.find("private"), std::string::npos) << r.body;
  }
}

// Two nodes on one PostgreSQL database both run senders, woken together by NOTIFY: each
// event reaches the receiver once (the lease on a delivery row lets one node send it).
TEST(ClusterWebhooks, EachDeliveryIsSentByOneNode) {
  const char* backend = std::getenv("QUIRE_TEST_BACKEND");
  if (backend == nullptr || std::string(backend) != "postgresql")
    GTEST_SKIP() << "nodes share deliveries through PostgreSQL (webhooks_test_postgresql)";
  TempDir tmp;
  OriginServer origin;
  origin.Serve("/i.jpg", MakeJpeg(64, 48, 2), "image/jpeg");
  origin.Serve("/hook", "ok", "text/plain");
  QuireProcess a(tmp.path() + "/data", {"--workers", "2", "--allow-private-origins"});
  QuireProcess b(tmp.path() + "/data", {"--workers", "0", "--allow-private-origins"});
  Api api{a.url(), a.admin()};
  HttpResult hook = Http(
      "POST", b.url() + "/customers/1/webhooks",
      json{{"url", origin.Url("/hook")}, {"events", {"image.completed", "batch.finished"}}}.dump(),
      b.admin());
  ASSERT_EQ(hook.status, 201) << hook.body;
  int64_t space = api.CreateSpace(1, "cluster-hooks");
  json members = json::array();
  for (int i = 0; i < 8; ++i)
    members.push_back(Member(space, "h" + std::to_string(i), origin.Url("/i.jpg"), "image/jpeg"));
  int64_t batch = api.SubmitBatch(1, members)["id"].get<int64_t>();
  ASSERT_TRUE(api.WaitForBatch(1, batch, 30s).contains("finished"));
  auto deadline = std::chrono::steady_clock::now() + 15s;
  while (origin.Requests("/hook") < 9 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  std::this_thread::sleep_for(1s);
  std::set<std::string> ids;
  for (auto& r : origin.Received("/hook")) ids.insert(r.headers.at("quire-event-id"));
  EXPECT_EQ(origin.Requests("/hook"), 9) << "8 image.completed and 1 batch.finished, once each";
  EXPECT_EQ(ids.size(), 9u);
}

}  // namespace
}  // namespace quire::test
