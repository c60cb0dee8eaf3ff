// Origin strategies (DLCS CustomerOriginStrategy): /customers/{c}/originStrategies[/{id}].
// A strategy says how ingest fetches the origins its regex matches: `default` (a plain
// fetch), `basic-http-authentication` (HTTP Basic with stored credentials) or `s3-ambient`
// (s3:// origins read with the server's own S3 credentials). Credentials are write-only:
// sealed with the --secrets-key-file key before they reach the store, shown as "xxx".
#include "api/common.h"
#include "api/routes.h"
#include "core/secrets.h"

namespace quire::api {

namespace {

constexpr const char* kHidden = "xxx";
constexpr size_t kMaxCredentials = 4096;

std::string StrategiesUrl(const Context& ctx, int64_t c) {
  return ctx.urls.Customer(c) + "/originStrategies";
}

json StrategyJson(const Context& ctx, const OriginStrategy& s) {
  json j{{"@context", ctx.urls.Context("CustomerOriginStrategy")},
         {"@id", StrategiesUrl(ctx, s.customer) + "/" + s.id},
         {"@type", "vocab:CustomerOriginStrategy"},
         {"id", s.id},
         {"regex", s.regex},
         {"strategy", s.strategy},
         {"optimised", s.optimised},
         {"order", s.order}};
  if (!s.sealed_credentials.empty()) j["credentials"] = kHidden;
  return j;
}

// Applies `body` onto `s` (creating: regex and strategy required). Returns the problems.
std::vector<std::string> ApplyStrategyBody(const Context& ctx, const json& body, bool creating,
                                           OriginStrategy* s) {
  std::vector<std::string> problems;
  if (auto it = body.find("regex"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) {
      problems.push_back("'regex' must be a string");
    } else if (std::string p = OriginRegexProblem(it->get<std::string>()); !p.empty()) {
      problems.push_back(p);
    } else {
      s->regex = it->get<std::string>();
    }
  } else if (creating) {
    problems.push_back("'regex' is required");
  }
  if (auto it = body.find("strategy"); it != body.end() && !it->is_null()) {
    if (!it->is_string() || !IsOriginStrategyName(it->get<std::string>()))
      problems.push_back(
          "'strategy' must be \"default\", \"basic-http-authentication\" or \"s3-ambient\"");
    else
      s->strategy = it->get<std::string>();
  } else if (creating) {
    problems.push_back("'strategy' is required");
  }
  if (auto it = body.find("order"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer())
      problems.push_back("'order' must be an integer");
    else
      s->order = it->get<int64_t>();
  }
  if (auto it = body.find("optimised"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean())
      problems.push_back("'optimised' must be true or false");
    else
      s->optimised = it->get<bool>();
  }
  if (auto it = body.find("credentials"); it != body.end() && !it->is_null() &&
                                          !(it->is_string() && it->get<std::string>() == kHidden)) {
    // DLCS sends {"user","password"} as a JSON string; an object is taken too.
    json creds = *it;
    if (creds.is_string()) creds = json::parse(creds.get<std::string>(), nullptr, false);
    if (!creds.is_object() || !creds.contains("user") || !creds["user"].is_string() ||
        !creds.contains("password") || !creds["password"].is_string()) {
      problems.push_back("'credentials' must be {\"user\": \"…\", \"password\": \"…\"}");
    } else if (ctx.secrets == nullptr) {
      problems.push_back(
          "credentials cannot be stored: the server runs without --secrets-key-file");
    } else {
      std::string plain = json{{"user", creds["user"]}, {"password", creds["password"]}}.dump();
      if (plain.size() > kMaxCredentials)
        problems.push_back("'credentials' is too long");
      else
        s->sealed_credentials = ctx.secrets->Seal(plain);
    }
  }
  if (problems.empty()) {
    if (s->strategy == "basic-http-authentication" && s->sealed_credentials.empty())
      problems.push_back("basic-http-authentication needs 'credentials'");
    if (s->strategy != "basic-http-authentication") s->sealed_credentials.clear();
  }
  return problems;
}

}  // namespace

void RegisterOriginStrategies(http::Router& r, Context& ctx) {
  r.Add("GET", "/customers/{c}/originStrategies", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto list = ctx.store.ListOriginStrategies(a.customer);
    if (!list.ok()) return FromStatus(ctx, req, list.status());
    PageRequest page = ParsePageRequest(req.Query("page"), req.Query("pageSize"));
    json members = json::array();
    for (size_t i = static_cast<size_t>(page.Offset());
         i < list->size() && members.size() < static_cast<size_t>(page.page_size); ++i)
      members.push_back(StrategyJson(ctx, (*list)[i]));
    return Json(200, hydra::Collection(RequestUrl(ctx, req), page,
                                       static_cast<int64_t>(list->size()), std::move(members)));
  });

  r.Add("POST", "/customers/{c}/originStrategies", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto body = ParseJsonObject(req);
    if (!body.ok()) return FromStatus(ctx, req, body.status());
    OriginStrategy s;
    s.customer = a.customer;
    s.id = NewUuid();
    // Without an explicit order a new strategy is tried after the existing ones.
    auto existing = ctx.store.ListOriginStrategies(a.customer);
    if (!existing.ok()) return FromStatus(ctx, req, existing.status());
    for (const auto& e : *existing) s.order = std::max(s.order, e.order + 1);
    auto problems = ApplyStrategyBody(ctx, *body, true, &s);
    if (!problems.empty()) return Error(ctx, req, 400, JoinProblems(problems));
    Status st = ctx.store.CreateOriginStrategy(s);
    if (!st.ok()) return FromStatus(ctx, req, st);
    http::Response res = Json(201, StrategyJson(ctx, s));
    res.Set("Location", StrategiesUrl(ctx, a.customer) + "/" + s.id);
    return res;
  });

  r.Add("GET", "/customers/{c}/originStrategies/{id}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto s = ctx.store.GetOriginStrategy(a.customer, req.Param("id"));
    if (!s.ok()) return FromStatus(ctx, req, s.status());
    return Json(200, StrategyJson(ctx, *s));
  });

  // PATCH changes the fields given; PUT replaces the strategy (regex and strategy required).
  for (const char* method : {"PATCH", "PUT"}) {
    bool replace = std::string(method) == "PUT";
    r.Add(method, "/customers/{c}/originStrategies/{id}", [&ctx, replace](http::Request& req) {
      Access a = AuthorizeCustomer(ctx, req);
      if (a.denied) return *a.denied;
      auto s = ctx.store.GetOriginStrategy(a.customer, req.Param("id"));
      if (!s.ok()) return FromStatus(ctx, req, s.status());
      auto body = ParseJsonObject(req);
      if (!body.ok()) return FromStatus(ctx, req, body.status());
      auto problems = ApplyStrategyBody(ctx, *body, replace, &*s);
      if (!problems.empty()) return Error(ctx, req, 400, JoinProblems(problems));
      Status st = ctx.store.UpdateOriginStrategy(*s);
      if (!st.ok()) return FromStatus(ctx, req, st);
      return Json(200, StrategyJson(ctx, *s));
    });
  }

  r.Add("DELETE", "/customers/{c}/originStrategies/{id}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    Status st = ctx.store.DeleteOriginStrategy(a.customer, req.Param("id"));
    if (!st.ok()) return FromStatus(ctx, req, st);
    return http::Response(204, "application/json", "");
  });
}

}  // namespace quire::api
