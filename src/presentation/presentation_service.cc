#include "presentation/presentation_service.h"

#include <openssl/sha.h>

#include "blob/asset_keys.h"
#include "core/content_digest.h"
#include "core/time_util.h"
#include "model/ids.h"
#include "model/named_query.h"
#include "presentation/pdf_writer.h"

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

PresentationService::PresentationService(Store& store, BlobStore& blobs, std::string public_base,
                                         PresentationOptions options)
    : store_(store), blobs_(blobs), base_(std::move(public_base)), options_(options) {
  while (!base_.empty() && base_.back() == '/') base_.pop_back();
}

PresentationService::~PresentationService() {
  std::lock_guard<std::mutex> lock(pdf_mu_);
  for (auto& [key, build] : pdf_builds_) build.done.wait();
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
  // PDFs read blobs and may wait for a build: off the I/O threads.
  http::RouteOptions pdf{true, true, ops::Family::kFile};
  for (const char* root : {"/pdf", "/pdf-control"}) {
    bool control = std::string(root) == "/pdf-control";
    auto handler = [this, control](http::Request& req) {
      return control ? PdfControl(req) : Pdf(req);
    };
    r.Add("GET", std::string(root) + "/{c}/{name}", handler, pdf);
    r.Add("GET", std::string(root) + "/{c}/{name}/{*params}", handler, pdf);
  }
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
                                           bool negotiated, ManifestSpec spec,
                                           const std::vector<Asset>& assets, int max_age,
                                           const std::string& tag) {
  std::string key = ManifestKey(version, spec.manifest_id);
  std::string inputs = spec.label;
  inputs.push_back('\x1d');
  for (const Asset& a : assets) AppendManifestInputs(a, &inputs);
  std::shared_ptr<const ManifestCache::Entry> manifest = manifests_.Find(key, inputs);
  if (!manifest) {
    auto failure = std::make_shared<Status>();
    AttachProbes(&spec, failure);
    ManifestCache::Entry built;
    built.body = BuildManifest(version, spec, assets).dump();
    if (!failure->ok()) return FromStoreError(*failure, "");
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(built.body.data()), built.body.size(), digest);
    built.etag = "\"" + HexEncode(std::string_view(reinterpret_cast<char*>(digest), 16)) + "\"";
    manifest = manifests_.Put(key, std::move(inputs), std::move(built), tag);
  }
  return Reply(req, version, negotiated, *manifest, max_age);
}

http::Response PresentationService::Reply(const http::Request& req, PresentationVersion version,
                                          bool negotiated, const ManifestCache::Entry& manifest,
                                          int max_age) {
  http::Response res;
  res.status = 200;
  res.Set("Content-Type", ManifestContentType(version));
  res.Set("Cache-Control", "public, max-age=" + std::to_string(max_age));
  if (negotiated) res.Set("Vary", "Accept");
  res.Set("ETag", manifest.etag);
  const std::string& inm = req.Header("if-none-match");
  if (!inm.empty() && (inm == "*" || inm.find(manifest.etag) != std::string::npos)) {
    http::Response nm;
    nm.status = 304;
    for (auto& [k, v] : res.headers)
      if (k != "Content-Type") nm.headers.emplace_back(k, v);
    return nm;
  }
  res.body = manifest.body;
  return res;
}

std::string PresentationService::ManifestKey(PresentationVersion version,
                                             const std::string& manifest_id) {
  return (version == PresentationVersion::kV3 ? "3\n" : "2\n") + manifest_id;
}

std::string PresentationService::AssetTag(int64_t customer, int64_t space, const std::string& id) {
  return std::to_string(customer) + "/" + std::to_string(space) + "/" + id;
}

void PresentationService::Invalidate(int64_t customer, int64_t space, const std::string& id) {
  manifests_.Invalidate(AssetTag(customer, space, id));
}

void PresentationService::Clear() { manifests_.Clear(); }

void PresentationService::AttachProbes(ManifestSpec* spec, std::shared_ptr<Status> failure) {
  if (options_.access == nullptr) return;
  // One read per role name, however many images of a named query carry it.
  auto roles = std::make_shared<std::map<std::pair<int64_t, std::string>, std::optional<Role>>>();
  spec->probe = [this, roles, failure](const Asset& a) -> nlohmann::ordered_json {
    if (!a.Restricted() || !failure->ok()) return nullptr;
    std::vector<Role> matched;
    for (const std::string& name : access::ImageRoleNames(a)) {
      auto key = std::make_pair(a.customer, name);
      auto it = roles->find(key);
      if (it == roles->end()) {
        auto role = store_.GetRole(a.customer, name);
        if (!role.ok() && role.status().code() != Code::kNotFound) {
          *failure = role.status();
          return nullptr;
        }
        it = roles->emplace(key, role.ok() ? std::optional<Role>(*role) : std::nullopt).first;
      }
      if (it->second) matched.push_back(*it->second);
    }
    if (matched.empty()) return nullptr;
    return nlohmann::ordered_json::parse(options_.access->ProbeService(a, matched).dump());
  };
}

