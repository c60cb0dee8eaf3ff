#include "api/common.h"

#include <algorithm>
#include <charconv>

#include "core/secrets.h"
#include "core/time_util.h"

#include <strings.h>

namespace quire::api {

http::Response Json(int status, const json& body) {
  return http::Response(status, "application/json",
                        body.dump(-1, ' ', false, json::error_handler_t::replace));
}

std::string RequestUrl(const Context& ctx, const http::Request& req) {
  return ctx.urls.base() + req.path;
}

http::Response Error(const Context& ctx, const http::Request& req, int status,
                     const std::string& detail) {
  http::Response res = Json(status, hydra::Error(status, detail, RequestUrl(ctx, req)));
  // No Basic challenge for the portal's own calls: a browser would pop up its login dialog.
  if (status == 401 && SessionToken(req).empty() && req.Header("x-quire-portal").empty())
    res.Set("WWW-Authenticate", "Basic realm=\"Quire\"");
  // The database is away (restarting, failing over) or overloaded: worth trying again soon.
  if (status == 503) res.Set("Retry-After", "1");
  return res;
}

int HttpStatusFor(Code code) {
  switch (code) {
    case Code::kOk: return 200;
    case Code::kInvalid: return 400;
    case Code::kUnauthorized: return 401;
    case Code::kForbidden: return 403;
    case Code::kNotFound: return 404;
    case Code::kConflict: return 409;
    case Code::kTooLarge: return 413;
    case Code::kInsufficientStorage: return 507;
    case Code::kUnsupported: return 501;
    case Code::kUnavailable: return 503;
    case Code::kIOError:
    case Code::kInternal: return 500;
  }
  return 500;
}

http::Response FromStatus(const Context& ctx, const http::Request& req, const Status& st) {
  return Error(ctx, req, HttpStatusFor(st.code()), st.message());
}

std::optional<int64_t> ExistingSpace(Context& ctx, const http::Request& req, int64_t customer,
                                     std::optional<http::Response>* denied) {
  auto space = ParseId(req.Param("s"));
  if (!space) {
    *denied = Error(ctx, req, 404, "space not found");
    return std::nullopt;
  }
  if (auto found = ctx.store.GetSpace(customer, *space); !found.ok()) {
    *denied = found.status().code() == Code::kNotFound ? Error(ctx, req, 404, "space not found")
                                                       : FromStatus(ctx, req, found.status());
    return std::nullopt;
  }
  return space;
}

http::Response WholeCollection(const Context& ctx, const http::Request& req, json members) {
  const auto n = static_cast<int64_t>(members.size());
  return Json(200, hydra::Collection(RequestUrl(ctx, req), PageRequest{1, std::max<int64_t>(1, n)},
                                     n, std::move(members)));
}

std::string JoinProblems(const std::vector<std::string>& problems) {
  std::string out;
  for (const auto& p : problems) out += (out.empty() ? "" : ". ") + p;
  return out;
}

Result<json> ParseJsonObject(const http::Request& req) {
  if (req.body.empty()) return Status::Invalid("request body must be a JSON object; it is empty");
  // nlohmann stops at a raw NUL as if the input ended there; valid JSON never holds one.
  if (req.body.find('\0') != std::string::npos)
    return Status::Invalid("malformed JSON: the body contains a NUL byte");
  json j;
  try {
    j = json::parse(req.body);
  } catch (const json::exception& e) {  // parse errors and out-of-range numbers ("1e999")
    return Status::Invalid(std::string("malformed JSON: ") + e.what());
  }
  if (!j.is_object()) return Status::Invalid("request body must be a JSON object");
  return j;
}

static std::string Base64Decode(const std::string& in) {
  static const std::string kChars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int val = 0, bits = -8;
  for (char c : in) {
    if (c == '=') break;
    auto pos = kChars.find(c);
    if (pos == std::string::npos) return "";
    val = (val << 6) + static_cast<int>(pos);
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<char>((val >> bits) & 0xff));
      bits -= 8;
    }
  }
  return out;
}

std::string SessionToken(const http::Request& req) { return req.Cookie("quire_session"); }

std::string SessionTokenHash(const std::string& token) {
  return HashSecret("quire-portal-session:", token);
}

