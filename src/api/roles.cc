// Roles of IIIF access control: /customers/{c}/roles[/{r}] (spec/presentation-auth.md §5.2).
// A role's @id is the URI an image's `roles` names; the texts are what the IIIF Authorization
// services show (string → {"en":[string]}, or a language map).
#include "api/common.h"
#include "api/routes.h"
#include "core/time_util.h"
#include "model/role.h"

namespace quire::api {

namespace {

std::string RoleUrl(const Context& ctx, int64_t customer, const std::string& name) {
  return ctx.urls.Customer(customer) + "/roles/" + name;
}

json RoleJson(const Context& ctx, const Role& r) {
  json j{{"@context", ctx.urls.Context("Role")},
         {"@id", RoleUrl(ctx, r.customer, r.name)},
         {"@type", "vocab:Role"}};
  j["id"] = r.name;
  j["name"] = r.name;
  j["label"] = json::parse(r.label, nullptr, false);
  const std::pair<const char*, const std::string*> texts[] = {{"heading", &r.heading},
                                                              {"note", &r.note},
                                                              {"confirmLabel", &r.confirm_label},
                                                              {"logoutLabel", &r.logout_label}};
  for (auto& [key, text] : texts)
    if (!text->empty()) j[key] = json::parse(*text, nullptr, false);
  j["provider"] = r.provider;
  j["sessionTtl"] = r.session_ttl_s;
  j["grants"] = RoleUrl(ctx, r.customer, r.name) + "/grants";
  j["created"] = FormatIso8601(r.created_ms);
  return j;
}

// A text property: a string, or a language map {"lang": ["…", …]}. Sets *out to the map as
// JSON text; empty string when valid, else the message.
std::string LanguageMap(const json& body, const char* key, std::string* out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return "";
  std::string problem = std::string("'") + key +
                        "' must be a string or a language map {\"en\": [\"…\"]} of 1-1000 "
                        "characters";
  if (it->is_string()) {
    if (it->get<std::string>().empty() || it->get<std::string>().size() > 1000) return problem;
    *out = json{{"en", {it->get<std::string>()}}}.dump();
    return "";
  }
  if (!it->is_object() || it->empty()) return problem;
  for (auto& [lang, values] : it->items()) {
    if (lang.empty() || lang.size() > 35 || !values.is_array() || values.empty()) return problem;
    for (auto& v : values)
      if (!v.is_string() || v.get<std::string>().size() > 1000) return problem;
  }
  *out = it->dump();
  return "";
}

std::string ApplyRoleBody(const json& body, Role* r) {
  for (auto it = body.begin(); it != body.end(); ++it) {
    const std::string& k = it.key();
    if (k != "label" && k != "heading" && k != "note" && k != "confirmLabel" &&
        k != "logoutLabel" && k != "provider" && k != "sessionTtl" && k != "@context" &&
        k != "@type" && k != "@id" && k != "id" && k != "name" && k != "created")
      return "unknown property '" + k + "'";
  }
  if (!body.contains("label") || body["label"].is_null()) return "'label' is required";
  const std::pair<const char*, std::string*> texts[] = {{"label", &r->label},
                                                        {"heading", &r->heading},
                                                        {"note", &r->note},
                                                        {"confirmLabel", &r->confirm_label},
                                                        {"logoutLabel", &r->logout_label}};
  for (auto& [key, out] : texts)
    if (std::string problem = LanguageMap(body, key, out); !problem.empty()) return problem;
  if (auto it = body.find("provider"); it != body.end() && !it->is_null()) {
    if (!it->is_string() || (*it != "clickthrough" && *it != "grant"))
      return "'provider' must be \"clickthrough\" or \"grant\"";
    r->provider = it->get<std::string>();
  }
  if (auto it = body.find("sessionTtl"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 60 || it->get<int64_t>() > 86400)
      return "'sessionTtl' must be a whole number of seconds from 60 to 86400";
    r->session_ttl_s = it->get<int64_t>();
  }
  if (auto it = body.find("name"); it != body.end() && (!it->is_string() || *it != r->name))
    return "'name' must be the role of the URL";
  return "";
}

}  // namespace

void RegisterRoles(http::Router& r, Context& ctx) {
  r.Add("GET", "/customers/{c}/roles", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    PageRequest page = ParsePageRequest(req.Query("page"), req.Query("pageSize"));
    auto list = ctx.store.ListRoles(a.customer, page);
    return CollectionResponse(ctx, req, page, list, [&ctx](const hydra::Urls&, const Role& role) {
      return RoleJson(ctx, role);
    });
  });

  r.Add("PUT", "/customers/{c}/roles/{r}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    Role role;
    role.customer = a.customer;
    role.name = req.Param("r");
    if (std::string problem = RoleNameProblem(role.name); !problem.empty())
      return Error(ctx, req, 400, problem);
    auto body = ParseJsonObject(req);
    if (!body.ok()) return Error(ctx, req, 400, body.status().message());
    if (std::string problem = ApplyRoleBody(*body, &role); !problem.empty())
      return Error(ctx, req, 400, problem);
    bool created = false;
    auto stored = ctx.store.PutRole(role, &created);
    if (!stored.ok()) return FromStatus(ctx, req, stored.status());
    http::Response res = Json(created ? 201 : 200, RoleJson(ctx, *stored));
    if (created) res.Set("Location", RoleUrl(ctx, a.customer, role.name));
    return res;
  });

  r.Add("GET", "/customers/{c}/roles/{r}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto role = ctx.store.GetRole(a.customer, req.Param("r"));
    if (!role.ok()) return FromStatus(ctx, req, role.status());
    return Json(200, RoleJson(ctx, *role));
  });

  r.Add("DELETE", "/customers/{c}/roles/{r}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    Status st = ctx.store.DeleteRole(a.customer, req.Param("r"));
    if (!st.ok()) return FromStatus(ctx, req, st);
    http::Response res;
    res.status = 204;
    return res;
  });
}

}  // namespace quire::api
