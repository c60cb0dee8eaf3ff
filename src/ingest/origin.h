// Fetching an image's origin (http, https, file) into a local file, with the safety rules of
// spec/api.md §9: scheme allow-list, an address guard re-checked on every connection
// (redirects included), size and time limits. Thread-safe; each call is independent.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "blob/blob_store.h"
#include "core/address_guard.h"
#include "core/status.h"

namespace quire {

// Connections to origins that downloads may open on top of their own one, shared by every
// download of a process (--fetch-connections). A download whose origin answers byte ranges
// (HTTP 206) takes free ones to fetch the rest of its body in parallel ranges, so an origin
// that limits each connection's rate costs little more than a fast one; it never waits for one.
class FetchConnections {
 public:
  explicit FetchConnections(int extra) : capacity_(extra), free_(extra) {}
  bool TryTake() {
    int n = free_.load();
    while (n > 0)
      if (free_.compare_exchange_weak(n, n - 1)) return true;
    return false;
  }
  void Give() { free_.fetch_add(1); }
  int Free() const { return free_.load(); }
  int Capacity() const { return capacity_; }

 private:
  const int capacity_;
  std::atomic<int> free_;
};

struct OriginPolicy {
  bool allow_private_origins = false;
  std::string file_root;  // empty = file:// refused
  int64_t max_bytes = 1LL << 30;
  long connect_timeout_ms = 10000;
  long total_timeout_ms = 300000;
  long low_speed_bytes_per_s = 1024;  // a transfer slower than this ...
  long low_speed_time_s = 30;         // ... for this long is abandoned
  int max_redirects = 5;
  // Set: an http(s) download first asks for its first `range_bytes` (Range: bytes=0-...); when
  // the origin answers 206 it fetches the rest in ranges of at least that size over as many of
  // these extra connections as are free (up to `max_ranges` at once), each range checked
  // against the first answer's size and validator (If-Range). An origin that answers 200, 416
  // or anything unexpected to a range is fetched whole over one connection, as without this.
  std::shared_ptr<FetchConnections> connections;
  int64_t range_bytes = 1 << 20;
  int max_ranges = 8;
  // >0: the download stops with kIOError once the volume it writes to has less than this
  // free (checked every few MiB), keeping room for the database.
  int64_t reserve_bytes = 0;
  // When set and it becomes true, a download in progress is abandoned within about a second
  // (kUnavailable "origin download abandoned: ..."); ingest workers point it at their stop flag
  // so a graceful stop does not wait for slow or stalled origins.
  const std::atomic<bool>* cancel = nullptr;
  // When set, asked once for room before any byte is written: `bytes` is the size the origin
  // declares (max_bytes when it declares none). False means no room now: the fetch ends with
  // kUnavailable "no room in the scratch budget ..." and writes nothing; the ingest prefetcher
  // waits for room and fetches again (--scratch-bytes).
  std::function<bool(int64_t bytes)> reserve;
  // s3://bucket/key origins (DLCS "s3-ambient"): fetched with the server's own S3
  // credentials (QUIRE_S3_* / AWS_* environment) from `s3_endpoint`, only from these buckets.
  std::vector<std::string> s3_buckets;  // empty: s3 origins refused
  std::string s3_endpoint = "https://s3.amazonaws.com";
  std::string s3_region = "us-east-1";
  bool s3_path_style = false;
  // HTTP Basic credentials for this fetch (an origin strategy's); never logged. When the
  // origin answers 401/403 the error says it refused the credentials of `credentials_from`.
  std::string basic_user, basic_password;
  std::string credentials_from;  // e.g. "origin strategy 3f2a…"
};

// Downloads `origin` into `dest_path` (created or truncated; removed again on failure).
// On failure the message is a sentence naming the stage and cause, e.g. "origin returned HTTP
// 404", "origin timed out after 10 s", "origin address 127.0.0.1 is private and not allowed".
// Code::kUnavailable means transient (timeouts, refused/reset connections, DNS failure, HTTP
// 5xx/429/408) and worth retrying; every other non-ok code is permanent: kNotFound (404/410,
// missing file), kForbidden (401/403, guard refusal, file outside the root), kTooLarge,
// kInvalid (bad URL or scheme, other 4xx, redirect loops), kIOError (local
// disk).
Status FetchOrigin(const std::string& origin, const OriginPolicy& policy,
                   const std::string& dest_path);

// An origin that names an upload (Asset::upload, spec/platform.md §2): the bytes are the
// server's own blob, copied to `dest_path` with no HTTP fetch and no origin guard. kNotFound
// ("uploaded bytes ... are gone") when the blob is missing; storage errors pass through
// (kUnavailable is transient).
// `reserve`: as OriginPolicy::reserve, asked with the upload's size.
Status FetchUploadOrigin(const BlobStore& blobs, int64_t customer, const std::string& upload_id,
                         const std::string& dest_path,
                         const std::function<bool(int64_t)>& reserve = {});

// A blob of the server's own (e.g. a PDF's stored original, which its pages read) copied to
// `dest_path` within `reserve`, as FetchUploadOrigin does. kNotFound when the blob is missing.
Status FetchStoredBlob(const BlobStore& blobs, const std::string& key, const std::string& dest_path,
                       const std::function<bool(int64_t)>& reserve = {});

// IsForbiddenAddress (core/address_guard.h) is the rule FetchOrigin applies.

// FetchOrigin with the address rule replaced: `forbidden(ip)` is asked for every address a
// connection is opened to or reused for. FetchOrigin uses IsForbiddenAddress (or no rule when
// private origins are allowed). Exposed so tests can exercise redirect re-checking on loopback.
using AddressRule = std::function<bool(const std::string& ip)>;
Status FetchOriginWithRule(const std::string& origin, const OriginPolicy& policy,
                           const std::string& dest_path, const AddressRule& forbidden);

}  // namespace quire
