// The soak: one live server under mixed load for SOAK_S seconds (default 120 here; `make soak`
// runs 30 minutes) — viewers pulling random tiles, renders and info.json, pollers reading
// batches and listings, batches submitted (some with failing origins), images re-ingested
// and deleted, keys created, used and revoked. Every interval it prints request rates, errors
// by status, p99 by route family, RSS, open fds, database size and blob bytes. At the end it
// checks every invariant: each batch's counts equal its rows, no image left ingesting, no
// orphan blob, no 500, RSS and fds flat after warm-up.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "blob/blob_store.h"
#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"

namespace quire::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int64_t kCustomer = 1;

int SoakSeconds() {
  const char* s = std::getenv("SOAK_S");
  return s != nullptr && std::atoi(s) > 0 ? std::atoi(s) : 120;
}

// What one interval of load looked like, from the clients' side.
struct Window {
  std::map<std::string, std::vector<double>> latency_ms;  // by family
  std::map<long, int64_t> statuses;
  int64_t requests = 0;
};

class Recorder {
 public:
  void Add(const std::string& family, long status, double ms) {
    std::lock_guard<std::mutex> lock(mu_);
    window_.latency_ms[family].push_back(ms);
    ++window_.statuses[status];
    ++window_.requests;
    ++total_statuses_[status];
    if (status >= 500 && status != 503) bad_.push_back(family + " " + std::to_string(status));
  }
  Window Take() {
    std::lock_guard<std::mutex> lock(mu_);
    Window w = std::move(window_);
    window_ = Window{};
    return w;
  }
  std::map<long, int64_t> totals() {
    std::lock_guard<std::mutex> lock(mu_);
    return total_statuses_;
  }
  std::vector<std::string> bad() {
    std::lock_guard<std::mutex> lock(mu_);
    return bad_;
  }

 private:
  std::mutex mu_;
  Window window_;
  std::map<long, int64_t> total_statuses_;
  std::vector<std::string> bad_;
};

int64_t OpenFds(pid_t pid) {
  std::error_code ec;
  int64_t n = 0;
  for (auto it = fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != fs::directory_iterator(); it.increment(ec))
    ++n;
  return n;
}

int64_t FileBytes(const std::string& path) {
  std::error_code ec;
  auto n = fs::file_size(path, ec);
  return ec ? 0 : static_cast<int64_t>(n);
}

double P99(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(v.size() * 0.99))];
}

class Soak {
 public:
  Soak()
      : server_(tmp_.path() + "/data",
                {"--workers", "2", "--allow-private-origins", "--ingest-backoff-ms", "200",
                 "--ingest-attempts", "2", "--lease-ms", "5000", "--response-cache-bytes",
                 "8388608"}),
        api_{server_.url(), server_.admin()} {
    for (int v = 0; v < 6; ++v) {
      int w = 600 + 350 * v, h = 450 + 220 * v;
      std::string path = "/src-" + std::to_string(v) + ".jpg";
      origin_.Serve(path, MakeJpeg(w, h, 40 + v), "image/jpeg", 20);
      sources_.push_back(origin_.Url(path));
    }
    origin_.Status("/gone.jpg", 404);
    origin_.Status("/broken.jpg", 500);
    origin_.Serve("/not-an-image.jpg", std::string(5000, 'x'), "image/jpeg");
    failing_ = {origin_.Url("/gone.jpg"), origin_.Url("/broken.jpg"),
                origin_.Url("/not-an-image.jpg")};
    space_ = api_.CreateSpace(kCustomer, "soak");
  }

  void Run(int seconds) {
    auto end = Clock::now() + std::chrono::seconds(seconds);
    std::vector<std::thread> threads;
    for (int i = 0; i < 3; ++i) threads.emplace_back([&, i] { Viewer(end, i); });
    threads.emplace_back([&] { Poller(end); });
    threads.emplace_back([&] { Submitter(end); });
    threads.emplace_back([&] { Mutator(end); });
    threads.emplace_back([&] { Keys(end); });
    threads.emplace_back([&] { Sampler(end); });

    int interval = seconds <= 300 ? std::max(5, seconds / 6) : 60;
    auto start = Clock::now();
    std::printf("soak: %d s against %s, a report every %d s\n", seconds, server_.url().c_str(),
                interval);
    while (Clock::now() < end) {
      std::this_thread::sleep_until(std::min(end, Clock::now() + std::chrono::seconds(interval)));
      Report(std::chrono::duration<double>(Clock::now() - start).count(), interval);
    }
    for (auto& t : threads) t.join();
  }

