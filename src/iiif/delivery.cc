#include "iiif/delivery.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "model/ids.h"
#include "core/time_util.h"
#include "iiif/info.h"
#include "blob/asset_keys.h"
#include "blob/tiff_structure.h"

namespace quire::iiif {

namespace {

constexpr const char* kImageCacheControl = "public, max-age=2592000";
constexpr const char* kInfoCacheControl = "public, max-age=3600";

http::Response Text(int status, const std::string& text) {
  return http::Response(status, "text/plain; charset=utf-8", text + "\n");
}

// Pixels of a restricted image beyond its open renditions: never cached anywhere.
http::Response Restricted(const std::string& id) {
  http::Response res = Text(401, "image '" + id + "' is restricted; this request needs a session "
                                 "with one of its roles");
  res.Set("Cache-Control", "no-store");
  return res;
}

// What of an asset decides who may see what: part of every validator and cached-body key, so
// a change of maxUnauthorised or roles never reuses an answer made under the old rule.
std::string AccessKey(const Asset& a) {
  std::string key = "|mu" + std::to_string(a.max_unauthorised);
  for (const std::string& r : a.roles) key += "|" + r;
  return key;
}

// An open rendition (§5.1): the whole image, longest output side at most maxUnauthorised.
bool OpenRendition(const Asset& a, const ResolvedRequest& r) {
  if (!a.Restricted()) return true;
  int64_t n = a.max_unauthorised;
  return n > 0 && r.region.x == 0 && r.region.y == 0 && r.region.w == r.image_width &&
         r.region.h == r.image_height && std::max(r.width, r.height) <= n;
}

// The database is away for a moment (a restart, a lost connection): 503, never 404 or 500.
http::Response Unavailable(const Status& st) {
  http::Response res = Text(503, st.message());
  res.Set("Retry-After", "1");
  return res;
}

// `c` is the customer segment as it appears in the URL (its id, or its name).
std::string ServicePath(ApiVersion v, const char* root, const std::string& c, int64_t s,
                        const std::string& id) {
  return std::string("/") + root + (v == ApiVersion::kV2 ? "/v2/" : "/") +
         http::PercentEncodeSegment(c) + "/" + std::to_string(s) + "/" +
         http::PercentEncodeSegment(id);
}

std::string ServicePath(ApiVersion v, const char* root, int64_t c, int64_t s,
                        const std::string& id) {
  return ServicePath(v, root, std::to_string(c), s, id);
}

std::string ProfileLink(ApiVersion v, bool level0) {
  return "<" + ProfileUri(v, level0) + ">;rel=\"profile\"";
}

std::string InfoContentType(const http::Request& req, ApiVersion v) {
  const std::string& accept = req.Header("accept");
  if (accept.find("application/json") != std::string::npos &&
      accept.find("application/ld+json") == std::string::npos)
    return "application/json";
  return std::string("application/ld+json;profile=\"http://iiif.io/api/image/") +
         (v == ApiVersion::kV3 ? "3" : "2") + "/context.json\"";
}

// Sets validators and answers 304 when the client's copy is current.
bool NotModified(const http::Request& req, http::Response& res, const std::string& etag,
                 int64_t modified_ms) {
  res.Set("ETag", etag);
  res.Set("Last-Modified", FormatHttpDate(modified_ms));
  const std::string& inm = req.Header("if-none-match");
  if (!inm.empty()) return inm == etag || inm == "*" || inm.find(etag) != std::string::npos;
  const std::string& ims = req.Header("if-modified-since");
  if (!ims.empty()) {
    auto t = ParseHttpDate(ims);
    return t && modified_ms / 1000 <= *t / 1000;
  }
  return false;
}

http::Response NotModifiedResponse(const http::Response& with_headers) {
  http::Response r;
  r.status = 304;
  for (auto& [k, v] : with_headers.headers)
    if (k != "Content-Type") r.headers.emplace_back(k, v);
  return r;
}

std::string Etag(const std::string& key) {
  return "\"" + std::to_string(std::hash<std::string>{}(key)) + "\"";
}

// A storage outage (or a blob replaced mid-read) is worth retrying: 503 + Retry-After.
bool IsTransient(const Status& st) {
  return st.code() == Code::kUnavailable || st.code() == Code::kConflict;
}

http::Response TryLater(const Status& st) {
  http::Response r = Text(503, "storage is unavailable; retry shortly (" + st.message() + ")");
  r.Set("Retry-After", "2");
  return r;
}

// Remote reads never block an I/O thread: a handler there runs with t_cache_only set, and
// the first read the disk cache cannot answer sets t_would_block and fails; the handler then
// hands the whole request to the CPU pool (RemoteDefer), where reads may go to the network.
thread_local bool t_cache_only = false;
thread_local bool t_would_block = false;

Status WouldBlock() {
  t_would_block = true;
  return Status::Unavailable("not in the delivery cache");
}

// A pyramid in a remote store, read through the delivery cache at one version.
class CachedPyramidSource : public PyramidSource {
 public:
  CachedPyramidSource(BlobCache& cache, std::string key, std::string version, int64_t size,
                      std::vector<ByteExtent> structure)
      : cache_(cache),
        key_(std::move(key)),
        version_(std::move(version)),
        size_(size),
        structure_(std::move(structure)) {}
  bool ReadHeld(uint64_t offset, size_t n, char* out) const override {
    auto it = std::upper_bound(
        structure_.begin(), structure_.end(), offset,
        [](uint64_t off, const ByteExtent& e) { return off < e.offset; });
    if (it == structure_.begin()) return false;
    --it;
    if (offset + n > it->offset + it->bytes.size()) return false;
    std::memcpy(out, it->bytes.data() + (offset - it->offset), n);
    return true;
  }
  Result<std::string> ReadAt(uint64_t offset, size_t n) const override {
    if (t_cache_only) {
      std::string bytes;
      if (cache_.PeekRange(key_, version_, int64_t(offset), int64_t(n), &bytes)) return bytes;
      return WouldBlock();
    }
    return cache_.GetRange(key_, version_, int64_t(offset), int64_t(n));
  }
  Status ReadInto(uint64_t offset, size_t n, char* out) const override {
    if (t_cache_only) {
      if (cache_.PeekRangeInto(key_, version_, int64_t(offset), int64_t(n), out))
        return Status::Ok();
      return WouldBlock();
    }
    return cache_.GetRangeInto(key_, version_, int64_t(offset), int64_t(n), out);
  }
  Result<std::string> LocalCopy() const override {
    if (t_cache_only) return WouldBlock();
    return cache_.LocalFile(key_, version_, size_);
  }

