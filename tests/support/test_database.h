// Databases for the store contract tests: every store test runs once per backend, each on a
// database of its own. PostgreSQL databases live on the one server the ctest fixture
// `postgres` starts for the whole run (tests/support/pg_test_server.sh); its URL arrives in
// QUIRE_TEST_PG_URL. No server → an error, so the test fails rather than skips.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace quire::test {

// The backends every store test runs on: "sqlite", "postgresql".
const std::vector<std::string>& StoreBackends();

// A --database URL naming a new, empty database: a file below `dir` for sqlite, a fresh
// CREATE DATABASE on the test server for postgresql.
Result<std::string> FreshDatabaseUrl(const std::string& backend, const std::string& dir);

// CREATE DATABASE `name` on the server `admin_url` points at.
Status CreatePostgresDatabase(const std::string& admin_url, const std::string& name);

// The test server's URL for the database `name` (e.g. "postgres" for administration).
Result<std::string> PostgresUrl(const std::string& name);

// Runs tests/support/pg_test_server.sh ARGS (a PostgreSQL of a test's own: start DIR PORT,
// restart, halt, resume, stop DIR); its exit status.
int PgTestServer(const std::string& args);

// Runs `sql` on the database at `url` (sqlite:PATH or a PostgreSQL URL), from a test beside
// a live server: how a test moves stored times into the past or fills a large space. Any
// failure is a test failure.
void ExecSql(const std::string& url, const std::string& sql);

// One integer from `sql` on the database at `url`; -1, with a test failure added, when the
// query does not give one row.
int64_t QueryInt(const std::string& url, const std::string& sql);

}  // namespace quire::test
