// Portal sign-in (spec/platform.md §5): /portal/session. POST a key and secret → a session
// cookie (HttpOnly, SameSite=Strict, Secure over https, Max-Age) plus the CSRF token the page
// must send on every state-changing call; GET reports the live session (so a reloaded page
// finds its token again); DELETE signs out. Sessions live in the store, so every node of a
// cluster accepts them and a sign-out ends them everywhere at once.
#include <cmath>

#include "api/common.h"
#include "api/routes.h"
#include "core/secrets.h"
#include "core/time_util.h"

namespace quire::api {

namespace {

bool ServedOverHttps(const Context& ctx, const http::Request& req) {
  return ctx.config.PublicUrl().rfind("https://", 0) == 0 ||
         req.Header("x-forwarded-proto") == "https";
}

std::string Cookie(const Context& ctx, const http::Request& req, const std::string& token,
                   int64_t max_age_s) {
  std::string c = "quire_session=" + token +
                  "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" + std::to_string(max_age_s);
  if (ServedOverHttps(ctx, req)) c += "; Secure";
  return c;
}

json SessionJson(Context& ctx, const PortalSession& s) {
  json j = {{"@type", "vocab:PortalSession"},
            {"signedIn", true},
            {"customer", ctx.urls.Customer(s.customer)},
            {"customerId", s.customer},
            {"admin", s.admin},
            {"key", s.key},
            {"csrfToken", s.csrf},
            {"expires", FormatIso8601(s.expires_ms)}};
  auto customer = ctx.store.GetCustomer(s.customer);
  if (customer.ok()) {
    j["customerName"] = customer->name;
    j["customerDisplayName"] = customer->display_name;
  }
  return j;
}

http::Response SignIn(Context& ctx, http::Request& req) {
  auto body = ParseJsonObject(req);
  if (!body.ok()) return FromStatus(ctx, req, body.status());
  auto text = [&](const char* name) -> std::optional<std::string> {
    auto it = body->find(name);
    if (it == body->end() || !it->is_string() || it->get<std::string>().empty())
      return std::nullopt;
    return it->get<std::string>();
  };
  auto key = text("key"), secret = text("secret");
  if (!key) return Error(ctx, req, 400, "\"key\" must be a non-empty string");
  if (!secret) return Error(ctx, req, 400, "\"secret\" must be a non-empty string");
  auto caller = CheckKeySecret(ctx, *key, *secret);
  if (!caller.ok()) return FromStatus(ctx, req, caller.status());

  std::string token = RandomHex(32);
  PortalSession s;
  s.token_hash = SessionTokenHash(token);
  s.customer = caller->customer;
  s.admin = caller->admin;
  s.key = *key;
  s.csrf = RandomHex(24);
  s.created_ms = NowMs();
  int64_t lifetime_s = std::max<int64_t>(1, std::llround(ctx.config.session_hours * 3600));
  s.expires_ms = s.created_ms + lifetime_s * 1000;
  Status st = ctx.store.CreateSession(s);
  if (!st.ok()) return FromStatus(ctx, req, st);
  http::Response res = Json(201, SessionJson(ctx, s));
  res.Set("Set-Cookie", Cookie(ctx, req, token, lifetime_s));
  res.Set("Cache-Control", "no-store");
  return res;
}

// Signed out is an answer, not an error: the page asks this first on every load.
http::Response Current(Context& ctx, http::Request& req) {
  std::string token = SessionToken(req);
  std::optional<PortalSession> session;
  if (!token.empty()) {
    auto s = ctx.store.GetSession(SessionTokenHash(token), NowMs());
    if (!s.ok() && s.status().code() != Code::kNotFound) return FromStatus(ctx, req, s.status());
    if (s.ok()) session = *s;
  }
  http::Response res =
      Json(200, session ? SessionJson(ctx, *session)
                        : json{{"@type", "vocab:PortalSession"}, {"signedIn", false}});
  res.Set("Cache-Control", "no-store");
  if (!token.empty() && !session) res.Set("Set-Cookie", Cookie(ctx, req, "", 0));
  return res;
}

http::Response SignOut(Context& ctx, http::Request& req) {
  std::string token = SessionToken(req);
  if (token.empty()) return Error(ctx, req, 401, "not signed in");
  // A live session is ended only by its own page (CSRF token); one that has already ended
  // just has its cookie cleared.
  auto caller = Authenticate(ctx, req);
  if (!caller.ok() && caller.status().code() != Code::kUnauthorized)
    return FromStatus(ctx, req, caller.status());
  if (caller.ok()) {
    Status st = ctx.store.DeleteSession(SessionTokenHash(token), NowMs());
    if (!st.ok()) return FromStatus(ctx, req, st);
  }
  http::Response res(204, "text/plain", "");
  res.Set("Set-Cookie", Cookie(ctx, req, "", 0));
  return res;
}

}  // namespace

void RegisterSessions(http::Router& r, Context& ctx) {
  r.Add("POST", "/portal/session", [&ctx](http::Request& req) { return SignIn(ctx, req); });
  r.Add("GET", "/portal/session", [&ctx](http::Request& req) { return Current(ctx, req); });
  r.Add("DELETE", "/portal/session", [&ctx](http::Request& req) { return SignOut(ctx, req); });
}

}  // namespace quire::api