  // Waits for every batch to finish, then checks the invariants.
  void CheckInvariants() {
    std::vector<json> batches = api_.All(server_.url() + "/customers/1/queue/batches");
    ASSERT_FALSE(batches.empty());
    auto deadline = Clock::now() + 120s;
    for (const json& b : batches) {
      json last = api_.WaitForBatch(kCustomer, b["id"], std::chrono::duration_cast<std::chrono::milliseconds>(
                                                          std::max(deadline - Clock::now(), Clock::duration(1s))));
      ASSERT_TRUE(last.contains("finished")) << "batch never finished: " << last.dump();
      int count = last["count"], completed = last["completed"], errors = last["errors"];
      EXPECT_EQ(completed + errors, count) << last.dump();
      // The member listings show images that still exist; every member missing from them
      // must be one the mutator deleted (its row keeps counting, as DLCS does).
      std::vector<std::string> members;
      {
        std::lock_guard<std::mutex> lock(mu_);
        members = batch_members_[last["id"].get<int64_t>()];
        if (!members.empty()) {
          EXPECT_EQ(static_cast<int>(members.size()), count) << last.dump();
        }
      }
      std::set<std::string> listed;
      int listed_completed = 0, listed_errors = 0;
      for (const json& m : api_.All(last["completedImages"])) listed.insert(m["id"]), ++listed_completed;
      for (const json& m : api_.All(last["errorImages"])) listed.insert(m["id"]), ++listed_errors;
      EXPECT_LE(listed_completed, completed) << last.dump();
      EXPECT_LE(listed_errors, errors) << last.dump();
      int missing = 0;
      for (const std::string& id : members) {
        if (listed.count(id)) continue;
        ++missing;
        std::lock_guard<std::mutex> lock(mu_);
        EXPECT_TRUE(deleted_.count(id)) << id << " of batch " << last["id"] << " is in neither listing";
      }
      if (!members.empty()) {
        EXPECT_EQ(listed_completed + listed_errors + missing, count) << last.dump();
      }
    }
    std::set<std::string> prefixes;
    for (const json& image : api_.All(server_.url() + "/customers/1/spaces/" +
                                      std::to_string(space_) + "/images")) {
      EXPECT_FALSE(image.value("ingesting", false)) << "left ingesting: " << image.dump();
      prefixes.insert(AssetBlobPrefix(kCustomer, space_, image["id"]));
    }
    // No orphan blob: every image directory belongs to an image that exists.
    std::string space_dir = tmp_.path() + "/data/blobs/1/" + std::to_string(space_);
    std::error_code ec;
    for (auto it = fs::directory_iterator(space_dir, ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      std::string prefix = "1/" + std::to_string(space_) + "/" + it->path().filename().string();
      EXPECT_TRUE(prefixes.count(prefix)) << "orphan blobs at " << prefix;
    }
    EXPECT_TRUE(recorder_.bad().empty()) << "server errors: " << recorder_.bad().size() << ", first "
                                         << recorder_.bad().front();
    EXPECT_EQ(server_.AnsweredWith(500), 0) << "the server answered 500";
    // Flat after warm-up: the median of the last fifth of the run may not exceed the median
    // of the 40-60 % window by more than 5 % (medians: a render's transient peak is no trend),
    // and by 8 MiB more in runs under 10 minutes: in the 2-minute ctest run the heap is still
    // settling, and its RSS medians moved by up to 9 MiB (113 -> 122 MiB) between the two
    // windows with no leak, on the ingest code before the store threads as after them.
    // `make soak` (30 minutes) keeps the bare 5 %.
    std::vector<int64_t> rss, fds;
    {
      std::lock_guard<std::mutex> lock(mu_);
      rss = rss_kib_;
      fds = fds_;
    }
    ASSERT_GE(rss.size(), 20u);
    auto median = [](std::vector<int64_t> v, double from, double to) {
      std::vector<int64_t> w(v.begin() + static_cast<long>(v.size() * from),
                             v.begin() + static_cast<long>(v.size() * to));
      std::sort(w.begin(), w.end());
      return w[w.size() / 2];
    };
    int64_t rss_mid = median(rss, 0.4, 0.6), rss_end = median(rss, 0.8, 1.0);
    int64_t fds_mid = median(fds, 0.4, 0.6), fds_end = median(fds, 0.8, 1.0);
    const int64_t settling_kib = SoakSeconds() < 600 ? 8 * 1024 : 0;
    EXPECT_LE(rss_end, rss_mid * 105 / 100 + settling_kib) << "RSS grew " << rss_mid << " -> " << rss_end << " KiB";
    EXPECT_LE(fds_end, fds_mid * 105 / 100 + 4) << "fds grew " << fds_mid << " -> " << fds_end;
    auto totals = recorder_.totals();
    int64_t all = 0;
    for (auto& [s, n] : totals) all += n;
    std::printf("soak: %lld requests, %d batches, statuses:", static_cast<long long>(all),
                static_cast<int>(batches.size()));
    for (auto& [s, n] : totals) std::printf(" %ld:%lld", s, static_cast<long long>(n));
    std::printf("; RSS median %lld KiB at 40-60 %%, %lld KiB at the end; fds %lld -> %lld\n",
                static_cast<long long>(rss_mid), static_cast<long long>(rss_end),
                static_cast<long long>(fds_mid), static_cast<long long>(fds_end));
  }

 private:
  HttpResult Timed(const std::string& family, const std::string& method, const std::string& url,
                   const std::string& body = "", const Credentials& auth = {}) {
    auto t0 = Clock::now();
    HttpResult r = Http(method, url, body, auth);
    recorder_.Add(family, r.status, std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    return r;
  }

  std::vector<json> CompletedImages() {
    std::lock_guard<std::mutex> lock(mu_);
    return completed_;
  }

  void Viewer(Clock::time_point end, int seed) {
    std::mt19937 rng(seed);
    const std::string base = server_.url() + "/iiif-img/1/" + std::to_string(space_) + "/";
    while (Clock::now() < end) {
      std::vector<json> images = CompletedImages();
      if (images.empty()) {
        std::this_thread::sleep_for(100ms);
        continue;
      }
      const json& img = images[rng() % images.size()];
      std::string id = img["id"];
      int w = img.value("width", 0), h = img.value("height", 0);
      if (w <= 0 || h <= 0) continue;
      HttpResult info = Timed("info", "GET", base + id + "/info.json");
      if (info.status != 200) continue;  // deleted or being re-ingested meanwhile
      for (int i = 0; i < 12 && Clock::now() < end; ++i) {
        int scale = 1 << (rng() % 4);
        int span = 256 * scale;
        int x = static_cast<int>(rng() % static_cast<unsigned>((w + span - 1) / span)) * span;
        int y = static_cast<int>(rng() % static_cast<unsigned>((h + span - 1) / span)) * span;
        int rw = std::min(span, w - x), rh = std::min(span, h - y);
        int out = (rw + scale - 1) / scale;
        Timed("iiif-tile", "GET", base + id + "/" + std::to_string(x) + "," + std::to_string(y) +
                                      "," + std::to_string(rw) + "," + std::to_string(rh) + "/" +
                                      std::to_string(out) + ",/0/default.jpg");
      }
      int box = 150 + static_cast<int>(rng() % 400);
      Timed("iiif-render", "GET", base + id + "/full/!" + std::to_string(box) + "," +
                                      std::to_string(box) + "/0/default.jpg");
      Timed("thumbs", "GET", server_.url() + "/thumbs/1/" + std::to_string(space_) + "/" + id +
                                 "/full/100,/0/default.jpg");
    }
  }

  void Poller(Clock::time_point end) {
    while (Clock::now() < end) {
      HttpResult list = Timed("api", "GET", server_.url() + "/customers/1/spaces/" +
                                                std::to_string(space_) + "/images?pageSize=500",
                              "", server_.admin());
      if (list.status == 200) {
        std::vector<json> done;
        json page = list.Json();  // (a range-for over list.Json()["member"] would dangle)
        for (const json& m : page["member"])
          if (m.contains("finished") && m.value("error", "").empty() && !m.value("ingesting", false))
            done.push_back(m);
        std::lock_guard<std::mutex> lock(mu_);
        completed_ = std::move(done);
      }
      Timed("api", "GET", server_.url() + "/customers/1/queue/batches", "", server_.admin());
      Timed("api", "GET", server_.url() + "/customers/1/queue/active", "", server_.admin());
      int64_t last = last_batch_.load();
      if (last > 0)
        Timed("api", "GET", server_.url() + "/customers/1/queue/batches/" + std::to_string(last),
              "", server_.admin());
      std::this_thread::sleep_for(50ms);
    }
  }

  void Submitter(Clock::time_point end) {
    std::mt19937 rng(7);
    int n = 0;
    while (Clock::now() < end) {
      json members = json::array();
      int size = 4 + static_cast<int>(rng() % 6);
      for (int i = 0; i < size; ++i, ++n) {
        // Ids repeat every 60 images: later batches supersede members of earlier ones.
        std::string id = "img-" + std::to_string(n % 60);
        bool fail = rng() % 8 == 0;
        members.push_back(Member(space_, id, fail ? failing_[rng() % failing_.size()]
                                                  : sources_[rng() % sources_.size()],
                                 "image/jpeg"));
      }
      HttpResult r = Timed("api", "POST", server_.url() + "/customers/1/queue",
                           json{{"@type", "Collection"}, {"member", members}}.dump(), server_.admin());
      if (r.status == 201) {
        last_batch_ = r.Json().value("id", int64_t{0});
        std::lock_guard<std::mutex> lock(mu_);
        for (const json& m : members) batch_members_[last_batch_].push_back(m["id"]);
      }
      std::this_thread::sleep_for(1500ms);
    }
  }

  void Mutator(Clock::time_point end) {
    std::mt19937 rng(11);
    const std::string images = server_.url() + "/customers/1/spaces/" + std::to_string(space_) + "/images/";
    while (Clock::now() < end) {
      std::this_thread::sleep_for(700ms);
      std::vector<json> done = CompletedImages();
      if (done.empty()) continue;
      std::string id = done[rng() % done.size()]["id"];
      if (rng() % 3 == 0) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          deleted_.insert(id);
        }
        Timed("api", "DELETE", images + id, "", server_.admin());
      } else {
        Timed("api", "POST", images + id + "/reingest", "", server_.admin());
      }
    }
  }

