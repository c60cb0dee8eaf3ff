#include "hydra/hydra.h"

#include "core/time_util.h"
#include "http/message.h"
#include "model/paging.h"

namespace quire::hydra {

std::string Urls::Context(const std::string& type) const {
  return base_ + "/contexts/" + type + ".jsonld";
}
std::string Urls::Customer(int64_t c) const { return base_ + "/customers/" + std::to_string(c); }
std::string Urls::Keys(int64_t c) const { return Customer(c) + "/keys"; }
std::string Urls::Key(int64_t c, const std::string& key) const {
  return Keys(c) + "/" + http::PercentEncodeSegment(key);
}
std::string Urls::Spaces(int64_t c) const { return Customer(c) + "/spaces"; }
std::string Urls::Space(int64_t c, int64_t s) const {
  return Spaces(c) + "/" + std::to_string(s);
}
std::string Urls::Images(int64_t c, int64_t s) const { return Space(c, s) + "/images"; }
std::string Urls::Image(int64_t c, int64_t s, const std::string& id) const {
  return Images(c, s) + "/" + http::PercentEncodeSegment(id);
}
std::string Urls::Uploads(int64_t c) const { return Customer(c) + "/uploads"; }
std::string Urls::Upload(int64_t c, const std::string& id) const {
  return Uploads(c) + "/" + id;
}
std::string Urls::Queue(int64_t c) const { return Customer(c) + "/queue"; }
std::string Urls::Batch(int64_t c, int64_t b) const {
  return Queue(c) + "/batches/" + std::to_string(b);
}
std::string Urls::ImageService(int64_t c, int64_t s, const std::string& id) const {
  return base_ + "/iiif-img/" + std::to_string(c) + "/" + std::to_string(s) + "/" +
         http::PercentEncodeSegment(id);
}
std::string Urls::ThumbService(int64_t c, int64_t s, const std::string& id) const {
  return base_ + "/thumbs/" + std::to_string(c) + "/" + std::to_string(s) + "/" +
         http::PercentEncodeSegment(id);
}
std::string Urls::FileUrl(int64_t c, int64_t s, const std::string& id) const {
  return base_ + "/file/" + std::to_string(c) + "/" + std::to_string(s) + "/" +
         http::PercentEncodeSegment(id);
}

std::string StatusTitle(int status) {
  switch (status) {
    case 400: return "Bad request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not found";
    case 405: return "Method not allowed";
    case 409: return "Conflict";
    case 413: return "Payload too large";
    case 501: return "Not implemented";
    case 503: return "Service unavailable";
    case 507: return "Insufficient storage";
    default: return status >= 500 ? "Internal server error" : "Error";
  }
}

json Error(int status, const std::string& detail, const std::string& instance) {
  return json{{"@context", kHydraContext}, {"@type", "Error"},   {"statusCode", status},
              {"title", StatusTitle(status)}, {"description", detail}, {"status", status},
              {"detail", detail},             {"instance", instance}};
}

json Collection(const std::string& url, const PageRequest& page, int64_t total, json members,
                const std::string& extra_query) {
  json out = {{"@context", kHydraContext},
              {"@id", url},
              {"@type", "Collection"},
              {"totalItems", total},
              {"pageSize", page.page_size},
              {"member", std::move(members)}};
  int64_t pages = TotalPages(total, page.page_size);
  if (pages > 1) {
    auto link = [&](int64_t p) {
      std::string q = "page=" + std::to_string(p) + "&pageSize=" + std::to_string(page.page_size);
      if (!extra_query.empty()) q += "&" + extra_query;
      return url + "?" + q;
    };
    json view = {{"@id", link(page.page)},
                 {"@type", "PartialCollectionView"},
                 {"page", page.page},
                 {"pageSize", page.page_size},
                 {"totalPages", pages}};
    if (page.page > 1) {
      view["first"] = link(1);
      view["previous"] = link(std::min(page.page - 1, pages));
    }
    if (page.page < pages) {
      view["next"] = link(page.page + 1);
      view["last"] = link(pages);
    }
    out["view"] = std::move(view);
  }
  return out;
}

std::string Urls::Webhooks(int64_t c) const { return Customer(c) + "/webhooks"; }
std::string Urls::Webhook(int64_t c, int64_t w) const {
  return Webhooks(c) + "/" + std::to_string(w);
}

static json Resource(const Urls& u, const std::string& type, const std::string& id) {
  return json{{"@context", u.Context(type)}, {"@id", id}, {"@type", "vocab:" + type}};
}

json CustomerJson(const Urls& u, const Customer& c) {
  json j = Resource(u, "Customer", u.Customer(c.id));
  j["id"] = c.id;
  j["name"] = c.name;
  j["displayName"] = c.display_name;
  j["administrator"] = c.administrator;
  j["created"] = FormatIso8601(c.created_ms);
  j["keys"] = u.Keys(c.id);
  j["spaces"] = u.Spaces(c.id);
  j["queue"] = u.Queue(c.id);
  // DLCS resources (issue 15): storage, origin strategies, channel policies, all images.
  j["storage"] = u.Customer(c.id) + "/storage";
  j["originStrategies"] = u.Customer(c.id) + "/originStrategies";
  j["deliveryChannelPolicies"] = u.Customer(c.id) + "/deliveryChannelPolicies";
  j["allImages"] = u.Customer(c.id) + "/allImages";
  j["defaultDeliveryChannels"] = u.Customer(c.id) + "/defaultDeliveryChannels";
  j["customHeaders"] = u.Customer(c.id) + "/customHeaders";
  return j;
}

json KeyJson(const Urls& u, const ApiKey& k) {
  json j = Resource(u, "Key", u.Key(k.customer, k.key));
  j["key"] = k.key;
  j["created"] = FormatIso8601(k.created_ms);
  return j;
}

json SpaceJson(const Urls& u, const Space& s) {
  json j = Resource(u, "Space", u.Space(s.customer, s.id));
  j["id"] = s.id;
  j["name"] = s.name;
  j["created"] = FormatIso8601(s.created_ms);
  j["maxUnauthorised"] = s.max_unauthorised;
  j["defaultTags"] = s.default_tags;
  j["defaultRoles"] = s.default_roles;
  j["approximateNumberOfImages"] = s.approximate_images;
  j["images"] = u.Images(s.customer, s.id);
  j["storage"] = u.Space(s.customer, s.id) + "/storage";
  return j;
}

json AssetJson(const Urls& u, const Asset& a) {
  json j = Resource(u, "Image", u.Image(a.customer, a.space, a.id));
  j["id"] = a.id;
  j["space"] = a.space;
  j["origin"] = a.origin;
  j["mediaType"] = a.media_type;
  j["family"] = a.family;
  json channels = json::array();
  for (auto& c : a.delivery_channels) {
    json cj = {{"channel", c.channel}};
    if (!c.policy.empty()) cj["policy"] = c.policy;
    channels.push_back(std::move(cj));
  }
  j["deliveryChannels"] = std::move(channels);
  j["tags"] = a.tags;
  j["roles"] = a.roles;
  j["string1"] = a.string1;
  j["string2"] = a.string2;
  j["string3"] = a.string3;
  j["number1"] = a.number1;
  j["number2"] = a.number2;
  j["number3"] = a.number3;
  j["maxUnauthorised"] = a.max_unauthorised;
  j["created"] = FormatIso8601(a.created_ms);
  if (a.finished_ms) j["finished"] = FormatIso8601(*a.finished_ms);
  j["ingesting"] = a.ingesting;
  j["error"] = a.error;
  j["width"] = a.width;
  j["height"] = a.height;
  // DLCS `duration`: the recording's length in milliseconds, for audio and video.
  if (a.family == "T" || a.duration_ms > 0) j["duration"] = a.duration_ms;
  if (a.batch) j["batch"] = u.Batch(a.customer, *a.batch);
  if (a.HasChannel("iiif-img")) j["imageService"] = u.ImageService(a.customer, a.space, a.id);
  if (a.HasChannel("thumbs"))
    j["thumbnailImageService"] = u.ThumbService(a.customer, a.space, a.id);
  if (a.HasChannel("file")) j["file"] = u.FileUrl(a.customer, a.space, a.id);
  return j;
}

json BatchJson(const Urls& u, const Batch& b) {
  std::string id = u.Batch(b.customer, b.id);
  json j = Resource(u, "Batch", id);
  j["id"] = b.id;
  j["submitted"] = FormatIso8601(b.submitted_ms);
  j["count"] = b.count;
  j["completed"] = b.completed;
  j["errors"] = b.errors;
  if (b.finished_ms) j["finished"] = FormatIso8601(*b.finished_ms);
  if (b.est_completion_ms) j["estCompletion"] = FormatIso8601(*b.est_completion_ms);
  j["superseded"] = b.superseded;
  j["priority"] = b.priority;
  j["images"] = id + "/images";
  j["completedImages"] = id + "/completedImages";
  j["errorImages"] = id + "/errorImages";
  j["test"] = id + "/test";
  j["retry"] = id + "/retry";
  return j;
}

json UploadJson(const Urls& u, const Upload& up) {
  std::string id = u.Upload(up.customer, up.id);
  json j = Resource(u, "Upload", id);
  j["id"] = up.id;
  j["mediaType"] = up.media_type;
  j["size"] = up.size;
  j["sha256"] = up.sha256;
  j["created"] = FormatIso8601(up.created_ms);
  if (up.used_by == 0) j["expires"] = FormatIso8601(up.expires_ms);
  j["usedBy"] = up.used_by;
  j["origin"] = id;
  return j;
}

json WebhookJson(const Urls& u, const Webhook& w) {
  std::string id = u.Webhook(w.customer, w.id);
  json j = Resource(u, "Webhook", id);
  j["id"] = w.id;
  j["url"] = w.url;
  j["events"] = w.events;
  j["created"] = FormatIso8601(w.created_ms);
  j["deliveries"] = id + "/deliveries";
  return j;
}

json DeliveryJson(const Urls& u, const WebhookDelivery& d,
                  const std::vector<DeliveryAttempt>& attempts) {
  json j = Resource(u, "WebhookDelivery", u.Webhook(d.customer, d.webhook) + "/deliveries/" +
                                              std::to_string(d.id));
  j["id"] = d.id;
  j["eventId"] = d.event_id;
  j["event"] = d.type;
  j["status"] = d.state;
  j["attempts"] = d.attempts;
  j["lastStatus"] = d.last_status;
  j["lastError"] = d.last_error;
  j["created"] = FormatIso8601(d.created_ms);
  if (d.delivered_ms) j["delivered"] = FormatIso8601(*d.delivered_ms);
  if (d.state == "pending") j["nextAttempt"] = FormatIso8601(d.next_attempt_ms);
  json log = json::array();
  for (const DeliveryAttempt& a : attempts)
    log.push_back({{"attempt", a.attempt},
                   {"at", FormatIso8601(a.at_ms)},
                   {"status", a.status},
                   {"error", a.error},
                   {"micros", a.micros}});
  j["attemptLog"] = std::move(log);
  return j;
}

json QueueJson(const Urls& u, int64_t customer, const QueueCounts& q) {
  std::string id = u.Queue(customer);
  json j = Resource(u, "CustomerQueue", id);
  j["size"] = q.size;
  j["batchesWaiting"] = q.batches_waiting;
  j["imagesWaiting"] = q.images_waiting;
  j["batches"] = id + "/batches";
  j["active"] = id + "/active";
  j["recent"] = id + "/recent";
  j["images"] = id + "/images";
  j["priority"] = id + "/priority";
  return j;
}

}  // namespace quire::hydra
