#include "store/postgres/pg_store.h"

#include <poll.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include "store/postgres/schema.h"

namespace quire {

namespace {

// Any constant shared by every node; names the migration lock.
#define kEventChannel "quire_events"

// Migrations may rewrite big tables: no statement timeout inside them.
constexpr const char* kMigrationLock =
    "SET LOCAL statement_timeout = 0; SELECT pg_advisory_xact_lock(7469757265)";

Dialect PostgresDialect() {
  Dialect d;
  d.name = "postgresql";
  d.migrations = postgres::Migrations();
  d.migrate_lock = kMigrationLock;
  // Customers in turn order; for each, its earliest ready job, locked, skipping jobs another
  // claimer holds. The scan stops at the first customer that has one.
  d.claim_next =
      "SELECT t.customer, j.id FROM queue_turns t CROSS JOIN LATERAL ("
      "SELECT j.id FROM jobs j WHERE j.customer = t.customer AND j.priority = ?1 AND "
      "j.state = 'queued' AND j.next_attempt_at <= ?2 ORDER BY j.next_attempt_at, j.id "
      "LIMIT 1 FOR UPDATE SKIP LOCKED) j ORDER BY t.last_turn, t.customer LIMIT 1";
  d.lock_batch = "SELECT id FROM batches WHERE id = ?1 FOR UPDATE";
  d.notify = "SELECT pg_notify('" kEventChannel "', ?1)";
  d.after_explicit_customer_id =
      "SELECT setval(pg_get_serial_sequence('customers', 'id'), (SELECT MAX(id) FROM customers))";
  return d;
}

}  // namespace

Result<std::unique_ptr<PostgresStore>> PostgresStore::Open(const postgres::ConnectOptions& options,
                                                           int pool_size) {
  if (pool_size <= 0)
    pool_size = 2 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  auto pool = sql::Pool::Open(
      [options]() -> Result<std::unique_ptr<sql::Connection>> {
        auto c = postgres::Connection::Open(options);
        if (!c.ok()) return c.status();
        return std::unique_ptr<sql::Connection>(std::move(c).value());
      },
      pool_size, /*serialize_writes=*/false);
  if (!pool.ok()) return pool.status();
  return std::unique_ptr<PostgresStore>(
      new PostgresStore(std::move(pool).value(), PostgresDialect(), options));
}

PostgresStore::~PostgresStore() { StopListening(); }

void PostgresStore::StartListening() {
  if (listener_.joinable()) return;
  stop_ = false;
  listener_ = std::thread([this] { Listen(); });
}

void PostgresStore::StopListening() {
  stop_ = true;
  if (listener_.joinable()) listener_.join();
}

void PostgresStore::Listen() {
  PGconn* conn = nullptr;
  bool lost = false;
  while (!stop_) {
    if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
      if (conn) PQfinish(conn);
      const char* keys[] = {"application_name",
                            "connect_timeout",
                            "keepalives_idle",
                            "keepalives_interval",
                            "keepalives_count",
                            "dbname",
                            nullptr};
      std::string name = options_.application_name + " (events)";
      const char* values[] = {name.c_str(), "3", "5", "2", "2", options_.url.c_str(), nullptr};
      conn = PQconnectdbParams(keys, values, 1);
      PGresult* r =
          PQstatus(conn) == CONNECTION_OK ? PQexec(conn, "LISTEN " kEventChannel) : nullptr;
      bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
      if (r) PQclear(r);
      if (!ok) {
        if (!lost) spdlog::warn("database events: cannot listen: {}", PQerrorMessage(conn));
        lost = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        continue;
      }
      if (lost) {
        spdlog::info("database events: listening again; dropping caches");
        Deliver({StoreEvent{StoreEvent::Kind::kResync, 0, 0, ""},
                 StoreEvent{StoreEvent::Kind::kWorkQueued, 0, 0, ""}});
      }
      lost = false;
    }
    pollfd pfd{PQsocket(conn), POLLIN, 0};
    // Short: stopping and noticing a dead server both wait on it.
    int n = poll(&pfd, 1, 200);
    if (n < 0 && errno != EINTR) lost = true;
    if (n > 0 && PQconsumeInput(conn) == 0) {
      spdlog::warn("database events: connection lost: {}", PQerrorMessage(conn));
      lost = true;
      PQfinish(conn);
      conn = nullptr;
      continue;
    }
    std::vector<StoreEvent> events;
    while (PGnotify* note = PQnotifies(conn)) {
      auto decoded = DecodeEvents(note->extra);
      events.insert(events.end(), decoded.begin(), decoded.end());
      PQfreemem(note);
    }
    if (!events.empty()) Deliver(events);
  }
  if (conn) PQfinish(conn);
}

}  // namespace quire
