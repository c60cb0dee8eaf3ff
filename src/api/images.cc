// Images: /customers/{c}/spaces/{s}/images[/{id}[/reingest]].
#include <set>

#include "api/common.h"
#include "api/default_channels.h"
#include "api/routes.h"
#include "api/image_input.h"
#include "api/image_listing.h"
#include "api/uploads.h"
#include "core/content_digest.h"

namespace quire::api {

namespace {

struct ImageTarget {
  std::optional<http::Response> denied;
  int64_t customer = 0;
  int64_t space = 0;
  std::string id;
};

ImageTarget ResolveImage(Context& ctx, http::Request& req) {
  ImageTarget t;
  Access a = AuthorizeCustomer(ctx, req);
  if (a.denied) {
    t.denied = a.denied;
    return t;
  }
  auto space = ExistingSpace(ctx, req, a.customer, &t.denied);
  if (!space) return t;
  t.customer = a.customer;
  t.space = *space;
  t.id = req.Param("id");
  return t;
}

// Queues `asset` as a one-image batch and answers with the asset as stored.
http::Response Reingest(Context& ctx, const http::Request& req, const Asset& asset, int status) {
  auto batch = ctx.store.CreateBatch(asset.customer, {asset}, false);
  if (!batch.ok()) return FromStatus(ctx, req, batch.status());
  ctx.image_changed(asset.customer, asset.space, asset.id);  // channels or roles may differ
  ctx.work_queued();
  auto stored = ctx.store.GetAsset(asset.customer, asset.space, asset.id);
  if (!stored.ok()) return FromStatus(ctx, req, stored.status());
  http::Response res = Json(status, hydra::AssetJson(ctx.urls, *stored));
  if (status == 201) res.Set("Location", ctx.urls.Image(asset.customer, asset.space, asset.id));
  return res;
}

}  // namespace

void RegisterImages(http::Router& r, Context& ctx) {
  r.Add("GET", "/customers/{c}/spaces/{s}/images", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    std::optional<http::Response> denied;
    auto space = ExistingSpace(ctx, req, a.customer, &denied);
    if (!space) return *denied;
    AssetQuery q;
    std::string keep;
    if (std::string problem = ReadAssetQuery(req, &q, &keep); !problem.empty())
      return Error(ctx, req, 400, problem);
    q.customer = a.customer;
    q.space = *space;
    auto list = ctx.store.ListAssets(q);
    return CollectionResponse(ctx, req, q.page, list, hydra::AssetJson, keep);
  });

  r.Add("GET", "/customers/{c}/spaces/{s}/images/{id}", [&ctx](http::Request& req) {
    ImageTarget t = ResolveImage(ctx, req);
    if (t.denied) return *t.denied;
    auto asset = ctx.store.GetAsset(t.customer, t.space, t.id);
    if (!asset.ok()) return FromStatus(ctx, req, asset.status());
    return Json(200, hydra::AssetJson(ctx.urls, *asset));
  });

  // PUT creates or replaces; POST is DLCS's deprecated alias of it.
  auto put = [&ctx](http::Request& req) {
    ImageTarget t = ResolveImage(ctx, req);
    if (t.denied) return *t.denied;
    if (std::string why = ImageIdProblem(t.id); !why.empty())
      return Error(ctx, req, 400, "invalid image id: " + why);
    auto body = ParseJsonObject(req);
    if (!body.ok()) return FromStatus(ctx, req, body.status());
    auto before = ctx.store.GetAsset(t.customer, t.space, t.id);
    if (!before.ok() && before.status().code() != Code::kNotFound)
      return FromStatus(ctx, req, before.status());
    bool existed = before.ok();
    Asset asset;
    asset.customer = t.customer;
    asset.space = t.space;
    asset.id = t.id;
    // DLCS's `file`: the image's bytes in base64, kept as an upload that becomes the origin.
    std::optional<Upload> from_file;
    if (auto f = body->find("file"); f != body->end() && !f->is_null()) {
      if (!f->is_string()) return Error(ctx, req, 400, "'file' must be a base64 string");
      if (body->contains("origin") && !(*body)["origin"].is_null())
        return Error(ctx, req, 400, "give either 'file' or 'origin', not both");
      auto bytes = Base64Decode(f->get<std::string>());
      if (!bytes) return Error(ctx, req, 400, "'file' is not valid base64");
      if (bytes->empty()) return Error(ctx, req, 400, "'file' is empty (0 bytes)");
      std::string media;
      if (auto m = body->find("mediaType"); m != body->end() && m->is_string())
        media = m->get<std::string>();
      auto kept = KeepUploadBytes(ctx, t.customer, *bytes, media);
      if (!kept.ok()) return FromStatus(ctx, req, kept.status());
      from_file = *kept;
      body->erase("file");
      (*body)["origin"] = ctx.urls.Upload(t.customer, kept->id);
    }
    bool id_given = false;
    auto problems = ReadImageInput(*body, ImageInputMode::kPut, ctx.config, &asset, &id_given);
    Status store_error;
    if (problems.empty())
      if (std::string p = DefaultChannels(ctx, t.customer).Apply(*body, &asset, &store_error);
          !p.empty()) {
        if (!store_error.ok()) {
          if (from_file) DiscardUpload(ctx, t.customer, from_file->id);
          return FromStatus(ctx, req, store_error);
        }
        problems.push_back(p);
      }
    if (!problems.empty()) {
      if (from_file) DiscardUpload(ctx, t.customer, from_file->id);
      return Error(ctx, req, 400, JoinProblems(problems));
    }
    http::Response res = Reingest(ctx, req, asset, existed ? 200 : 201);
    if (from_file && res.status >= 300) DiscardUpload(ctx, t.customer, from_file->id);
    return res;
  };
  r.Add("PUT", "/customers/{c}/spaces/{s}/images/{id}", put);
  r.Add("POST", "/customers/{c}/spaces/{s}/images/{id}", put);

