// Store benchmarks for distributed mode, through the real Store over a real database:
//
//   store_bench populate URL ROWS         fills a fresh PostgreSQL database: ROWS queued jobs,
//                                         ROWS assets and batch members (250 per batch)
//   store_bench growth URL                medians of a job claim + outcome and of the listings
//   store_bench ceiling URL CLIENTS SECS  claim + heartbeat + outcome cycles per second from
//                                         CLIENTS concurrent clients (each its own connection)
//   store_bench post URL N                N batch POSTs of 250 images: p50 / p99 (store level)
//   store_bench repost URL ROWS N         N batch POSTs of 250 images the populated database
//                                         already holds, waiting in older batches (each member
//                                         supersedes its membership there): p50 / p99
//
// Prints one JSON object per command on stdout (bench/run_pg.sh collects them).
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "core/time_util.h"
#include "model/asset.h"
#include "store/store.h"

namespace quire {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "store_bench: " << what << "\n";
  std::exit(1);
}

std::unique_ptr<Store> OpenOrDie(const std::string& url, int pool = 2) {
  StoreOptions o;
  o.pool_size = pool;
  o.node_id = "store-bench";
  auto s = OpenStore(url, o);
  if (!s.ok()) Die(s.status().message());
  Status st = (*s)->Migrate();
  if (!st.ok()) Die(st.message());
  return std::move(s).value();
}

void Exec(PGconn* conn, const std::string& sql) {
  PGresult* r = PQexec(conn, sql.c_str());
  ExecStatusType s = PQresultStatus(r);
  if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
    Die(sql.substr(0, 80) + ": " + PQresultErrorMessage(r));
  PQclear(r);
}

Asset Member(int64_t space, const std::string& id) {
  Asset a;
  a.customer = 1;
  a.space = space;
  a.id = id;
  a.origin = "https://example.org/" + id + ".jpg";
  a.media_type = "image/jpeg";
  a.family = FamilyForMediaType(a.media_type);
  a.delivery_channels = DefaultDeliveryChannels(a.media_type);
  return a;
}

// Rows as the store writes them (batches of 250 ready jobs of customer 1 in space 1, plus a
// customer 2 with one small batch so that the round-robin has a choice), set-based.
int Populate(const std::string& url, int64_t rows) {
  OpenOrDie(url);  // schema
  PGconn* conn = PQconnectdb(url.c_str());
  if (PQstatus(conn) != CONNECTION_OK) Die(PQerrorMessage(conn));
  auto t0 = Clock::now();
  const std::string n = std::to_string(rows);
  Exec(conn, "SET synchronous_commit = off");
  Exec(conn,
       "INSERT INTO customers (id, name, display_name, administrator, created) VALUES "
       "(1, 'bench', 'bench', 1, 0), (2, 'other', 'other', 0, 0)");
  Exec(conn, "SELECT setval(pg_get_serial_sequence('customers', 'id'), 2)");
  Exec(conn, "INSERT INTO spaces (customer, id, name, created, image_count) VALUES (1, 1, 's', 0, " +
                 n + "), (2, 1, 's', 0, 250)");
  Exec(conn,
       "INSERT INTO batches (id, customer, submitted, count, priority) SELECT b, 1, b, 250, 0 "
       "FROM generate_series(1, (" + n + " + 249) / 250) b");
  Exec(conn, "UPDATE customers SET batch_count = (" + n + " + 249) / 250 WHERE id = 1");
  Exec(conn,
       "INSERT INTO assets (customer, space, id, origin, media_type, family, delivery_channels, "
       "created, ingesting, batch, string1, number1) SELECT 1, 1, 'a' || i, "
       "'https://example.org/' || i || '.jpg', 'image/jpeg', 'I', "
       "'[{\"channel\":\"iiif-img\",\"policy\":\"default\"}]', i, 1, (i - 1) / 250 + 1, "
       "'s' || (i % 100), i % 1000 FROM generate_series(1, " + n + ") i");
  Exec(conn,
       "INSERT INTO batch_assets (batch, customer, space, asset_id, ordinal) "
       "SELECT (i - 1) / 250 + 1, 1, 1, 'a' || i, (i - 1) % 250 FROM generate_series(1, " + n +
           ") i");
  Exec(conn,
       "INSERT INTO jobs (customer, space, asset_id, batch, priority, created, next_attempt_at) "
       "SELECT 1, 1, 'a' || i, (i - 1) / 250 + 1, 0, i, i FROM generate_series(1, " + n + ") i");
  Exec(conn, "SELECT setval(pg_get_serial_sequence('batches', 'id'), (SELECT MAX(id) FROM batches))");
  Exec(conn, "INSERT INTO queue_turns (customer, last_turn) VALUES (1, 0)");
  Exec(conn, "VACUUM ANALYZE");
  PQfinish(conn);
  // Customer 2's small batch through the store itself.
  auto store = OpenOrDie(url);
  std::vector<Asset> members;
  for (int i = 0; i < 250; ++i) {
    Asset a = Member(1, "o" + std::to_string(i));
    a.customer = 2;
    members.push_back(a);
  }
  auto b = store->CreateBatch(2, members, false);
  if (!b.ok()) Die(b.status().message());
  std::printf("{\"populate_rows\": %lld, \"seconds\": %.1f}\n", static_cast<long long>(rows),
              Ms(Clock::now() - t0) / 1000);
  return 0;
}

