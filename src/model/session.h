// A portal sign-in (spec/platform.md §5): a browser session that acts as the customer (or the
// administrator) whose key and secret opened it. The store keeps only a hash of the cookie's
// token, so a database read does not reveal live sessions.
#pragma once

#include <cstdint>
#include <string>

namespace quire {

struct PortalSession {
  std::string token_hash;  // hex SHA-256 of the cookie's token
  int64_t customer = 0;
  bool admin = false;
  std::string key;   // the API key that signed in (a deleted key ends its sessions)
  std::string csrf;  // the X-CSRF-Token every state-changing cookie request must carry
  int64_t created_ms = 0;
  int64_t expires_ms = 0;
};

}  // namespace quire
