// The small SQL connection interface the generic store is written against (after PowerDNS's
// gsql backends): statements with typed binds and reads, connections with a statement cache
// and transactions, and a pool that hands one connection to one thread at a time and
// reconnects broken ones. Each database supplies only a Connection class.
//
// SQL text uses SQLite's placeholders (`?` and `?N`); a backend with another syntax rewrites
// them. Integers and text are the only column types the store reads.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace quire::sql {

// What a transaction is for. kWrite is serializable (the batch accounting relies on it);
// kLocking takes the row or advisory locks it needs itself (claims, heartbeats, migrations)
// and may run at read committed; kRead sees one consistent snapshot.
enum class TxKind { kRead, kWrite, kLocking };

// A transaction that lost a serialization race or a deadlock: the whole transaction may be
// run again. Backends report it as Unavailable with this message prefix.
inline constexpr const char* kRetryablePrefix = "serialization failure: ";
bool IsRetryable(const Status& st);

class Statement {
 public:
  virtual ~Statement() = default;

  virtual Statement& Bind(int i, int64_t v) = 0;
  virtual Statement& Bind(int i, const std::string& v) = 0;
  virtual Statement& BindNull(int i) = 0;
  Statement& Bind(int i, int v) { return Bind(i, static_cast<int64_t>(v)); }
  Statement& Bind(int i, bool v) { return Bind(i, static_cast<int64_t>(v ? 1 : 0)); }
  Statement& Bind(int i, const char* v) { return Bind(i, std::string(v)); }
  Statement& Bind(int i, std::optional<int64_t> v) { return v ? Bind(i, *v) : BindNull(i); }

  // A row → true; done → false; an error → false with the Status in *status.
  virtual bool Step(Status* status) = 0;
  // Runs to completion; returns the error, if any.
  Status Run();

  virtual int64_t Int(int col) const = 0;
  virtual bool IsNull(int col) const = 0;
  virtual std::string Text(int col) const = 0;
  std::optional<int64_t> OptInt(int col) const {
    return IsNull(col) ? std::nullopt : std::optional<int64_t>(Int(col));
  }
};

class Connection {
 public:
  virtual ~Connection() = default;

  // Prepared once per connection, then reused. The statement is reset when it goes away.
  virtual Result<std::unique_ptr<Statement>> Prepare(const std::string& sql) = 0;
  // Runs one or more statements without parameters (schema migrations).
  virtual Status Exec(const std::string& sql) = 0;
  // Rows changed by the last statement that completed on this connection.
  virtual int64_t Changes() const = 0;

  virtual Status Begin(TxKind kind) = 0;
  virtual Status Commit() = 0;
  virtual Status Rollback() = 0;

  // False once the server went away; the pool then reconnects before handing it out again.
  virtual bool Healthy() const { return true; }
  virtual Status Reconnect() { return Status::Ok(); }
};

using ConnectionFactory = std::function<Result<std::unique_ptr<Connection>>()>;

// A fixed set of connections. With `serialize_writes`, write transactions additionally hold
// one process-wide mutex (SQLite: writers queue in order instead of spinning on SQLITE_BUSY).
class Pool {
 public:
  static Result<std::unique_ptr<Pool>> Open(const ConnectionFactory& connect, int size,
                                            bool serialize_writes);

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

  // Waits for a free connection; Unavailable when it was broken and cannot reconnect.
  Result<Lease> Acquire();
  bool serialize_writes() const { return serialize_writes_; }
  std::mutex& write_mutex() { return write_mutex_; }
  int size() const { return static_cast<int>(all_.size()); }

 private:
  std::vector<std::unique_ptr<Connection>> all_;
  std::vector<Connection*> free_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool serialize_writes_ = false;
  std::mutex write_mutex_;
};

// Scoped transaction on a pooled connection. Rolls back unless Commit() succeeded.
class Transaction {
 public:
  Transaction(Pool& pool, TxKind kind);
  ~Transaction();
  Connection& conn() { return **lease_; }
  const Status& begin_status() const { return begin_; }
  Status Commit();

 private:
  std::unique_lock<std::mutex> write_lock_;
  std::optional<Pool::Lease> lease_;
  Status begin_;
  bool done_ = false;
};

}  // namespace quire::sql
