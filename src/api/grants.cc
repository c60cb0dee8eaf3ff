// Access grants of a role: /customers/{c}/roles/{r}/grants[/{g}] (spec/presentation-auth.md
// §5.2). A grant is a one-time (or n-time) code that gives a browser session the role; the
// code is shown once, in the POST answer, with the link that redeems it, and stored hashed.
// DELETE revokes it and ends the sessions it opened.
#include "access/access_control.h"
#include "api/common.h"
#include "api/routes.h"
#include "core/secrets.h"
#include "core/time_util.h"

namespace quire::api {

namespace {

constexpr int64_t kDefaultGrantMs = 7LL * 24 * 3600 * 1000;
constexpr int64_t kMaxGrantMs = 366LL * 24 * 3600 * 1000;
constexpr int64_t kMaxUses = 1000000;

std::string GrantUrl(const Context& ctx, const AuthGrant& g) {
  return ctx.urls.Customer(g.customer) + "/roles/" + g.role + "/grants/" + g.id;
}

json GrantJson(const Context& ctx, const AuthGrant& g, int64_t now) {
  json j{{"@context", ctx.urls.Context("AccessGrant")},
         {"@id", GrantUrl(ctx, g)},
         {"@type", "vocab:AccessGrant"}};
  j["id"] = g.id;
  j["role"] = ctx.urls.Customer(g.customer) + "/roles/" + g.role;
  j["label"] = g.label;
  j["created"] = FormatIso8601(g.created_ms);
  j["expires"] = FormatIso8601(g.expires_ms);
  j["maxUses"] = g.max_uses;
  j["uses"] = g.uses;
  j["usable"] = g.uses < g.max_uses && g.expires_ms > now;
  return j;
}

// Fills the grant from the POST body; empty string when valid, else the message.
std::string ApplyGrantBody(const json& body, int64_t now, AuthGrant* g) {
  for (auto it = body.begin(); it != body.end(); ++it) {
    const std::string& k = it.key();
    if (k != "label" && k != "expires" && k != "maxUses" && k != "@context" && k != "@type")
      return "unknown property '" + k + "'";
  }
  if (auto it = body.find("label"); it != body.end() && !it->is_null()) {
    if (!it->is_string() || it->get<std::string>().size() > 1000)
      return "'label' must be a string of at most 1000 characters";
    g->label = it->get<std::string>();
  }
  g->expires_ms = now + kDefaultGrantMs;
  if (auto it = body.find("expires"); it != body.end() && !it->is_null()) {
    std::optional<int64_t> t =
        it->is_string() ? ParseIso8601(it->get<std::string>()) : std::nullopt;
    if (!t) return "'expires' must be a date and time like \"2030-01-31T12:00:00Z\"";
    if (*t <= now) return "'expires' must be in the future";
    if (*t > now + kMaxGrantMs) return "'expires' must be within 366 days";
    g->expires_ms = *t;
  }
  if (auto it = body.find("maxUses"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > kMaxUses)
      return "'maxUses' must be a whole number from 1 to 1000000";
    g->max_uses = it->get<int64_t>();
  }
  return "";
}

}  // namespace

void RegisterGrants(http::Router& r, Context& ctx) {
  r.Add("POST", "/customers/{c}/roles/{r}/grants", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto body = ParseJsonObject(req);
    if (!body.ok()) return Error(ctx, req, 400, body.status().message());
    const int64_t now = NowMs();
    AuthGrant g;
    g.id = NewUuid();
    g.customer = a.customer;
    g.role = req.Param("r");
    g.created_ms = now;
    if (std::string problem = ApplyGrantBody(*body, now, &g); !problem.empty())
      return Error(ctx, req, 400, problem);
    const std::string code = RandomHex(20);  // 160 bits
    g.code_hash = access::HashGrantCode(code);
    Status st = ctx.store.CreateAuthGrant(g);
    if (!st.ok()) return FromStatus(ctx, req, st);
    json j = GrantJson(ctx, g, now);
    j["code"] = code;
    j["loginUrl"] = ctx.urls.base() + "/auth/v2/grant/" + code;
    http::Response res = Json(201, j);
    res.Set("Location", GrantUrl(ctx, g));
    res.Set("Cache-Control", "no-store");
    return res;
  });

  r.Add("GET", "/customers/{c}/roles/{r}/grants", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    PageRequest page = ParsePageRequest(req.Query("page"), req.Query("pageSize"));
    auto list = ctx.store.ListAuthGrants(a.customer, req.Param("r"), page);
    const int64_t now = NowMs();
    return CollectionResponse(
        ctx, req, page, list,
        [&ctx, now](const hydra::Urls&, const AuthGrant& g) { return GrantJson(ctx, g, now); });
  });

  r.Add("GET", "/customers/{c}/roles/{r}/grants/{g}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto g = ctx.store.GetAuthGrant(a.customer, req.Param("r"), req.Param("g"));
    if (!g.ok()) return FromStatus(ctx, req, g.status());
    return Json(200, GrantJson(ctx, *g, NowMs()));
  });

  r.Add("DELETE", "/customers/{c}/roles/{r}/grants/{g}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    Status st = ctx.store.DeleteAuthGrant(a.customer, req.Param("r"), req.Param("g"));
    if (!st.ok()) return FromStatus(ctx, req, st);
    http::Response res;
    res.status = 204;
    return res;
  });
}

}  // namespace quire::api
