// Customers (institutions) and their API keys. Customer 1 is the administrator.
#pragma once

#include <cstdint>
#include <string>

namespace quire {

struct Customer {
  int64_t id = 0;
  std::string name;          // unique, [A-Za-z0-9._-]+
  std::string display_name;
  bool administrator = false;
  int64_t created_ms = 0;
};

struct ApiKey {
  std::string key;           // public half of the credential
  int64_t customer = 0;
  std::string salt;
  std::string secret_hash;   // HashSecret(salt, secret)
  int64_t created_ms = 0;
};

// Names usable in URLs: 1–100 of [A-Za-z0-9._-].
bool IsValidCustomerName(const std::string& name);

}  // namespace quire