  void Keys(Clock::time_point end) {
    while (Clock::now() < end) {
      HttpResult made = Timed("api", "POST", server_.url() + "/customers/1/keys", "", server_.admin());
      if (made.status == 201) {
        Credentials k{made.Json()["key"], made.Json()["secret"]};
        HttpResult use = Timed("api", "GET", server_.url() + "/customers/1", "", k);
        EXPECT_EQ(use.status, 200);
        Timed("api", "DELETE", server_.url() + "/customers/1/keys/" + k.key, "", server_.admin());
        HttpResult revoked = Timed("api", "GET", server_.url() + "/customers/1", "", k);
        EXPECT_EQ(revoked.status, 401) << "a revoked key still works";
      }
      std::this_thread::sleep_for(1s);
    }
  }

  void Sampler(Clock::time_point end) {
    while (Clock::now() < end) {
      int64_t rss = server_.StatusKib("VmRSS"), fds = OpenFds(server_.pid());
      {
        std::lock_guard<std::mutex> lock(mu_);
        rss_kib_.push_back(rss);
        fds_.push_back(fds);
      }
      std::this_thread::sleep_for(1s);
    }
  }

  void Report(double at_s, int interval) {
    Window w = recorder_.Take();
    int64_t rss = server_.StatusKib("VmRSS"), fds = OpenFds(server_.pid());
    std::string line = "soak t=" + std::to_string(static_cast<int>(at_s)) + "s " +
                       std::to_string(w.requests / interval) + " req/s statuses";
    for (auto& [s, n] : w.statuses) line += " " + std::to_string(s) + ":" + std::to_string(n);
    line += " | p99 ms";
    for (auto& [family, v] : w.latency_ms) {
      char buf[64];
      std::snprintf(buf, sizeof buf, " %s %.1f", family.c_str(), P99(v));
      line += buf;
    }
    line += " | " + std::to_string(CompletedImages().size()) + " images viewable | RSS " +
            std::to_string(rss / 1024) + " MiB, fds " + std::to_string(fds) + ", db " +
            std::to_string(FileBytes(tmp_.path() + "/data/quire.db") >> 10) + " KiB + WAL " +
            std::to_string(FileBytes(tmp_.path() + "/data/quire.db-wal") >> 10) + " KiB, blobs " + std::to_string(TreeBytes(tmp_.path() + "/data/blobs") >> 20) + " MiB";
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }

  TempDir tmp_;
  OriginServer origin_;
  QuireProcess server_;
  Api api_;
  std::vector<std::string> sources_, failing_;
  int64_t space_ = 0;
  Recorder recorder_;
  std::mutex mu_;
  std::vector<json> completed_;
  std::map<int64_t, std::vector<std::string>> batch_members_;
  std::set<std::string> deleted_;
  std::atomic<int64_t> last_batch_{0};
  std::vector<int64_t> rss_kib_, fds_;  // one sample a second (guarded by mu_)
};

TEST(SoakTest, MixedLoadKeepsEveryInvariant) {
  Soak soak;
  soak.Run(SoakSeconds());
  soak.CheckInvariants();
}

}  // namespace
}  // namespace quire::test
