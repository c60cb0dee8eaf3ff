// The PostgreSQL side of the SQL connection interface, over libpq: server-side prepared
// statements cached per connection, text-format values, and a connection that notices when
// the server went away and reconnects when the pool hands it out next.
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "store/sql/sql_connection.h"

namespace quire::postgres {

struct ConnectOptions {
  std::string url;               // libpq URL: postgresql://user:pw@host:port/db?…
  std::string application_name;  // shows in pg_stat_activity (the node id)
  int64_t statement_timeout_ms = 30000;
};

class Connection;

class Statement : public sql::Statement {
 public:
  Statement(Connection* conn, const std::string* sql, int params)
      : conn_(conn),
        sql_(sql),
        values_(static_cast<size_t>(params)),
        types_(static_cast<size_t>(params), 25 /* text, for unreferenced parameters */) {}
  ~Statement() override;

  using sql::Statement::Bind;
  sql::Statement& Bind(int i, int64_t v) override;
  sql::Statement& Bind(int i, const std::string& v) override;
  sql::Statement& BindNull(int i) override;
  bool Step(Status* status) override;
  int64_t Int(int col) const override;
  bool IsNull(int col) const override;
  std::string Text(int col) const override;

 private:
  Connection* conn_;
  const std::string* sql_;  // already in $N form; owned by the connection's cache
  std::vector<std::optional<std::string>> values_;
  std::vector<unsigned int> types_;  // Oids
  PGresult* result_ = nullptr;
  int row_ = -1;
  bool executed_ = false;
  bool invalid_text_ = false;  // a bound text is not UTF-8, which the server refuses
};

class Connection : public sql::Connection {
 public:
  static Result<std::unique_ptr<Connection>> Open(const ConnectOptions& options);
  ~Connection() override;

  Result<std::unique_ptr<sql::Statement>> Prepare(const std::string& sql) override;
  Status Exec(const std::string& sql) override;
  int64_t Changes() const override { return changes_; }
  // kWrite: SERIALIZABLE; kLocking: READ COMMITTED; kRead: REPEATABLE READ READ ONLY.
  Status Begin(sql::TxKind kind) override;
  Status Commit() override;
  Status Rollback() override;
  bool Healthy() const override;
  Status Reconnect() override;

  // Runs a prepared statement (preparing it on first use with these parameter types).
  Status Execute(const std::string& sql, const std::vector<std::optional<std::string>>& values,
                 const std::vector<unsigned int>& types, PGresult** result);

 private:
  explicit Connection(ConnectOptions options) : options_(std::move(options)) {}
  Status Connect();
  Status Check(PGresult* result, const std::string& what);
  ConnectOptions options_;
  PGconn* conn_ = nullptr;
  // SQLite-style SQL → ($N SQL, parameter count).
  std::unordered_map<std::string, std::pair<std::string, int>> translated_;
  // $N SQL + parameter types → server-side statement name.
  std::unordered_map<std::string, std::string> prepared_;
  int64_t changes_ = 0;
};

// Whether `s` is well-formed UTF-8 (the server's encoding; SQLite takes any bytes).
bool IsValidUtf8(const std::string& s);

// Rewrites `?` and `?N` placeholders as `$N` (quoted literals left alone); `*params` gets the
// highest parameter number.
std::string TranslatePlaceholders(const std::string& sql, int* params);

// Status for a failed result (or connection): serialization failures and deadlocks are
// retryable; lost connections, timeouts and a server shutting down are Unavailable;
// constraint violations are Conflict.
Status ErrorStatus(PGconn* conn, const PGresult* result, const std::string& what);

}  // namespace quire::postgres
