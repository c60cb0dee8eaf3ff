// The queue and its batches: /customers/{c}/queue[/priority|/batches|/active|/recent|/images]
// and /customers/{c}/queue/batches/{b}[/images|/completedImages|/errorImages|/test|/retry].
#include <map>
#include <set>

#include "api/common.h"
#include "api/default_channels.h"
#include "api/routes.h"
#include "api/image_input.h"
#include "api/image_listing.h"
#include "core/secrets.h"
#include "core/time_util.h"

namespace quire::api {

namespace {

std::string Join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

// Validates a queue POST body completely before anything is written (spec §6). On success
// fills `members` (ids minted where missing) and returns "". A store that cannot answer
// whether a space exists sets `store_error` instead of calling the space missing.
std::string ReadBatchBody(Context& ctx, int64_t customer, const json& body, bool priority,
                          std::vector<Asset>* members, Status* store_error) {
  const json* list = nullptr;
  for (const char* name : {"member", "members"})
    if (auto it = body.find(name); it != body.end() && !it->is_null()) {
      list = &*it;
      break;
    }
  if (list == nullptr || (list->is_array() && list->empty())) return "Members cannot be empty";
  if (!list->is_array()) return "Members must be an array of images";

  std::vector<std::string> problems;
  int max = ctx.config.max_batch_size;
  if (static_cast<int64_t>(list->size()) > max)
    return "Maximum assets in single batch is " + std::to_string(max);

  std::map<std::pair<int64_t, std::string>, int> seen;
  std::vector<std::pair<int64_t, std::string>> duplicates;
  std::set<int64_t> spaces;
  DefaultChannels defaults(ctx, customer);
  for (size_t i = 0; i < list->size(); ++i) {
    Asset a;
    a.customer = customer;
    bool id_given = false;
    auto member_problems =
        ReadImageInput((*list)[i], ImageInputMode::kQueueMember, ctx.config, &a, &id_given);
    if (member_problems.empty())
      if (std::string p = defaults.Apply((*list)[i], &a, store_error); !p.empty()) {
        if (!store_error->ok()) return p;
        member_problems.push_back(p);
      }
    for (auto& p : member_problems)
      problems.push_back("Member " + std::to_string(i) + ": " + p);
    if (!member_problems.empty()) {
      // Still check its space, so the 400 names every problem (spec §6).
      const json& m = (*list)[i];
      if (m.is_object() && m.contains("space") && m["space"].is_number_integer() &&
          m["space"].get<int64_t>() >= 0 &&
          !(m["space"].is_number_unsigned() && m["space"].get<uint64_t>() > (1ULL << 53)))
        spaces.insert(m["space"].get<int64_t>());
      continue;
    }
    if (priority && !a.IsImage())
      problems.push_back("Member " + std::to_string(i) +
                         ": the priority queue accepts only images, not '" + a.media_type + "'");
    if (!id_given) a.id = NewUuid();
    auto key = std::make_pair(a.space, a.id);
    if (++seen[key] == 2) duplicates.push_back(key);
    spaces.insert(a.space);
    members->push_back(std::move(a));
  }
  if (!duplicates.empty()) {
    std::vector<std::string> ids;
    for (auto& [space, id] : duplicates)
      ids.push_back("Id:" + id + ",Space:" + std::to_string(space));
    problems.push_back("Members contains " + std::to_string(duplicates.size()) +
                       " duplicate Id(s): " + Join(ids, ", "));
  }
  std::vector<std::string> missing;
  for (int64_t s : spaces) {
    auto found = ctx.store.GetSpace(customer, s);
    if (found.ok()) continue;
    if (found.status().code() != Code::kNotFound) {
      *store_error = found.status();
      return found.status().message();
    }
    missing.push_back(std::to_string(s));
  }
  if (!missing.empty())
    problems.push_back("The following space(s) could not be found: " + Join(missing, ", "));
  return Join(problems, ". ");
}

http::Response PostBatch(Context& ctx, http::Request& req, bool priority) {
  Access a = AuthorizeCustomer(ctx, req);
  if (a.denied) return *a.denied;
  auto body = ParseJsonObject(req);
  if (!body.ok()) return FromStatus(ctx, req, body.status());
  std::vector<Asset> members;
  Status store_error;
  if (std::string problem =
          ReadBatchBody(ctx, a.customer, *body, priority, &members, &store_error);
      !problem.empty())
    return store_error.ok() ? Error(ctx, req, 400, problem) : FromStatus(ctx, req, store_error);
  auto batch = ctx.store.CreateBatch(a.customer, members, priority);
  if (!batch.ok()) return FromStatus(ctx, req, batch.status());
  ctx.work_queued();
  http::Response res = Json(201, hydra::BatchJson(ctx.urls, *batch));
  res.Set("Location", ctx.urls.Batch(a.customer, batch->id));
  return res;
}

http::Response GetQueue(Context& ctx, http::Request& req, bool priority) {
  Access a = AuthorizeCustomer(ctx, req);
  if (a.denied) return *a.denied;
  auto counts = ctx.store.GetQueueCounts(a.customer, priority);
  if (!counts.ok()) return FromStatus(ctx, req, counts.status());
  json j = hydra::QueueJson(ctx.urls, a.customer, *counts);
  if (priority) j["@id"] = ctx.urls.Queue(a.customer) + "/priority";
  return Json(200, j);
}

http::Response ListBatches(Context& ctx, http::Request& req, BatchListFilter filter) {
  Access a = AuthorizeCustomer(ctx, req);
  if (a.denied) return *a.denied;
  BatchQuery q;
  q.customer = a.customer;
  q.filter = filter;
  if (filter == BatchListFilter::kRecent) {
    q.order_by = "finished";
    q.descending = true;
  }
  std::string keep;
  if (std::string problem = ReadBatchOrder(req, &q, &keep); !problem.empty())
    return Error(ctx, req, 400, problem);
  auto list = ctx.store.ListBatches(q);
  return CollectionResponse(ctx, req, q.page, list, hydra::BatchJson, keep);
}

// Access to /customers/{c}/queue/batches/{b}…: the customer rule, then a well-formed {b}.
struct BatchAccess {
  std::optional<http::Response> denied;
  int64_t customer = 0;
  int64_t batch = 0;
};

BatchAccess AuthorizeBatch(Context& ctx, const http::Request& req) {
  BatchAccess out;
  Access a = AuthorizeCustomer(ctx, req);
  out.denied = a.denied;
  out.customer = a.customer;
  if (out.denied) return out;
  auto b = ParseId(req.Param("b"));
  if (!b) out.denied = Error(ctx, req, 404, "batch not found");
  out.batch = b.value_or(0);
  return out;
}

http::Response ListBatchImages(Context& ctx, http::Request& req, BatchMemberFilter filter) {
  BatchAccess a = AuthorizeBatch(ctx, req);
  if (a.denied) return *a.denied;
  PageRequest page = ParsePageRequest(req.Query("page"), req.Query("pageSize"));
  auto list = ctx.store.ListBatchAssets(a.customer, a.batch, filter, page);
  return CollectionResponse(ctx, req, page, list, hydra::AssetJson);
}

}  // namespace

void RegisterQueue(http::Router& r, Context& ctx) {
  r.Add("GET", "/customers/{c}/queue",
        [&ctx](http::Request& req) { return GetQueue(ctx, req, false); });
  r.Add("POST", "/customers/{c}/queue",
        [&ctx](http::Request& req) { return PostBatch(ctx, req, false); });
  r.Add("GET", "/customers/{c}/queue/priority",
        [&ctx](http::Request& req) { return GetQueue(ctx, req, true); });
  r.Add("POST", "/customers/{c}/queue/priority",
        [&ctx](http::Request& req) { return PostBatch(ctx, req, true); });
  r.Add("GET", "/customers/{c}/queue/batches",
        [&ctx](http::Request& req) { return ListBatches(ctx, req, BatchListFilter::kAll); });
  r.Add("GET", "/customers/{c}/queue/active",
        [&ctx](http::Request& req) { return ListBatches(ctx, req, BatchListFilter::kActive); });
  r.Add("GET", "/customers/{c}/queue/recent",
        [&ctx](http::Request& req) { return ListBatches(ctx, req, BatchListFilter::kRecent); });
  r.Add("GET", "/customers/{c}/queue/images", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    PageRequest page = ParsePageRequest(req.Query("page"), req.Query("pageSize"));
    auto list = ctx.store.ListQueuedAssets(a.customer, page);
    return CollectionResponse(ctx, req, page, list, hydra::AssetJson);
  });
  r.Add("GET", "/customers/{c}/queue/batches/{b}", [&ctx](http::Request& req) {
    BatchAccess a = AuthorizeBatch(ctx, req);
    if (a.denied) return *a.denied;
    int64_t now = NowMs();
    auto answer = [&ctx](const Batch& b) {
      return http::Response(200, "application/json", ctx.batch_bodies->Body(b, [&] {
        return std::move(Json(200, hydra::BatchJson(ctx.urls, b)).body);
      }));
    };
    BatchCache* cache = ctx.batches.get();
    if (std::optional<Batch> kept = cache ? cache->Get(a.customer, a.batch, now) : std::nullopt)
      return answer(*kept);
    uint64_t generation = cache ? cache->Generation(a.customer) : 0;
    auto batch = ctx.store.GetBatch(a.customer, a.batch);
    if (!batch.ok()) return FromStatus(ctx, req, batch.status());
    if (cache) cache->Put(a.customer, *batch, generation, now);
    return answer(*batch);
  });
  r.Add("GET", "/customers/{c}/queue/batches/{b}/images", [&ctx](http::Request& req) {
    return ListBatchImages(ctx, req, BatchMemberFilter::kAll);
  });
  // DLCS's newer name of the same list: every image that was a member of the batch, also
  // those that have since moved to a newer batch (historical membership).
  r.Add("GET", "/customers/{c}/queue/batches/{b}/assets", [&ctx](http::Request& req) {
    return ListBatchImages(ctx, req, BatchMemberFilter::kAll);
  });
  r.Add("GET", "/customers/{c}/queue/batches/{b}/completedImages", [&ctx](http::Request& req) {
    return ListBatchImages(ctx, req, BatchMemberFilter::kCompleted);
  });
  r.Add("GET", "/customers/{c}/queue/batches/{b}/errorImages", [&ctx](http::Request& req) {
    return ListBatchImages(ctx, req, BatchMemberFilter::kError);
  });
  r.Add("POST", "/customers/{c}/queue/batches/{b}/test", [&ctx](http::Request& req) {
    BatchAccess a = AuthorizeBatch(ctx, req);
    if (a.denied) return *a.denied;
    auto changed = ctx.store.TestBatch(a.customer, a.batch);
    if (!changed.ok()) return FromStatus(ctx, req, changed.status());
    return Json(200, json{{"success", *changed}});
  });
  r.Add("POST", "/customers/{c}/queue/batches/{b}/retry", [&ctx](http::Request& req) {
    BatchAccess a = AuthorizeBatch(ctx, req);
    if (a.denied) return *a.denied;
    auto batch = ctx.store.RetryBatch(a.customer, a.batch);
    if (!batch.ok()) return FromStatus(ctx, req, batch.status());
    ctx.work_queued();
    return Json(200, hydra::BatchJson(ctx.urls, *batch));
  });
}

}  // namespace quire::api