 private:
  BlobCache& cache_;
  std::string key_, version_;
  int64_t size_;
  std::vector<ByteExtent> structure_;  // sorted, disjoint
};

FileIdentity RemoteIdentity(const BlobStat& st) {
  FileIdentity id;
  id.ino = std::hash<std::string>{}(st.version);
  id.size = st.size;
  id.mtime_ns = st.modified_ms * 1000000;
  return id;
}

}  // namespace

// ---------------------------------------------------------------- ByteCache

bool ByteCache::Get(const std::string& key, std::string* value, std::string* type) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return false;
  lru_.splice(lru_.begin(), lru_, it->second);
  *value = it->second->value;
  *type = it->second->type;
  return true;
}

void ByteCache::Put(const std::string& key, const std::string& value, const std::string& type) {
  int64_t size = static_cast<int64_t>(key.size() + value.size() + type.size());
  if (size > capacity_ / 8) return;  // one response may not crowd out the rest
  std::lock_guard<std::mutex> lock(mu_);
  if (index_.count(key)) return;
  lru_.push_front({key, value, type});
  index_[key] = lru_.begin();
  used_ += size;
  while (used_ > capacity_ && !lru_.empty()) {
    auto& last = lru_.back();
    used_ -= static_cast<int64_t>(last.key.size() + last.value.size() + last.type.size());
    index_.erase(last.key);
    lru_.pop_back();
  }
}

// ---------------------------------------------------------------- Delivery

struct Delivery::Target {
  Asset asset;
  std::string prefix;
  std::string version_key;  // changes whenever the derivatives change
  // The customer as the request named it (id or name): the service ids a response hands
  // out (303 Location, info.json id) keep the form the client used, so a viewer stays on the
  // URLs it started from. Canonical links always use the id.
  std::string customer_segment;
  // iiif-img targets from ResolveImage: the pyramid file and which file it was (for a
  // remote store: its key and version).
  std::string pyramid_path;
  FileIdentity pyramid_id;
  BlobStat pyramid_stat;
};

Delivery::Delivery(Store& store, BlobStore& blobs, std::string public_base,
                   DeliveryOptions options, BlobCache* cache)
    : store_(store),
      blobs_(blobs),
      cache_(cache),
      remote_(cache != nullptr),
      base_(std::move(public_base)),
      options_(options),
      responses_(options.cache_bytes) {}

template <typename Handler>
http::Response Delivery::RemoteInline(http::Request& req, Handler handler) {
  if (!remote_) return handler(req);
  t_cache_only = true;
  t_would_block = false;
  http::Response res = handler(req);
  t_cache_only = false;
  if (!t_would_block) return res;
  t_would_block = false;
  // Something must come from the store: the whole request goes to the CPU pool.
  return http::Response::Defer([handler, copy = req]() mutable {
    http::Response out = handler(copy);
    return out.deferred ? out.deferred() : out;  // already on the CPU pool: render here
  });
}

void Delivery::Register(http::Router& r) {
  using ops::Family;
  http::RouteOptions cors{false, true, Family::kIiifRender};
  http::RouteOptions info{false, true, Family::kInfo};
  http::RouteOptions thumbs{false, true, Family::kThumbs};
  http::RouteOptions heavy{true, true, Family::kFile};
  // Image requests run inline on the I/O thread as far as the cheap answers go (cache, stored
  // tile, single-tile crop); only libvips renders are deferred to the CPU pool.
  for (ApiVersion v : {ApiVersion::kV2, ApiVersion::kV3}) {
    std::string root = v == ApiVersion::kV2 ? "/iiif-img/v2" : "/iiif-img";
    r.Add("GET", root + "/{c}/{s}/{id}",
          [this, v](http::Request& req) { return Redirect(req, v, false); }, cors);
    r.Add("GET", root + "/{c}/{s}/{id}/info.json",
          [this, v](http::Request& req) {
            return RemoteInline(req, [this, v](http::Request& q) { return Info(q, v); });
          },
          info);
    r.Add("GET", root + "/{c}/{s}/{id}/{region}/{size}/{rotation}/{qf}",
          [this, v](http::Request& req) {
            return RemoteInline(req, [this, v](http::Request& q) { return Image(q, v); });
          },
          cors);
  }
  // Level 0 from the stored thumbnails: Image API 3.0, and 2.1 under /thumbs/v2/ (what
  // manifests link as ImageService2).
  for (ApiVersion v : {ApiVersion::kV2, ApiVersion::kV3}) {
    std::string root = v == ApiVersion::kV2 ? "/thumbs/v2" : "/thumbs";
    r.Add("GET", root + "/{c}/{s}/{id}",
          [this, v](http::Request& req) { return Redirect(req, v, true); }, thumbs);
    r.Add("GET", root + "/{c}/{s}/{id}/info.json",
          [this, v](http::Request& req) { return ThumbInfo(req, v); }, thumbs);
    r.Add("GET", root + "/{c}/{s}/{id}/{region}/{size}/{rotation}/{qf}",
          [this, v](http::Request& req) {
            return RemoteInline(req, [this, v](http::Request& q) { return Thumb(q, v); });
          },
          thumbs);
  }
  r.Add("GET", "/file/{c}/{s}/{id}", [this](http::Request& req) { return File(req); }, heavy);
  r.Add("GET", "/iiif-av/{c}/{s}/{id}/full/full/max/max/0/{file}",
        [this](http::Request& req) { return Av(req); }, heavy);
}

