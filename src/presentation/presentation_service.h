// Public Presentation API routes (spec/presentation-auth.md §1–§3): single-asset manifests
// at /iiif-manifest[/v2|/v3]/{c}/{s}/{id} and named-query manifests at
// /iiif-resource[/v2|/v3]/{c}/{name}/{p1}/…, and the PDF of a named query at /pdf/… with its
// status at /pdf-control/… (§4). CORS everywhere, manifests with ETag + 304. Thread-safe:
// state is the store and the blobs, plus the PDF builds running in this process.
#pragma once

#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "access/access_control.h"
#include "blob/blob_store.h"
#include "http/router.h"
#include "presentation/manifest.h"
#include "presentation/manifest_cache.h"
#include "store/store.h"

namespace quire::presentation {

struct PresentationOptions {
  int nq_max_items = 1000;  // a named query matching more answers 400
  int pdf_max_pages = 500;
  int pdf_builds = 2;                         // concurrent PDF builds before 503
  std::chrono::milliseconds pdf_wait{10000};  // how long a request waits for its build
  // Restricted images get their PROBE in v3 manifests (§2, §5.4); unset: none.
  access::AccessControl* access = nullptr;
};

class PresentationService {
 public:
  PresentationService(Store& store, BlobStore& blobs, std::string public_base,
                      PresentationOptions options);
  // Waits for PDF builds still running.
  ~PresentationService();
  void Register(http::Router& router);
  // An image changed (metadata, ingest, deletion): its single-image manifests are built
  // afresh. Clear: events may have been missed.
  void Invalidate(int64_t customer, int64_t space, const std::string& id);
  void Clear();

 private:
  // `version` unset: the request path named none (Accept may still ask for 2.1).
  http::Response SingleAsset(http::Request& req, std::optional<PresentationVersion> version);
  // `fixed` path segments precede the parameters (iiif-resource[, v2], c, name).
  http::Response NamedQueryManifest(http::Request& req, std::optional<PresentationVersion> version,
                                    size_t fixed);
  // The 200 (or 304) answer carrying the manifest of `assets` (from the cache when it holds
  // one built from the same inputs for this path and version).
  http::Response Answer(const http::Request& req, PresentationVersion version, bool negotiated,
                        ManifestSpec spec, const std::vector<Asset>& assets, int max_age,
                        const std::string& tag = "");
  http::Response Reply(const http::Request& req, PresentationVersion version, bool negotiated,
                       const ManifestCache::Entry& manifest, int max_age);
  static std::string ManifestKey(PresentationVersion version, const std::string& manifest_id);
  static std::string AssetTag(int64_t customer, int64_t space, const std::string& id);
  static constexpr std::chrono::milliseconds kCurrentFor{2000};
  // The customer {c} names (id or name); nullopt with *error filled otherwise.
  std::optional<int64_t> ResolveCustomer(const std::string& c, http::Response* error);
  // Sets spec->probe to give each restricted image's PROBE, the roles read once per request;
  // a store error is kept in *failure (the manifest must then not be answered).
  void AttachProbes(ManifestSpec* spec, std::shared_ptr<Status> failure);

  // A named query run for a request: its images in order (manifest-eligible, at most `limit`).
  struct QueryRun {
    int64_t customer = 0;
    NamedQuery query;
    NamedQueryTemplate parsed;
    AssetSelection selection;
    std::vector<std::string> params;
    std::vector<Asset> assets;
  };
  // nullopt with *error filled (404 unknown, 400 bad parameters or too many, 404 no images).
  std::optional<QueryRun> RunQuery(http::Request& req, size_t fixed, int limit,
                                   http::Response* error);
  // The path parameters after `fixed` segments, each decoded; empty ones dropped.
  static std::vector<std::string> PathParams(const http::Request& req, size_t fixed);

  http::Response Pdf(http::Request& req);
  http::Response PdfControl(http::Request& req);
  // Renders and stores the PDF of `run` under `key`, with its control record.
  Status BuildPdf(const QueryRun& run, const std::string& key, const std::string& fingerprint);

  Store& store_;
  BlobStore& blobs_;
  std::string base_;
  PresentationOptions options_;
  struct PdfBuild {
    std::shared_future<Status> done;
    std::chrono::steady_clock::time_point started;
  };
  ManifestCache manifests_;
  std::mutex pdf_mu_;
  std::map<std::string, PdfBuild> pdf_builds_;  // by blob key
};

}  // namespace quire::presentation
