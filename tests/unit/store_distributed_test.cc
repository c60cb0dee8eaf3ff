// The store contract for many nodes, on every backend: fencing tokens on leases, events to
// subscribers (across stores on PostgreSQL, in-process on SQLite), migrations racing on a fresh
// database; and, on PostgreSQL, what a lost connection and a statement timeout look like to
// the caller (Unavailable — a 503 — and a working store right after).
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "core/time_util.h"
#include "store/postgres/schema.h"
#include "store/sqlite/schema.h"
#include "store/store.h"
#include "support/quire_process.h"
#include "support/test_database.h"

namespace quire {
namespace {

using namespace std::chrono_literals;

// Runs one SQL command on `url` (a --database URL of the test server) from a connection of
// its own; returns the connection when `keep_open` (caller PQfinishes it).
PGconn* RunSql(const std::string& url, const std::string& sql, bool keep_open = false) {
  PGconn* conn = PQconnectdb(url.c_str());
  EXPECT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  PGresult* r = PQexec(conn, sql.c_str());
  EXPECT_TRUE(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)
      << sql << ": " << PQresultErrorMessage(r);
  PQclear(r);
  if (keep_open) return conn;
  PQfinish(conn);
  return nullptr;
}

Asset MakeAsset(int64_t customer, int64_t space, const std::string& id) {
  Asset a;
  a.customer = customer;
  a.space = space;
  a.id = id;
  a.origin = "https://example.org/" + id + ".jpg";
  a.media_type = "image/jpeg";
  a.family = FamilyForMediaType(a.media_type);
  a.delivery_channels = DefaultDeliveryChannels(a.media_type);
  return a;
}

// Collects events delivered to a subscriber.
struct EventLog {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<StoreEvent> events;

  void Add(const StoreEvent& e) {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back(e);
    cv.notify_all();
  }
  // Waits until `count` events of `kind` (with `id`, when given) arrived.
  bool WaitFor(StoreEvent::Kind kind, const std::string& id, std::chrono::milliseconds limit,
               size_t count = 1) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, limit, [&] {
      size_t n = 0;
      for (auto& e : events)
        if (e.kind == kind && (id.empty() || e.id == id)) ++n;
      return n >= count;
    });
  }
};

class StoreDistributedTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto url = test::FreshDatabaseUrl(GetParam(), dir_.path());
    ASSERT_TRUE(url.ok()) << url.status().message();
    url_ = *url;
    store_ = Open();
    ASSERT_TRUE(store_);
    ASSERT_TRUE(store_->Migrate().ok());
    Customer c;
    c.name = "fencing";
    c.display_name = "fencing";
    auto made = store_->CreateCustomer(c);
    ASSERT_TRUE(made.ok()) << made.status().message();
    customer_ = made->id;
    Space s;
    s.customer = customer_;
    s.name = "s";
    auto sp = store_->CreateSpace(s);
    ASSERT_TRUE(sp.ok()) << sp.status().message();
    space_ = sp->id;
  }

  std::unique_ptr<Store> Open(const StoreOptions& options = {}) {
    auto s = OpenStore(url_, options);
    EXPECT_TRUE(s.ok()) << s.status().message();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  Batch Submit(Store& store, const std::vector<std::string>& ids) {
    std::vector<Asset> members;
    for (auto& id : ids) members.push_back(MakeAsset(customer_, space_, id));
    auto b = store.CreateBatch(customer_, members, false);
    EXPECT_TRUE(b.ok()) << b.status().message();
    return b.ok() ? *b : Batch{};
  }

  IngestOutcome Success() {
    IngestOutcome o;
    o.success = true;
    o.width = 10;
    o.height = 10;
    o.duration_ms = 5;
    return o;
  }

  test::TempDir dir_;
  std::string url_;
  std::unique_ptr<Store> store_;
  int64_t customer_ = 0, space_ = 0;
};

