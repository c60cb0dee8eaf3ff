// IIIF Authorization Flow 2.0 state (spec/presentation-auth.md §5.2, §5.3): access grants
// (one-time codes that give a role) and auth sessions (a browser's cookie, the roles it holds
// and its access token). The store keeps only hashes of codes, cookies and tokens, so a
// database read reveals no live credential.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace quire {

struct AuthGrant {
  std::string id;  // uuid: the grant's @id segment
  int64_t customer = 0;
  std::string role;
  std::string code_hash;  // hex SHA-256 of the code, which is shown once
  std::string label;
  int64_t created_ms = 0;
  int64_t expires_ms = 0;
  int64_t max_uses = 1;
  int64_t uses = 0;
};

struct AuthSession {
  std::string cookie_hash;  // hex SHA-256 of the cookie value
  std::string token_hash;   // hex SHA-256 of the access token
  int64_t customer = 0;
  int64_t created_ms = 0;
  // role → when it expires (ms); a role expires sessionTtl after it was granted, expired
  // entries are kept a while so that callers can tell "expired" from "never had it".
  std::map<std::string, int64_t> roles;

  bool HasLiveRole(int64_t now_ms) const {
    for (auto& [r, exp] : roles)
      if (exp > now_ms) return true;
    return false;
  }
  // Latest expiry of a live role, or 0.
  int64_t LatestExpiry(int64_t now_ms) const {
    int64_t latest = 0;
    for (auto& [r, exp] : roles)
      if (exp > now_ms && exp > latest) latest = exp;
    return latest;
  }
};

}  // namespace quire