// Median milliseconds of `f` over at least `reps` calls and at least `min_ms` of them (after a
// warm-up call); at least 3 calls, and no more than 8 s of them, so that a pathologically slow
// path cannot stall the run. Reads take min_ms: a sub-millisecond read measured over its first
// few dozen calls reports how warm the two processes' cores happened to be (the same listing
// measured 0.03 ms over its first 50 calls and 0.30 ms from then on, on the small database as
// on the big one), not the database.
double Median(int reps, const std::function<void()>& f, double min_ms = 0) {
  f();
  std::vector<double> t;
  auto start = Clock::now();
  for (int i = 0;; ++i) {
    if (i >= reps && Ms(Clock::now() - start) >= min_ms) break;
    auto s = Clock::now();
    f();
    t.push_back(Ms(Clock::now() - s));
    if (i >= 2 && Clock::now() - start > std::chrono::seconds(8)) break;
  }
  return Pct(t, 50);
}

constexpr double kSteadyMs = 1500;  // reads: a second and a half of calls

int Growth(const std::string& url) {
  auto store = OpenOrDie(url);
  // Listings first without a measured throughput (no estCompletion to compute), as the
  // SQLite figures in bench/run.sh; then the claim + outcome cycle, which measures one; then
  // the batch reads again, now with estCompletion.
  PGconn* conn = PQconnectdb(url.c_str());
  if (PQstatus(conn) != CONNECTION_OK) Die(PQerrorMessage(conn));
  Exec(conn, "DELETE FROM ingest_log");
  PQfinish(conn);
  IngestOutcome ok;
  ok.success = true;
  ok.width = 100;
  ok.height = 100;
  ok.duration_ms = 400;
  auto must = [](const Status& st) {
    if (!st.ok()) Die(st.message());
  };
  PageRequest page;
  page.page = 1;
  page.page_size = 100;
  // Batch listings compare like with like: a page of 4 batches, all that the 1,000-row
  // database has (a page of 100 there would return 4 rows against 100 on the big one).
  PageRequest batch_page = page;
  batch_page.page_size = 4;
  // The same reads run again once outcomes exist, when they also work out estimates.
  auto list_batches = [&] {
    BatchQuery q;
    q.customer = 1;
    q.page = batch_page;
    q.descending = true;
    auto r = store->ListBatches(q);
    if (!r.ok()) Die(r.status().message());
  };
  auto get_batch = [&] {
    auto r = store->GetBatch(1, 3);
    if (!r.ok()) Die(r.status().message());
  };
  auto list_members = [&] {
    auto r = store->ListBatchAssets(1, 2, BatchMemberFilter::kAll, page);
    if (!r.ok()) Die(r.status().message());
  };
  auto list_assets = [&] {
    AssetQuery q;
    q.customer = 1;
    q.space = 1;
    q.page = page;
    auto r = store->ListAssets(q);
    if (!r.ok()) Die(r.status().message());
  };
  double batches = Median(50, list_batches, kSteadyMs);
  double members = Median(50, list_members, kSteadyMs);
  double assets = Median(50, list_assets, kSteadyMs);
  double batch = Median(100, get_batch, kSteadyMs);
  double claim = Median(200, [&] {
    auto j = store->ClaimJob("bench/0", 60000);
    if (!j.ok() || !j->has_value()) Die("no job to claim");
    must(store->RecordOutcome(**j, ok));
  });
  double batches_est = Median(20, list_batches, kSteadyMs);
  double batch_est = Median(50, get_batch, kSteadyMs);
  std::printf(
      "{\"claim_outcome_ms\": %.3f, \"list_batches_ms\": %.3f, \"list_batch_images_ms\": %.3f, "
      "\"list_space_images_ms\": %.3f, \"get_batch_ms\": %.3f, "
      "\"list_batches_with_estimate_ms\": %.3f, \"get_batch_with_estimate_ms\": %.3f}\n",
      claim, batches, members, assets, batch, batches_est, batch_est);
  return 0;
}

