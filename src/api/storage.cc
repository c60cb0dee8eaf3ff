// Storage policies and usage (DLCS StoragePolicy, CustomerStorage, ImageStorage):
// /storagePolicies[/{id}] (read by any key, written by the administrator),
// /customers/{c}/storage (its policy set by the administrator), /customers/{c}/spaces/{s}/storage
// and /customers/{c}/spaces/{s}/images/{id}/storage. The figures are exact at every moment
// (the store keeps them in the transactions that change them), so `lastCalculated` is now.
#include <cctype>

#include "api/common.h"
#include "api/routes.h"
#include "core/time_util.h"

namespace quire::api {

namespace {

std::string PoliciesUrl(const Context& ctx) { return ctx.urls.base() + "/storagePolicies"; }
std::string PolicyUrl(const Context& ctx, const std::string& id) {
  return PoliciesUrl(ctx) + "/" + id;
}

json PolicyJson(const Context& ctx, const StoragePolicy& p) {
  return json{{"@context", ctx.urls.Context("StoragePolicy")},
              {"@id", PolicyUrl(ctx, p.id)},
              {"@type", "vocab:StoragePolicy"},
              {"id", p.id},
              {"maximumNumberOfStoredImages", p.max_images},
              {"maximumTotalSizeOfStoredImages", p.max_bytes}};
}

json UsageJson(const Context& ctx, const StorageUsage& u) {
  std::string id = u.space ? ctx.urls.Space(u.customer, u.space) + "/storage"
                           : ctx.urls.Customer(u.customer) + "/storage";
  json j{{"@context", ctx.urls.Context("CustomerStorage")},
         {"@id", id},
         {"@type", "vocab:CustomerStorage"},
         {"customer", ctx.urls.Customer(u.customer)},
         {"storagePolicy", PolicyUrl(ctx, u.policy)},
         {"numberOfStoredImages", u.images},
         {"totalSizeOfStoredImages", u.bytes},
         {"totalSizeOfThumbnails", u.thumbnail_bytes},
         {"lastCalculated", FormatIso8601(NowMs())}};
  if (u.space) j["space"] = ctx.urls.Space(u.customer, u.space);
  return j;
}

bool IsPolicyId(const std::string& id) {
  if (id.empty() || id.size() > 100) return false;
  for (unsigned char ch : id)
    if (!std::isalnum(ch) && ch != '.' && ch != '_' && ch != '-') return false;
  return true;
}

// A policy named by id or by its URL.
std::string PolicyIdFrom(const Context& ctx, const std::string& value) {
  std::string prefix = PoliciesUrl(ctx) + "/";
  if (value.rfind(prefix, 0) == 0) return value.substr(prefix.size());
  return value;
}

}  // namespace

void RegisterStorage(http::Router& r, Context& ctx) {
  r.Add("GET", "/storagePolicies", [&ctx](http::Request& req) {
    auto caller = Authenticate(ctx, req);
    if (!caller.ok()) return FromStatus(ctx, req, caller.status());
    PageRequest page = ParsePageRequest(req.Query("page"), req.Query("pageSize"));
    auto list = ctx.store.ListStoragePolicies(page);
    return CollectionResponse(
        ctx, req, page, list,
        [&ctx](const hydra::Urls&, const StoragePolicy& p) { return PolicyJson(ctx, p); });
  });

  r.Add("GET", "/storagePolicies/{id}", [&ctx](http::Request& req) {
    auto caller = Authenticate(ctx, req);
    if (!caller.ok()) return FromStatus(ctx, req, caller.status());
    auto p = ctx.store.GetStoragePolicy(req.Param("id"));
    if (!p.ok()) return FromStatus(ctx, req, p.status());
    return Json(200, PolicyJson(ctx, *p));
  });

  r.Add("PUT", "/storagePolicies/{id}", [&ctx](http::Request& req) {
    Access a = AuthorizeAdmin(ctx, req);
    if (a.denied) return *a.denied;
    StoragePolicy p;
    p.id = req.Param("id");
    if (!IsPolicyId(p.id))
      return Error(ctx, req, 400, "a storage policy id is 1-100 of [A-Za-z0-9._-]");
    auto body = ParseJsonObject(req);
    if (!body.ok()) return FromStatus(ctx, req, body.status());
    std::vector<std::string> problems;
    for (auto [field, target] : {std::pair{"maximumNumberOfStoredImages", &p.max_images},
                                 std::pair{"maximumTotalSizeOfStoredImages", &p.max_bytes}}) {
      auto it = body->find(field);
      if (it == body->end() || !it->is_number_integer() || it->get<int64_t>() < 0)
        problems.push_back(std::string("'") + field + "' must be an integer of 0 or more");
      else
        *target = it->get<int64_t>();
    }
    if (!problems.empty()) {
      std::string joined;
      for (auto& m : problems) joined += (joined.empty() ? "" : ". ") + m;
      return Error(ctx, req, 400, joined);
    }
    bool created = false;
    auto put = ctx.store.PutStoragePolicy(p, &created);
    if (!put.ok()) return FromStatus(ctx, req, put.status());
    http::Response res = Json(created ? 201 : 200, PolicyJson(ctx, *put));
    if (created) res.Set("Location", PolicyUrl(ctx, p.id));
    return res;
  });

  r.Add("DELETE", "/storagePolicies/{id}", [&ctx](http::Request& req) {
    Access a = AuthorizeAdmin(ctx, req);
    if (a.denied) return *a.denied;
    Status st = ctx.store.DeleteStoragePolicy(req.Param("id"));
    if (!st.ok()) return FromStatus(ctx, req, st);
    return http::Response(204, "application/json", "");
  });

  r.Add("GET", "/customers/{c}/storage", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto u = ctx.store.GetStorageUsage(a.customer, std::nullopt);
    if (!u.ok()) return FromStatus(ctx, req, u.status());
    return Json(200, UsageJson(ctx, *u));
  });

