// Operations on many images at once (DLCS): PATCH /customers/{c}/spaces/{s}/images (metadata
// of up to 250 images, all or none), POST /customers/{c}/allImages (up to 500 images named
// "c/s/id" across spaces) and GET /customers/{c}/allImages (every image of the customer, with
// the filters and order of an image listing).
#include <set>

#include "api/common.h"
#include "api/image_input.h"
#include "api/image_listing.h"
#include "api/routes.h"

namespace quire::api {

namespace {

constexpr size_t kMaxPatch = 250;
constexpr size_t kMaxLookup = 500;

// The properties a bulk PATCH may carry: identity and metadata, nothing that reingests.
const std::set<std::string> kPatchable = {
    "@context", "@id",     "@type",   "id",      "modelId", "space",   "tags",           "roles",
    "string1",  "string2", "string3", "number1", "number2", "number3", "maxUnauthorised"};

const json* Members(const json& body) {
  for (const char* name : {"member", "members"})
    if (auto it = body.find(name); it != body.end()) return &*it;
  return nullptr;
}

}  // namespace

void RegisterBulkImages(http::Router& r, Context& ctx) {
  r.Add("PATCH", "/customers/{c}/spaces/{s}/images", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    std::optional<http::Response> denied;
    auto space = ExistingSpace(ctx, req, a.customer, &denied);
    if (!space) return *denied;
    auto body = ParseJsonObject(req);
    if (!body.ok()) return FromStatus(ctx, req, body.status());
    const json* members = Members(*body);
    if (members == nullptr || !members->is_array() || members->empty())
      return Error(ctx, req, 400, "Members cannot be empty");
    if (members->size() > kMaxPatch)
      return Error(ctx, req, 400, "Maximum images in a bulk PATCH is " + std::to_string(kMaxPatch));
    // Every member is checked before anything is written: its shape here, its values against
    // the stored image inside the store's transaction (so no PATCH writes back a field another
    // changed meanwhile).
    std::vector<std::string> problems;
    std::vector<std::string> ids;
    std::vector<json> changes;  // per id: the member without its identity
    std::vector<size_t> positions;
    std::set<std::string> seen;
    for (size_t i = 0; i < members->size(); ++i) {
      const json& m = (*members)[i];
      std::string where = "member " + std::to_string(i + 1);
      if (!m.is_object()) {
        problems.push_back(where + " must be an object");
        continue;
      }
      for (auto it = m.begin(); it != m.end(); ++it)
        if (!kPatchable.count(it.key()))
          problems.push_back(where + ": '" + it.key() +
                             "' cannot be changed by a bulk PATCH (metadata only)");
      std::string id;
      for (const char* name : {"id", "modelId"})
        if (auto it = m.find(name); it != m.end() && it->is_string()) id = it->get<std::string>();
      if (id.empty()) {
        problems.push_back(where + ": 'id' is required");
        continue;
      }
      if (auto it = m.find("space"); it != m.end() && !it->is_null() &&
                                     !(it->is_number_integer() && it->get<int64_t>() == *space))
        problems.push_back(where + ": 'space' must be this space (" + std::to_string(*space) + ")");
      if (!seen.insert(id).second) {
        problems.push_back(where + ": image '" + id + "' appears twice");
        continue;
      }
      json metadata = m;
      for (const char* name : {"id", "modelId", "space", "@id", "@type", "@context"})
        metadata.erase(name);
      ids.push_back(id);
      changes.push_back(std::move(metadata));
      positions.push_back(i + 1);
    }
    if (!problems.empty()) return Error(ctx, req, 400, JoinProblems(problems));
    auto edits = ctx.store.EditAssetsMetadata(a.customer, *space, ids, [&](size_t k, Asset* asset) {
      std::vector<std::string> found;
      bool id_given = false;
      for (auto& p :
           ReadImageInput(changes[k], ImageInputMode::kPatch, ctx.config, asset, &id_given))
        found.push_back("member " + std::to_string(positions[k]) + ": " + p);
      return found;
    });
    if (!edits.ok()) return FromStatus(ctx, req, edits.status());
    problems = std::move(edits->problems);
    if (!edits->missing.empty()) {
      std::string missing;
      for (const std::string& id : edits->missing) missing += (missing.empty() ? "" : ", ") + id;
      problems.push_back("The following image(s) could not be found: " + missing);
    }
    if (!problems.empty()) return Error(ctx, req, 400, JoinProblems(problems));
    const std::vector<Asset>* updated = &edits->updated;
    for (const Asset& u : *updated) ctx.image_changed(u.customer, u.space, u.id);
    json out = json::array();
    for (const Asset& u : *updated) out.push_back(hydra::AssetJson(ctx.urls, u));
    return WholeCollection(ctx, req, std::move(out));
  });

  r.Add("GET", "/customers/{c}/allImages", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    AssetQuery q;
    std::string keep;
    if (std::string problem = ReadAssetQuery(req, &q, &keep); !problem.empty())
      return Error(ctx, req, 400, problem);
    q.customer = a.customer;
    auto list = ctx.store.ListAssets(q);
    return CollectionResponse(ctx, req, q.page, list, hydra::AssetJson, keep);
  });

  r.Add("POST", "/customers/{c}/allImages", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto body = ParseJsonObject(req);
    if (!body.ok()) return FromStatus(ctx, req, body.status());
    const json* members = Members(*body);
    if (members == nullptr || !members->is_array() || members->empty())
      return Error(ctx, req, 400, "Members cannot be empty");
    if (members->size() > kMaxLookup)
      return Error(ctx, req, 400, "Maximum images in one lookup is " + std::to_string(kMaxLookup));
    struct Wanted {
      int64_t space;
      std::string id;
    };
    std::vector<Wanted> wanted;
    std::vector<std::string> problems;
    const std::string prefix = std::to_string(a.customer) + "/";
    for (size_t i = 0; i < members->size(); ++i) {
      const json& m = (*members)[i];
      std::string where = "member " + std::to_string(i + 1);
      const json* id = m.is_object() && m.contains("id") ? &m["id"] : nullptr;
      if (id == nullptr || !id->is_string()) {
        problems.push_back(where + ": 'id' must be \"customer/space/image\"");
        continue;
      }
      std::string full = id->get<std::string>();
      size_t slash = full.find('/', prefix.size());
      std::optional<int64_t> space;
      if (full.rfind(prefix, 0) == 0 && slash != std::string::npos)
        space = ParseId(full.substr(prefix.size(), slash - prefix.size()));
      if (!space || slash + 1 >= full.size()) {
        problems.push_back(where + ": '" + full + "' is not \"" + std::to_string(a.customer) +
                           "/space/image\"");
        continue;
      }
      wanted.push_back({*space, full.substr(slash + 1)});
    }
    if (!problems.empty()) return Error(ctx, req, 400, JoinProblems(problems));
    json out = json::array();
    for (const Wanted& w : wanted) {
      auto asset = ctx.store.GetAsset(a.customer, w.space, w.id);
      if (asset.ok()) {
        out.push_back(hydra::AssetJson(ctx.urls, *asset));
      } else if (asset.status().code() != Code::kNotFound) {
        return FromStatus(ctx, req, asset.status());
      }
    }
    return WholeCollection(ctx, req, std::move(out));
  });
}

}  // namespace quire::api