  r.Add("PATCH", "/customers/{c}/spaces/{s}/images/{id}", [&ctx](http::Request& req) {
    ImageTarget t = ResolveImage(ctx, req);
    if (t.denied) return *t.denied;
    auto existing = ctx.store.GetAsset(t.customer, t.space, t.id);
    if (!existing.ok()) return FromStatus(ctx, req, existing.status());
    auto body = ParseJsonObject(req);
    if (!body.ok()) return FromStatus(ctx, req, body.status());
    Asset asset = *existing;
    bool id_given = false;
    auto problems = ReadImageInput(*body, ImageInputMode::kPatch, ctx.config, &asset, &id_given);
    if (!problems.empty()) return Error(ctx, req, 400, JoinProblems(problems));
    bool needs_ingest = asset.origin != existing->origin ||
                        asset.media_type != existing->media_type ||
                        asset.delivery_channels != existing->delivery_channels;
    if (needs_ingest) return Reingest(ctx, req, asset, 200);
    auto updated = ctx.store.UpdateAssetMetadata(asset);
    if (!updated.ok()) return FromStatus(ctx, req, updated.status());
    ctx.image_changed(asset.customer, asset.space, asset.id);
    return Json(200, hydra::AssetJson(ctx.urls, *updated));
  });

  r.Add("DELETE", "/customers/{c}/spaces/{s}/images/{id}", [&ctx](http::Request& req) {
    ImageTarget t = ResolveImage(ctx, req);
    if (t.denied) return *t.denied;
    // DLCS's ?deleteFrom= names the caches to purge (none, internalCache, cdn; comma-separated).
    // Quire always removes the stored derivatives and its own caches, and has no CDN, so
    // every valid value deletes the same way; an unknown one is refused before anything goes.
    if (std::string from = req.Query("deleteFrom"); !from.empty()) {
      for (size_t at = 0; at <= from.size();) {
        size_t comma = std::min(from.find(',', at), from.size());
        std::string v = from.substr(at, comma - at);
        for (auto& ch : v) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (v != "none" && v != "internalcache" && v != "cdn")
          return Error(ctx, req, 400,
                       "'deleteFrom' takes none, internalCache and cdn (comma-separated)");
        at = comma + 1;
      }
    }
    Status st = ctx.store.DeleteAsset(t.customer, t.space, t.id);
    if (!st.ok()) return FromStatus(ctx, req, st);
    ctx.image_changed(t.customer, t.space, t.id);
    st = ctx.blobs.DeletePrefix(AssetBlobPrefix(t.customer, t.space, t.id));
    if (!st.ok()) return FromStatus(ctx, req, st);
    return http::Response(204, "application/json", "");
  });

  r.Add("POST", "/customers/{c}/spaces/{s}/images/{id}/reingest", [&ctx](http::Request& req) {
    ImageTarget t = ResolveImage(ctx, req);
    if (t.denied) return *t.denied;
    auto existing = ctx.store.GetAsset(t.customer, t.space, t.id);
    if (!existing.ok()) return FromStatus(ctx, req, existing.status());
    return Reingest(ctx, req, *existing, 200);
  });
}

}  // namespace quire::api