  // Only the administrator sets a customer's policy (a customer cannot lift its own quota).
  auto set_policy = [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    if (!a.caller.admin)
      return Error(ctx, req, 403, "only the administrator may change a storage policy");
    auto body = ParseJsonObject(req);
    if (!body.ok()) return FromStatus(ctx, req, body.status());
    auto it = body->find("storagePolicy");
    if (it == body->end() || !it->is_string())
      return Error(ctx, req, 400, "'storagePolicy' (an id or a storage policy URL) is required");
    Status st =
        ctx.store.SetCustomerStoragePolicy(a.customer, PolicyIdFrom(ctx, it->get<std::string>()));
    if (!st.ok()) return FromStatus(ctx, req, st);
    auto u = ctx.store.GetStorageUsage(a.customer, std::nullopt);
    if (!u.ok()) return FromStatus(ctx, req, u.status());
    return Json(200, UsageJson(ctx, *u));
  };
  r.Add("PUT", "/customers/{c}/storage", set_policy);
  r.Add("PATCH", "/customers/{c}/storage", set_policy);

  r.Add("GET", "/customers/{c}/spaces/{s}/storage", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto space = ParseId(req.Param("s"));
    if (!space) return Error(ctx, req, 404, "space not found");
    auto u = ctx.store.GetStorageUsage(a.customer, *space);
    if (!u.ok()) return FromStatus(ctx, req, u.status());
    return Json(200, UsageJson(ctx, *u));
  });

  r.Add("GET", "/customers/{c}/spaces/{s}/images/{id}/storage", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto space = ParseId(req.Param("s"));
    if (!space) return Error(ctx, req, 404, "image not found");
    auto asset = ctx.store.GetAsset(a.customer, *space, req.Param("id"));
    if (!asset.ok()) return FromStatus(ctx, req, asset.status());
    auto s = ctx.store.GetImageStorage(a.customer, *space, asset->id);
    if (!s.ok()) return FromStatus(ctx, req, s.status());
    json j{{"@context", ctx.urls.Context("ImageStorage")},
           {"@id", ctx.urls.Image(a.customer, *space, asset->id) + "/storage"},
           {"@type", "vocab:ImageStorage"},
           {"id", asset->id},
           {"space", *space},
           {"image", ctx.urls.Image(a.customer, *space, asset->id)},
           {"size", s->bytes},
           {"thumbnailSize", s->thumbnail_bytes},
           {"checkingInProgress", asset->ingesting}};
    if (asset->finished_ms) j["lastChecked"] = FormatIso8601(*asset->finished_ms);
    return Json(200, j);
  });
}

}  // namespace quire::api
