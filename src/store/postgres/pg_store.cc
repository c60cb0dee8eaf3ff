#include "store/postgres/pg_store.h"

#include <thread>

#include "store/postgres/schema.h"

namespace quire {

namespace {

// Any constant shared by every node; names the migration lock.
constexpr const char* kMigrationLock = "SELECT pg_advisory_xact_lock(7469757265)";

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
  d.after_explicit_customer_id =
      "SELECT setval(pg_get_serial_sequence('customers', 'id'), (SELECT MAX(id) FROM customers))";
  return d;
}

}  // namespace

Result<std::unique_ptr<PostgresStore>> PostgresStore::Open(
    const postgres::ConnectOptions& options, int pool_size) {
  if (pool_size <= 0) pool_size = 2 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  auto pool = sql::Pool::Open(
      [options]() -> Result<std::unique_ptr<sql::Connection>> {
        auto c = postgres::Connection::Open(options);
        if (!c.ok()) return c.status();
        return std::unique_ptr<sql::Connection>(std::move(c).value());
      },
      pool_size, /*serialize_writes=*/false);
  if (!pool.ok()) return pool.status();
  return std::unique_ptr<PostgresStore>(
      new PostgresStore(std::move(pool).value(), PostgresDialect()));
}

}  // namespace quire