bool Delivery::Resolve(http::Request& req, const char* channel, Target* out,
                       http::Response* error) {
  const std::string& c = req.Param("c");
  int64_t customer = 0;
  if (auto id = ParseId(c)) {
    customer = *id;
  } else {
    auto byname = store_.GetCustomerByName(c);
    if (!byname.ok() && byname.status().code() == Code::kUnavailable) {
      *error = Unavailable(byname.status());
      return false;
    }
    if (!byname.ok()) {
      *error = Text(404, "no customer '" + c + "'");
      return false;
    }
    customer = byname->id;
  }
  auto space = ParseId(req.Param("s"));
  if (!space) {
    *error = Text(404, "no space '" + req.Param("s") + "'");
    return false;
  }
  auto asset = store_.GetAsset(customer, *space, req.Param("id"));
  if (!asset.ok() && asset.status().code() == Code::kUnavailable) {
    *error = Unavailable(asset.status());
    return false;
  }
  if (!asset.ok()) {
    *error = Text(404, "no image '" + req.Param("id") + "' in space " + req.Param("s"));
    return false;
  }
  if (!asset->HasChannel(channel)) {
    *error = Text(404, "image '" + asset->id + "' is not delivered on the " + channel +
                           " channel");
    return false;
  }
  // Access (spec/presentation-auth.md §5.1): a restricted image shows anyone only its open
  // renditions; the rest needs the cookie of a session holding one of its roles. /thumbs/
  // serves the open sizes alone (to everyone), /file/ and /iiif-av/ only to such a session;
  // iiif-img decides per request (Image, Info).
  const bool whole_file = std::string(channel) == "file" || std::string(channel) == "iiif-av";
  if (asset->Restricted() && whole_file) {
    auto allowed =
        options_.access ? options_.access->CookieAuthorises(req, *asset) : Result<bool>(false);
    if (!allowed.ok()) {
      *error = Unavailable(allowed.status());
      return false;
    }
    if (!*allowed) {
      *error = Restricted(asset->id);
      return false;
    }
  }
  if (std::string(channel) == "thumbs") {
    asset->thumbnails = asset->OpenThumbnails();
    if (asset->thumbnails.empty() && asset->Restricted()) {
      *error = Text(404, "image '" + asset->id + "' has no open thumbnail sizes");
      return false;
    }
  }
  bool has_derivative = asset->width > 0;
  if (std::string(channel) == "file") {
    auto original = blobs_.Stat(OriginalKey(AssetBlobPrefix(customer, *space, asset->id)));
    if (!original.ok() && IsTransient(original.status())) {
      *error = TryLater(original.status());
      return false;
    }
    has_derivative = original.ok();
  }
  if (std::string(channel) == "iiif-av") has_derivative = asset->duration_ms > 0;
  if (!has_derivative) {
    if (asset->ingesting)
      *error = Text(404, "image '" + asset->id + "' is still being ingested; try again soon");
    else if (!asset->error.empty())
      *error = Text(404, "image '" + asset->id + "' could not be ingested: " + asset->error);
    else if (asset->IsPdfImage() && PdfPageOfOrigin(asset->origin) == 0)
      *error = Text(404, "image '" + asset->id +
                             "' is a PDF split into pages; each page is an image: " +
                             PdfPageId(asset->id, 1) + ", " + PdfPageId(asset->id, 2) + " ...");
    else
      *error = Text(404, "image '" + asset->id + "' has not been ingested");
    return false;
  }
  out->prefix = AssetBlobPrefix(customer, *space, asset->id);
  out->customer_segment = c;
  out->version_key = out->prefix + "@" + std::to_string(asset->finished_ms.value_or(0)) + "x" +
                     std::to_string(asset->width);
  out->asset = std::move(*asset);
  return true;
}

