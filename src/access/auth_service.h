// The browser-facing services of IIIF access control (spec/presentation-auth.md §5.4, §5.5):
// Authorization Flow 2.0 under /auth/v2/ (probe, access, token, logout, grant links) and
// Authentication 1.0 under /auth/{c}/ for 2.1 viewers. Pages are small self-contained HTML
// (every text HTML-escaped, no-store); redeeming a code or confirming a clickthrough is a
// POST, the user gesture browsers demand, so a GET never spends anything. Thread-safe: all
// state is in the store.
#pragma once

#include <string>

#include "access/access_control.h"
#include "http/router.h"
#include "store/store.h"

namespace quire::access {

class AuthService {
 public:
  // `public_base` is P; cookies are marked Secure (and SameSite=None) when it is https.
  AuthService(Store& store, AccessControl& access, std::string public_base);
  void Register(http::Router& router);

 private:
  http::Response Probe(http::Request& req);
  http::Response AccessPage(http::Request& req, bool post, bool v1);
  http::Response TokenPage(http::Request& req);
  http::Response Token1(http::Request& req);
  http::Response Logout(http::Request& req);
  http::Response GrantLink(http::Request& req, bool post);

  // The customer of a {c} segment (id or name); nullopt when unknown (error filled).
  std::optional<int64_t> Customer(const std::string& segment, http::Response* error);
  // Adds `role` (or redeems `code_hash`) to the request's session for `customer`, creating
  // one when it has none; on success *set_cookie holds the Set-Cookie value.
  Status Join(const http::Request& req, int64_t customer, const std::string& role,
              const std::string& code_hash, std::string* set_cookie);
  std::string SetCookie(const http::Request& req, int64_t customer, const std::string& value,
                        int64_t max_age_s) const;

  Store& store_;
  AccessControl& access_;
  std::string base_;
};

}  // namespace quire::access
