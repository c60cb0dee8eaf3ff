// The one question delivery asks of IIIF access control (spec/presentation-auth.md §5), and
// the pieces of it that several routes share: which of the customer's roles an image names,
// whose browser session holds one of them, and the IIIF Authorization service descriptions
// (PROBE for 2.0, AuthCookieService1 for 1.0) that info.json and manifests embed.
//
// Credentials: the cookie `quire-auth-{c}` carries 256 random bits; the access token is
// derived from it by a one-way hash (so the token page can hand it out again without the
// store keeping it), and the store keeps only hashes of both. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "http/message.h"
#include "model/asset.h"
#include "model/auth.h"
#include "model/role.h"
#include "store/store.h"

namespace quire::access {

inline constexpr const char* kAuth2Context = "http://iiif.io/api/auth/2/context.json";
inline constexpr const char* kAuth1Context = "http://iiif.io/api/auth/1/context.json";

// "quire-auth-{customer}".
std::string CookieName(int64_t customer);
// The value of the request's cookie for `customer`, or "" when it sends none.
std::string CookieValue(const http::Request& req, int64_t customer);
// The token of `Authorization: Bearer T`, or "".
std::string BearerToken(const http::Request& req);
std::string HashCookie(const std::string& cookie);
std::string HashToken(const std::string& token);
// The stored hash of a grant code: codes are hex, typed or pasted back, so surrounding space
// and case do not matter.
std::string HashGrantCode(const std::string& code);
// The access token of the session whose cookie is `cookie`.
std::string TokenOfCookie(const std::string& cookie);
// A new session credential: cookie value plus the hashes the store keeps.
struct NewCredential {
  std::string cookie;
  AuthSession session;  // cookie_hash, token_hash, customer set
};
NewCredential MakeCredential(int64_t customer);

// The role names of the image's own customer that its `roles` entries name (each ends
// `/customers/{c}/roles/{r}`, any host), in order, without duplicates.
std::vector<std::string> ImageRoleNames(const Asset& asset);

// First string of a language map kept as JSON text ({"en":["…"]}), or "".
std::string FirstText(const std::string& language_map);

class AccessControl {
 public:
  AccessControl(Store& store, std::string public_base);

  // The roles of the store that the image names (unmatched names are nobody's).
  Result<std::vector<Role>> MatchedRoles(const Asset& asset);
  // The session the request's cookie for the asset's customer names, if any.
  Result<std::optional<AuthSession>> CookieSession(const http::Request& req, int64_t customer);
  Result<std::optional<AuthSession>> TokenSession(const std::string& token);
  // True when `session` holds, unexpired at `now_ms`, a role the image names.
  static bool SessionMatches(const AuthSession& session, const Asset& asset, int64_t now_ms);
  // May this request see the restricted image's pixels beyond its open renditions? Only a
  // cookie counts (§5.5: a Bearer token is ignored for pixels). A session that said yes is
  // kept for up to a second (so each tile does not read the store), and only as long as it
  // keeps saying yes: a role it lacks, or one that expired, reads the store again, so a login
  // opens images at once. A session that loses roles is dropped by the store's
  // kAuthSessionsChanged event (ForgetSessions): on this node before the logout answers, on
  // the others when the event arrives, within the second in any case.
  Result<bool> CookieAuthorises(const http::Request& req, const Asset& asset);
  // Drops the kept sessions: the one whose cookie hashes to `cookie_hash`, or (empty) every
  // one of `customer`, or (customer 0 and empty) all of them.
  void ForgetSessions(int64_t customer, const std::string& cookie_hash);

  // The AuthProbeService2 of the image with one AuthAccessService2 per matched role.
  nlohmann::json ProbeService(const Asset& asset, const std::vector<Role>& matched) const;
  // The AuthCookieService1 entries of a 2.1 info.json, one per matched role.
  nlohmann::json CookieServices1(const Asset& asset, const std::vector<Role>& matched) const;
  // What of the matched roles shows in a description: part of its cache key and validator.
  static std::string RolesKey(const std::vector<Role>& matched);

  const std::string& base() const { return base_; }
  // P/auth/v2/access/{c}
  std::string AccessBase(int64_t customer) const;

 private:
  struct KeptSession {
    AuthSession session;
    std::chrono::steady_clock::time_point read;
  };
  Store& store_;
  std::string base_;
  std::mutex sessions_mu_;
  std::unordered_map<std::string, KeptSession> sessions_;  // by cookie hash
};

}  // namespace quire::access
