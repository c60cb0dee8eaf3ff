#include "store/sqlite/sqlite_connection.h"

#include <chrono>
#include <thread>

namespace quire::sqlite {

namespace {
// How long a statement waits for another connection's write lock before failing (a 503).
constexpr int kBusyTimeoutMs = 10000;
}  // namespace

Status ErrorStatus(sqlite3* db, int rc, const std::string& what) {
  std::string msg = what + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  int primary = rc & 0xff;
  if (primary == SQLITE_CONSTRAINT) return Status::Conflict(msg);
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) return Status::Unavailable(msg);
  return Status::IOError(msg);
}

sql::Statement& Statement::Bind(int i, int64_t v) {
  sqlite3_bind_int64(stmt_, i, v);
  return *this;
}
sql::Statement& Statement::Bind(int i, const std::string& v) {
  sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}
sql::Statement& Statement::BindNull(int i) {
  sqlite3_bind_null(stmt_, i);
  return *this;
}

bool Statement::Step(Status* status) {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc != SQLITE_DONE) *status = ErrorStatus(sqlite3_db_handle(stmt_), rc, "step");
  return false;
}

std::string Statement::Text(int col) const {
  const unsigned char* t = sqlite3_column_text(stmt_, col);
  if (t == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(t),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

void Statement::Reset() {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

Result<std::unique_ptr<Connection>> Connection::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    Status st = ErrorStatus(db, rc, "open " + path);
    sqlite3_close(db);
    return st;
  }
  std::unique_ptr<Connection> conn(new Connection(db));
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  for (const char* pragma :
       {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON",
        "PRAGMA temp_store=MEMORY", "PRAGMA cache_size=-16000"}) {
    Status st = conn->Exec(pragma);
    // Switching a fresh database to WAL needs it to itself for a moment; processes starting
    // together (serve and worker on one --data) may find it busy past the busy handler.
    for (int i = 0; i < 200 && st.code() == Code::kUnavailable; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      st = conn->Exec(pragma);
    }
    if (!st.ok()) return st;
  }
  return conn;
}

Connection::~Connection() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

Result<std::unique_ptr<sql::Statement>> Connection::Prepare(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return ErrorStatus(db_, rc, "prepare");
    it = cache_.emplace(sql, stmt).first;
  }
  return std::unique_ptr<sql::Statement>(new Statement(it->second));
}

Status Connection::Exec(const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    return ErrorStatus(nullptr, rc, "exec: " + msg);
  }
  return Status::Ok();
}

// BEGIN/COMMIT/ROLLBACK as cached prepared statements: sqlite3_exec would parse them anew
// on every transaction, a measurable share of a cheap read.
Status Connection::RunCached(const char* sql) {
  auto st = Prepare(sql);
  if (!st.ok()) return st.status();
  return (*st)->Run();
}

Status Connection::Begin(sql::TxKind kind) {
  // Another process may hold the write lock (a second node on this --data, an operator's
  // sqlite3 shell). SQLite's busy handler waits for it, but some busy answers come at once (a
  // WAL being recovered), so a few quick tries more -- all within one busy timeout, so that a
  // database locked for long fails a request with 503 after kBusyTimeoutMs, not several.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kBusyTimeoutMs);
  Status st;
  for (;;) {
    st = RunCached(kind == sql::TxKind::kRead ? "BEGIN" : "BEGIN IMMEDIATE");
    if (st.code() != Code::kUnavailable) break;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 50) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    sqlite3_busy_timeout(db_, static_cast<int>(left - 50));
  }
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  return st;
}

Status Connection::Commit() { return RunCached("COMMIT"); }
Status Connection::Rollback() { return RunCached("ROLLBACK"); }

}  // namespace quire::sqlite
