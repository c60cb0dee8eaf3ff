// Delivery channel policies (DLCS): /customers/{c}/deliveryChannelPolicies (one entry per
// channel), …/{channel} (its policies: the built-in ones and the customer's own; POST creates
// a thumbs policy) and …/{channel}/{name} (GET, PUT, PATCH, DELETE). A thumbs policy's
// policyData is a JSON list of IIIF sizes ("!n,n"); ingest makes exactly those thumbnails and
// /thumbs info.json lists them.
#include "api/common.h"
#include "api/routes.h"
#include "core/time_util.h"

namespace quire::api {

namespace {

const std::vector<std::string> kChannels = {"iiif-img", "iiif-av", "thumbs", "file"};

bool IsChannel(const std::string& c) {
  return std::find(kChannels.begin(), kChannels.end(), c) != kChannels.end();
}

std::string PoliciesUrl(const Context& ctx, int64_t c) {
  return ctx.urls.Customer(c) + "/deliveryChannelPolicies";
}

json ChannelPolicyJson(const Context& ctx, int64_t customer, const DeliveryChannelPolicy& p) {
  json j{{"@context", ctx.urls.Context("DeliveryChannelPolicy")},
         {"@id", PoliciesUrl(ctx, customer) + "/" + p.channel + "/" + p.name},
         {"@type", "vocab:DeliveryChannelPolicy"},
         {"name", p.name},
         {"displayName", p.display_name},
         {"channel", p.channel},
         {"policyData", p.policy_data},
         {"builtIn", p.customer == 0}};
  if (p.created_ms) j["policyCreated"] = FormatIso8601(p.created_ms);
  if (p.modified_ms) j["policyModified"] = FormatIso8601(p.modified_ms);
  return j;
}

// Every policy of `channel` the customer can name: built-in first, then its own.
Result<std::vector<DeliveryChannelPolicy>> PoliciesOf(Context& ctx, int64_t customer,
                                                      const std::string& channel) {
  std::vector<DeliveryChannelPolicy> out;
  for (const auto& p : BuiltInChannelPolicies())
    if (p.channel == channel) out.push_back(p);
  auto own = ctx.store.ListChannelPolicies(customer, channel);
  if (!own.ok()) return own.status();
  out.insert(out.end(), own->begin(), own->end());
  return out;
}

// Reads displayName and policyData onto `p` (creating: policyData required).
std::string ApplyBody(const json& body, bool creating, DeliveryChannelPolicy* p) {
  if (auto it = body.find("displayName"); it != body.end() && !it->is_null()) {
    if (!it->is_string() || it->get<std::string>().size() > 500)
      return "'displayName' must be a string of at most 500 characters";
    p->display_name = it->get<std::string>();
  }
  if (auto it = body.find("policyData"); it != body.end() && !it->is_null()) {
    // DLCS carries policyData as a string of JSON; a JSON array is taken too.
    std::string data = it->is_string() ? it->get<std::string>() : it->dump();
    std::vector<int> boxes;
    if (std::string problem = ParseThumbSizes(data, &boxes); !problem.empty()) return problem;
    json normal = json::array();
    for (int b : boxes) normal.push_back("!" + std::to_string(b) + "," + std::to_string(b));
    p->policy_data = normal.dump();
  } else if (creating) {
    return "'policyData' is required";
  }
  return "";
}

http::Response Write(Context& ctx, http::Request& req, int64_t customer, const std::string& channel,
                     const std::string& name, const json& body, bool creating) {
  if (channel != "thumbs")
    return Error(ctx, req, 400,
                 "the policies of channel '" + channel +
                     "' are built in; only thumbs policies "
                     "can be created");
  if (!IsChannelPolicyName(name))
    return Error(ctx, req, 400, "a policy 'name' is 1-100 of [A-Za-z0-9._-]");
  if (IsBuiltInChannelPolicy(channel, name))
    return Error(ctx, req, 409, "'" + name + "' is a built-in policy and cannot be changed");
  DeliveryChannelPolicy p;
  p.customer = customer;
  p.channel = channel;
  p.name = name;
  auto old = ctx.store.GetChannelPolicy(customer, channel, name);
  if (old.ok()) {
    if (creating && req.method == "POST")
      return Error(ctx, req, 409, "a thumbs policy named '" + name + "' exists");
    p = *old;
  } else if (old.status().code() != Code::kNotFound) {
    return FromStatus(ctx, req, old.status());
  }
  if (std::string problem = ApplyBody(body, !old.ok() || creating, &p); !problem.empty())
    return Error(ctx, req, 400, problem);
  bool created = false;
  auto put = ctx.store.PutChannelPolicy(p, &created);
  if (!put.ok()) return FromStatus(ctx, req, put.status());
  http::Response res = Json(created ? 201 : 200, ChannelPolicyJson(ctx, customer, *put));
  if (created) res.Set("Location", PoliciesUrl(ctx, customer) + "/" + channel + "/" + name);
  return res;
}

}  // namespace

void RegisterChannelPolicies(http::Router& r, Context& ctx) {
  r.Add("GET", "/customers/{c}/deliveryChannelPolicies", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    json members = json::array();
    for (const std::string& channel : kChannels) {
      auto list = PoliciesOf(ctx, a.customer, channel);
      if (!list.ok()) return FromStatus(ctx, req, list.status());
      members.push_back(json{{"@id", PoliciesUrl(ctx, a.customer) + "/" + channel},
                             {"@type", "Collection"},
                             {"title", channel},
                             {"totalItems", list->size()}});
    }
    return Json(200, hydra::Collection(RequestUrl(ctx, req), PageRequest{1, kDefaultPageSize},
                                       static_cast<int64_t>(members.size()), members));
  });

