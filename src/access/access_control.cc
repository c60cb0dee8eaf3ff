#include "access/access_control.h"

#include <algorithm>

#include "core/secrets.h"
#include "core/time_util.h"

namespace quire::access {

using json = nlohmann::json;

std::string CookieName(int64_t customer) { return "quire-auth-" + std::to_string(customer); }

std::string CookieValue(const http::Request& req, int64_t customer) {
  return req.Cookie(CookieName(customer));
}

std::string BearerToken(const http::Request& req) {
  const std::string& h = req.Header("authorization");
  if (h.size() <= 7) return "";
  std::string scheme = h.substr(0, 7);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), ::tolower);
  if (scheme != "bearer ") return "";
  std::string token = h.substr(7);
  while (!token.empty() && token.front() == ' ') token.erase(0, 1);
  while (!token.empty() && token.back() == ' ') token.pop_back();
  return token;
}

std::string HashCookie(const std::string& cookie) {
  return HashSecret("quire-auth-cookie:", cookie);
}
std::string HashToken(const std::string& token) { return HashSecret("quire-auth-token:", token); }
std::string HashGrantCode(const std::string& code) {
  std::string c = code;
  while (!c.empty() && std::isspace(static_cast<unsigned char>(c.front()))) c.erase(0, 1);
  while (!c.empty() && std::isspace(static_cast<unsigned char>(c.back()))) c.pop_back();
  std::transform(c.begin(), c.end(), c.begin(), ::tolower);
  return HashSecret("quire-auth-grant:", c);
}
std::string TokenOfCookie(const std::string& cookie) {
  return HashSecret("quire-auth-token-of:", cookie);
}

NewCredential MakeCredential(int64_t customer) {
  NewCredential c;
  c.cookie = RandomHex(32);
  c.session.cookie_hash = HashCookie(c.cookie);
  c.session.token_hash = HashToken(TokenOfCookie(c.cookie));
  c.session.customer = customer;
  return c;
}

