// Named queries: /customers/{c}/namedQueries and /{id} (spec/presentation-auth.md §3). The
// template is parsed on every write, so a stored query is always one /iiif-resource can run.
#include "api/common.h"
#include "api/routes.h"
#include "core/secrets.h"
#include "core/time_util.h"
#include "model/named_query.h"

namespace quire::api {

namespace {

std::string NamedQueryUrl(const Context& ctx, const NamedQuery& q) {
  return ctx.urls.Customer(q.customer) + "/namedQueries/" + q.id;
}

json NamedQueryJson(const Context& ctx, const NamedQuery& q) {
  json j{{"@context", ctx.urls.Context("NamedQuery")},
         {"@id", NamedQueryUrl(ctx, q)},
         {"@type", "vocab:NamedQuery"}};
  j["id"] = q.id;
  j["name"] = q.name;
  j["global"] = q.global;
  j["template"] = q.template_text;
  j["customer"] = ctx.urls.Customer(q.customer);
  j["created"] = FormatIso8601(q.created_ms);
  return j;
}

// A random (version 4) UUID.
std::string NewUuid() {
  std::string h = RandomHex(16);
  h[12] = '4';
  h[16] = "89ab"[std::stoi(h.substr(16, 1), nullptr, 16) & 3];
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

bool IgnoredKey(const std::string& k) {
  return k == "@context" || k == "@type" || k == "@id" || k == "id" || k == "customer" ||
         k == "created";
}

// The template of a body: a string that parses. Empty string when valid, else the message.
std::string TemplateProblem(const json& body, std::string* out) {
  auto it = body.find("template");
  if (it == body.end()) return "'template' is required";
  if (!it->is_string()) return "'template' must be a string";
  auto parsed = ParseNamedQueryTemplate(it->get<std::string>());
  if (!parsed.ok()) return parsed.status().message();
  *out = it->get<std::string>();
  return "";
}

}  // namespace

void RegisterNamedQueries(http::Router& r, Context& ctx) {
  r.Add("GET", "/customers/{c}/namedQueries", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    PageRequest page = ParsePageRequest(req.Query("page"), req.Query("pageSize"));
    auto list = ctx.store.ListNamedQueries(a.customer, page);
    return CollectionResponse(
        ctx, req, page, list,
        [&ctx](const hydra::Urls&, const NamedQuery& q) { return NamedQueryJson(ctx, q); });
  });

  r.Add("POST", "/customers/{c}/namedQueries", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto body = ParseJsonObject(req);
    if (!body.ok()) return Error(ctx, req, 400, body.status().message());
    for (auto it = body->begin(); it != body->end(); ++it)
      if (!IgnoredKey(it.key()) && it.key() != "name" && it.key() != "global" &&
          it.key() != "template")
        return Error(ctx, req, 400, "unknown property '" + it.key() + "'");
    NamedQuery q;
    q.customer = a.customer;
    auto name = body->find("name");
    if (name == body->end() || !name->is_string())
      return Error(ctx, req, 400, "'name' is required (a string)");
    q.name = name->get<std::string>();
    if (std::string problem = NamedQueryNameProblem(q.name); !problem.empty())
      return Error(ctx, req, 400, problem);
    if (auto g = body->find("global"); g != body->end()) {
      if (!g->is_boolean()) return Error(ctx, req, 400, "'global' must be true or false");
      q.global = g->get<bool>();
    }
    if (std::string problem = TemplateProblem(*body, &q.template_text); !problem.empty())
      return Error(ctx, req, 400, problem);
    if (q.global && !a.caller.admin)
      return Error(ctx, req, 403, "only an administrator may create a global named query");
    q.id = NewUuid();
    auto made = ctx.store.CreateNamedQuery(q);
    if (!made.ok()) return FromStatus(ctx, req, made.status());
    http::Response res = Json(201, NamedQueryJson(ctx, *made));
    res.Set("Location", NamedQueryUrl(ctx, *made));
    return res;
  });

  r.Add("GET", "/customers/{c}/namedQueries/{q}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto q = ctx.store.GetNamedQuery(a.customer, req.Param("q"));
    if (!q.ok()) return FromStatus(ctx, req, q.status());
    return Json(200, NamedQueryJson(ctx, *q));
  });

  r.Add("PUT", "/customers/{c}/namedQueries/{q}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto body = ParseJsonObject(req);
    if (!body.ok()) return Error(ctx, req, 400, body.status().message());
    for (auto it = body->begin(); it != body->end(); ++it) {
      if (it.key() == "name" || it.key() == "global")
        return Error(ctx, req, 400,
                     "only 'template' can be changed; '" + it.key() + "' must not be sent");
      if (!IgnoredKey(it.key()) && it.key() != "template")
        return Error(ctx, req, 400, "unknown property '" + it.key() + "'");
    }
    std::string text;
    if (std::string problem = TemplateProblem(*body, &text); !problem.empty())
      return Error(ctx, req, 400, problem);
    auto updated = ctx.store.UpdateNamedQueryTemplate(a.customer, req.Param("q"), text);
    if (!updated.ok()) return FromStatus(ctx, req, updated.status());
    return Json(200, NamedQueryJson(ctx, *updated));
  });

  // Removes the stored PDF of one run of a query (spec §4); `success` says whether one was
  // stored. The next /pdf request builds it again.
  r.Add("DELETE", "/customers/{c}/resources/pdf/{name}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    if (!req.HasQuery("args"))
      return Error(ctx, req, 400, "'args' is required: ?args=p1/p2 (the /pdf parameters)");
    auto q = ctx.store.FindNamedQuery(a.customer, req.Param("name"));
    if (!q.ok()) return FromStatus(ctx, req, q.status());
    std::vector<std::string> params;
    std::string args = req.Query("args");
    for (size_t start = 0; start <= args.size();) {
      size_t slash = args.find('/', start);
      if (slash == std::string::npos) slash = args.size();
      if (slash > start) params.push_back(args.substr(start, slash - start));
      start = slash + 1;
    }
    std::string key = NamedQueryPdfKey(a.customer, q->name, params);
    bool existed = ctx.blobs.Exists(NamedQueryPdfControlKey(key)) ||
                   ctx.blobs.Exists(NamedQueryPdfDocumentKey(key));
    Status st = ctx.blobs.DeletePrefix(key);
    if (!st.ok()) return FromStatus(ctx, req, st);
    return Json(200, json{{"success", existed}});
  });

  r.Add("DELETE", "/customers/{c}/namedQueries/{q}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    Status st = ctx.store.DeleteNamedQuery(a.customer, req.Param("q"));
    if (!st.ok()) return FromStatus(ctx, req, st);
    http::Response res;
    res.status = 204;
    return res;
  });
}

}  // namespace quire::api
