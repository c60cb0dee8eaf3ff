// JSON-LD/Hydra mapping (spec §1, §3): resources with @context/@id/@type, paged collections,
// and the error body that is both a Hydra error and an RFC 7807 problem.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "model/asset.h"
#include "model/batch.h"
#include "model/customer.h"
#include "model/paging.h"
#include "model/space.h"
#include "model/upload.h"
#include "store/store.h"

namespace quire::hydra {

using json = nlohmann::json;

inline constexpr const char* kHydraContext = "http://www.w3.org/ns/hydra/context.jsonld";

// URLs of every resource, from the public base URL. One place builds them, so every emitted
// link resolves to a route that exists.
class Urls {
 public:
  explicit Urls(std::string base) : base_(std::move(base)) {}
  const std::string& base() const { return base_; }
  std::string Context(const std::string& type) const;
  std::string Customer(int64_t c) const;
  std::string Keys(int64_t c) const;
  std::string Key(int64_t c, const std::string& key) const;
  std::string Spaces(int64_t c) const;
  std::string Space(int64_t c, int64_t s) const;
  std::string Images(int64_t c, int64_t s) const;
  std::string Image(int64_t c, int64_t s, const std::string& id) const;
  std::string Queue(int64_t c) const;
  std::string Batch(int64_t c, int64_t b) const;
  std::string ImageService(int64_t c, int64_t s, const std::string& id) const;
  std::string ThumbService(int64_t c, int64_t s, const std::string& id) const;
  std::string FileUrl(int64_t c, int64_t s, const std::string& id) const;
  std::string Uploads(int64_t c) const;
  // Also the `origin` that names the upload in a queue member or image PUT.
  std::string Upload(int64_t c, const std::string& id) const;
  std::string Webhooks(int64_t c) const;
  std::string Webhook(int64_t c, int64_t w) const;

 private:
  std::string base_;
};

json Error(int status, const std::string& detail, const std::string& instance);
std::string StatusTitle(int status);

// A Hydra collection page. `url` is the collection URL without query; `extra_query` holds
// parameters to keep in view links (e.g. "orderBy=width"), without page/pageSize.
json Collection(const std::string& url, const PageRequest& page, int64_t total, json members,
                const std::string& extra_query = "");

json CustomerJson(const Urls& u, const Customer& c);
json KeyJson(const Urls& u, const ApiKey& k);
json SpaceJson(const Urls& u, const Space& s);
json AssetJson(const Urls& u, const Asset& a);
json BatchJson(const Urls& u, const Batch& b);
// `expires` is shown only while nothing uses the upload (a used one does not expire).
json UploadJson(const Urls& u, const Upload& up);
// The secret is never shown here (only once, in the creation answer).
json WebhookJson(const Urls& u, const Webhook& w);
json DeliveryJson(const Urls& u, const WebhookDelivery& d,
                  const std::vector<DeliveryAttempt>& attempts);
json QueueJson(const Urls& u, int64_t customer, const QueueCounts& q);

}  // namespace quire::hydra