std::vector<std::string> ImageRoleNames(const Asset& asset) {
  std::vector<std::string> out;
  const std::string marker = "/customers/" + std::to_string(asset.customer) + "/roles/";
  for (const std::string& r : asset.roles) {
    size_t at = r.rfind(marker);
    if (at == std::string::npos) continue;
    std::string name = r.substr(at + marker.size());
    if (name.empty() || !RoleNameProblem(name).empty()) continue;
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  return out;
}

std::string FirstText(const std::string& language_map) {
  if (language_map.empty()) return "";
  json j = json::parse(language_map, nullptr, false);
  if (!j.is_object() || j.empty()) return "";
  auto pick = j.contains("en") ? j["en"] : j.begin().value();
  if (!pick.is_array() || pick.empty() || !pick[0].is_string()) return "";
  std::string out;
  for (auto& v : pick) {
    if (!v.is_string()) continue;
    if (!out.empty()) out += "\n";
    out += v.get<std::string>();
  }
  return out;
}

AccessControl::AccessControl(Store& store, std::string public_base)
    : store_(store), base_(std::move(public_base)) {}

std::string AccessControl::AccessBase(int64_t customer) const {
  return base_ + "/auth/v2/access/" + std::to_string(customer);
}

Result<std::vector<Role>> AccessControl::MatchedRoles(const Asset& asset) {
  std::vector<Role> out;
  for (const std::string& name : ImageRoleNames(asset)) {
    auto role = store_.GetRole(asset.customer, name);
    if (role.ok()) {
      out.push_back(std::move(*role));
    } else if (role.status().code() != Code::kNotFound) {
      return role.status();
    }
  }
  return out;
}

Result<std::optional<AuthSession>> AccessControl::CookieSession(const http::Request& req,
                                                                int64_t customer) {
  std::string cookie = CookieValue(req, customer);
  if (cookie.empty()) return std::optional<AuthSession>();
  auto s = store_.FindAuthSession(HashCookie(cookie), "");
  if (!s.ok() && s.status().code() == Code::kNotFound) return std::optional<AuthSession>();
  if (!s.ok()) return s.status();
  if (s->customer != customer) return std::optional<AuthSession>();
  return std::optional<AuthSession>(std::move(*s));
}

Result<std::optional<AuthSession>> AccessControl::TokenSession(const std::string& token) {
  if (token.empty()) return std::optional<AuthSession>();
  auto s = store_.FindAuthSession("", HashToken(token));
  if (!s.ok() && s.status().code() == Code::kNotFound) return std::optional<AuthSession>();
  if (!s.ok()) return s.status();
  return std::optional<AuthSession>(std::move(*s));
}

bool AccessControl::SessionMatches(const AuthSession& session, const Asset& asset, int64_t now_ms) {
  if (session.customer != asset.customer) return false;
  for (const std::string& name : ImageRoleNames(asset)) {
    auto it = session.roles.find(name);
    if (it != session.roles.end() && it->second > now_ms) return true;
  }
  return false;
}

Result<bool> AccessControl::CookieAuthorises(const http::Request& req, const Asset& asset) {
  if (ImageRoleNames(asset).empty()) return false;
  std::string cookie = CookieValue(req, asset.customer);
  if (cookie.empty()) return false;
  const std::string hash = HashCookie(cookie);
  const auto now = std::chrono::steady_clock::now();
  const int64_t now_ms = NowMs();
  {
    std::lock_guard<std::mutex> lock(sessions_mu_);
    auto it = sessions_.find(hash);
    if (it != sessions_.end() && now - it->second.read < std::chrono::seconds(1) &&
        SessionMatches(it->second.session, asset, now_ms)) {
      return true;
    }
  }
  auto s = store_.FindAuthSession(hash, "");
  if (!s.ok() && s.status().code() != Code::kNotFound) return s.status();
  std::lock_guard<std::mutex> lock(sessions_mu_);
  if (!s.ok() || s->customer != asset.customer) {
    sessions_.erase(hash);
    return false;
  }
  bool yes = SessionMatches(*s, asset, now_ms);
  if (yes) {
    if (sessions_.size() >= 100000) sessions_.clear();
    sessions_[hash] = KeptSession{std::move(*s), now};
  }
  return yes;
}

void AccessControl::ForgetSessions(int64_t customer, const std::string& cookie_hash) {
  std::lock_guard<std::mutex> lock(sessions_mu_);
  if (!cookie_hash.empty()) {
    sessions_.erase(cookie_hash);
  } else if (customer == 0) {
    sessions_.clear();
  } else {
    for (auto it = sessions_.begin(); it != sessions_.end();)
      it = it->second.session.customer == customer ? sessions_.erase(it) : std::next(it);
  }
}

namespace {

json Map(const std::string& text) { return json::parse(text, nullptr, false); }

std::string ImagePath(const Asset& a) {
  return std::to_string(a.customer) + "/" + std::to_string(a.space) + "/" +
         http::PercentEncodeSegment(a.id);
}

}  // namespace

json AccessControl::ProbeService(const Asset& asset, const std::vector<Role>& matched) const {
  const std::string access = AccessBase(asset.customer);
  json services = json::array();
  for (const Role& r : matched) {
    json s{{"id", access + "/" + r.name},
           {"type", "AuthAccessService2"},
           {"profile", "active"},
           {"label", Map(r.label)}};
    if (!r.heading.empty()) s["heading"] = Map(r.heading);
    if (!r.note.empty()) s["note"] = Map(r.note);
    if (!r.confirm_label.empty()) s["confirmLabel"] = Map(r.confirm_label);
    json logout{
        {"id", access + "/" + r.name + "/logout"},
        {"type", "AuthLogoutService2"},
        {"label", r.logout_label.empty() ? json{{"en", {"Log out"}}} : Map(r.logout_label)}};
    s["service"] =
        json::array({json{{"id", access + "/token"}, {"type", "AuthAccessTokenService2"}}, logout});
    services.push_back(std::move(s));
  }
  return json{{"id", base_ + "/auth/v2/probe/" + ImagePath(asset)},
              {"type", "AuthProbeService2"},
              {"service", services}};
}

json AccessControl::CookieServices1(const Asset& asset, const std::vector<Role>& matched) const {
  const std::string base = base_ + "/auth/" + std::to_string(asset.customer);
  json out = json::array();
  for (const Role& r : matched) {
    json s{{"@context", kAuth1Context},
           {"@id", base + "/" + r.name},
           {"profile", r.provider == "grant" ? "http://iiif.io/api/auth/1/login"
                                             : "http://iiif.io/api/auth/1/clickthrough"},
           {"label", FirstText(r.label)}};
    if (!r.heading.empty()) s["header"] = FirstText(r.heading);
    if (!r.note.empty()) s["description"] = FirstText(r.note);
    if (!r.confirm_label.empty()) s["confirmLabel"] = FirstText(r.confirm_label);
    s["service"] = json::array(
        {json{{"@id", base + "/token"}, {"profile", "http://iiif.io/api/auth/1/token"}},
         json{{"@id", base + "/" + r.name + "/logout"},
              {"profile", "http://iiif.io/api/auth/1/logout"},
              {"label", r.logout_label.empty() ? "Log out" : FirstText(r.logout_label)}}});
    out.push_back(std::move(s));
  }
  return out;
}

std::string AccessControl::RolesKey(const std::vector<Role>& matched) {
  std::string key;
  for (const Role& r : matched)
    key += "|" + r.name + "\x1f" + r.label + "\x1f" + r.heading + "\x1f" + r.note + "\x1f" +
           r.confirm_label + "\x1f" + r.logout_label + "\x1f" + r.provider;
  return key;
}

}  // namespace quire::access
