// /customers/{c}/defaultDeliveryChannels[/{id}] (customer-wide rules) and
// /customers/{c}/spaces/{s}/defaultDeliveryChannels[/{id}] (a space's rules):
// `{mediaType: "image/*", channel, policy}`. GET 200; POST 201; PUT 200; DELETE 204.
#include "api/default_channels.h"

#include "api/common.h"
#include "api/routes.h"
#include "core/secrets.h"

namespace quire::api {

std::string DefaultChannels::Apply(const json& input, Asset* asset, Status* store_error) {
  if (input.is_object() && input.contains("deliveryChannels") &&
      !input["deliveryChannels"].is_null())
    return "";
  if (!rules_) {
    auto listed = ctx_.store.ListDefaultChannels(customer_, std::nullopt);
    if (!listed.ok()) {
      *store_error = listed.status();
      return listed.status().message();
    }
    rules_ = std::move(*listed);
  }
  const std::string media_type = ChannelMediaType(*asset);  // a PDF image: the image/* rules
  auto channels = ResolveDefaultChannels(*rules_, asset->space, media_type);
  if (channels.empty()) return "";
  asset->delivery_channels = std::move(channels);
  return DeliveryChannelsProblem(asset->delivery_channels, media_type);
}

namespace {

std::string RulesUrl(const Context& ctx, int64_t c, int64_t space) {
  return (space ? ctx.urls.Space(c, space) : ctx.urls.Customer(c)) + "/defaultDeliveryChannels";
}

json RuleJson(const Context& ctx, const DefaultDeliveryChannel& r) {
  json j{{"@context", ctx.urls.Context("DefaultDeliveryChannel")},
         {"@id", RulesUrl(ctx, r.customer, r.space) + "/" + r.id},
         {"@type", "vocab:DefaultDeliveryChannel"},
         {"id", r.id},
         {"mediaType", r.media_type},
         {"channel", r.channel},
         {"policy", r.policy}};
  if (r.space) j["space"] = r.space;
  return j;
}

// Reads mediaType/channel/policy onto `r` and checks them (a thumbs policy must exist).
std::string ApplyRuleBody(Context& ctx, const json& body, DefaultDeliveryChannel* r,
                          Status* store_error) {
  for (auto [name, target] : {std::pair{"mediaType", &r->media_type},
                              std::pair{"channel", &r->channel}, std::pair{"policy", &r->policy}}) {
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) {
      if (std::string(name) != "policy") return std::string("'") + name + "' is required";
      r->policy.clear();
      continue;
    }
    if (!it->is_string()) return std::string("'") + name + "' must be a string";
    *target = it->get<std::string>();
  }
  if (!IsMediaTypePattern(r->media_type))
    return "'mediaType' must be a media type or a pattern such as \"image/*\" or \"*/*\"";
  // Checked as the channel of an image of that type would be ("image/x" stands for image/*).
  std::string probe = r->media_type;
  if (probe.back() == '*') probe = probe.substr(0, probe.size() - 1) + "x";
  if (probe == "*/x")
    probe = r->channel == "file" || r->channel == "none" ? "application/x" : "image/x";
  if (std::string p = DeliveryChannelsProblem({{r->channel, r->policy}}, probe); !p.empty())
    return p;
  if (r->channel == "thumbs" && !r->policy.empty() &&
      !IsBuiltInChannelPolicy("thumbs", r->policy)) {
    auto p = ctx.store.GetChannelPolicy(r->customer, "thumbs", r->policy);
    if (!p.ok()) {
      if (p.status().code() != Code::kNotFound) *store_error = p.status();
      return "thumbs policy '" + r->policy + "' does not exist";
    }
  }
  return "";
}

// {s} of a space-level URL (0 for the customer-level ones); nullopt when it is no space.
std::optional<int64_t> RuleSpace(Context& ctx, const http::Request& req, int64_t customer,
                                 std::optional<http::Response>* denied) {
  if (req.Param("s").empty()) return int64_t{0};
  return ExistingSpace(ctx, req, customer, denied);
}

}  // namespace

