// A thin RAII layer over the SQLite C API: connections with a statement cache, statements
// with typed binds and reads, and a pool that hands one connection to one thread at a time.
#pragma once

#include <sqlite3.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace quire::sqlite {

class Statement {
 public:
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { Reset(); }

  Statement& Bind(int i, int64_t v);
  Statement& Bind(int i, int v) { return Bind(i, static_cast<int64_t>(v)); }
  Statement& Bind(int i, bool v) { return Bind(i, static_cast<int64_t>(v ? 1 : 0)); }
  Statement& Bind(int i, const std::string& v);
  Statement& Bind(int i, const char* v) { return Bind(i, std::string(v)); }
  Statement& Bind(int i, std::optional<int64_t> v);
  Statement& BindNull(int i);

  // SQLITE_ROW → true, SQLITE_DONE → false, errors → Status in *status.
  bool Step(Status* status);
  // Runs to completion; returns the error, if any.
  Status Run();

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::optional<int64_t> OptInt(int col) const {
    return IsNull(col) ? std::nullopt : std::optional<int64_t>(Int(col));
  }
  std::string Text(int col) const;

  void Reset();

 private:
  sqlite3_stmt* stmt_;
};

class Connection {
 public:
  static Result<std::unique_ptr<Connection>> Open(const std::string& path);
  ~Connection();

  // Prepared once per connection, then reused. The returned statement is reset on scope exit.
  Result<std::unique_ptr<Statement>> Prepare(const std::string& sql);
  Status Exec(const std::string& sql);
  int64_t LastInsertId() const { return sqlite3_last_insert_rowid(db_); }
  int Changes() const { return sqlite3_changes(db_); }
  sqlite3* raw() { return db_; }

 private:
  explicit Connection(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

Status ErrorStatus(sqlite3* db, int rc, const std::string& what);

// A fixed set of connections. Write transactions additionally hold the write mutex, so
// writers in this process queue in order rather than spinning on SQLITE_BUSY; writers in
// other processes (a `quire worker` beside `quire serve`) are handled by the busy timeout.
class Pool {
 public:
  static Result<std::unique_ptr<Pool>> Open(const std::string& path, int size);

  class Lease {
   public:
    Lease(Pool* pool, Connection* conn) : pool_(pool), conn_(conn) {}
    Lease(Lease&& o) noexcept : pool_(o.pool_), conn_(o.conn_) { o.conn_ = nullptr; }
    ~Lease();
    Connection* operator->() { return conn_; }
    Connection& operator*() { return *conn_; }

   private:
    Pool* pool_;
    Connection* conn_;
  };

  Lease Acquire();
  std::mutex& write_mutex() { return write_mutex_; }

 private:
  std::vector<std::unique_ptr<Connection>> all_;
  std::vector<Connection*> free_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::mutex write_mutex_;
};

// Scoped transaction. Write transactions use BEGIN IMMEDIATE under the pool's write mutex.
// Rolls back unless Commit() succeeded.
class Transaction {
 public:
  Transaction(Pool& pool, bool write);
  ~Transaction();
  Connection& conn() { return *lease_; }
  const Status& begin_status() const { return begin_; }
  Status Commit();

 private:
  static Status RunCached(Connection& conn, const char* sql);
  std::unique_lock<std::mutex> write_lock_;
  Pool::Lease lease_;
  Status begin_;
  bool done_ = false;
};

}  // namespace quire::sqlite