TEST_P(StoreDistributedTest, ALeaseLostToTheSameOwnerNameIsRefusedByItsToken) {
  Batch batch = Submit(*store_, {"fenced"});
  // A node restarted under the same name claims the job again after the lease ran out.
  auto first = store_->ClaimJob("node-a/0", 1);
  ASSERT_TRUE(first.ok() && first->has_value());
  std::this_thread::sleep_for(20ms);
  auto second = store_->ClaimJob("node-a/0", 60000);
  ASSERT_TRUE(second.ok() && second->has_value());
  EXPECT_EQ((*second)->id, (*first)->id);
  EXPECT_EQ((*second)->lease_owner, (*first)->lease_owner);
  EXPECT_GT((*second)->fence, (*first)->fence);

  const Job& stale = **first;
  EXPECT_EQ(store_->ExtendLease(stale, 60000).code(), Code::kNotFound);
  EXPECT_EQ(store_->RescheduleJob(stale, 0, "late").code(), Code::kConflict);
  EXPECT_EQ(store_->RecordOutcome(stale, Success()).code(), Code::kConflict);
  auto mid = store_->GetBatch(customer_, batch.id);
  ASSERT_TRUE(mid.ok());
  EXPECT_EQ(mid->completed + mid->errors, 0);

  // Handed back at shutdown and claimed again: the attempt is not counted, the token moves on.
  EXPECT_TRUE(store_->ReleaseJobs("node-a/0").ok());
  auto third = store_->ClaimJob("node-a/0", 60000);
  ASSERT_TRUE(third.ok() && third->has_value());
  EXPECT_EQ((*third)->attempts, (*second)->attempts);
  EXPECT_GT((*third)->fence, (*second)->fence);
  EXPECT_EQ(store_->ExtendLease(**second, 60000).code(), Code::kNotFound);
  EXPECT_EQ(store_->RecordOutcome(**second, Success()).code(), Code::kConflict);

  ASSERT_TRUE(store_->ExtendLease(**third, 60000).ok());
  ASSERT_TRUE(store_->RecordOutcome(**third, Success()).ok());
  auto done = store_->GetBatch(customer_, batch.id);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->completed, 1);
  EXPECT_TRUE(done->finished_ms);
}

TEST_P(StoreDistributedTest, EventsReachSubscribersAtCommit) {
  const bool across_stores = GetParam() == "postgresql";
  auto other = Open();  // another node on the same database
  ASSERT_TRUE(other);
  EventLog own, remote;
  store_->Subscribe([&](const StoreEvent& e) { own.Add(e); });
  other->Subscribe([&](const StoreEvent& e) { remote.Add(e); });
  std::this_thread::sleep_for(300ms);  // the listeners are connected

  Submit(*store_, {"ev-1", "ev-2"});
  EXPECT_TRUE(own.WaitFor(StoreEvent::Kind::kWorkQueued, "", 1s));
  EXPECT_TRUE(own.WaitFor(StoreEvent::Kind::kAssetChanged, "ev-2", 1s));
  auto job = store_->ClaimJob("w", 60000);
  ASSERT_TRUE(job.ok() && job->has_value());
  ASSERT_TRUE(store_->RecordOutcome(**job, Success()).ok());
  ApiKey k;
  k.key = "key-to-delete";
  k.customer = customer_;
  k.salt = "s";
  k.secret_hash = "h";
  ASSERT_TRUE(store_->CreateKey(k).ok());
  ASSERT_TRUE(store_->DeleteKey(customer_, k.key).ok());
  EXPECT_TRUE(own.WaitFor(StoreEvent::Kind::kKeyDeleted, "key-to-delete", 1s));
  if (across_stores) {
    EXPECT_TRUE(remote.WaitFor(StoreEvent::Kind::kWorkQueued, "", 1s));
    EXPECT_TRUE(remote.WaitFor(StoreEvent::Kind::kAssetChanged, (*job)->asset_id, 1s));
    EXPECT_TRUE(remote.WaitFor(StoreEvent::Kind::kKeyDeleted, "key-to-delete", 1s));
    std::lock_guard<std::mutex> lock(remote.mu);
    for (auto& e : remote.events)
      if (e.kind == StoreEvent::Kind::kAssetChanged) {
        EXPECT_EQ(e.customer, customer_);
        EXPECT_EQ(e.space, space_);
      }
  } else {
    // SQLite is one process's database: events stay with the store that committed them.
    std::this_thread::sleep_for(100ms);
    std::lock_guard<std::mutex> lock(remote.mu);
    EXPECT_TRUE(remote.events.empty());
  }
  // A rolled-back change announces nothing. On PostgreSQL the committing store hears its own
  // events twice, at commit and through NOTIFY: once the last commit's echo is in (NOTIFYs
  // arrive in commit order), every earlier one is too.
  if (across_stores) {
    EXPECT_TRUE(own.WaitFor(StoreEvent::Kind::kKeyDeleted, "key-to-delete", 1s, 2));
  }
  size_t before;
  {
    std::lock_guard<std::mutex> lock(own.mu);
    before = own.events.size();
  }
  auto bad = store_->CreateBatch(customer_, {MakeAsset(customer_, 999, "nowhere")}, false);
  EXPECT_EQ(bad.status().code(), Code::kInvalid);
  std::this_thread::sleep_for(200ms);
  std::lock_guard<std::mutex> lock(own.mu);
  EXPECT_EQ(own.events.size(), before);
  store_->StopEvents();
  other->StopEvents();
}