std::shared_ptr<const Delivery::Target> Delivery::ResolveImage(http::Request& req,
                                                               http::Response* error) {
  std::string key = req.Param("c") + '\n' + req.Param("s") + '\n' + req.Param("id");
  const auto now = std::chrono::steady_clock::now();
  std::shared_ptr<const Target> cached, expired;
  {
    std::lock_guard<std::mutex> lock(targets_mu_);
    auto it = targets_.find(key);
    if (it != targets_.end()) {
      if (now - it->second.fetched < options_.asset_ttl) {
        cached = it->second.target;
      } else {
        // Kept (until replaced): a remote store that is down may still serve what it cached.
        expired = it->second.target;
      }
    }
  }
  // A remote pyramid is checked once per asset_ttl (a HEAD), not on every request; a
  // replaced one is also caught by the version each ranged read carries.
  if (cached && remote_) return cached;
  if (cached) {
    // The pyramid is replaced (renamed over) on re-ingest and removed on delete: a different
    // file, or none, means the row must be read again.
    auto id = StatIdentity(cached->pyramid_path);
    if (id.ok() && *id == cached->pyramid_id) return cached;
    std::lock_guard<std::mutex> lock(targets_mu_);
    auto it = targets_.find(key);
    if (it != targets_.end() && it->second.target == cached) targets_.erase(it);
  }
  auto fresh = std::make_shared<Target>();
  if (!Resolve(req, "iiif-img", fresh.get(), error)) return nullptr;
  if (remote_) {
    if (t_cache_only) {
      WouldBlock();
      return nullptr;
    }
    auto st = blobs_.Stat(PyramidKey(fresh->prefix));
    if (!st.ok() && IsTransient(st.status()) && expired &&
        expired->version_key == fresh->version_key) {
      // The store is down but the asset has not changed: keep serving what is cached.
      fresh = std::const_pointer_cast<Target>(expired);
    } else if (!st.ok()) {
      *error = IsTransient(st.status())
                   ? TryLater(st.status())
                   : Text(404, "image '" + fresh->asset.id + "' has no derivative to serve");
      return nullptr;
    } else {
      fresh->pyramid_path = PyramidKey(fresh->prefix);
      fresh->pyramid_stat = *st;
      fresh->pyramid_id = RemoteIdentity(*st);
    }
    std::lock_guard<std::mutex> lock(targets_mu_);
    if (targets_.size() >= options_.max_cached_assets) targets_.clear();
    targets_[key] = TargetEntry{fresh, now};
    return fresh;
  }
  auto path = blobs_.LocalPath(PyramidKey(fresh->prefix));
  Result<FileIdentity> id = path.ok() ? StatIdentity(*path) : Result<FileIdentity>(path.status());
  if (!id.ok()) {
    // Deleted (or being replaced) under our feet: there is nothing to serve.
    *error = Text(404, "image '" + fresh->asset.id + "' has no derivative to serve");
    return nullptr;
  }
  fresh->pyramid_path = *path;
  fresh->pyramid_id = *id;
  std::lock_guard<std::mutex> lock(targets_mu_);
  if (targets_.size() >= options_.max_cached_assets) targets_.clear();
  targets_[key] = TargetEntry{fresh, now};
  return fresh;
}

std::shared_ptr<const PyramidIndex> Delivery::Index(const Target& t, http::Response* error) {
  {
    std::lock_guard<std::mutex> lock(index_mu_);
    auto it = indexes_.find(t.version_key);
    if (it != indexes_.end() && it->second.index->identity() == t.pyramid_id) {
      it->second.last_used = ++index_clock_;
      return it->second.index;
    }
  }
  std::vector<ByteExtent> structure;
  if (remote_) {
    // The TIFF structure stored beside the pyramid: one GET instead of one per level. Absent
    // (older or migrated images) or stale, the directories are read from the pyramid itself.
    auto blob = ReadBlob(PyramidIndexKey(t.prefix), t.pyramid_stat.version);
    if (!blob.ok() && t_would_block) {
      *error = TryLater(blob.status());
      return nullptr;
    }
    std::string version;
    if (blob.ok()) {
      auto decoded = DecodeTiffStructure(*blob, &version);
      if (decoded.ok() && version == t.pyramid_stat.version) structure = std::move(*decoded);
    }
  }
  auto opened =
      remote_ ? PyramidIndex::OpenSource(
                    std::make_shared<CachedPyramidSource>(*cache_, t.pyramid_path,
                                                          t.pyramid_stat.version,
                                                          t.pyramid_stat.size,
                                                          std::move(structure)),
                    t.pyramid_id, t.pyramid_path)
              : PyramidIndex::Open(t.pyramid_path);
  if (!opened.ok()) {
    if (IsTransient(opened.status())) {
      if (opened.status().code() == Code::kConflict) {
        Invalidate(t.asset.customer, t.asset.space, t.asset.id);
      }
      *error = TryLater(opened.status());
      return nullptr;
    }
    *error = opened.status().code() == Code::kNotFound
                 ? Text(404, "image '" + t.asset.id + "' has no derivative to serve")
                 : Text(500, "derivative unreadable: " + opened.status().message());
    return nullptr;
  }
  std::lock_guard<std::mutex> lock(index_mu_);
  if (indexes_.size() >= options_.max_open_pyramids && !indexes_.count(t.version_key)) {
    auto oldest = indexes_.begin();
    for (auto it = indexes_.begin(); it != indexes_.end(); ++it)
      if (it->second.last_used < oldest->second.last_used) oldest = it;
    indexes_.erase(oldest);  // in-flight requests keep their shared_ptr (and fd)
  }
  indexes_[t.version_key] = IndexEntry{*opened, ++index_clock_};
  return *opened;
}

void Delivery::Invalidate(int64_t customer, int64_t space, const std::string& id) {
  const std::string versions = AssetBlobPrefix(customer, space, id) + "@";
  {
    std::lock_guard<std::mutex> lock(targets_mu_);
    for (auto it = targets_.begin(); it != targets_.end();) {
      const Asset& a = it->second.target->asset;
      if (a.customer == customer && a.space == space && a.id == id)
        it = targets_.erase(it);
      else
        ++it;
    }
  }
  {
    std::lock_guard<std::mutex> lock(index_mu_);
    for (auto it = indexes_.begin(); it != indexes_.end();)
      it = it->first.compare(0, versions.size(), versions) == 0 ? indexes_.erase(it) : std::next(it);
  }
  std::lock_guard<std::mutex> lock(info_mu_);
  for (auto it = info_bodies_.begin(); it != info_bodies_.end();)
    it = it->first.compare(0, versions.size(), versions) == 0 ? info_bodies_.erase(it) : std::next(it);
}

http::Response Delivery::Redirect(http::Request& req, ApiVersion v, bool thumbs) {
  Target t;
  http::Response err;
  if (!Resolve(req, thumbs ? "thumbs" : "iiif-img", &t, &err)) return err;
  http::Response res = Text(303, "see info.json");
  res.Set("Location", base_ + ServicePath(v, thumbs ? "thumbs" : "iiif-img", t.customer_segment,
                                          t.asset.space, t.asset.id) + "/info.json");
  return res;
}

