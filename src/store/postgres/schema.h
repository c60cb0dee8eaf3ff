// The PostgreSQL schema, as an ordered list of migrations parallel to SQLite's: migration i
// (1-based) upgrades the database from version i-1 to i.
#pragma once

#include <string>
#include <vector>

namespace quire::postgres {

const std::vector<std::string>& Migrations();

}  // namespace quire::postgres