// A delete, and a batch taking an existing image over, look up the image's memberships by the
// image: the planner must find them through an index, not by reading every batch member of
// the installation (at 10,000,000 members that is seconds per image).
TEST_P(StoreDistributedTest, AnImagesBatchMembershipsAreFoundThroughAnIndex) {
  Submit(*store_, {"a", "b"});
  const std::string query =
      "SELECT batch FROM batch_assets WHERE customer = " + std::to_string(customer_) +
      " AND space = " + std::to_string(space_) + " AND asset_id = 'a' AND state = 'waiting'";
  std::string plan;
  if (GetParam() == "sqlite") {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(url_.substr(7).c_str(), &db), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, ("EXPLAIN QUERY PLAN " + query).c_str(), -1, &st, nullptr),
              SQLITE_OK)
        << sqlite3_errmsg(db);
    while (sqlite3_step(st) == SQLITE_ROW)
      plan += reinterpret_cast<const char*>(sqlite3_column_text(st, 3)) + std::string("\n");
    sqlite3_finalize(st);
    sqlite3_close(db);
  } else {
    // Two rows make a scan the cheaper plan; forbid it to see which index the planner has.
    PGconn* conn = RunSql(url_, "SET enable_seqscan = off", /*keep_open=*/true);
    PGresult* r = PQexec(conn, ("EXPLAIN " + query).c_str());
    ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK) << PQresultErrorMessage(r);
    for (int i = 0; i < PQntuples(r); ++i) plan += std::string(PQgetvalue(r, i, 0)) + "\n";
    PQclear(r);
    PQfinish(conn);
  }
  EXPECT_NE(plan.find("batch_assets_asset"), std::string::npos) << plan;
}

TEST_P(StoreDistributedTest, NodesStartingTogetherMigrateAFreshDatabaseOnce) {
  auto fresh = test::FreshDatabaseUrl(GetParam(), dir_.path());
  ASSERT_TRUE(fresh.ok()) << fresh.status().message();
  std::vector<std::thread> nodes;
  std::atomic<int> ok{0};
  std::mutex mu;
  std::vector<std::string> errors;
  for (int i = 0; i < 4; ++i) {
    nodes.emplace_back([&] {
      auto s = OpenStore(*fresh);
      Status st = s.ok() ? (*s)->Migrate() : s.status();
      if (st.ok()) {
        ++ok;
      } else {
        std::lock_guard<std::mutex> lock(mu);
        errors.push_back(st.message());
      }
    });
  }
  for (auto& t : nodes) t.join();
  EXPECT_EQ(ok, 4) << (errors.empty() ? "" : errors.front());
  auto s = OpenStore(*fresh);
  ASSERT_TRUE(s.ok());
  auto v = (*s)->SchemaVersion();
  ASSERT_TRUE(v.ok()) << v.status().message();
  // Every migration of the backend, each applied once.
  const size_t migrations = GetParam() == "sqlite" ? quire::sqlite::Migrations().size()
                                                   : quire::postgres::Migrations().size();
  EXPECT_EQ(*v, static_cast<int64_t>(migrations));
}