static bool IsSafeMethod(const std::string& method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS";
}

// A browser signed in to the portal: the session must be live, and a state-changing request
// must prove it comes from the portal's own page (the CSRF token only that page was given).
static Result<Caller> AuthenticateSession(Context& ctx, const http::Request& req,
                                          const std::string& token) {
  auto session = ctx.store.GetSession(SessionTokenHash(token), NowMs());
  if (!session.ok()) {
    if (session.status().code() == Code::kNotFound)
      return Status::Unauthorized("the portal session has ended; sign in again");
    return session.status();
  }
  if (!IsSafeMethod(req.method)) {
    const std::string& csrf = req.Header("x-csrf-token");
    if (csrf.empty())
      return Status::Forbidden(
          "a request signed in by the portal's cookie must carry its X-CSRF-Token header");
    if (!ConstantTimeEquals(csrf, session->csrf))
      return Status::Forbidden("the X-CSRF-Token header does not match this session");
  }
  return Caller{session->customer, session->admin};
}

Result<Caller> Authenticate(Context& ctx, const http::Request& req) {
  const std::string& h = req.Header("authorization");
  if (h.empty()) {
    std::string token = SessionToken(req);
    if (!token.empty()) return AuthenticateSession(ctx, req, token);
    return Status::Unauthorized("authentication required");
  }
  if (h.size() < 6 || strncasecmp(h.c_str(), "Basic ", 6) != 0)
    return Status::Unauthorized("use HTTP Basic authentication with key:secret");
  std::string decoded = Base64Decode(h.substr(6));
  size_t colon = decoded.find(':');
  if (colon == std::string::npos) return Status::Unauthorized("credentials must be key:secret");
  return CheckKeySecret(ctx, decoded.substr(0, colon), decoded.substr(colon + 1));
}

Result<Caller> CheckKeySecret(Context& ctx, const std::string& key, const std::string& secret) {
  int64_t now = SteadyMs();  // cache lifetimes must not stretch when the wall clock steps back
  auto cached = ctx.keys->Get(key, now);
  if (!cached) {
    auto stored = ctx.store.GetKey(key);
    if (stored.ok()) {
      auto customer = ctx.store.GetCustomer(stored->customer);
      if (!customer.ok() && customer.status().code() != Code::kNotFound)
        return customer.status();
      if (customer.ok())
        cached = CachedKey{stored->salt, stored->secret_hash, customer->id,
                           customer->administrator, 0};
    } else if (stored.status().code() != Code::kNotFound) {
      return stored.status();
    }
    if (cached) ctx.keys->Put(key, *cached, now);
  }
  // Hash even for unknown keys so timing does not reveal which keys exist.
  std::string hash = HashSecret(cached ? cached->salt : "unknown-key", secret);
  if (!cached || !ConstantTimeEquals(hash, cached->secret_hash))
    return Status::Unauthorized("invalid key or secret");
  return Caller{cached->customer, cached->admin};
}

Access AuthorizeCustomer(Context& ctx, const http::Request& req) {
  Access a;
  auto caller = Authenticate(ctx, req);
  if (!caller.ok()) {
    a.denied = FromStatus(ctx, req, caller.status());
    return a;
  }
  a.caller = *caller;
  auto c = ParseId(req.Param("c"));
  if (!c || (!caller->admin && *c != caller->customer)) {
    a.denied = Error(ctx, req, 404, "customer not found");
    return a;
  }
  if (caller->admin && *c != caller->customer) {
    auto other = ctx.store.GetCustomer(*c);
    if (!other.ok()) {
      // Only a customer that is not there is a 404; a database that is away is a 503.
      a.denied = other.status().code() == Code::kNotFound
                     ? Error(ctx, req, 404, "customer not found")
                     : FromStatus(ctx, req, other.status());
      return a;
    }
  }
  a.customer = *c;
  return a;
}

Access AuthorizeAdmin(Context& ctx, const http::Request& req) {
  Access a;
  auto caller = Authenticate(ctx, req);
  if (!caller.ok()) {
    a.denied = FromStatus(ctx, req, caller.status());
    return a;
  }
  a.caller = *caller;
  if (!caller->admin) a.denied = Error(ctx, req, 403, "only the administrator may do this");
  return a;
}

}  // namespace quire::api
