// Customers and their keys: /customers, /customers/{c}, /customers/{c}/keys[/{key}].
#include "api/common.h"
#include "api/routes.h"
#include "core/secrets.h"
#include "core/time_util.h"

namespace quire::api {

static std::string StringField(const json& body, const char* name, std::string* problem) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return "";
  if (!it->is_string()) {
    *problem = std::string("'") + name + "' must be a string";
    return "";
  }
  return it->get<std::string>();
}

void RegisterCustomers(http::Router& r, Context& ctx) {
  r.Add("GET", "/customers", [&ctx](http::Request& req) {
    Access a = AuthorizeAdmin(ctx, req);
    if (a.denied) return *a.denied;
    PageRequest page = ParsePageRequest(req.Query("page"), req.Query("pageSize"));
    auto list = ctx.store.ListCustomers(page);
    return CollectionResponse(ctx, req, page, list, hydra::CustomerJson);
  });

  r.Add("POST", "/customers", [&ctx](http::Request& req) {
    Access a = AuthorizeAdmin(ctx, req);
    if (a.denied) return *a.denied;
    auto body = ParseJsonObject(req);
    if (!body.ok()) return FromStatus(ctx, req, body.status());
    std::string problem;
    Customer c;
    c.name = StringField(*body, "name", &problem);
    c.display_name = StringField(*body, "displayName", &problem);
    if (!problem.empty()) return Error(ctx, req, 400, problem);
    if (c.name.empty()) return Error(ctx, req, 400, "'name' is required");
    if (!IsValidCustomerName(c.name))
      return Error(ctx, req, 400,
                   "'name' must be 1-100 characters of letters, digits, '.', '_' and '-'");
    if (c.display_name.empty()) c.display_name = c.name;
    if (c.display_name.size() > 1000)
      return Error(ctx, req, 400, "'displayName' must be at most 1000 characters");
    auto made = ctx.store.CreateCustomer(c);
    if (!made.ok()) return FromStatus(ctx, req, made.status());
    http::Response res = Json(201, hydra::CustomerJson(ctx.urls, *made));
    res.Set("Location", ctx.urls.Customer(made->id));
    return res;
  });

  r.Add("GET", "/customers/{c}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto c = ctx.store.GetCustomer(a.customer);
    if (!c.ok()) return FromStatus(ctx, req, c.status());
    return Json(200, hydra::CustomerJson(ctx.urls, *c));
  });

  r.Add("PATCH", "/customers/{c}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto body = ParseJsonObject(req);
    if (!body.ok()) return FromStatus(ctx, req, body.status());
    if (body->contains("name"))
      return Error(ctx, req, 400, "a customer's 'name' cannot be changed");
    std::string problem;
    std::string display = StringField(*body, "displayName", &problem);
    if (!problem.empty()) return Error(ctx, req, 400, problem);
    auto c = ctx.store.GetCustomer(a.customer);
    if (!c.ok()) return FromStatus(ctx, req, c.status());
    if (!display.empty()) c->display_name = display;
    auto updated = ctx.store.UpdateCustomer(*c);
    if (!updated.ok()) return FromStatus(ctx, req, updated.status());
    return Json(200, hydra::CustomerJson(ctx.urls, *updated));
  });

  r.Add("GET", "/customers/{c}/keys", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    PageRequest page = ParsePageRequest(req.Query("page"), req.Query("pageSize"));
    auto list = ctx.store.ListKeys(a.customer, page);
    return CollectionResponse(ctx, req, page, list, hydra::KeyJson);
  });

  r.Add("POST", "/customers/{c}/keys", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    ApiKey k;
    k.key = NewUuid();
    std::string secret = RandomHex(24);  // 192 bits
    k.customer = a.customer;
    k.salt = RandomHex(16);
    k.secret_hash = HashSecret(k.salt, secret);
    k.created_ms = NowMs();
    Status st = ctx.store.CreateKey(k);
    if (!st.ok()) return FromStatus(ctx, req, st);
    json body = hydra::KeyJson(ctx.urls, k);
    body["secret"] = secret;  // shown once, never stored in clear
    http::Response res = Json(201, body);
    res.Set("Location", ctx.urls.Key(k.customer, k.key));
    return res;
  });

  r.Add("GET", "/customers/{c}/keys/{key}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto k = ctx.store.GetKey(req.Param("key"));
    if (!k.ok() || k->customer != a.customer) return Error(ctx, req, 404, "key not found");
    return Json(200, hydra::KeyJson(ctx.urls, *k));
  });

  r.Add("DELETE", "/customers/{c}/keys/{key}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    Status st = ctx.store.DeleteKey(a.customer, req.Param("key"));
    if (!st.ok()) return FromStatus(ctx, req, st);
    ctx.keys->Erase(req.Param("key"));
    return http::Response(204, "application/json", "");
  });
}

}  // namespace quire::api