http::Response PresentationService::SingleAsset(http::Request& req,
                                                std::optional<PresentationVersion> version) {
  http::Response err;
  PresentationVersion v = version.value_or(Negotiate(req));
  // Kept and not invalidated since (every change of the image arrives as Invalidate, from
  // this node or, by the store's events, any other): no store read at all. Entries are
  // trusted so for 2 s, the bound on a missed event.
  if (auto kept = manifests_.FindCurrent(ManifestKey(v, base_ + req.path), kCurrentFor))
    return Reply(req, v, !version, *kept, 600);
  // A numeric customer is read only when the image is not found (to say which is missing).
  std::optional<int64_t> customer = ParseId(req.Param("c"));
  if (!customer && !(customer = ResolveCustomer(req.Param("c"), &err))) return err;
  auto space = ParseId(req.Param("s"));
  if (!space) return Text(400, "space '" + req.Param("s") + "' is not an integer id");
  auto asset = store_.GetAsset(*customer, *space, req.Param("id"));
  if (!asset.ok()) {
    if (asset.status().code() == Code::kNotFound && !ResolveCustomer(req.Param("c"), &err))
      return err;
    return FromStoreError(asset.status(),
                          "no image '" + req.Param("id") + "' in space " + req.Param("s"));
  }
  if (!ManifestEligible(*asset))
    return Text(404, "image '" + asset->id +
                         "' has no manifest: it must be ingested and "
                         "delivered on iiif-img (or thumbs with open sizes)");
  ManifestSpec spec{base_, base_ + req.path, "Generated by Quire", nullptr};
  return Answer(req, v, !version, std::move(spec), {*asset}, 600,
                AssetTag(asset->customer, asset->space, asset->id));
}

std::vector<std::string> PresentationService::PathParams(const http::Request& req, size_t fixed) {
  // Each later segment percent-decoded on its own (so %2F stays inside it).
  std::vector<std::string> params;
  std::vector<std::string> segments = http::SplitPath(req.path);
  for (size_t i = fixed; i < segments.size(); ++i)
    if (!segments[i].empty()) params.push_back(segments[i]);
  return params;
}

std::optional<PresentationService::QueryRun> PresentationService::RunQuery(http::Request& req,
                                                                           size_t fixed, int limit,
                                                                           http::Response* error) {
  QueryRun run;
  auto customer = ResolveCustomer(req.Param("c"), error);
  if (!customer) return std::nullopt;
  run.customer = *customer;
  const std::string& name = req.Param("name");
  auto query = store_.FindNamedQuery(*customer, name);
  if (!query.ok()) {
    *error = FromStoreError(query.status(), "no named query '" + name + "'");
    return std::nullopt;
  }
  run.query = std::move(*query);
  auto parsed = ParseNamedQueryTemplate(run.query.template_text);
  if (!parsed.ok()) {
    *error = Text(400, "named query '" + name + "' is invalid: " + parsed.status().message());
    return std::nullopt;
  }
  run.parsed = std::move(*parsed);
  run.params = PathParams(req, fixed);
  auto selection = ResolveNamedQuery(run.parsed, *customer, run.params);
  if (!selection.ok()) {
    *error = Text(400, selection.status().message());
    return std::nullopt;
  }
  run.selection = std::move(*selection);
  auto matched = store_.SelectAssets(run.selection, limit);
  if (!matched.ok()) {
    *error = FromStoreError(matched.status(), "no images");
    return std::nullopt;
  }
  if (matched->total > limit) {
    *error = Text(400, "Named query matches " + std::to_string(matched->total) +
                           " images; the limit is " + std::to_string(limit));
    return std::nullopt;
  }
  for (Asset& a : matched->items)
    if (ManifestEligible(a)) run.assets.push_back(std::move(a));
  if (run.assets.empty()) {
    *error = Text(404, "named query '" + name + "' matches no images");
    return std::nullopt;
  }
  return run;
}

