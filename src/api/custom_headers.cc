// Custom headers (DLCS CustomHeader): /customers/{c}/customHeaders[/{id}] —
// `{key, value, space?}` added to the delivery responses (image, info.json, thumbnails, file)
// of the customer's images, of one space or (no space) of all. Validated against the safe
// list of model/custom_header.h. GET 200; POST 201; PUT 200; DELETE 204.
#include "api/common.h"
#include "api/routes.h"
#include "core/secrets.h"

namespace quire::api {

namespace {

std::string HeadersUrl(const Context& ctx, int64_t c) {
  return ctx.urls.Customer(c) + "/customHeaders";
}

json HeaderJson(const Context& ctx, const CustomHeader& h) {
  json j{{"@context", ctx.urls.Context("CustomHeader")},
         {"@id", HeadersUrl(ctx, h.customer) + "/" + h.id},
         {"@type", "vocab:CustomHeader"},
         {"id", h.id},
         {"key", h.key},
         {"value", h.value}};
  if (h.space) j["space"] = h.space;
  return j;
}

std::string ApplyBody(Context& ctx, const json& body, CustomHeader* h, Status* store_error) {
  for (auto [name, target] : {std::pair{"key", &h->key}, std::pair{"value", &h->value}}) {
    auto it = body.find(name);
    if (it == body.end() || !it->is_string())
      return std::string("'") + name + "' (a string) is required";
    *target = it->get<std::string>();
  }
  if (std::string p = CustomHeaderProblem(h->key, h->value); !p.empty()) return p;
  h->space = 0;
  if (auto it = body.find("space"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0) return "'space' must be a space id";
    h->space = it->get<int64_t>();
    if (h->space != 0) {
      auto found = ctx.store.GetSpace(h->customer, h->space);
      if (!found.ok()) {
        if (found.status().code() != Code::kNotFound) *store_error = found.status();
        return "space " + std::to_string(h->space) + " does not exist";
      }
    }
  }
  return "";
}

Result<CustomHeader> Find(Context& ctx, int64_t customer, const std::string& id) {
  auto list = ctx.store.ListCustomHeaders(customer);
  if (!list.ok()) return list.status();
  for (const CustomHeader& h : *list)
    if (h.id == id) return h;
  return Status::NotFound("custom header not found");
}

}  // namespace

void RegisterCustomHeaders(http::Router& r, Context& ctx) {
  r.Add("GET", "/customers/{c}/customHeaders", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto list = ctx.store.ListCustomHeaders(a.customer);
    if (!list.ok()) return FromStatus(ctx, req, list.status());
    json members = json::array();
    for (const auto& h : *list) members.push_back(HeaderJson(ctx, h));
    return WholeCollection(ctx, req, std::move(members));
  });
  auto write = [&ctx](http::Request& req, bool create) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    CustomHeader h;
    if (create) {
      h.customer = a.customer;
      h.id = NewUuid();
    } else {
      auto old = Find(ctx, a.customer, req.Param("id"));
      if (!old.ok()) return FromStatus(ctx, req, old.status());
      h = *old;
    }
    auto body = ParseJsonObject(req);
    if (!body.ok()) return FromStatus(ctx, req, body.status());
    Status store_error;
    if (std::string p = ApplyBody(ctx, *body, &h, &store_error); !p.empty())
      return store_error.ok() ? Error(ctx, req, 400, p) : FromStatus(ctx, req, store_error);
    Status st = ctx.store.PutCustomHeader(h);
    if (!st.ok()) return FromStatus(ctx, req, st);
    http::Response res = Json(create ? 201 : 200, HeaderJson(ctx, h));
    if (create) res.Set("Location", HeadersUrl(ctx, h.customer) + "/" + h.id);
    return res;
  };
  r.Add("POST", "/customers/{c}/customHeaders",
        [write](http::Request& req) { return write(req, true); });
  r.Add("PUT", "/customers/{c}/customHeaders/{id}",
        [write](http::Request& req) { return write(req, false); });
  r.Add("GET", "/customers/{c}/customHeaders/{id}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto h = Find(ctx, a.customer, req.Param("id"));
    if (!h.ok()) return FromStatus(ctx, req, h.status());
    return Json(200, HeaderJson(ctx, *h));
  });
  r.Add("DELETE", "/customers/{c}/customHeaders/{id}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    Status st = ctx.store.DeleteCustomHeader(a.customer, req.Param("id"));
    if (!st.ok()) return FromStatus(ctx, req, st);
    return http::Response(204, "application/json", "");
  });
}

}  // namespace quire::api
