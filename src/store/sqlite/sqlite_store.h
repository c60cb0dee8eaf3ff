// The embedded default Store: one SQLite file in WAL mode. All logic is SqlStore's; this adds
// the connection and the dialect.
#pragma once

#include <memory>
#include <string>

#include "store/sql/sql_store.h"

namespace quire {

class SqliteStore : public SqlStore {
 public:
  static Result<std::unique_ptr<SqliteStore>> Open(const std::string& path, int pool_size = 8);

 private:
  using SqlStore::SqlStore;
};

}  // namespace quire
