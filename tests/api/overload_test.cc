// Overload: more renders arrive than the CPU pool can work through. Beyond --cpu-queue the
// server answers 503 with Retry-After at once instead of queueing without bound; tiles and the
// API stay quick meanwhile, nothing fails with 500, and it serves normally afterwards.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

TEST(OverloadTest, RendersBeyondTheCpuQueueAre503WithRetryAfter) {
  TempDir tmp;
  OriginServer origin;
  origin.Serve("/big.jpg", MakeJpeg(3000, 2000, 5), "image/jpeg");
  QuireProcess server(tmp.path() + "/data",
                      {"--workers", "1", "--allow-private-origins", "--cpu-queue", "4"});
  Api api{server.url(), server.admin()};
  int64_t space = api.CreateSpace(1, "load");
  json batch = api.SubmitBatch(1, json::array({Member(space, "big", origin.Url("/big.jpg"), "image/jpeg")}));
  ASSERT_EQ(api.WaitForBatch(1, batch["id"], 30s).value("completed", 0), 1);
  const std::string image = server.url() + "/iiif-img/1/" + std::to_string(space) + "/big";
  long hwm_before = server.StatusKib("VmHWM");

  std::mutex mu;
  std::map<long, int> statuses;
  int retry_after_ok = 0;
  std::atomic<int> next{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 16; ++t) {
    clients.emplace_back([&] {
      for (int i; (i = next.fetch_add(1)) < 96;) {
        // Distinct sizes: no response cache can answer them.
        int box = 700 + i;
        HttpResult r = Http("GET", image + "/full/!" + std::to_string(box) + "," +
                                       std::to_string(box) + "/0/default.jpg");
        std::lock_guard<std::mutex> lock(mu);
        ++statuses[r.status];
        if (r.status == 503 && r.Header("retry-after") == "1") ++retry_after_ok;
      }
    });
  }
  // Meanwhile the API and info.json answer promptly: they never wait for the CPU pool.
  std::this_thread::sleep_for(100ms);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(Http("GET", image + "/info.json").status, 200);
  EXPECT_EQ(Http("GET", server.url() + "/customers/1", "", server.admin()).status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);
  for (auto& c : clients) c.join();

  std::string summary;
  for (auto& [s, n] : statuses) summary += std::to_string(s) + ":" + std::to_string(n) + " ";
  EXPECT_EQ(statuses[200] + statuses[503], 96) << summary;
  EXPECT_GT(statuses[200], 0) << summary;
  EXPECT_GT(statuses[503], 0) << "nothing was shed: " << summary;
  EXPECT_EQ(retry_after_ok, statuses[503]) << "every 503 carries Retry-After: 1";
  EXPECT_LT(server.StatusKib("VmHWM") - hwm_before, 256 * 1024) << "memory grew with the backlog";
  // Served normally once the storm is over.
  EXPECT_EQ(Http("GET", image + "/full/!650,650/0/default.jpg").status, 200);
  EXPECT_EQ(server.AnsweredWith(500), 0);
}

}  // namespace
}  // namespace quire::test
