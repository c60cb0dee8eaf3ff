#include "access/auth_service.h"

#include <regex>

#include "core/secrets.h"
#include "core/time_util.h"
#include "model/ids.h"

namespace quire::access {

namespace {

using json = nlohmann::json;

std::string HtmlEscape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// JSON for inside a <script>: nothing in it can end the script, open a comment or end a line
// of JavaScript source.
std::string ScriptJson(const json& j) {
  std::string in = j.dump();
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '<') {
      out += "\\u003c";
    } else if (c == '>') {
      out += "\\u003e";
    } else if (c == '&') {
      out += "\\u0026";
    } else if (c == '\xE2' && i + 2 < in.size() && in[i + 1] == '\x80' &&
               (in[i + 2] == '\xA8' || in[i + 2] == '\xA9')) {
      out += in[i + 2] == '\xA8' ? "\\u2028" : "\\u2029";
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

bool IsOrigin(const std::string& o) {
  static const std::regex kOrigin(
      R"(^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?$)");
  return o.size() <= 300 && std::regex_match(o, kOrigin);
}

constexpr const char* kPageStyle =
    "body{font:16px/1.4 system-ui,sans-serif;margin:2em auto;max-width:32em;padding:0 1em}"
    "button{font:inherit;padding:.4em 1.2em}input{font:inherit;padding:.3em;width:100%;"
    "box-sizing:border-box;margin:.4em 0 .8em}.problem{color:#a00}";

// A page of the access window (never framed: frame-ancestors 'none').
http::Response Page(int status, const std::string& title, const std::string& content,
                    const std::string& script = "", bool framable = false) {
  std::string html =
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width\"><title>" +
      HtmlEscape(title) + "</title><style>" + kPageStyle + "</style></head><body><main>" + content +
      "</main>";
  if (!script.empty()) html += "<script>" + script + "</script>";
  html += "</body></html>\n";
  http::Response res(status, "text/html; charset=utf-8", html);
  res.Set("Cache-Control", "no-store");
  res.Set("Content-Security-Policy",
          std::string("default-src 'none'; style-src 'unsafe-inline'; script-src "
                      "'unsafe-inline'; form-action 'self'; base-uri 'none'") +
              (framable ? "" : "; frame-ancestors 'none'"));
  res.Set("X-Content-Type-Options", "nosniff");
  res.Set("Referrer-Policy", "no-referrer");
  return res;
}

http::Response Text(int status, const std::string& text) {
  http::Response res(status, "text/plain; charset=utf-8", text + "\n");
  res.Set("Cache-Control", "no-store");
  return res;
}

http::Response Unavailable(const Status& st) {
  http::Response res = Text(503, st.message());
  res.Set("Retry-After", "1");
  return res;
}

http::Response JsonNoStore(int status, const json& j, const char* type = "application/json") {
  http::Response res(status, type, j.dump());
  res.Set("Cache-Control", "no-store");
  return res;
}

json En(const std::string& s) { return json{{"en", {s}}}; }

// A role text for a page: its first language string, or `fallback`.
std::string Shown(const std::string& language_map, const std::string& fallback) {
  std::string s = FirstText(language_map);
  return s.empty() ? fallback : s;
}

std::string Paragraphs(const std::string& text) {
  std::string out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    if (end > pos) out += "<p>" + HtmlEscape(text.substr(pos, end - pos)) + "</p>";
    pos = end + 1;
  }
  return out;
}

// The value of field `name` in an application/x-www-form-urlencoded body.
std::string FormField(const std::string& body, const std::string& name) {
  size_t pos = 0;
  while (pos <= body.size()) {
    size_t end = body.find('&', pos);
    if (end == std::string::npos) end = body.size();
    std::string pair = body.substr(pos, end - pos);
    size_t eq = pair.find('=');
    if (http::PercentDecode(pair.substr(0, eq), true) == name)
      return eq == std::string::npos ? "" : http::PercentDecode(pair.substr(eq + 1), true);
    pos = end + 1;
  }
  return "";
}

std::string Trimmed(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.erase(0, 1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

const char* kClosingScript = "window.close();";

http::Response Closing(const std::string& title, const std::string& message) {
  return Page(200, title,
              "<h1>" + HtmlEscape(title) + "</h1><p>" + HtmlEscape(message) +
                  "</p><p>You may close this window.</p>",
              kClosingScript);
}

}  // namespace

AuthService::AuthService(Store& store, AccessControl& access, std::string public_base)
    : store_(store), access_(access), base_(std::move(public_base)) {}

void AuthService::Register(http::Router& r) {
  http::RouteOptions cors{false, true, ops::Family::kApi};
  r.Add(
      "GET", "/auth/v2/probe/{c}/{s}/{id}", [this](http::Request& q) { return Probe(q); }, cors);
  r.Add(
      "GET", "/auth/v2/access/{c}/token", [this](http::Request& q) { return TokenPage(q); }, cors);
  r.Add(
      "GET", "/auth/v2/access/{c}/{r}",
      [this](http::Request& q) { return AccessPage(q, false, false); }, cors);
  r.Add(
      "POST", "/auth/v2/access/{c}/{r}",
      [this](http::Request& q) { return AccessPage(q, true, false); }, cors);
  r.Add(
      "GET", "/auth/v2/access/{c}/{r}/logout", [this](http::Request& q) { return Logout(q); },
      cors);
  r.Add(
      "GET", "/auth/v2/grant/{code}", [this](http::Request& q) { return GrantLink(q, false); },
      cors);
  r.Add(
      "POST", "/auth/v2/grant/{code}", [this](http::Request& q) { return GrantLink(q, true); },
      cors);
  // Authentication 1.0, for the 2.1 info.json (its services name these).
  r.Add(
      "GET", "/auth/{c}/token", [this](http::Request& q) { return Token1(q); }, cors);
  r.Add(
      "GET", "/auth/{c}/{r}", [this](http::Request& q) { return AccessPage(q, false, true); },
      cors);
  r.Add(
      "POST", "/auth/{c}/{r}", [this](http::Request& q) { return AccessPage(q, true, true); },
      cors);
  r.Add(
      "GET", "/auth/{c}/{r}/logout", [this](http::Request& q) { return Logout(q); }, cors);
}

std::optional<int64_t> AuthService::Customer(const std::string& segment, http::Response* error) {
  if (auto id = ParseId(segment)) {
    auto c = store_.GetCustomer(*id);
    if (c.ok()) return *id;
    *error = c.status().code() == Code::kUnavailable ? Unavailable(c.status())
                                                     : Text(404, "no customer '" + segment + "'");
    return std::nullopt;
  }
  auto c = store_.GetCustomerByName(segment);
  if (c.ok()) return c->id;
  *error = c.status().code() == Code::kUnavailable ? Unavailable(c.status())
                                                   : Text(404, "no customer '" + segment + "'");
  return std::nullopt;
}

std::string AuthService::SetCookie(const http::Request& req, int64_t customer,
                                   const std::string& value, int64_t max_age_s) const {
  std::string c = CookieName(customer) + "=" + value +
                  "; Path=/; HttpOnly; Max-Age=" + std::to_string(std::max<int64_t>(0, max_age_s));
  // Browsers refuse SameSite=None without Secure, and Secure needs https: over plain http
  // (a development set-up, viewer and images on one site) the cookie is SameSite=Lax.
  bool https = base_.rfind("https://", 0) == 0 || req.Header("x-forwarded-proto") == "https";
  c += https ? "; SameSite=None; Secure" : "; SameSite=Lax";
  return c;
}

Status AuthService::Join(const http::Request& req, int64_t customer, const std::string& role,
                         const std::string& code_hash, std::string* set_cookie) {
  std::string cookie = CookieValue(req, customer);
  AuthSession session;
  auto existing = access_.CookieSession(req, customer);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) {
    session = **existing;
  } else {
    NewCredential fresh = MakeCredential(customer);
    cookie = fresh.cookie;
    session = fresh.session;
  }
  const int64_t now = NowMs();
  Status st;
  if (!code_hash.empty()) {
    auto g = store_.RedeemAuthGrant(code_hash, customer, session, now);
    st = g.status();
  } else {
    st = store_.GrantSessionRole(session, role, now);
  }
  if (!st.ok()) return st;
  auto after = store_.FindAuthSession(session.cookie_hash, "");
  if (!after.ok()) return after.status();
  *set_cookie = SetCookie(req, customer, cookie, (after->LatestExpiry(now) - now + 999) / 1000);
  return Status::Ok();
}

// ---------------------------------------------------------------- probe

http::Response AuthService::Probe(http::Request& req) {
  http::Response err;
  auto customer = Customer(req.Param("c"), &err);
  if (!customer) return err;
  auto space = ParseId(req.Param("s"));
  if (!space) return Text(404, "no space '" + req.Param("s") + "'");
  auto asset = store_.GetAsset(*customer, *space, req.Param("id"));
  if (!asset.ok() && asset.status().code() == Code::kUnavailable)
    return Unavailable(asset.status());
  if (!asset.ok())
    return Text(404, "no image '" + req.Param("id") + "' in space " + req.Param("s"));
  json result{{"@context", kAuth2Context}, {"type", "AuthProbeResult2"}};
  int status = 200;
  std::string heading, note;
  if (asset->Restricted()) {
    std::string token = BearerToken(req);
    auto session = access_.TokenSession(token);
    if (!session.ok()) return Unavailable(session.status());
    const int64_t now = NowMs();
    if (token.empty()) {
      status = 401;
      heading = "Missing credentials";
      note = "This image is restricted; log in to see it.";
    } else if (!session->has_value() || (*session)->customer != asset->customer) {
      status = 401;
      heading = "Invalid credentials";
      note = "The access token is not valid; log in again.";
    } else if (AccessControl::SessionMatches(**session, *asset, now)) {
      status = 200;
    } else {
      // Expired: a role of the image the session held, or no live role at all.
      bool expired = !(*session)->HasLiveRole(now);
      for (const std::string& name : ImageRoleNames(*asset))
        if ((*session)->roles.count(name)) expired = true;
      status = expired ? 401 : 403;
      heading = expired ? "Expired session" : "Forbidden";
      note = expired ? "Your session has expired; log in again."
                     : "Your session does not give access to this image.";
    }
  }
  result["status"] = status;
  if (status != 200) {
    result["heading"] = En(heading);
    result["note"] = En(note);
    if (asset->HasChannel("thumbs") && !asset->OpenThumbnails().empty())
      result["substitute"] = json::array({json{
          {"id", base_ + "/thumbs/" + std::to_string(asset->customer) + "/" +
                     std::to_string(asset->space) + "/" + http::PercentEncodeSegment(asset->id)},
          {"type", "ImageService3"},
          {"profile", "level0"}}});
  }
  return JsonNoStore(200, result, "application/ld+json");
}

// ---------------------------------------------------------------- access pages

http::Response AuthService::AccessPage(http::Request& req, bool post, bool v1) {
  http::Response err;
  auto customer = Customer(req.Param("c"), &err);
  if (!customer) return Page(err.status, "Not found", "<p>" + HtmlEscape(err.body) + "</p>");
  auto role = store_.GetRole(*customer, req.Param("r"));
  if (!role.ok() && role.status().code() == Code::kUnavailable) return Unavailable(role.status());
  if (!role.ok())
    return Page(404, "Not found", "<p>No access service '" + HtmlEscape(req.Param("r")) + "'.</p>");
  const std::string label = Shown(role->label, role->name);
  const std::string heading = Shown(role->heading, label);
  const bool grant = role->provider == "grant";

  auto session = access_.CookieSession(req, *customer);
  if (!session.ok()) return Unavailable(session.status());
  const int64_t now = NowMs();
  auto it = session->has_value() ? (*session)->roles.find(role->name)
                                 : std::map<std::string, int64_t>::const_iterator();
  const bool holds = session->has_value() && it != (*session)->roles.end() && it->second > now;
  if (holds && !post) return Closing(heading, "You already have access.");

  std::string problem;
  // Authentication 1.0 clickthrough: opening the service is the consent (the 1.0 client
  // opens it from a user's click), so the cookie is set at once.
  if (post || (v1 && !grant)) {
    std::string code_hash;
    if (grant) {
      std::string code = Trimmed(FormField(req.body, "code"));
      if (code.empty()) {
        problem = "Enter your access code.";
      } else {
        code_hash = HashGrantCode(code);
        // A code of another role is not one for this page.
        auto g = store_.FindAuthGrantByCode(code_hash);
        if (!g.ok() && g.status().code() == Code::kUnavailable) return Unavailable(g.status());
        if (!g.ok() || g->customer != *customer || g->role != role->name)
          problem = "That code is not valid: it may be mistyped, used up or expired.";
      }
    }
    if (problem.empty()) {
      std::string set_cookie;
      Status st = Join(req, *customer, role->name, code_hash, &set_cookie);
      if (st.ok()) {
        http::Response res = Closing(heading, "Access granted.");
        res.headers.emplace_back("Set-Cookie", set_cookie);
        return res;
      }
      if (st.code() == Code::kUnavailable) return Unavailable(st);
      problem = st.code() == Code::kNotFound && grant
                    ? "That code is not valid: it may be mistyped, used up or expired."
                    : "Access could not be granted: " + st.message();
    }
  }
  std::string content = "<h1>" + HtmlEscape(heading) + "</h1>" + Paragraphs(FirstText(role->note));
  if (!problem.empty())
    content += "<p class=\"problem\" role=\"alert\">" + HtmlEscape(problem) + "</p>";
  content += "<form method=\"post\">";
  if (grant)
    content +=
        "<label for=\"code\">Access code</label><input id=\"code\" name=\"code\" "
        "autocomplete=\"off\" autofocus required>";
  content += "<button type=\"submit\">" +
             HtmlEscape(Shown(role->confirm_label, grant ? "Continue" : "Confirm")) +
             "</button></form>";
  return Page(problem.empty() ? 200 : 403, heading, content);
}

http::Response AuthService::GrantLink(http::Request& req, bool post) {
  const std::string code = req.Param("code");
  if (!post)
    return Page(200, "Access link",
                "<h1>Access link</h1><p>This link gives your browser access to restricted "
                "images.</p><form method=\"post\"><button type=\"submit\">Use this link"
                "</button></form>");
  auto grant = store_.FindAuthGrantByCode(HashGrantCode(code));
  if (!grant.ok() && grant.status().code() == Code::kUnavailable)
    return Unavailable(grant.status());
  std::string set_cookie;
  Status st = grant.ok() ? Join(req, grant->customer, "", HashGrantCode(code), &set_cookie)
                         : grant.status();
  if (st.code() == Code::kUnavailable) return Unavailable(st);
  if (!st.ok())
    return Page(403, "Access link",
                "<h1>Access link</h1><p class=\"problem\" role=\"alert\">This link is not "
                "valid: it may be used up, expired or revoked.</p>");
  auto role = store_.GetRole(grant->customer, grant->role);
  http::Response res = Closing(
      role.ok() ? Shown(role->heading, Shown(role->label, "Access")) : "Access", "Access granted.");
  res.headers.emplace_back("Set-Cookie", set_cookie);
  return res;
}

// ---------------------------------------------------------------- tokens

http::Response AuthService::TokenPage(http::Request& req) {
  const std::string message_id = req.Query("messageId");
  const std::string origin = req.Query("origin");
  json msg{{"@context", kAuth2Context}};
  std::string target = origin;
  auto error = [&](const char* profile, const std::string& heading, const std::string& note) {
    msg["type"] = "AuthAccessTokenError2";
    msg["profile"] = profile;
    msg["heading"] = En(heading);
    msg["note"] = En(note);
  };
  http::Response err;
  std::optional<int64_t> customer = Customer(req.Param("c"), &err);
  if (message_id.empty() || origin.empty() || !IsOrigin(origin)) {
    target = "*";
    error("invalidRequest", "Invalid request",
          "The token request needs a messageId and the origin of the page that asks.");
  } else if (!customer) {
    error("invalidRequest", "Invalid request", "There is no such access service.");
  } else {
    auto session = access_.CookieSession(req, *customer);
    if (!session.ok()) return Unavailable(session.status());
    const int64_t now = NowMs();
    if (CookieValue(req, *customer).empty()) {
      error("missingAspect", "Not logged in", "Log in to see restricted images.");
    } else if (!session->has_value()) {
      error("invalidAspect", "Invalid session", "Your session is not valid; log in again.");
    } else if (!(*session)->HasLiveRole(now)) {
      error("expiredAspect", "Session expired", "Your session has expired; log in again.");
    } else {
      msg["type"] = "AuthAccessToken2";
      msg["accessToken"] = TokenOfCookie(CookieValue(req, *customer));
      msg["expiresIn"] = ((*session)->LatestExpiry(now) - now) / 1000;
    }
  }
  msg["messageId"] = message_id;
  std::string script =
      "window.parent.postMessage(" + ScriptJson(msg) + ", " + ScriptJson(json(target)) + ");";
  return Page(200, "Access token", "", script, /*framable=*/true);
}

http::Response AuthService::Token1(http::Request& req) {
  http::Response err;
  std::optional<int64_t> customer = Customer(req.Param("c"), &err);
  const bool messaging = req.HasQuery("messageId");
  const std::string message_id = req.Query("messageId");
  const std::string origin = req.Query("origin");
  json out;
  int status = 200;
  auto fail = [&](int code, const char* error, const std::string& description) {
    status = code;
    out = json{{"error", error}, {"description", description}};
  };
  if (messaging && (message_id.empty() || !IsOrigin(origin))) {
    fail(400, "invalidRequest", "messageId and the origin of the page are required");
  } else if (!customer) {
    fail(400, "invalidRequest", "there is no such token service");
  } else {
    auto session = access_.CookieSession(req, *customer);
    if (!session.ok()) return Unavailable(session.status());
    const int64_t now = NowMs();
    if (CookieValue(req, *customer).empty()) {
      fail(401, "missingCredentials", "no session cookie; log in first");
    } else if (!session->has_value() || !(*session)->HasLiveRole(now)) {
      fail(403, "invalidCredentials", "the session is not valid or has expired");
    } else {
      out = json{{"accessToken", TokenOfCookie(CookieValue(req, *customer))},
                 {"expiresIn", ((*session)->LatestExpiry(now) - now) / 1000}};
    }
  }
  if (!messaging) return JsonNoStore(status, out);
  out["messageId"] = message_id;
  std::string target = IsOrigin(origin) ? origin : "*";
  return Page(
      200, "Access token", "",
      "window.parent.postMessage(" + ScriptJson(out) + ", " + ScriptJson(json(target)) + ");",
      /*framable=*/true);
}

// ---------------------------------------------------------------- logout

http::Response AuthService::Logout(http::Request& req) {
  http::Response err;
  auto customer = Customer(req.Param("c"), &err);
  if (!customer) return Page(err.status, "Not found", "<p>" + HtmlEscape(err.body) + "</p>");
  auto role = store_.GetRole(*customer, req.Param("r"));
  if (!role.ok() && role.status().code() == Code::kUnavailable) return Unavailable(role.status());
  if (!role.ok())
    return Page(404, "Not found", "<p>No access service '" + HtmlEscape(req.Param("r")) + "'.</p>");
  auto session = access_.CookieSession(req, *customer);
  if (!session.ok()) return Unavailable(session.status());
  std::string set_cookie;
  if (session->has_value()) {
    auto left = store_.DropSessionRole((*session)->cookie_hash, role->name);
    if (!left.ok()) return Unavailable(left.status());
    if (*left == 0) set_cookie = SetCookie(req, *customer, "", 0);
  } else if (!CookieValue(req, *customer).empty()) {
    set_cookie = SetCookie(req, *customer, "", 0);  // a cookie of a session already gone
  }
  const std::string label = Shown(role->label, role->name);
  http::Response res =
      Page(200, "Logged out",
           "<h1>Logged out</h1><p>You no longer have access as " + HtmlEscape(label) + ".</p>");
  if (!set_cookie.empty()) res.headers.emplace_back("Set-Cookie", set_cookie);
  return res;
}

}  // namespace quire::access
