#include "presentation/presentation_service.h"

#include <openssl/sha.h>

#include "core/content_digest.h"
#include "model/ids.h"
#include "model/named_query.h"

namespace quire::presentation {

namespace {

http::Response Text(int status, const std::string& text) {
  return http::Response(status, "text/plain; charset=utf-8", text + "\n");
}

http::Response FromStoreError(const Status& st, const std::string& not_found) {
  if (st.code() == Code::kUnavailable) {
    http::Response r = Text(503, st.message());
    r.Set("Retry-After", "1");
    return r;
  }
  if (st.code() == Code::kNotFound) return Text(404, not_found);
  return Text(500, st.message());
}

// Unversioned path: 3.0, unless Accept names the presentation/2 profile and not /3.
PresentationVersion Negotiate(const http::Request& req) {
  const std::string& accept = req.Header("accept");
  bool v2 = accept.find("iiif.io/api/presentation/2/context.json") != std::string::npos;
  bool v3 = accept.find("iiif.io/api/presentation/3/context.json") != std::string::npos;
  return v2 && !v3 ? PresentationVersion::kV2 : PresentationVersion::kV3;
}

}  // namespace

PresentationService::PresentationService(Store& store, std::string public_base,
                                         PresentationOptions options)
    : store_(store), base_(std::move(public_base)), options_(options) {
  while (!base_.empty() && base_.back() == '/') base_.pop_back();
}

void PresentationService::Register(http::Router& r) {
  http::RouteOptions cors{false, true, ops::Family::kInfo};
  using V = PresentationVersion;
  // Versioned routes first: /iiif-resource/v2/c/name would also match {c}/{name}/{*p}.
  for (auto [segment, version] : {std::pair{"v2", V::kV2}, std::pair{"v3", V::kV3}}) {
    std::string s = segment;
    V v = version;
    r.Add(
        "GET", "/iiif-manifest/" + s + "/{c}/{s}/{id}",
        [this, v](http::Request& req) { return SingleAsset(req, v); }, cors);
    r.Add(
        "GET", "/iiif-resource/" + s + "/{c}/{name}",
        [this, v](http::Request& req) { return NamedQueryManifest(req, v, 4); }, cors);
    r.Add(
        "GET", "/iiif-resource/" + s + "/{c}/{name}/{*params}",
        [this, v](http::Request& req) { return NamedQueryManifest(req, v, 4); }, cors);
  }
  r.Add(
      "GET", "/iiif-manifest/{c}/{s}/{id}",
      [this](http::Request& req) { return SingleAsset(req, std::nullopt); }, cors);
  r.Add(
      "GET", "/iiif-resource/{c}/{name}",
      [this](http::Request& req) { return NamedQueryManifest(req, std::nullopt, 3); }, cors);
  r.Add(
      "GET", "/iiif-resource/{c}/{name}/{*params}",
      [this](http::Request& req) { return NamedQueryManifest(req, std::nullopt, 3); }, cors);
}

std::optional<int64_t> PresentationService::ResolveCustomer(const std::string& c,
                                                            http::Response* error) {
  if (auto id = ParseId(c)) {
    auto customer = store_.GetCustomer(*id);
    if (!customer.ok()) {
      *error = FromStoreError(customer.status(), "no customer '" + c + "'");
      return std::nullopt;
    }
    return *id;
  }
  auto customer = store_.GetCustomerByName(c);
  if (!customer.ok()) {
    *error = FromStoreError(customer.status(), "no customer '" + c + "'");
    return std::nullopt;
  }
  return customer->id;
}

http::Response PresentationService::Answer(const http::Request& req, PresentationVersion version,
                                           bool negotiated, const nlohmann::ordered_json& manifest,
                                           int max_age) {
  http::Response res;
  res.body = manifest.dump();
  res.status = 200;
  res.Set("Content-Type", ManifestContentType(version));
  res.Set("Cache-Control", "public, max-age=" + std::to_string(max_age));
  if (negotiated) res.Set("Vary", "Accept");
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(res.body.data()), res.body.size(), digest);
  std::string etag = "\"" + HexEncode(std::string_view(reinterpret_cast<char*>(digest), 16)) + "\"";
  res.Set("ETag", etag);
  const std::string& inm = req.Header("if-none-match");
  if (!inm.empty() && (inm == "*" || inm.find(etag) != std::string::npos)) {
    http::Response nm;
    nm.status = 304;
    for (auto& [k, v] : res.headers)
      if (k != "Content-Type") nm.headers.emplace_back(k, v);
    return nm;
  }
  return res;
}

http::Response PresentationService::SingleAsset(http::Request& req,
                                                std::optional<PresentationVersion> version) {
  http::Response err;
  auto customer = ResolveCustomer(req.Param("c"), &err);
  if (!customer) return err;
  auto space = ParseId(req.Param("s"));
  if (!space) return Text(400, "space '" + req.Param("s") + "' is not an integer id");
  auto asset = store_.GetAsset(*customer, *space, req.Param("id"));
  if (!asset.ok())
    return FromStoreError(asset.status(),
                          "no image '" + req.Param("id") + "' in space " + req.Param("s"));
  if (!ManifestEligible(*asset))
    return Text(404, "image '" + asset->id +
                         "' has no manifest: it must be ingested and "
                         "delivered on iiif-img (or thumbs with open sizes)");
  PresentationVersion v = version.value_or(Negotiate(req));
  ManifestSpec spec{base_, base_ + req.path, "Generated by Quire"};
  return Answer(req, v, !version, BuildManifest(v, spec, {*asset}), 600);
}

http::Response PresentationService::NamedQueryManifest(http::Request& req,
                                                       std::optional<PresentationVersion> version,
                                                       size_t fixed) {
  http::Response err;
  auto customer = ResolveCustomer(req.Param("c"), &err);
  if (!customer) return err;
  const std::string& name = req.Param("name");
  auto query = store_.FindNamedQuery(*customer, name);
  if (!query.ok()) return FromStoreError(query.status(), "no named query '" + name + "'");
  auto parsed = ParseNamedQueryTemplate(query->template_text);
  if (!parsed.ok())
    return Text(400, "named query '" + name + "' is invalid: " + parsed.status().message());
  // Each later segment percent-decoded on its own (so %2F stays inside it); empty ones dropped.
  std::vector<std::string> params;
  std::vector<std::string> segments = http::SplitPath(req.path);
  for (size_t i = fixed; i < segments.size(); ++i)
    if (!segments[i].empty()) params.push_back(segments[i]);
  auto selection = ResolveNamedQuery(*parsed, *customer, params);
  if (!selection.ok()) return Text(400, selection.status().message());
  auto matched = store_.SelectAssets(*selection, options_.nq_max_items);
  if (!matched.ok()) return FromStoreError(matched.status(), "no images");
  if (matched->total > options_.nq_max_items)
    return Text(400, "Named query matches " + std::to_string(matched->total) +
                         " images; the limit is " + std::to_string(options_.nq_max_items));
  std::vector<Asset> assets;
  for (Asset& a : matched->items)
    if (ManifestEligible(a)) assets.push_back(std::move(a));
  if (assets.empty()) return Text(404, "named query '" + name + "' matches no images");
  PresentationVersion v = version.value_or(Negotiate(req));
  ManifestSpec spec{base_, base_ + req.path, "Generated from '" + name + "' named query"};
  return Answer(req, v, !version, BuildManifest(v, spec, assets), 60);
}

}  // namespace quire::presentation
