// Spaces: /customers/{c}/spaces and /customers/{c}/spaces/{s}.
#include "api/common.h"
#include "api/routes.h"

namespace quire::api {

namespace {

// Applies the writable properties present in `body` onto `space`. Empty string when valid.
std::string ApplySpaceBody(const json& body, Space* space) {
  for (const char* ro : {"id", "created", "approximateNumberOfImages"}) {
    if (body.contains(ro) && !(std::string(ro) == "id" && body[ro].is_number_integer() &&
                               body[ro].get<int64_t>() == space->id))
      return std::string("'") + ro + "' is read-only";
  }
  if (auto it = body.find("name"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) return "'name' must be a string";
    std::string name = it->get<std::string>();
    if (name.empty() || name.size() > 200) return "'name' must be 1-200 characters";
    for (unsigned char ch : name)
      if (ch < 0x20 || ch == 0x7f) return "'name' must not contain control characters";
    space->name = name;
  }
  if (auto it = body.find("maxUnauthorised"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer()) return "'maxUnauthorised' must be an integer";
    int64_t v = it->get<int64_t>();
    if (v < -1 || v > 1000000000) return "'maxUnauthorised' must be -1 or more";
    space->max_unauthorised = v;
  }
  for (auto [field, target] : {std::pair{"defaultTags", &space->default_tags},
                               std::pair{"defaultRoles", &space->default_roles}}) {
    auto it = body.find(field);
    if (it == body.end() || it->is_null()) continue;
    if (!it->is_array()) return std::string("'") + field + "' must be an array of strings";
    std::vector<std::string> values;
    for (auto& v : *it) {
      if (!v.is_string()) return std::string("'") + field + "' must be an array of strings";
      values.push_back(v.get<std::string>());
    }
    *target = std::move(values);
  }
  return "";
}

std::optional<int64_t> SpaceParam(const http::Request& req) { return ParseId(req.Param("s")); }

}  // namespace

void RegisterSpaces(http::Router& r, Context& ctx) {
  r.Add("GET", "/customers/{c}/spaces", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    PageRequest page = ParsePageRequest(req.Query("page"), req.Query("pageSize"));
    auto list = ctx.store.ListSpaces(a.customer, page);
    return CollectionResponse(ctx, req, page, list, hydra::SpaceJson);
  });

  r.Add("POST", "/customers/{c}/spaces", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto body = ParseJsonObject(req);
    if (!body.ok()) return FromStatus(ctx, req, body.status());
    Space s;
    s.customer = a.customer;
    if (body->contains("id")) return Error(ctx, req, 400, "'id' is assigned by the server; use PUT to choose it");
    if (std::string problem = ApplySpaceBody(*body, &s); !problem.empty())
      return Error(ctx, req, 400, problem);
    if (s.name.empty()) return Error(ctx, req, 400, "'name' is required");
    auto made = ctx.store.CreateSpace(s);
    if (!made.ok()) return FromStatus(ctx, req, made.status());
    http::Response res = Json(201, hydra::SpaceJson(ctx.urls, *made));
    res.Set("Location", ctx.urls.Space(made->customer, made->id));
    return res;
  });

  r.Add("GET", "/customers/{c}/spaces/{s}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto id = SpaceParam(req);
    if (!id) return Error(ctx, req, 404, "space not found");
    auto s = ctx.store.GetSpace(a.customer, *id);
    if (!s.ok()) return FromStatus(ctx, req, s.status());
    return Json(200, hydra::SpaceJson(ctx.urls, *s));
  });

  r.Add("PUT", "/customers/{c}/spaces/{s}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto id = SpaceParam(req);
    if (!id || *id == 0) return Error(ctx, req, 400, "space id must be a positive integer");
    auto body = ParseJsonObject(req);
    if (!body.ok()) return FromStatus(ctx, req, body.status());
    Space s;
    auto existing = ctx.store.GetSpace(a.customer, *id);
    if (existing.ok()) {
      s = *existing;
      // PUT replaces: properties absent from the body go back to their defaults.
      s.max_unauthorised = -1;
      s.default_tags.clear();
      s.default_roles.clear();
    }
    s.customer = a.customer;
    s.id = *id;
    if (std::string problem = ApplySpaceBody(*body, &s); !problem.empty())
      return Error(ctx, req, 400, problem);
    if (s.name.empty()) s.name = "space-" + std::to_string(*id);
    bool created = false;
    auto put = ctx.store.PutSpace(s, &created);
    if (!put.ok()) return FromStatus(ctx, req, put.status());
    http::Response res = Json(created ? 201 : 200, hydra::SpaceJson(ctx.urls, *put));
    if (created) res.Set("Location", ctx.urls.Space(put->customer, put->id));
    return res;
  });

  r.Add("PATCH", "/customers/{c}/spaces/{s}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto id = SpaceParam(req);
    if (!id) return Error(ctx, req, 404, "space not found");
    auto s = ctx.store.GetSpace(a.customer, *id);
    if (!s.ok()) return FromStatus(ctx, req, s.status());
    auto body = ParseJsonObject(req);
    if (!body.ok()) return FromStatus(ctx, req, body.status());
    if (std::string problem = ApplySpaceBody(*body, &*s); !problem.empty())
      return Error(ctx, req, 400, problem);
    bool created = false;
    auto put = ctx.store.PutSpace(*s, &created);
    if (!put.ok()) return FromStatus(ctx, req, put.status());
    return Json(200, hydra::SpaceJson(ctx.urls, *put));
  });

  r.Add("DELETE", "/customers/{c}/spaces/{s}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto id = SpaceParam(req);
    if (!id) return Error(ctx, req, 404, "space not found");
    Status st = ctx.store.DeleteSpace(a.customer, *id);
    if (!st.ok()) return FromStatus(ctx, req, st);
    return http::Response(204, "application/json", "");
  });
}

}  // namespace quire::api