int Ceiling(const std::string& url, int clients, int seconds) {
  auto store = OpenOrDie(url, clients);
  IngestOutcome ok;
  ok.success = true;
  ok.width = 100;
  ok.height = 100;
  ok.duration_ms = 400;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> cycles{0}, failures{0};
  std::vector<std::vector<double>> lat(static_cast<size_t>(clients));
  std::vector<std::thread> threads;
  auto t0 = Clock::now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      std::string owner = "bench/" + std::to_string(c);
      while (!stop) {
        auto s = Clock::now();
        auto j = store->ClaimJob(owner, 60000);
        if (!j.ok() || !j->has_value()) {
          ++failures;
          continue;
        }
        if (!store->ExtendLease(**j, 60000).ok() || !store->RecordOutcome(**j, ok).ok()) {
          ++failures;
          continue;
        }
        lat[static_cast<size_t>(c)].push_back(Ms(Clock::now() - s));
        ++cycles;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  double secs = Ms(Clock::now() - t0) / 1000;
  std::vector<double> all;
  for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
  double rate = static_cast<double>(cycles) / secs;
  // At ~0.4 core-seconds per 24-megapixel image, each cycle per second keeps 0.4 cores busy.
  std::printf(
      "{\"clients\": %d, \"cycles_per_s\": %.1f, \"cycle_p50_ms\": %.2f, \"cycle_p99_ms\": %.2f, "
      "\"failures\": %lld, \"worker_cores_at_ceiling\": %.0f}\n",
      clients, rate, Pct(all, 50), Pct(all, 99), static_cast<long long>(failures.load()),
      rate * 0.4);
  return 0;
}

// N sequential 250-image batch POSTs, member `i` of batch `b` named by `id(b, i)`; prints
// {"NAMEs": N, "NAME250_p50_ms": …, "NAME250_p99_ms": …}.
int TimePosts(const std::string& url, int n, const char* name,
              const std::function<std::string(int, int)>& id) {
  auto store = OpenOrDie(url);
  std::vector<double> t;
  for (int b = 0; b < n; ++b) {
    std::vector<Asset> members;
    for (int i = 0; i < 250; ++i) members.push_back(Member(1, id(b, i)));
    auto s = Clock::now();
    auto r = store->CreateBatch(1, members, false);
    if (!r.ok()) Die(r.status().message());
    t.push_back(Ms(Clock::now() - s));
  }
  std::printf("{\"%ss\": %d, \"%s250_p50_ms\": %.1f, \"%s250_p99_ms\": %.1f}\n", name, n, name,
              Pct(t, 50), name, Pct(t, 99));
  return 0;
}

int Post(const std::string& url, int n) {
  return TimePosts(url, n, "post",
                   [](int b, int i) { return "p" + std::to_string(b) + "-" + std::to_string(i); });
}

// Reingests: the last images of a populated database (still queued) in new batches of 250.
int Repost(const std::string& url, int64_t rows, int n) {
  return TimePosts(url, n, "repost", [rows](int b, int i) {
    return "a" + std::to_string(rows - 250 * (b + 1) + 1 + i);
  });
}

}  // namespace
}  // namespace quire

int main(int argc, char** argv) {
  using namespace quire;
  if (argc < 3) Die("usage: store_bench populate|growth|ceiling|post|repost URL [args]");
  std::string cmd = argv[1], url = argv[2];
  if (cmd == "populate" && argc == 4) return Populate(url, std::atoll(argv[3]));
  if (cmd == "growth") return Growth(url);
  if (cmd == "ceiling" && argc == 5) return Ceiling(url, std::atoi(argv[3]), std::atoi(argv[4]));
  if (cmd == "post" && argc == 4) return Post(url, std::atoi(argv[3]));
  if (cmd == "repost" && argc == 5) return Repost(url, std::atoll(argv[3]), std::atoi(argv[4]));
  Die("bad arguments");
}
