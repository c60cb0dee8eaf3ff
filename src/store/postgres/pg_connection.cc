#include "store/postgres/pg_connection.h"

#include <strings.h>

#include <cstdlib>
#include <cstring>

namespace quire::postgres {

namespace {
constexpr unsigned int kInt8Oid = 20;
constexpr unsigned int kTextOid = 25;
}  // namespace

bool IsValidUtf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned char c = p[i];
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xe  ? 3
                 : (c >> 3) == 0x1e ? 4
                                    : 0;
    if (len == 0 || i + len > n || c == 0xc0 || c == 0xc1 || c > 0xf4) return false;
    for (size_t k = 1; k < len; ++k)
      if ((p[i + k] & 0xc0) != 0x80) return false;
    if (len == 3) {
      unsigned cp = ((c & 0x0f) << 12) | ((p[i + 1] & 0x3f) << 6) | (p[i + 2] & 0x3f);
      if (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    }
    if (len == 4) {
      unsigned cp = ((c & 0x07) << 18) | ((p[i + 1] & 0x3f) << 12) | ((p[i + 2] & 0x3f) << 6) |
                    (p[i + 3] & 0x3f);
      if (cp < 0x10000 || cp > 0x10ffff) return false;
    }
    if (c == 0) return false;  // the server's text cannot hold NUL either
    i += len;
  }
  return true;
}

std::string TranslatePlaceholders(const std::string& sql, int* params) {
  std::string out;
  out.reserve(sql.size() + 16);
  int highest = 0;
  bool quoted = false;
  for (size_t i = 0; i < sql.size(); ++i) {
    char c = sql[i];
    if (c == '\'') quoted = !quoted;
    if (quoted || c != '?') {
      out += c;
      continue;
    }
    size_t j = i + 1;
    int n = 0;
    while (j < sql.size() && sql[j] >= '0' && sql[j] <= '9') n = n * 10 + (sql[j++] - '0');
    if (j == i + 1) n = highest + 1;  // a bare `?` takes the next number, as in SQLite
    highest = std::max(highest, n);
    out += '$' + std::to_string(n);
    i = j - 1;
  }
  *params = highest;
  return out;
}

Status ErrorStatus(PGconn* conn, const PGresult* result, const std::string& what) {
  const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  std::string msg = result ? PQresultErrorMessage(result) : "";
  if (msg.empty() && conn) msg = PQerrorMessage(conn);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  msg = what + ": " + msg;
  std::string s = state ? state : "";
  if (s == "40001" || s == "40P01") return Status::Unavailable(sql::kRetryablePrefix + msg);
  if (s.rfind("23", 0) == 0) return Status::Conflict(msg);
  // Connection exceptions, operator intervention (shutdown, cancel, statement timeout),
  // lock timeouts, too many connections, or no result at all: the database is unavailable.
  if (s.empty() || s.rfind("08", 0) == 0 || s.rfind("57", 0) == 0 || s == "55P03" || s == "53300" ||
      (conn && PQstatus(conn) != CONNECTION_OK))
    return Status::Unavailable("database unavailable: " + msg);
  return Status::IOError(msg);
}

// ---------------------------------------------------------------- Statement

Statement::~Statement() {
  if (result_) PQclear(result_);
}

sql::Statement& Statement::Bind(int i, int64_t v) {
  values_.at(static_cast<size_t>(i - 1)) = std::to_string(v);
  types_[static_cast<size_t>(i - 1)] = kInt8Oid;
  return *this;
}

sql::Statement& Statement::Bind(int i, const std::string& v) {
  if (!IsValidUtf8(v)) invalid_text_ = true;
  values_.at(static_cast<size_t>(i - 1)) = v;
  types_[static_cast<size_t>(i - 1)] = kTextOid;
  return *this;
}

sql::Statement& Statement::BindNull(int i) {
  values_.at(static_cast<size_t>(i - 1)).reset();
  types_[static_cast<size_t>(i - 1)] = 0;  // inferred from the context
  return *this;
}

bool Statement::Step(Status* status) {
  if (!executed_ && invalid_text_) {
    // Bytes from a URL that are not UTF-8 match no stored row (every stored text is UTF-8, as
    // on SQLite); writing them is refused. Nothing is sent, so the transaction stays usable.
    executed_ = true;
    size_t start = sql_->find_first_not_of(" \n\t(");
    bool read = start != std::string::npos && strncasecmp(sql_->c_str() + start, "SELECT", 6) == 0;
    if (!read) *status = Status::Invalid("text values must be valid UTF-8");
    return false;
  }
  if (!executed_) {
    executed_ = true;
    Status st = conn_->Execute(*sql_, values_, types_, &result_);
    if (!st.ok()) {
      *status = st;
      return false;
    }
    row_ = 0;
  } else {
    ++row_;
  }
  return result_ != nullptr && row_ < PQntuples(result_);
}

int64_t Statement::Int(int col) const {
  return std::strtoll(PQgetvalue(result_, row_, col), nullptr, 10);
}

bool Statement::IsNull(int col) const { return PQgetisnull(result_, row_, col) != 0; }

std::string Statement::Text(int col) const {
  return std::string(PQgetvalue(result_, row_, col),
                     static_cast<size_t>(PQgetlength(result_, row_, col)));
}

// ---------------------------------------------------------------- Connection

