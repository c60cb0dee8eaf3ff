// The Store for many nodes: PostgreSQL. All logic is SqlStore's; this adds the libpq
// connection pool and the dialect (claims with FOR UPDATE SKIP LOCKED, migrations under an
// advisory lock).
#pragma once

#include <memory>
#include <string>

#include "store/postgres/pg_connection.h"
#include "store/sql/sql_store.h"

namespace quire {

class PostgresStore : public SqlStore {
 public:
  // `pool_size` 0: two connections per core.
  static Result<std::unique_ptr<PostgresStore>> Open(const postgres::ConnectOptions& options,
                                                     int pool_size);

 private:
  using SqlStore::SqlStore;
};

}  // namespace quire
