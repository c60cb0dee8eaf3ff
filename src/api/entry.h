// Anonymous entry points and administrator bootstrap.
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

void RegisterEntry(http::Router& r, Context& ctx);
void RegisterCustomers(http::Router& r, Context& ctx);
void RegisterSpaces(http::Router& r, Context& ctx);
void RegisterImages(http::Router& r, Context& ctx);
void RegisterQueue(http::Router& r, Context& ctx);

}  // namespace quire::api
