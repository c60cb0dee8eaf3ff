// Administrator bootstrap, shared by POST /setup and `quire serve --admin-key`.
#pragma once

#include <string>
#include <utility>

#include "api/context.h"

namespace quire::api {

struct AdminCredentials {
  Customer customer;
  std::string key;
  std::string secret;
};

// Creates customer 1 (administrator) with a key. Empty key/secret are generated.
// Conflict when customer 1 or the name exists.
Result<AdminCredentials> CreateAdministrator(Store& store, const std::string& key,
                                             const std::string& secret);


}  // namespace quire::api