// Bytes that are not UTF-8 arrive in URL paths; looking them up finds nothing (a 404), on a
// server database as on SQLite, and the connection stays usable.
TEST_P(StoreDistributedTest, LookupsOfBytesThatAreNotUtf8FindNothing) {
  for (const std::string& bad :
       {std::string("\xff"), std::string("\xc0\xae"), std::string("a\xed\xa0\x80")}) {
    EXPECT_EQ(store_->GetAsset(customer_, space_, bad).status().code(), Code::kNotFound);
    EXPECT_EQ(store_->GetKey(bad).status().code(), Code::kNotFound);
    EXPECT_EQ(store_->GetCustomerByName(bad).status().code(), Code::kNotFound);
    EXPECT_EQ(store_->DeleteAsset(customer_, space_, bad).code(), Code::kNotFound);
  }
  EXPECT_TRUE(store_->GetCustomer(customer_).ok());
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreDistributedTest, ::testing::ValuesIn(test::StoreBackends()),
                         [](const auto& info) { return info.param; });

// PostgreSQL only: failures that SQLite, one file in one process, does not have.
class PostgresFailureTest : public StoreDistributedTest {};

TEST_P(PostgresFailureTest, ConnectionsKilledByTheServerGiveUnavailableThenReconnect) {
  StoreOptions options;
  options.pool_size = 3;
  options.node_id = "drop-me";
  auto store = Open(options);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->GetCustomer(customer_).ok());
  // The server ends every session of this node (as a restart or failover would).
  auto admin = test::PostgresUrl("postgres");
  ASSERT_TRUE(admin.ok());
  RunSql(*admin,
         "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
         "'drop-me'");
  std::this_thread::sleep_for(100ms);  // the sessions are gone, the client does not know yet
  int unavailable = 0, ok = 0;
  for (int i = 0; i < 10; ++i) {
    auto b = store->CreateBatch(customer_, {MakeAsset(customer_, space_, "d" + std::to_string(i))},
                                false);
    if (b.ok()) {
      ++ok;
    } else {
      EXPECT_EQ(b.status().code(), Code::kUnavailable) << b.status().message();
      ++unavailable;
    }
  }
  // The request on a dead connection fails as Unavailable (a 503), at most once per pooled
  // connection; every later request works again.
  EXPECT_GE(unavailable, 1);
  EXPECT_LE(unavailable, 3);
  EXPECT_GE(ok, 7);
  // Nothing half-written: each accepted batch has its one member and job, no more.
  auto counts = store->GetQueueCounts(customer_, false);
  ASSERT_TRUE(counts.ok()) << counts.status().message();
  EXPECT_EQ(counts->size, ok);
  EXPECT_EQ(counts->batches_waiting, ok);
}

TEST_P(PostgresFailureTest, AStatementBlockedPastTheTimeoutGivesUnavailable) {
  StoreOptions options;
  options.statement_timeout_ms = 300;
  auto store = Open(options);
  ASSERT_TRUE(store);
  // Another session holds the customer's row: batch accounting must wait for it.
  PGconn* holder = RunSql(url_, "BEGIN; LOCK TABLE batches IN EXCLUSIVE MODE", true);
  auto start = std::chrono::steady_clock::now();
  auto b = store->CreateBatch(customer_, {MakeAsset(customer_, space_, "blocked")}, false);
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(b.status().code(), Code::kUnavailable) << b.status().message();
  EXPECT_LT(waited, 5s);
  RunSql(url_, "SELECT 1");  // unrelated sessions are unaffected
  PGresult* r = PQexec(holder, "ROLLBACK");
  PQclear(r);
  PQfinish(holder);
  auto after = store->CreateBatch(customer_, {MakeAsset(customer_, space_, "blocked")}, false);
  EXPECT_TRUE(after.ok()) << after.status().message();
  auto counts = store->GetQueueCounts(customer_, false);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->batches_waiting, 1);
}

INSTANTIATE_TEST_SUITE_P(Stores, PostgresFailureTest, ::testing::Values("postgresql"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace quire
