// The entry points: /, /healthz, /readyz, /metrics (admin), /contexts, /thumbnailPolicies,
// /queue, /setup.
#include "api/entry.h"

#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "api/common.h"
#include "api/routes.h"
#include "core/secrets.h"

namespace quire::api {

static const std::vector<int> kDefaultThumbnailSizes = {1024, 400, 200, 100};

static json PolicyJson(const Context& ctx, const std::string& name) {
  return json{{"@context", ctx.urls.Context("ThumbnailPolicy")},
              {"@id", ctx.urls.base() + "/thumbnailPolicies/" + name},
              {"@type", "vocab:ThumbnailPolicy"},
              {"id", name},
              {"name", name},
              {"sizes", kDefaultThumbnailSizes}};
}

// Creates customer 1 (the administrator) and a first key. Used by POST /setup and by
// --admin-key seeding.
Result<AdminCredentials> CreateAdministrator(Store& store, const std::string& key,
                                             const std::string& secret) {
  Customer admin;
  admin.id = 1;
  admin.name = "admin";
  admin.display_name = "Administrator";
  admin.administrator = true;
  auto c = store.CreateCustomer(admin);
  if (!c.ok()) return c.status();
  ApiKey k;
  k.key = key.empty() ? RandomHex(16) : key;
  std::string s = secret.empty() ? RandomHex(24) : secret;
  k.customer = c->id;
  k.salt = RandomHex(16);
  k.secret_hash = HashSecret(k.salt, s);
  QUIRE_RETURN_IF_ERROR(store.CreateKey(k));
  return AdminCredentials{*c, k.key, s};
}

// Creates, writes and removes a probe file in `dir`.
static Status ProbeWritable(const std::string& dir) {
  std::string path = dir + "/readyz-XXXXXX";
  int fd = ::mkstemp(path.data());
  if (fd < 0) return Status::IOError(std::string("cannot create a file: ") + std::strerror(errno));
  bool ok = ::write(fd, "r", 1) == 1 && ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  ::unlink(path.c_str());
  if (!ok) return Status::IOError(std::string("cannot write a file: ") + std::strerror(err));
  return Status::Ok();
}

void RegisterEntry(http::Router& r, Context& ctx) {
  r.Add("GET", "/", [&ctx](http::Request& req) {
    json j{{"@context", ctx.urls.Context("EntryPoint")},
           {"@id", ctx.urls.base() + "/"},
           {"@type", "vocab:EntryPoint"},
           {"customers", ctx.urls.base() + "/customers"},
           {"thumbnailPolicies", ctx.urls.base() + "/thumbnailPolicies"},
           {"queue", ctx.urls.base() + "/queue"},
           {"storagePolicies", ctx.urls.base() + "/storagePolicies"},
           // What a client needs to split its work (beyond DLCS): `quire client` reads them.
           {"maxBatchSize", ctx.config.max_batch_size},
           {"maxUploadBytes", ctx.config.max_upload_bytes}};
    // Called with a key: the customer it belongs to (spec/platform.md §6), so a client
    // needs no --customer. Anonymous callers (and wrong keys) see the public entry point.
    if (!req.Header("authorization").empty()) {
      if (auto caller = Authenticate(ctx, req); caller.ok())
        j["customer"] = ctx.urls.Customer(caller->customer);
    }
    return Json(200, j);
  });
  r.Add("GET", "/healthz", [](http::Request&) {
    return http::Response(200, "text/plain; charset=utf-8", "ok\n");
  });
  // Ready = the database answers and the local scratch (where every download and derivative
  // is written first) takes a write. A load balancer stops sending work here otherwise.
  r.Add("GET", "/readyz", [&ctx](http::Request&) {
    std::vector<std::string> failing;
    if (Result<int> v = ctx.store.SchemaVersion(); !v.ok())
      failing.push_back("database: " + v.status().message());
    if (Status w = ProbeWritable(ctx.blobs.ScratchDir()); !w.ok())
      failing.push_back("storage: " + w.message());
    if (failing.empty()) return http::Response(200, "text/plain; charset=utf-8", "ready\n");
    std::string text = "not ready\n";
    for (const std::string& f : failing) text += f + "\n";
    http::Response res(503, "text/plain; charset=utf-8", text);
    res.Set("Retry-After", "5");
    return res;
  });
  r.Add("GET", "/metrics", [&ctx](http::Request& req) {
    Access a = AuthorizeAdmin(ctx, req);
    if (a.denied) return std::move(*a.denied);
    ops::Metrics::Gauges gauges;
    // One read of the store for both gauges.
    Result<GlobalQueueCounts> q = ctx.store.GetGlobalQueueCounts();
    gauges.queue_waiting = [&q](int64_t* incoming, int64_t* priority) {
      if (!q.ok()) return false;
      *incoming = q->incoming;
      *priority = q->priority;
      return true;
    };
    gauges.batches_active = [&q](int64_t* active) {
      if (!q.ok()) return false;
      *active = q->batches_active;
      return true;
    };
    std::string body = ctx.metrics != nullptr ? ctx.metrics->Exposition(gauges) : "";
    return http::Response(200, "text/plain; version=0.0.4; charset=utf-8", std::move(body));
  });
  r.Add("GET", "/contexts/{name}", [&ctx](http::Request& req) {
    // A minimal JSON-LD context so every @context we emit resolves.
    const std::string& name = req.Param("name");
    if (name.size() < 8 || name.substr(name.size() - 7) != ".jsonld")
      return Error(ctx, req, 404, "no such context");
    return Json(200, json{{"@context",
                           {{"vocab", ctx.urls.base() + "/vocab#"},
                            {"hydra", "http://www.w3.org/ns/hydra/core#"}}}});
  });
  r.Add("GET", "/thumbnailPolicies", [&ctx](http::Request& req) {
    json members = json::array({PolicyJson(ctx, "default")});
    return Json(200, hydra::Collection(RequestUrl(ctx, req), PageRequest{1, kDefaultPageSize}, 1,
                                       members));
  });
  r.Add("GET", "/thumbnailPolicies/{name}", [&ctx](http::Request& req) {
    if (req.Param("name") != "default")
      return Error(ctx, req, 404, "no thumbnail policy named '" + req.Param("name") + "'");
    return Json(200, PolicyJson(ctx, "default"));
  });
  r.Add("GET", "/queue", [&ctx](http::Request& req) {
    auto counts = ctx.store.GetGlobalQueueCounts();
    if (!counts.ok()) return FromStatus(ctx, req, counts.status());
    return Json(200, json{{"@context", ctx.urls.Context("Queue")},
                          {"@id", ctx.urls.base() + "/queue"},
                          {"@type", "vocab:Queue"},
                          {"incoming", counts->incoming},
                          {"priority", counts->priority}});
  });
  r.Add("POST", "/setup", [&ctx](http::Request& req) {
    auto existing = ctx.store.ListCustomers(PageRequest{1, 1});
    if (!existing.ok()) return FromStatus(ctx, req, existing.status());
    if (existing->total > 0) return Error(ctx, req, 409, "setup has already been done");
    auto made = CreateAdministrator(ctx.store, "", "");
    if (!made.ok()) return FromStatus(ctx, req, made.status());
    json body = hydra::CustomerJson(ctx.urls, made->customer);
    body["key"] = made->key;
    body["secret"] = made->secret;
    http::Response res = Json(201, body);
    res.Set("Location", ctx.urls.Customer(made->customer.id));
    return res;
  });
}

}  // namespace quire::api
