// The SQLite side of the SQL connection interface: one sqlite3 handle with a statement cache.
#pragma once

#include <sqlite3.h>

#include <memory>
#include <string>
#include <unordered_map>

#include "store/sql/sql_connection.h"

namespace quire::sqlite {

class Statement : public sql::Statement {
 public:
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() override { Reset(); }

  using sql::Statement::Bind;
  sql::Statement& Bind(int i, int64_t v) override;
  sql::Statement& Bind(int i, const std::string& v) override;
  sql::Statement& BindNull(int i) override;
  bool Step(Status* status) override;
  int64_t Int(int col) const override { return sqlite3_column_int64(stmt_, col); }
  bool IsNull(int col) const override { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string Text(int col) const override;

 private:
  void Reset();
  sqlite3_stmt* stmt_;
};

class Connection : public sql::Connection {
 public:
  // Opens (creating if needed) the file in WAL mode with foreign keys on.
  static Result<std::unique_ptr<Connection>> Open(const std::string& path);
  ~Connection() override;

  Result<std::unique_ptr<sql::Statement>> Prepare(const std::string& sql) override;
  Status Exec(const std::string& sql) override;
  int64_t Changes() const override { return sqlite3_changes(db_); }
  // Writes take the file's write lock at BEGIN (IMMEDIATE), so they never fail half-way on
  // a lock upgrade.
  Status Begin(sql::TxKind kind) override;
  Status Commit() override;
  Status Rollback() override;

 private:
  explicit Connection(sqlite3* db) : db_(db) {}
  Status RunCached(const char* sql);
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

Status ErrorStatus(sqlite3* db, int rc, const std::string& what);

}  // namespace quire::sqlite
