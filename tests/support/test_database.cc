#include "support/test_database.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <random>

namespace quire::test {

const std::vector<std::string>& StoreBackends() {
  static const std::vector<std::string> kBackends = {"sqlite", "postgresql"};
  return kBackends;
}

Result<std::string> PostgresUrl(const std::string& name) {
  const char* env = std::getenv("QUIRE_TEST_PG_URL");
  if (env == nullptr || *env == '\0')
    return Status::Unavailable(
        "QUIRE_TEST_PG_URL is not set: run the tests through ctest, whose `postgres` fixture "
        "starts the test server");
  std::string url = env;  // postgresql:///postgres?host=DIR&port=P&user=postgres
  size_t slash = url.find(":///");
  size_t query = url.find('?');
  if (slash == std::string::npos || query == std::string::npos)
    return Status::Invalid("QUIRE_TEST_PG_URL must look like postgresql:///DB?host=…: " + url);
  return url.substr(0, slash + 4) + name + url.substr(query);
}

Status CreatePostgresDatabase(const std::string& admin_url, const std::string& name) {
  PGconn* conn = PQconnectdb(admin_url.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(conn);
    PQfinish(conn);
    return Status::Unavailable("cannot reach the test PostgreSQL at " + admin_url + ": " + msg);
  }
  PGresult* r = PQexec(conn, ("CREATE DATABASE " + name).c_str());
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  std::string msg = PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(conn);
  if (!ok) return Status::IOError("CREATE DATABASE " + name + ": " + msg);
  return Status::Ok();
}

Result<std::string> FreshDatabaseUrl(const std::string& backend, const std::string& dir) {
  static std::atomic<int> counter{0};
  if (backend == "sqlite") return "sqlite:" + dir + "/store-" + std::to_string(++counter) + ".db";
  if (backend != "postgresql") return Status::Invalid("unknown backend " + backend);
  auto admin = PostgresUrl("postgres");
  if (!admin.ok()) return admin.status();
  std::string name = "quire_test_" + std::to_string(getpid()) + "_" + std::to_string(++counter) +
                     "_" + std::to_string(std::random_device{}() % 100000);
  QUIRE_RETURN_IF_ERROR(CreatePostgresDatabase(*admin, name));
  return PostgresUrl(name);
}

int PgTestServer(const std::string& args) {
  static const std::string script =
      std::string(QUIRE_TEST_SOURCE_DIR) + "/support/pg_test_server.sh";
  return std::system((script + " " + args).c_str());
}

void ExecSql(const std::string& url, const std::string& sql) {
  if (url.rfind("sqlite:", 0) == 0) {
    sqlite3* db = nullptr;
    if (sqlite3_open(url.substr(7).c_str(), &db) != SQLITE_OK) {
      ADD_FAILURE() << "cannot open " << url;
      sqlite3_close(db);
      return;
    }
    sqlite3_busy_timeout(db, 10000);
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "") << "\n" << sql;
    sqlite3_free(err);
    sqlite3_close(db);
    return;
  }
  PGconn* conn = PQconnectdb(url.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    ADD_FAILURE() << "cannot connect to " << url << ": " << PQerrorMessage(conn);
    PQfinish(conn);
    return;
  }
  PGresult* r = PQexec(conn, sql.c_str());
  EXPECT_TRUE(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)
      << PQresultErrorMessage(r) << "\n" << sql;
  PQclear(r);
  PQfinish(conn);
}

int64_t QueryInt(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  int64_t v = -1;
  if (PQstatus(conn) == CONNECTION_OK) {
    PGresult* r = PQexec(conn, sql.c_str());
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
      v = std::atoll(PQgetvalue(r, 0, 0));
    else
      ADD_FAILURE() << sql << ": " << PQresultErrorMessage(r);
    PQclear(r);
  } else {
    ADD_FAILURE() << "cannot connect to " << url << ": " << PQerrorMessage(conn);
  }
  PQfinish(conn);
  return v;
}

}  // namespace quire::test