http::Response PresentationService::NamedQueryManifest(http::Request& req,
                                                       std::optional<PresentationVersion> version,
                                                       size_t fixed) {
  http::Response err;
  auto run = RunQuery(req, fixed, options_.nq_max_items, &err);
  if (!run) return err;
  PresentationVersion v = version.value_or(Negotiate(req));
  ManifestSpec spec{base_, base_ + req.path, "Generated from '" + run->query.name + "' named query",
                    nullptr};
  return Answer(req, v, !version, std::move(spec), run->assets, 60);
}

// ---------------------------------------------------------------- PDF

namespace {

std::string Sha256Hex(const std::string& bytes) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
  return HexEncode(std::string_view(reinterpret_cast<char*>(digest), sizeof digest));
}

// The largest open thumbnail whose longest side is at most 1000 (an open rendition), if any.
std::optional<ThumbnailSize> PdfRendition(const Asset& a) {
  std::optional<ThumbnailSize> best;
  for (const ThumbnailSize& t : a.OpenThumbnails())
    if (std::max(t.width, t.height) <= 1000 &&
        (!best || std::max(t.width, t.height) > std::max(best->width, best->height)))
      best = t;
  return best;
}

// Changes whenever the PDF would: the template and, in order, each image's identity,
// ingest and access rule.
std::string Fingerprint(const NamedQuery& q, const std::vector<Asset>& assets) {
  std::string text = q.template_text;
  for (const Asset& a : assets) {
    text += "\n" + std::to_string(a.space) + "/" + a.id + "|" +
            std::to_string(a.finished_ms.value_or(0)) + "|" + std::to_string(a.max_unauthorised);
    for (const std::string& r : a.roles) text += "|" + r;
  }
  return Sha256Hex(text);
}

// objectname with {s1}…{n3} filled from the query's values, sanitised; else {name}.pdf.
std::string PdfFilename(const NamedQuery& q, const NamedQueryTemplate& t, const AssetSelection& sel,
                        const std::vector<std::string>& params) {
  std::string name = q.name + ".pdf";
  if (t.object_name) {
    std::string v;
    if (t.object_name->param == 0) {
      v = t.object_name->literal;
    } else {
      std::vector<std::string> all = params;
      all.insert(all.end(), t.literals.begin(), t.literals.end());
      if (static_cast<size_t>(t.object_name->param) <= all.size())
        v = all[t.object_name->param - 1];
    }
    for (int i = 0; i < 3; ++i) {
      std::string s = sel.strings[i].value_or("");
      std::string n = sel.numbers[i] ? std::to_string(*sel.numbers[i]) : "";
      for (auto [token, value] : {std::pair{"{s" + std::to_string(i + 1) + "}", s},
                                  std::pair{"{n" + std::to_string(i + 1) + "}", n}})
        for (size_t at; (at = v.find(token)) != std::string::npos;)
          v.replace(at, token.size(), value);
    }
    std::string clean;
    for (unsigned char c : v)
      clean += (std::isalnum(c) || c == '.' || c == '_' || c == '-') ? char(c) : '_';
    if (!clean.empty()) name = clean;
  }
  return name;
}

}  // namespace

Status PresentationService::BuildPdf(const QueryRun& run, const std::string& key,
                                     const std::string& fingerprint) {
  std::vector<PdfPage> pages;
  std::string restricted = "This page is restricted";
  if (run.parsed.redacted_message && run.parsed.redacted_message->param == 0 &&
      !run.parsed.redacted_message->literal.empty())
    restricted = run.parsed.redacted_message->literal;
  for (const Asset& a : run.assets) {
    PdfPage page;
    page.text = restricted;
    if (auto t = PdfRendition(a)) {
      auto bytes = blobs_.GetBytes(
          ThumbnailKey(AssetBlobPrefix(a.customer, a.space, a.id), t->width, t->height));
      if (!bytes.ok()) return bytes.status();
      int w = 0, h = 0, components = 0;
      if (!JpegInfo(*bytes, &w, &h, &components))
        return Status::Internal("thumbnail of '" + a.id + "' is not a JPEG");
      page.jpeg = std::move(*bytes);
      page.width = w;
      page.height = h;
    }
    pages.push_back(std::move(page));
  }
  std::string pdf = WritePdf(pages);
  QUIRE_RETURN_IF_ERROR(blobs_.PutBytes(NamedQueryPdfDocumentKey(key), pdf));
  nlohmann::json control = {{"fingerprint", fingerprint},
                            {"created", FormatIso8601(NowMs())},
                            {"itemCount", pages.size()},
                            {"sizeBytes", pdf.size()}};
  return blobs_.PutBytes(NamedQueryPdfControlKey(key), control.dump());
}