static Limits DeclaredLimits(const Asset& a, const DeliveryOptions& o) {
  Limits l;
  int64_t area = static_cast<int64_t>(a.width) * a.height;
  l.max_area = std::max<int64_t>(std::min<int64_t>(std::max<int64_t>(area, 4096 * 4096), o.max_area), 1);
  return l;
}

http::Response Delivery::Info(http::Request& req, ApiVersion v) {
  http::Response err;
  std::shared_ptr<const Target> tp = ResolveImage(req, &err);
  if (!tp) return err;
  const Target& t = *tp;
  const bool restricted = t.asset.Restricted();
  // The roles of a restricted image that exist (spec/presentation-auth.md §5.5): they decide
  // the body (auth services, full sizes and tiles), so their texts are part of its key.
  std::vector<Role> matched;
  if (restricted && options_.access) {
    auto roles = options_.access->MatchedRoles(t.asset);
    if (!roles.ok()) return Unavailable(roles.status());
    matched = std::move(*roles);
  }
  const std::string access_key = AccessKey(t.asset) + access::AccessControl::RolesKey(matched);
  std::string etag = Etag(t.version_key + (v == ApiVersion::kV2 ? "/v2" : "/v3") + base_ + "|" +
                          t.customer_segment + access_key);
  http::Response res;
  // 2.1 clients learn of a restriction from a 401 (with the body) unless they show the
  // Bearer token of a session holding one of the image's roles; 3.0 gets one public body.
  bool refused = restricted && v == ApiVersion::kV2;
  if (refused && !matched.empty()) {
    auto session = options_.access->TokenSession(access::BearerToken(req));
    if (!session.ok()) return Unavailable(session.status());
    if (session->has_value() && access::AccessControl::SessionMatches(**session, t.asset, NowMs()))
      refused = false;
  }
  const bool personal = restricted && v == ApiVersion::kV2;
  res.Set("Cache-Control", personal ? "private" : kInfoCacheControl);
  if (personal) res.Set("Vary", "Authorization");
  res.Set("Link", ProfileLink(v, false));
  if (options_.custom_headers) options_.custom_headers(t.asset.customer, t.asset.space, &res);
  if (!refused && NotModified(req, res, etag, t.asset.finished_ms.value_or(0)))
    return NotModifiedResponse(res);
  std::shared_ptr<const PyramidIndex> index = Index(t, &err);
  if (!index) return err;
  // The body depends only on the asset version, the pyramid file, the API version, the
  // customer form of the URL and the access rule with its roles: serialized once.
  const FileIdentity& fid = index->identity();
  std::string body_key = t.version_key + "#" + std::to_string(fid.ino) + "." +
                         std::to_string(fid.mtime_ns) + (v == ApiVersion::kV2 ? "/v2|" : "/v3|") +
                         t.customer_segment + access_key;
  {
    std::lock_guard<std::mutex> lock(info_mu_);
    auto it = info_bodies_.find(body_key);
    if (it != info_bodies_.end()) res.body = it->second;
  }
  if (res.body.empty()) {
    const PyramidInfo& pyramid = index->info();
    std::vector<int> scales;
    for (size_t i = 0; i < pyramid.levels.size(); ++i) scales.push_back(1 << i);
    std::vector<std::pair<int, int>> sizes;
    // A role that can be obtained opens everything to its holders: all sizes are listed.
    for (auto& th : matched.empty() ? t.asset.OpenThumbnails() : t.asset.thumbnails)
      sizes.emplace_back(th.width, th.height);
    std::sort(sizes.begin(), sizes.end());
    if (!t.asset.HasChannel("thumbs")) sizes.clear();
    // `sizes` lists thumbnails, not pyramid levels. OpenSeadragon (4.1 and later) takes `sizes`
    // for the levels whenever there are log2(largest scale factor) or one more of them, and then
    // asks for tiles at wrong, distorted sizes (with the default policy's 4 sizes: every image
    // whose pyramid has scale factors 1…16, i.e. most photographs). Listing one more scale
    // factor, rendered from the smallest level, keeps every viewer on the real pyramid.
    while (!sizes.empty() && !scales.empty() &&
           (sizes.size() + 1 == scales.size() || sizes.size() == scales.size()))
      scales.push_back(scales.back() * 2);
    std::string id = base_ + ServicePath(v, "iiif-img", t.customer_segment, t.asset.space, t.asset.id);
    auto j = InfoJson(v, id, pyramid.width, pyramid.height, sizes,
                      pyramid.tile_width > 0 ? pyramid.tile_width : 256, scales,
                      DeclaredLimits(t.asset, options_));
    if (restricted && matched.empty()) {
      // Only the open renditions are on offer: no tiles, at most maxUnauthorised wide.
      j.erase("tiles");
      if (sizes.empty()) j.erase("sizes");
      nlohmann::json& limits = v == ApiVersion::kV3 ? j : j["profile"][1];
      if (t.asset.max_unauthorised > 0) limits["maxWidth"] = t.asset.max_unauthorised;
    } else if (restricted) {
      nlohmann::json probe = options_.access->ProbeService(t.asset, matched);
      if (v == ApiVersion::kV3) {
        j["@context"] = nlohmann::json::array({access::kAuth2Context, j["@context"]});
        j["service"] = nlohmann::json::array({probe});
      } else {
        nlohmann::json services = nlohmann::json::array({probe});
        for (auto& s : options_.access->CookieServices1(t.asset, matched)) services.push_back(s);
        j["service"] = services;
      }
    }
    res.body = j.dump();
    std::lock_guard<std::mutex> lock(info_mu_);
    if (info_bodies_.size() >= options_.max_cached_assets) info_bodies_.clear();
    info_bodies_.emplace(body_key, res.body);
  }
  res.status = refused ? 401 : 200;
  res.Set("Content-Type", InfoContentType(req, v));
  return res;
}