void RegisterDefaultChannels(http::Router& r, Context& ctx) {
  for (std::string base : {"/customers/{c}/defaultDeliveryChannels",
                           "/customers/{c}/spaces/{s}/defaultDeliveryChannels"}) {
    r.Add("GET", base, [&ctx](http::Request& req) {
      Access a = AuthorizeCustomer(ctx, req);
      if (a.denied) return *a.denied;
      std::optional<http::Response> denied;
      auto space = RuleSpace(ctx, req, a.customer, &denied);
      if (!space) return *denied;
      auto list = ctx.store.ListDefaultChannels(a.customer, *space);
      if (!list.ok()) return FromStatus(ctx, req, list.status());
      json members = json::array();
      for (const auto& rule : *list) members.push_back(RuleJson(ctx, rule));
      return WholeCollection(ctx, req, std::move(members));
    });
    auto write = [&ctx](http::Request& req, bool create) {
      Access a = AuthorizeCustomer(ctx, req);
      if (a.denied) return *a.denied;
      std::optional<http::Response> denied;
      auto space = RuleSpace(ctx, req, a.customer, &denied);
      if (!space) return *denied;
      DefaultDeliveryChannel rule;
      rule.customer = a.customer;
      rule.space = *space;
      if (create) {
        rule.id = NewUuid();
      } else {
        auto old = ctx.store.GetDefaultChannel(a.customer, req.Param("id"));
        if (!old.ok() || old->space != *space)
          return old.ok() || old.status().code() == Code::kNotFound
                     ? Error(ctx, req, 404, "default delivery channel not found")
                     : FromStatus(ctx, req, old.status());
        rule = *old;
      }
      auto body = ParseJsonObject(req);
      if (!body.ok()) return FromStatus(ctx, req, body.status());
      Status store_error;
      if (std::string p = ApplyRuleBody(ctx, *body, &rule, &store_error); !p.empty())
        return store_error.ok() ? Error(ctx, req, 400, p) : FromStatus(ctx, req, store_error);
      Status st = ctx.store.PutDefaultChannel(rule);
      if (!st.ok()) return FromStatus(ctx, req, st);
      http::Response res = Json(create ? 201 : 200, RuleJson(ctx, rule));
      if (create) res.Set("Location", RulesUrl(ctx, rule.customer, rule.space) + "/" + rule.id);
      return res;
    };
    r.Add("POST", base, [write](http::Request& req) { return write(req, true); });
    r.Add("PUT", base + "/{id}", [write](http::Request& req) { return write(req, false); });
    r.Add("GET", base + "/{id}", [&ctx](http::Request& req) {
      Access a = AuthorizeCustomer(ctx, req);
      if (a.denied) return *a.denied;
      std::optional<http::Response> denied;
      auto space = RuleSpace(ctx, req, a.customer, &denied);
      if (!space) return *denied;
      auto rule = ctx.store.GetDefaultChannel(a.customer, req.Param("id"));
      if (rule.ok() && rule->space != *space)
        return Error(ctx, req, 404, "default delivery channel not found");
      if (!rule.ok()) return FromStatus(ctx, req, rule.status());
      return Json(200, RuleJson(ctx, *rule));
    });
    r.Add("DELETE", base + "/{id}", [&ctx](http::Request& req) {
      Access a = AuthorizeCustomer(ctx, req);
      if (a.denied) return *a.denied;
      std::optional<http::Response> denied;
      auto space = RuleSpace(ctx, req, a.customer, &denied);
      if (!space) return *denied;
      auto rule = ctx.store.GetDefaultChannel(a.customer, req.Param("id"));
      if (!rule.ok() || rule->space != *space)
        return rule.ok() || rule.status().code() == Code::kNotFound
                   ? Error(ctx, req, 404, "default delivery channel not found")
                   : FromStatus(ctx, req, rule.status());
      Status st = ctx.store.DeleteDefaultChannel(a.customer, rule->id);
      if (!st.ok()) return FromStatus(ctx, req, st);
      return http::Response(204, "application/json", "");
    });
  }
}

}  // namespace quire::api
