#include "store/sqlite/sqlite_store.h"

#include "store/sqlite/schema.h"
#include "store/sqlite/sqlite_connection.h"

namespace quire {

namespace {

Dialect SqliteDialect() {
  Dialect d;
  d.name = "sqlite";
  d.migrations = sqlite::Migrations();
  // BEGIN IMMEDIATE already excludes every other writer, migrations included.
  d.migrate_lock = "";
  // One writer at a time: no row locks to take or skip.
  d.claim_next =
      "SELECT customer, jid FROM (SELECT t.customer, t.last_turn, "
      "(SELECT j.id FROM jobs j WHERE j.customer = t.customer AND j.priority = ?1 AND "
      "j.state = 'queued' AND j.next_attempt_at <= ?2 ORDER BY j.next_attempt_at, j.id "
      "LIMIT 1) AS jid "
      "FROM queue_turns t) WHERE jid IS NOT NULL ORDER BY last_turn, customer LIMIT 1";
  d.after_explicit_customer_id = "";
  d.group_reads = true;
  return d;
}

}  // namespace

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path, int pool_size) {
  auto pool = sql::Pool::Open(
      [path]() -> Result<std::unique_ptr<sql::Connection>> {
        auto c = sqlite::Connection::Open(path);
        if (!c.ok()) return c.status();
        return std::unique_ptr<sql::Connection>(std::move(c).value());
      },
      pool_size > 0 ? pool_size : 8, /*serialize_writes=*/true);
  if (!pool.ok()) return pool.status();
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(pool).value(), SqliteDialect()));
}

}  // namespace quire