  r.Add("GET", "/customers/{c}/deliveryChannelPolicies/{channel}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    const std::string& channel = req.Param("channel");
    if (!IsChannel(channel)) return Error(ctx, req, 404, "no delivery channel '" + channel + "'");
    auto list = PoliciesOf(ctx, a.customer, channel);
    if (!list.ok()) return FromStatus(ctx, req, list.status());
    json members = json::array();
    for (const auto& p : *list) members.push_back(ChannelPolicyJson(ctx, a.customer, p));
    return WholeCollection(ctx, req, std::move(members));
  });

  r.Add("POST", "/customers/{c}/deliveryChannelPolicies/{channel}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    if (!IsChannel(req.Param("channel")))
      return Error(ctx, req, 404, "no delivery channel '" + req.Param("channel") + "'");
    auto body = ParseJsonObject(req);
    if (!body.ok()) return FromStatus(ctx, req, body.status());
    auto name = body->find("name");
    if (name == body->end() || !name->is_string())
      return Error(ctx, req, 400, "'name' is required");
    return Write(ctx, req, a.customer, req.Param("channel"), name->get<std::string>(), *body, true);
  });

  r.Add("GET", "/customers/{c}/deliveryChannelPolicies/{channel}/{name}",
        [&ctx](http::Request& req) {
          Access a = AuthorizeCustomer(ctx, req);
          if (a.denied) return *a.denied;
          const std::string &channel = req.Param("channel"), &name = req.Param("name");
          for (const auto& p : BuiltInChannelPolicies())
            if (p.channel == channel && p.name == name)
              return Json(200, ChannelPolicyJson(ctx, a.customer, p));
          auto p = ctx.store.GetChannelPolicy(a.customer, channel, name);
          if (!p.ok()) return FromStatus(ctx, req, p.status());
          return Json(200, ChannelPolicyJson(ctx, a.customer, *p));
        });

  for (const char* method : {"PUT", "PATCH"}) {
    bool replace = std::string(method) == "PUT";
    r.Add(method, "/customers/{c}/deliveryChannelPolicies/{channel}/{name}",
          [&ctx, replace](http::Request& req) {
            Access a = AuthorizeCustomer(ctx, req);
            if (a.denied) return *a.denied;
            if (!IsChannel(req.Param("channel")))
              return Error(ctx, req, 404, "no delivery channel '" + req.Param("channel") + "'");
            auto body = ParseJsonObject(req);
            if (!body.ok()) return FromStatus(ctx, req, body.status());
            if (!replace &&
                !ctx.store.GetChannelPolicy(a.customer, req.Param("channel"), req.Param("name"))
                     .ok() &&
                !IsBuiltInChannelPolicy(req.Param("channel"), req.Param("name")))
              return Error(ctx, req, 404, "delivery channel policy not found");
            return Write(ctx, req, a.customer, req.Param("channel"), req.Param("name"), *body,
                         replace);
          });
  }

  r.Add("DELETE", "/customers/{c}/deliveryChannelPolicies/{channel}/{name}",
        [&ctx](http::Request& req) {
          Access a = AuthorizeCustomer(ctx, req);
          if (a.denied) return *a.denied;
          if (IsBuiltInChannelPolicy(req.Param("channel"), req.Param("name")))
            return Error(ctx, req, 409, "a built-in policy cannot be deleted");
          Status st =
              ctx.store.DeleteChannelPolicy(a.customer, req.Param("channel"), req.Param("name"));
          if (!st.ok()) return FromStatus(ctx, req, st);
          return http::Response(204, "application/json", "");
        });
}

}  // namespace quire::api
