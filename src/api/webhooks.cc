// Webhooks: /customers/{c}/webhooks, /{w} and /{w}/deliveries (spec/platform.md §3). The
// deliveries themselves are written by the store with the outcomes that cause them and sent
// by events/webhook_sender.
#include <boost/url/parse.hpp>

#include "api/common.h"
#include "api/routes.h"
#include "core/address_guard.h"
#include "core/secrets.h"

namespace quire::api {

namespace {

constexpr size_t kMaxUrl = 2000;

// Checks a receiver URL: absolute http(s) with a host that passes the address guard (unless
// private origins are allowed). Empty string when acceptable.
std::string UrlProblem(const Context& ctx, const std::string& url) {
  if (url.empty() || url.size() > kMaxUrl) return "'url' must be an absolute http(s) URL";
  auto parsed = boost::urls::parse_absolute_uri(url);
  if (!parsed) return "'url' must be an absolute http(s) URL";
  std::string scheme(parsed->scheme());
  for (auto& ch : scheme) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (scheme != "http" && scheme != "https") return "'url' must use http or https";
  std::string host(parsed->encoded_host());
  if (host.empty()) return "'url' has no host";
  if (parsed->has_userinfo()) return "'url' must not carry credentials";
  if (!ctx.config.allow_private_origins) {
    Status st = CheckUrlHost(host);
    if (!st.ok()) return "'url' is not allowed: " + st.message();
  }
  return "";
}

// Applies url/events/secret from `body` onto `w`; `creating` requires url and events.
std::string ApplyWebhookBody(const Context& ctx, const json& body, bool creating, Webhook* w) {
  for (auto it = body.begin(); it != body.end(); ++it) {
    const std::string& k = it.key();
    if (k != "url" && k != "events" && k != "secret" && k != "@context" && k != "@type" &&
        k != "@id" && k != "id" && k != "created" && k != "deliveries")
      return "unknown property '" + k + "'";
  }
  if (auto it = body.find("url"); it != body.end()) {
    if (!it->is_string()) return "'url' must be a string";
    std::string problem = UrlProblem(ctx, it->get<std::string>());
    if (!problem.empty()) return problem;
    w->url = it->get<std::string>();
  } else if (creating) {
    return "'url' is required";
  }
  if (auto it = body.find("events"); it != body.end()) {
    if (!it->is_array() || it->empty()) return "'events' must be a non-empty array of names";
    std::vector<std::string> names;
    for (auto& v : *it) {
      if (!v.is_string() || !IsWebhookEventName(v.get<std::string>()))
        return "'events' may hold only \"batch.finished\", \"image.failed\" and "
               "\"image.completed\"";
      if (std::find(names.begin(), names.end(), v.get<std::string>()) == names.end())
        names.push_back(v.get<std::string>());
    }
    w->events = std::move(names);
  } else if (creating) {
    return "'events' is required";
  }
  if (auto it = body.find("secret"); it != body.end() && !it->is_null()) {
    if (!it->is_string() || it->get<std::string>().size() < 16 ||
        it->get<std::string>().size() > 200)
      return "'secret' must be a string of 16-200 characters";
    w->secret = it->get<std::string>();
  }
  return "";
}

// Checking a receiver's host may wait on DNS: off the I/O threads.
const http::RouteOptions kResolves{.offload = true};

std::optional<int64_t> WebhookParam(const http::Request& req) { return ParseId(req.Param("w")); }

}  // namespace

void RegisterWebhooks(http::Router& r, Context& ctx) {
  r.Add("GET", "/customers/{c}/webhooks", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    PageRequest page = ParsePageRequest(req.Query("page"), req.Query("pageSize"));
    auto list = ctx.store.ListWebhooks(a.customer, page);
    return CollectionResponse(ctx, req, page, list, hydra::WebhookJson);
  });

  r.Add(
      "POST", "/customers/{c}/webhooks",
      [&ctx](http::Request& req) {
        Access a = AuthorizeCustomer(ctx, req);
        if (a.denied) return *a.denied;
        auto body = ParseJsonObject(req);
        if (!body.ok()) return Error(ctx, req, 400, body.status().message());
        Webhook w;
        w.customer = a.customer;
        if (std::string problem = ApplyWebhookBody(ctx, *body, true, &w); !problem.empty())
          return Error(ctx, req, 400, problem);
        if (w.secret.empty()) w.secret = RandomHex(32);
        auto made = ctx.store.CreateWebhook(w);
        if (!made.ok()) return FromStatus(ctx, req, made.status());
        json out = hydra::WebhookJson(ctx.urls, *made);
        out["secret"] = made->secret;  // shown this once
        http::Response res = Json(201, out);
        res.Set("Location", ctx.urls.Webhook(a.customer, made->id));
        return res;
      },
      kResolves);

  r.Add("GET", "/customers/{c}/webhooks/{w}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto id = WebhookParam(req);
    if (!id) return Error(ctx, req, 404, "webhook not found");
    auto w = ctx.store.GetWebhook(a.customer, *id);
    if (!w.ok()) return FromStatus(ctx, req, w.status());
    return Json(200, hydra::WebhookJson(ctx.urls, *w));
  });

  r.Add(
      "PATCH", "/customers/{c}/webhooks/{w}",
      [&ctx](http::Request& req) {
        Access a = AuthorizeCustomer(ctx, req);
        if (a.denied) return *a.denied;
        auto id = WebhookParam(req);
        if (!id) return Error(ctx, req, 404, "webhook not found");
        auto w = ctx.store.GetWebhook(a.customer, *id);
        if (!w.ok()) return FromStatus(ctx, req, w.status());
        auto body = ParseJsonObject(req);
        if (!body.ok()) return Error(ctx, req, 400, body.status().message());
        if (std::string problem = ApplyWebhookBody(ctx, *body, false, &*w); !problem.empty())
          return Error(ctx, req, 400, problem);
        auto updated = ctx.store.UpdateWebhook(*w);
        if (!updated.ok()) return FromStatus(ctx, req, updated.status());
        return Json(200, hydra::WebhookJson(ctx.urls, *updated));
      },
      kResolves);

  r.Add("DELETE", "/customers/{c}/webhooks/{w}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto id = WebhookParam(req);
    if (!id) return Error(ctx, req, 404, "webhook not found");
    Status st = ctx.store.DeleteWebhook(a.customer, *id);
    if (!st.ok()) return FromStatus(ctx, req, st);
    http::Response res;
    res.status = 204;
    return res;
  });

  r.Add("GET", "/customers/{c}/webhooks/{w}/deliveries", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto id = WebhookParam(req);
    if (!id) return Error(ctx, req, 404, "webhook not found");
    PageRequest page = ParsePageRequest(req.Query("page"), req.Query("pageSize"));
    auto list = ctx.store.ListDeliveries(a.customer, *id, page);
    if (!list.ok()) return FromStatus(ctx, req, list.status());
    json members = json::array();
    for (const WebhookDelivery& d : list->items) {
      auto attempts = ctx.store.ListDeliveryAttempts(d.id);
      if (!attempts.ok()) return FromStatus(ctx, req, attempts.status());
      members.push_back(hydra::DeliveryJson(ctx.urls, d, *attempts));
    }
    return Json(200,
                hydra::Collection(RequestUrl(ctx, req), page, list->total, std::move(members)));
  });
}

}  // namespace quire::api