http::Response Delivery::Image(http::Request& req, ApiVersion v) {
  http::Response err;
  std::shared_ptr<const Target> tp = ResolveImage(req, &err);
  if (!tp) return err;
  const Target& t = *tp;
  Limits limits = DeclaredLimits(t.asset, options_);
  std::shared_ptr<const PyramidIndex> index = Index(t, &err);
  if (!index) return err;
  const PyramidInfo& pyramid = index->info();
  auto resolved = ResolveImageRequest(v, req.Param("region"), req.Param("size"),
                                      req.Param("rotation"), req.Param("qf"), pyramid.width,
                                      pyramid.height, limits);
  if (!resolved.ok()) {
    int status = resolved.status().code() == Code::kUnsupported ? 501 : 400;
    return Text(status, resolved.status().message());
  }
  // Before any validator or cache: a refused request learns nothing from them. What a
  // session unlocks is answered `private`, so no shared cache hands it to anyone else.
  bool session_only = false;
  if (!OpenRendition(t.asset, *resolved)) {
    auto allowed =
        options_.access ? options_.access->CookieAuthorises(req, t.asset) : Result<bool>(false);
    if (!allowed.ok()) return Unavailable(allowed.status());
    if (!*allowed) return Restricted(t.asset.id);
    session_only = true;
  }
  std::string canonical = CanonicalPath(*resolved);
  std::string service = ServicePath(v, "iiif-img", t.asset.customer, t.asset.space, t.asset.id);
  // Keyed (and validated) by the pyramid file actually read too, as the info.json bodies are:
  // a pyramid replaced while the row still names the old version must not be answered from
  // the old file's responses.
  const FileIdentity& fid = index->identity();
  std::string cache_key = t.version_key + "#" + std::to_string(fid.ino) + "." +
                          std::to_string(fid.mtime_ns) + (v == ApiVersion::kV2 ? "/v2/" : "/v3/") +
                          canonical;
  std::string etag = Etag(cache_key);

  http::Response res;
  res.Set("Cache-Control", session_only ? "private" : kImageCacheControl);
  res.Set("Link", ProfileLink(v, false) + ", <" + base_ + service + "/" + canonical +
                      ">;rel=\"canonical\"");
  if (options_.custom_headers) options_.custom_headers(t.asset.customer, t.asset.space, &res);
  if (NotModified(req, res, etag, t.asset.finished_ms.value_or(0)))
    return NotModifiedResponse(res);

  std::string body, type;
  bool cached = responses_.Get(cache_key, &body, &type);
  if (options_.metrics != nullptr) options_.metrics->CountCache(cached);
  if (cached) {
    res.status = 200;
    res.body = std::move(body);
    res.Set("Content-Type", type);
    return res;
  }

  // What deep-zoom viewers ask for: a stored tile as is (one pread), or a crop of one stored
  // tile at its own resolution (edge tiles, small levels: cut from its coefficients).
  auto tile = IndexedStoredTile(*index, *resolved);
  if (!tile.ok() && IsTransient(tile.status())) return TryLater(tile.status());
  if (tile.ok() && tile->has_value()) {
    // From a remote store a stored tile is worth keeping in memory too (a disk-cache hit
    // costs a file open); from local files it is a pread and not.
    if (remote_) responses_.Put(cache_key, (*tile)->bytes, (*tile)->content_type);
    res.status = 200;
    res.family = ops::Family::kIiifTile;
    res.body = std::move((*tile)->bytes);
    res.Set("Content-Type", (*tile)->content_type);
    return res;
  }
  auto cropped = IndexedCroppedTile(*index, *resolved);
  if (!cropped.ok() && IsTransient(cropped.status())) return TryLater(cropped.status());
  if (cropped.ok() && cropped->has_value()) {
    responses_.Put(cache_key, (*cropped)->bytes, (*cropped)->content_type);
    res.status = 200;
    res.family = ops::Family::kIiifTile;
    res.body = std::move((*cropped)->bytes);
    res.Set("Content-Type", (*cropped)->content_type);
    return res;
  }

  // Full-size and very large renders share a small lane so they cannot starve tile traffic
  // (spec/iiif.md): large output, a large decode (the renderer reads the smallest level that
  // still has the output resolution), or the whole image decoded at full resolution.
  int64_t out_area = static_cast<int64_t>(resolved->width) * resolved->height;
  size_t level = 0;
  auto level_scale = [&](size_t k) {
    return pyramid.levels[k].first > 0
               ? static_cast<double>(pyramid.width) / pyramid.levels[k].first
               : 1.0;
  };
  while (level + 1 < pyramid.levels.size()) {
    double f = level_scale(level + 1);
    if (resolved->region.w / f < resolved->width || resolved->region.h / f < resolved->height)
      break;
    ++level;
  }
  double f = pyramid.levels.empty() ? 1.0 : level_scale(level);
  int64_t decoded_area = static_cast<int64_t>(resolved->region.w / f) *
                         static_cast<int64_t>(resolved->region.h / f);
  const int64_t one_tile = 256 * 256;
  bool full_size = level == 0 && resolved->region.w == pyramid.width &&
                   resolved->region.h == pyramid.height && decoded_area > one_tile;
  bool large = full_size || out_area > options_.large_render_pixels ||
               decoded_area > options_.large_render_pixels;
  // Holds a place in the large-render lane until the deferred render is done (or dropped).
  std::shared_ptr<void> lane;
  if (large) {
    if (large_in_flight_.fetch_add(1) >= options_.large_render_lane) {
      large_in_flight_.fetch_sub(1);
      http::Response busy = Text(503, "too many large renders in progress; retry shortly");
      busy.Set("Retry-After", "2");
      return busy;
    }
    lane = std::shared_ptr<void>(nullptr, [this](void*) { large_in_flight_.fetch_sub(1); });
  }
  return http::Response::Defer([this, index, request = *resolved, cache_key = std::move(cache_key),
                                res = std::move(res), lane = std::move(lane)]() mutable {
    auto rendered = RenderIndexed(*index, request);
    lane.reset();
    if (!rendered.ok() && IsTransient(rendered.status())) return TryLater(rendered.status());
    if (!rendered.ok()) {
      int status = rendered.status().code() == Code::kUnsupported ? 501
                   : rendered.status().code() == Code::kInvalid   ? 400
                                                                  : 500;
      return Text(status, rendered.status().message());
    }
    responses_.Put(cache_key, rendered->bytes, rendered->content_type);
    res.status = 200;
    res.body = std::move(rendered->bytes);
    res.Set("Content-Type", rendered->content_type);
    return std::move(res);
  });
}