Result<std::unique_ptr<Connection>> Connection::Open(const ConnectOptions& options) {
  std::unique_ptr<Connection> conn(new Connection(options));
  QUIRE_RETURN_IF_ERROR(conn->Connect());
  return conn;
}

Connection::~Connection() {
  if (conn_) PQfinish(conn_);
}

Status Connection::Connect() {
  if (conn_) PQfinish(conn_);
  prepared_.clear();
  // Our defaults first; the URL (expanded from dbname) overrides them.
  const char* keys[] = {"application_name",
                        "connect_timeout",
                        "keepalives_idle",
                        "keepalives_interval",
                        "keepalives_count",
                        "dbname",
                        nullptr};
  const char* values[] = {
      options_.application_name.c_str(), "3", "10", "5", "3", options_.url.c_str(), nullptr};
  conn_ = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn_ == nullptr) return Status::Unavailable("database unavailable: out of memory");
  if (PQstatus(conn_) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(conn_);
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    return Status::Unavailable("database unavailable: " + msg);
  }
  // Server notices (warnings) are not errors of ours; errors arrive as results.
  PQsetNoticeProcessor(
      conn_, [](void*, const char*) {}, nullptr);
  // A hung or stopped node must not hold locks for ever, nor a runaway query run on.
  return Exec("SET statement_timeout = " + std::to_string(options_.statement_timeout_ms) +
              "; SET idle_in_transaction_session_timeout = " +
              std::to_string(std::max<int64_t>(options_.statement_timeout_ms * 2, 60000)) +
              "; SET client_min_messages = warning");
}

bool Connection::Healthy() const { return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK; }

Status Connection::Reconnect() { return Connect(); }

Status Connection::Check(PGresult* result, const std::string& what) {
  ExecStatusType s = result ? PQresultStatus(result) : PGRES_FATAL_ERROR;
  if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) return Status::Ok();
  return ErrorStatus(conn_, result, what);
}

Result<std::unique_ptr<sql::Statement>> Connection::Prepare(const std::string& sql) {
  auto it = translated_.find(sql);
  if (it == translated_.end()) {
    int params = 0;
    std::string pg = TranslatePlaceholders(sql, &params);
    it = translated_.emplace(sql, std::make_pair(std::move(pg), params)).first;
  }
  return std::unique_ptr<sql::Statement>(new Statement(this, &it->second.first, it->second.second));
}

Status Connection::Execute(const std::string& sql,
                           const std::vector<std::optional<std::string>>& values,
                           const std::vector<unsigned int>& types, PGresult** result) {
  if (!Healthy()) return Status::Unavailable("database unavailable: connection lost");
  // One server-side statement per SQL text and parameter types.
  std::string key = sql;
  key += '\0';
  for (unsigned int t : types) key += std::to_string(t) + ",";
  auto it = prepared_.find(key);
  if (it == prepared_.end()) {
    std::string name = "q" + std::to_string(prepared_.size() + 1);
    PGresult* r = PQprepare(conn_, name.c_str(), sql.c_str(), static_cast<int>(types.size()),
                            reinterpret_cast<const Oid*>(types.data()));
    Status st = Check(r, "prepare");
    PQclear(r);
    if (!st.ok()) return st;
    it = prepared_.emplace(std::move(key), std::move(name)).first;
  }
  std::vector<const char*> ptrs(values.size());
  for (size_t i = 0; i < values.size(); ++i) ptrs[i] = values[i] ? values[i]->c_str() : nullptr;
  PGresult* r = PQexecPrepared(conn_, it->second.c_str(), static_cast<int>(ptrs.size()),
                               ptrs.data(), nullptr, nullptr, 0);
  Status st = Check(r, "query");
  if (!st.ok()) {
    PQclear(r);
    return st;
  }
  const char* tuples = PQcmdTuples(r);
  changes_ = (tuples && *tuples) ? std::strtoll(tuples, nullptr, 10) : 0;
  *result = r;
  return Status::Ok();
}

Status Connection::Exec(const std::string& sql) {
  if (!Healthy()) return Status::Unavailable("database unavailable: connection lost");
  PGresult* r = PQexec(conn_, sql.c_str());
  Status st = Check(r, "exec");
  PQclear(r);
  return st;
}

Status Connection::Begin(sql::TxKind kind) {
  switch (kind) {
    case sql::TxKind::kWrite:
      return Exec("BEGIN ISOLATION LEVEL SERIALIZABLE");
    case sql::TxKind::kLocking:
      return Exec("BEGIN ISOLATION LEVEL READ COMMITTED");
    case sql::TxKind::kRead:
      return Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  }
  return Status::Internal("unknown transaction kind");
}

Status Connection::Commit() {
  if (!Healthy()) return Status::Unavailable("database unavailable: connection lost");
  PGresult* r = PQexec(conn_, "COMMIT");
  Status st = Check(r, "commit");
  // COMMIT of a transaction that had failed reports ROLLBACK, not an error.
  if (st.ok() && std::strcmp(PQcmdStatus(r), "ROLLBACK") == 0)
    st = Status::IOError("commit: the transaction had failed and was rolled back");
  PQclear(r);
  return st;
}

Status Connection::Rollback() {
  if (!Healthy()) return Status::Ok();  // the server ended the transaction with the session
  // A failed COMMIT (a serialization failure) has already ended it.
  if (PQtransactionStatus(conn_) == PQTRANS_IDLE) return Status::Ok();
  return Exec("ROLLBACK");
}

}  // namespace quire::postgres
