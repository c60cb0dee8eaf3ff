// Public Presentation API routes (spec/presentation-auth.md §1–§3): single-asset manifests
// at /iiif-manifest[/v2|/v3]/{c}/{s}/{id} and named-query manifests at
// /iiif-resource[/v2|/v3]/{c}/{name}/{p1}/…. Read-only, CORS everywhere, ETag + 304.
// Thread-safe (state is the store).
#pragma once

#include <optional>
#include <string>

#include "http/router.h"
#include "presentation/manifest.h"
#include "store/store.h"

namespace quire::presentation {

struct PresentationOptions {
  int nq_max_items = 1000;  // a named query matching more answers 400
};

class PresentationService {
 public:
  PresentationService(Store& store, std::string public_base, PresentationOptions options);
  void Register(http::Router& router);

 private:
  // `version` unset: the request path named none (Accept may still ask for 2.1).
  http::Response SingleAsset(http::Request& req, std::optional<PresentationVersion> version);
  // `fixed` path segments precede the parameters (iiif-resource[, v2], c, name).
  http::Response NamedQueryManifest(http::Request& req, std::optional<PresentationVersion> version,
                                    size_t fixed);
  // The 200 (or 304) answer carrying `manifest`.
  http::Response Answer(const http::Request& req, PresentationVersion version, bool negotiated,
                        const nlohmann::ordered_json& manifest, int max_age);
  // The customer {c} names (id or name); nullopt with *error filled otherwise.
  std::optional<int64_t> ResolveCustomer(const std::string& c, http::Response* error);

  Store& store_;
  std::string base_;
  PresentationOptions options_;
};

}  // namespace quire::presentation