Result<std::string> Delivery::ReadBlob(const std::string& key, const std::string& tag) {
  if (!remote_) return blobs_.GetBytes(key);
  if (t_cache_only) {
    std::string bytes;
    if (cache_->PeekBytes(key, tag, &bytes)) return bytes;
    return WouldBlock();
  }
  return cache_->GetBytes(key, tag);
}


http::Response Delivery::ThumbInfo(http::Request& req, ApiVersion v) {
  Target t;
  http::Response err;
  if (!Resolve(req, "thumbs", &t, &err)) return err;
  std::vector<std::pair<int, int>> sizes;
  for (auto& th : t.asset.thumbnails) sizes.emplace_back(th.width, th.height);
  std::sort(sizes.begin(), sizes.end());
  std::string id = base_ + ServicePath(v, "thumbs", t.customer_segment, t.asset.space, t.asset.id);
  int w = sizes.empty() ? 0 : sizes.back().first, h = sizes.empty() ? 0 : sizes.back().second;
  http::Response res;
  res.Set("Cache-Control", kInfoCacheControl);
  res.Set("Link", ProfileLink(v, true));
  if (options_.custom_headers) options_.custom_headers(t.asset.customer, t.asset.space, &res);
  if (NotModified(req, res,
                  Etag(t.version_key + (v == ApiVersion::kV2 ? "/thumbs/v2" : "/thumbs") + base_ +
                       "|" + t.customer_segment + AccessKey(t.asset)),
                  t.asset.finished_ms.value_or(0)))
    return NotModifiedResponse(res);
  res.status = 200;
  res.body = InfoJsonLevel0(v, id, w, h, sizes).dump();
  res.Set("Content-Type", InfoContentType(req, v));
  return res;
}

// Picks the stored thumbnail a level-0 size request names exactly, or none.
static const ThumbnailSize* MatchThumbnail(const std::vector<ThumbnailSize>& thumbs,
                                           const std::string& size) {
  if (thumbs.empty()) return nullptr;
  if (size == "max" || size == "full") return &thumbs.front();  // largest first
  bool confined = !size.empty() && size[0] == '!';
  std::string s = confined ? size.substr(1) : size;
  size_t comma = s.find(',');
  if (comma == std::string::npos) return nullptr;
  auto w = ParseId(s.substr(0, comma)), h = ParseId(s.substr(comma + 1));
  for (const auto& t : thumbs) {
    if (confined) {
      if (w && h && t.width <= *w && t.height <= *h && (t.width == *w || t.height == *h))
        return &t;
    } else if ((w || h) && (!w || t.width == *w) && (!h || t.height == *h)) {
      return &t;
    }
  }
  return nullptr;
}

http::Response Delivery::Thumb(http::Request& req, ApiVersion v) {
  Target t;
  http::Response err;
  if (!Resolve(req, "thumbs", &t, &err)) return err;
  if (req.Param("region") != "full" || req.Param("rotation") != "0" ||
      req.Param("qf") != "default.jpg")
    return Text(400, "thumbnails are served only as full/{size}/0/default.jpg");
  const ThumbnailSize* match = MatchThumbnail(t.asset.thumbnails, req.Param("size"));
  if (match == nullptr)
    return Text(404, "no stored thumbnail of size '" + req.Param("size") +
                         "'; see info.json for the sizes available");
  http::Response res;
  res.Set("Cache-Control", kImageCacheControl);
  res.Set("Link", ProfileLink(v, true));
  if (options_.custom_headers) options_.custom_headers(t.asset.customer, t.asset.space, &res);
  std::string key = ThumbnailKey(t.prefix, match->width, match->height);
  if (NotModified(req, res, Etag(t.version_key + key), t.asset.finished_ms.value_or(0)))
    return NotModifiedResponse(res);
  auto bytes = ReadBlob(key, t.version_key);
  if (!bytes.ok() && IsTransient(bytes.status())) return TryLater(bytes.status());
  if (!bytes.ok()) return Text(404, "thumbnail missing: " + bytes.status().message());
  res.status = 200;
  res.body = std::move(*bytes);
  res.Set("Content-Type", "image/jpeg");
  return res;
}

http::Response Delivery::File(http::Request& req) {
  Target t;
  http::Response err;
  if (!Resolve(req, "file", &t, &err)) return err;
  http::Response res;
  // Resolve let a restricted original through only for a session: no shared cache keeps it.
  res.Set("Cache-Control", t.asset.Restricted() ? "private" : kImageCacheControl);
  if (options_.custom_headers) options_.custom_headers(t.asset.customer, t.asset.space, &res);
  if (NotModified(req, res, Etag(t.version_key + "/file"), t.asset.finished_ms.value_or(0)))
    return NotModifiedResponse(res);
  auto bytes = ReadBlob(OriginalKey(t.prefix), t.version_key);
  if (!bytes.ok() && IsTransient(bytes.status())) return TryLater(bytes.status());
  if (!bytes.ok()) return Text(404, "original missing: " + bytes.status().message());
  res.status = 200;
  res.body = std::move(*bytes);
  res.Set("Content-Type", t.asset.media_type);
  return res;
}

