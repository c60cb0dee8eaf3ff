#include "store/postgres/pg_store.h"
#include "store/sqlite/sqlite_store.h"
#include "store/store.h"

namespace quire {

Result<std::unique_ptr<Store>> OpenStore(const std::string& url, const StoreOptions& options) {
  if (url.rfind("sqlite:", 0) == 0) {
    auto s = SqliteStore::Open(url.substr(7), options.pool_size);
    if (!s.ok()) return s.status();
    return std::unique_ptr<Store>(std::move(s).value());
  }
  if (url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0) {
    postgres::ConnectOptions o;
    o.url = url;
    o.application_name = options.node_id.empty() ? "quire" : options.node_id;
    if (options.statement_timeout_ms > 0) o.statement_timeout_ms = options.statement_timeout_ms;
    auto s = PostgresStore::Open(o, options.pool_size);
    if (!s.ok()) return s.status();
    return std::unique_ptr<Store>(std::move(s).value());
  }
  return Status::Invalid("unsupported --database '" + url +
                         "': expected sqlite:PATH or postgresql://…");
}

}  // namespace quire
