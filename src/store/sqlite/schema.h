// The SQLite schema, as an ordered list of migrations. Migration i (1-based) upgrades the
// database from version i-1 to i; schema_version holds the version reached.
#pragma once

#include <string>
#include <vector>

namespace quire::sqlite {

const std::vector<std::string>& Migrations();

}  // namespace quire::sqlite