namespace {

// One "bytes=" range of a blob of `size` bytes (RFC 9110 §14.1.2): first and last byte, both
// inclusive. nullopt: no usable Range header (absent, another unit, several ranges: the
// whole body is sent); first > last: unsatisfiable (416).
std::optional<std::pair<int64_t, int64_t>> ParseByteRange(const std::string& header,
                                                          int64_t size) {
  if (header.rfind("bytes=", 0) != 0) return std::nullopt;
  std::string spec = header.substr(6);
  while (!spec.empty() && spec.back() == ' ') spec.pop_back();
  while (!spec.empty() && spec.front() == ' ') spec.erase(0, 1);
  if (spec.find(',') != std::string::npos) return std::nullopt;
  size_t dash = spec.find('-');
  if (dash == std::string::npos) return std::nullopt;
  auto number = [](const std::string& t, int64_t* v) {
    if (t.empty() || t.size() > 18) return false;
    for (char ch : t)
      if (ch < '0' || ch > '9') return false;
    *v = std::stoll(t);
    return true;
  };
  std::string a = spec.substr(0, dash), b = spec.substr(dash + 1);
  int64_t first = 0, last = 0;
  if (a.empty()) {  // suffix: the last b bytes
    int64_t n = 0;
    if (!number(b, &n)) return std::nullopt;
    if (n == 0 || size == 0) return std::pair<int64_t, int64_t>{1, 0};
    return std::pair<int64_t, int64_t>{std::max<int64_t>(0, size - n), size - 1};
  }
  if (!number(a, &first)) return std::nullopt;
  if (b.empty()) {
    last = size - 1;
  } else {
    if (!number(b, &last) || last < first) return std::nullopt;  // invalid: ignored
    last = std::min(last, size - 1);
  }
  if (first >= size) return std::pair<int64_t, int64_t>{1, 0};
  return std::pair<int64_t, int64_t>{first, last};
}

// A range answer holds at most this much: a player asking "bytes=0-" of a long recording
// gets the first part, says Content-Range, and asks on (RFC 9110 lets a server send less of
// an open range than the rest of the representation only this way).
constexpr int64_t kMaxRangeBytes = 16LL << 20;

}  // namespace

http::Response Delivery::Av(http::Request& req) {
  Target t;
  http::Response err;
  if (!Resolve(req, "iiif-av", &t, &err)) return err;
  const bool audio = AvPolicyFor(t.asset) == "default-audio";
  const std::string extension = audio ? "mp3" : "mp4";
  if (req.Param("file") != "default." + extension)
    return Text(404, "image '" + t.asset.id + "' is delivered as default." + extension);
  http::Response res;
  res.Set("Cache-Control", t.asset.Restricted() ? "private" : kImageCacheControl);
  res.Set("Accept-Ranges", "bytes");
  if (options_.custom_headers) options_.custom_headers(t.asset.customer, t.asset.space, &res);
  const std::string key = AvKey(t.prefix, extension);
  // The validator covers the access rule too: a 304 never confirms an answer given under
  // another one.
  const std::string etag = Etag(t.version_key + "/av" + AccessKey(t.asset));
  const std::string& range_header = req.Header("range");
  const std::string& if_range = req.Header("if-range");
  if (NotModified(req, res, etag, t.asset.finished_ms.value_or(0)))
    return NotModifiedResponse(res);
  auto stat = blobs_.Stat(key);
  if (!stat.ok() && IsTransient(stat.status())) return TryLater(stat.status());
  if (!stat.ok()) return Text(404, "the recording of '" + t.asset.id + "' is missing");
  const int64_t size = stat->size;
  const std::string type = audio ? "audio/mpeg" : "video/mp4";
  // If-Range with another validator: the client's part is stale; send the whole.
  std::optional<std::pair<int64_t, int64_t>> range;
  if (!range_header.empty() && (if_range.empty() || if_range == etag))
    range = ParseByteRange(range_header, size);
  if (range && range->first > range->second) {
    http::Response r = Text(416, "range not satisfiable: the recording is " +
                                     std::to_string(size) + " bytes");
    for (auto& [k, v] : res.headers) r.Set(k, v);
    r.Set("Content-Range", "bytes */" + std::to_string(size));
    return r;
  }
  const bool head = req.method == "HEAD";
  int64_t first = 0, length = size;
  if (range) {
    first = range->first;
    length = std::min(range->second - first + 1, kMaxRangeBytes);
    res.status = 206;
    res.Set("Content-Range", "bytes " + std::to_string(first) + "-" +
                                 std::to_string(first + length - 1) + "/" +
                                 std::to_string(size));
  } else {
    res.status = 200;
  }
  res.Set("Content-Type", type);
  if (head) {
    res.Set("Content-Length", std::to_string(length));
    return res;
  }
  Result<std::string> bytes = Status::Internal("unread");
  if (!range) {
    bytes = ReadBlob(key, stat->version);
  } else {
    bytes = remote_ ? cache_->GetRange(key, stat->version, first, length)
                    : blobs_.GetRange(key, first, length, stat->version);
  }
  if (!bytes.ok() && IsTransient(bytes.status())) return TryLater(bytes.status());
  if (!bytes.ok()) return Text(404, "the recording is missing: " + bytes.status().message());
  if (static_cast<int64_t>(bytes->size()) != length)
    return TryLater(Status::Conflict("the recording changed while it was read"));
  res.body = std::move(*bytes);
  return res;
}

}  // namespace quire::iiif
