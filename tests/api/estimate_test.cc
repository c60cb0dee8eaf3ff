// estCompletion people can plan by (issue 19 §5): a mixed-size batch of 40 images behind a
// warm-up batch and an idle pause, 2 workers, 2 downloads ahead of them, an origin that
// answers each image after 0.3 s.
// The batch is read every 50 ms while it runs; each estimate is compared with the batch's
// real finish, as a share of the batch's real duration:
// - from 10 % done onward every estimate is within ±15 %;
// - at the first outcome, within ±30 %.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <thread>

#include "core/time_util.h"
#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr int64_t kCustomer = 1;
// Two downloads at a time from an origin that answers after 0.3 s: about 6 images a second,
// which the 2 conversion threads outpace, so the batch's pace is set by the origin and does
// not move with the load of the machine running the test.
constexpr int kOriginDelayMs = 300;
// The customer's history before the judged batch: enough images that the first ones of a
// freshly started server (cold caches, first connections) do not set its measured pace.
constexpr int kWarmUp = 12;

TEST(EstimateTest, EstCompletionIsWithinFifteenPercentFromTenPercentDone) {
  TempDir tmp;
  OriginServer origin;
  QuireProcess server(tmp.path() + "/data", {"--workers", "2", "--allow-private-origins",
                                              "--fetch-concurrency", "2"});
  Api api{server.url(), server.admin()};
  int64_t space = api.CreateSpace(kCustomer, "estimate");

  // Three sizes, shuffled: the time per image varies several-fold.
  const std::vector<std::pair<int, int>> sizes = {{640, 480}, {1600, 1200}, {2600, 1900}};
  std::vector<std::string> bodies;
  for (size_t i = 0; i < sizes.size(); ++i)
    bodies.push_back(MakeJpeg(sizes[i].first, sizes[i].second, static_cast<int>(i)));
  auto members = [&](const std::string& prefix, int n, unsigned seed) {
    std::mt19937 rng(seed);
    json list = json::array();
    for (int i = 0; i < n; ++i) {
      std::string path = "/" + prefix + "-" + std::to_string(i) + ".jpg";
      origin.Serve(path, bodies[rng() % bodies.size()], "image/jpeg", kOriginDelayMs);
      list.push_back(Member(space, prefix + "-" + std::to_string(i), origin.Url(path),
                            "image/jpeg"));
    }
    return list;
  };

  long status = 0;
  json warm = api.SubmitBatch(kCustomer, members("warm", kWarmUp, 1), &status);
  ASSERT_EQ(status, 201);
  ASSERT_TRUE(api.WaitForBatch(kCustomer, warm["id"], 60s).contains("finished"));
  std::this_thread::sleep_for(3s);  // idle: no work is being measured

  constexpr int kImages = 40;
  json batch = api.SubmitBatch(kCustomer, members("page", kImages, 2), &status);
  ASSERT_EQ(status, 201);
  struct Sample {
    int done;
    int64_t est_ms;
  };
  std::vector<Sample> samples;
  json b;
  auto deadline = std::chrono::steady_clock::now() + 120s;
  while (std::chrono::steady_clock::now() < deadline) {
    b = api.Batch(kCustomer, batch["id"]);
    if (b.contains("finished")) break;
    int done = b.value("completed", 0) + b.value("errors", 0);
    if (b.contains("estCompletion")) {
      auto est = ParseIso8601(b["estCompletion"].get<std::string>());
      ASSERT_TRUE(est.has_value()) << b.dump();
      samples.push_back({done, *est});
    }
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(b.contains("finished")) << b.dump(2);
  ASSERT_EQ(b["completed"], kImages);
  const int64_t submitted = *ParseIso8601(b["submitted"].get<std::string>());
  const int64_t finished = *ParseIso8601(b["finished"].get<std::string>());
  const double duration = static_cast<double>(finished - submitted);
  ASSERT_GT(duration, 2000) << "the batch was too quick to judge an estimate by";

  double worst_late = 0, first_error = -1;
  int judged = 0;
  for (const Sample& s : samples) {
    double error = static_cast<double>(s.est_ms - finished) / duration;
    if (s.done >= 1 && first_error < 0) first_error = error;
    if (s.done * 10 < kImages) continue;  // before 10 % done
    ++judged;
    if (std::abs(error) > std::abs(worst_late)) worst_late = error;
    EXPECT_LE(std::abs(error), 0.15)
        << "at " << s.done << "/" << kImages << " done the estimate was off by "
        << std::lround(error * 100) << " % of the batch's " << duration / 1000 << " s";
  }
  EXPECT_GT(judged, 10) << "too few reads of the running batch";
  ASSERT_GE(first_error, -1.0) << "no estimate after the first outcome";
  EXPECT_LE(std::abs(first_error), 0.30) << "at the first outcome: off by "
                                         << std::lround(first_error * 100) << " %";
  std::cout << "[ result ] batch of " << kImages << " in " << duration / 1000
            << " s; estimate off by " << std::lround(first_error * 100)
            << " % at the first outcome, at most " << std::lround(worst_late * 100)
            << " % from 10 % done (" << judged << " reads)\n";
}

}  // namespace
}  // namespace quire::test
