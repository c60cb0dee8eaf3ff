// The Store for many nodes: PostgreSQL. All logic is SqlStore's; this adds the libpq
// connection pool and the dialect (claims with FOR UPDATE SKIP LOCKED, migrations under an
// advisory lock).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "store/postgres/pg_connection.h"
#include "store/sql/sql_store.h"

namespace quire {

// Events travel as NOTIFY on one channel; a listener thread with a connection of its own
// LISTENs, reconnects when the server went away, and then reports kResync (whatever was
// sent meanwhile is lost).
class PostgresStore : public SqlStore {
 public:
  // `pool_size` 0: two connections per core.
  static Result<std::unique_ptr<PostgresStore>> Open(const postgres::ConnectOptions& options,
                                                     int pool_size);
  ~PostgresStore() override;

 protected:
  void StartListening() override;
  void StopListening() override;

 private:
  PostgresStore(std::unique_ptr<sql::Pool> pool, Dialect dialect, postgres::ConnectOptions options)
      : SqlStore(std::move(pool), std::move(dialect)), options_(std::move(options)) {}
  void Listen();
  postgres::ConnectOptions options_;
  std::atomic<bool> stop_{false};
  std::thread listener_;
};

}  // namespace quire