http::Response PresentationService::Pdf(http::Request& req) {
  http::Response err;
  auto run = RunQuery(req, 3, std::min(options_.nq_max_items, options_.pdf_max_pages), &err);
  if (!run) return err;
  std::string key = NamedQueryPdfKey(run->customer, run->query.name, run->params);
  std::string fingerprint = Fingerprint(run->query, run->assets);
  auto serve = [&]() -> std::optional<http::Response> {
    auto control = blobs_.GetBytes(NamedQueryPdfControlKey(key));
    if (!control.ok()) return std::nullopt;
    auto c = nlohmann::json::parse(*control, nullptr, false);
    if (!c.is_object() || c.value("fingerprint", "") != fingerprint) return std::nullopt;
    auto doc = blobs_.GetBytes(NamedQueryPdfDocumentKey(key));
    if (!doc.ok()) return std::nullopt;
    http::Response res(200, "application/pdf", std::move(*doc));
    res.Set("Content-Disposition",
            "inline; filename=\"" +
                PdfFilename(run->query, run->parsed, run->selection, run->params) + "\"");
    res.Set("Cache-Control", "public, max-age=60");
    return res;
  };
  if (auto ready = serve()) return *ready;
  std::shared_future<Status> done;
  {
    std::lock_guard<std::mutex> lock(pdf_mu_);
    auto it = pdf_builds_.find(key);
    if (it != pdf_builds_.end() &&
        it->second.done.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      pdf_builds_.erase(it);  // a finished build: its outcome is read from storage (or retried)
      it = pdf_builds_.end();
    }
    if (it == pdf_builds_.end()) {
      int running = 0;
      for (auto& [k, b] : pdf_builds_)
        running += b.done.wait_for(std::chrono::seconds(0)) != std::future_status::ready;
      if (running >= options_.pdf_builds) {
        http::Response busy = Text(503, "too many PDFs are being built; retry shortly");
        busy.Set("Retry-After", "5");
        return busy;
      }
      QueryRun copy = *run;
      auto future =
          std::async(std::launch::async, [this, copy = std::move(copy), key, fingerprint]() {
            return BuildPdf(copy, key, fingerprint);
          }).share();
      it = pdf_builds_.emplace(key, PdfBuild{future, std::chrono::steady_clock::now()}).first;
    }
    done = it->second.done;
  }
  if (done.wait_for(options_.pdf_wait) != std::future_status::ready) {
    http::Response later = Text(202, "the PDF is being built; retry shortly");
    later.Set("Retry-After", "5");
    return later;
  }
  Status built = done.get();
  if (!built.ok()) {
    std::lock_guard<std::mutex> lock(pdf_mu_);
    auto it = pdf_builds_.find(key);
    if (it != pdf_builds_.end() && it->second.done.valid()) pdf_builds_.erase(it);
    return Text(500, "building the PDF failed: " + built.message());
  }
  if (auto ready = serve()) return *ready;
  return Text(500, "the PDF was built but cannot be read back");
}

http::Response PresentationService::PdfControl(http::Request& req) {
  http::Response err;
  auto customer = ResolveCustomer(req.Param("c"), &err);
  if (!customer) return err;
  auto query = store_.FindNamedQuery(*customer, req.Param("name"));
  if (!query.ok())
    return FromStoreError(query.status(), "no named query '" + req.Param("name") + "'");
  std::string key = NamedQueryPdfKey(*customer, query->name, PathParams(req, 3));
  nlohmann::json out = {{"key", key}, {"exists", false}, {"inProcess", false}};
  {
    std::lock_guard<std::mutex> lock(pdf_mu_);
    auto it = pdf_builds_.find(key);
    if (it != pdf_builds_.end() &&
        it->second.done.wait_for(std::chrono::seconds(0)) != std::future_status::ready &&
        std::chrono::steady_clock::now() - it->second.started < std::chrono::seconds(600))
      out["inProcess"] = true;
  }
  int64_t items = 0;
  auto control = blobs_.GetBytes(NamedQueryPdfControlKey(key));
  if (control.ok() && blobs_.Exists(NamedQueryPdfDocumentKey(key))) {
    auto c = nlohmann::json::parse(*control, nullptr, false);
    if (c.is_object()) {
      out["exists"] = true;
      out["created"] = c.value("created", "");
      items = c.value("itemCount", int64_t{0});
      out["sizeBytes"] = c.value("sizeBytes", int64_t{0});
    }
  }
  out["itemCount"] = items;
  out["pageCount"] = items;
  if (!out.contains("sizeBytes")) out["sizeBytes"] = 0;
  out["roles"] = nlohmann::json::array();
  http::Response res(200, "application/json", out.dump());
  res.Set("Cache-Control", "no-store");
  return res;
}

}  // namespace quire::presentation
