// S3Client: signed S3 requests over pooled libcurl handles (kept-alive connections), with
// retries, exponential backoff and full jitter for what is transient: connection failures
// and resets, timeouts, 5xx and SlowDown. Thread-safe. Credentials are held, never logged.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/status.h"

namespace quire::s3 {

struct S3Config {
  std::string bucket;
  std::string prefix;  // key prefix without leading or trailing '/'; may be empty
  std::string scheme = "https";
  std::string endpoint_host;  // host[:port] of the service (without the bucket)
  std::string region = "us-east-1";
  bool path_style = false;
  std::string access_key, secret_key;
  int64_t multipart_threshold = 16 << 20;  // PutFile of larger files goes multipart
  // S3 refuses parts under 5 MiB (but the last) when the upload is completed; smaller values
  // (down to 1 MiB) are accepted here only so that tests can make a completion fail.
  int64_t part_size = 8 << 20;
  int max_attempts = 6;                    // tries per request before kUnavailable
  int backoff_ms = 100;                    // first retry delay, doubling, with full jitter
  int max_backoff_ms = 3000;
  int64_t upload_cleanup_s = 3600;  // multipart uploads older than this are aborted
  long connect_timeout_ms = 3000;
  long low_speed_time_s = 30;  // a transfer under 1 KiB/s this long is abandoned
};

// Parses "s3://bucket/prefix?endpoint=http://host:port&region=…&path_style=1" plus the
// optional tuning parameters multipart_threshold, part_size, max_attempts, backoff_ms,
// upload_cleanup_s. Credentials come from QUIRE_S3_ACCESS_KEY / QUIRE_S3_SECRET_KEY, else
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; a URL carrying credentials is refused.
Result<S3Config> ParseS3Url(const std::string& url);

struct S3Request {
  std::string method = "GET";
  std::string key;  // full object key (prefix included); empty: the bucket itself
  std::map<std::string, std::string> query;    // raw names and values
  std::map<std::string, std::string> headers;  // lower-case names; all signed
  const std::string* body = nullptr;           // request body (PUT/POST), or none
  int out_fd = -1;  // a 2xx body goes to this file (truncated on each try), not to memory
};

struct S3Response {
  long status = 0;
  std::string body;                            // the error body too
  std::map<std::string, std::string> headers;  // lower-case names
  int attempts = 0;
};

class S3Client {
 public:
  explicit S3Client(S3Config config);
  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  // Sends `req`, retrying transient failures. An HTTP answer (2xx or a final 4xx) is a
  // response; kUnavailable when the service could not be reached or kept failing.
  Result<S3Response> Send(const S3Request& req) const;

  const S3Config& config() const { return config_; }
  // "prefix/key" (or "key" without a prefix).
  std::string FullKey(const std::string& key) const;
  // How many requests went out (every try), for tests and metrics.
  int64_t requests_sent() const;

 private:
  struct Handle;
  Handle* Take() const;
  void Give(Handle* h) const;
  Result<S3Response> SendOnce(Handle* h, const S3Request& req, bool* transient) const;

  S3Config config_;
  mutable std::mutex mu_;
  mutable std::vector<Handle*> idle_;
  mutable int64_t sent_ = 0;
};

// The S3 error of a non-2xx response as a Status: NoSuchKey/404 → kNotFound, 403 →
// kForbidden, 412 → kConflict, 5xx/SlowDown → kUnavailable, else kIOError. `what` names
// the operation ("GET 1/2/x/image.tif").
Status ErrorStatus(const S3Response& r, const std::string& what);

// Minimal XML reading for S3's flat answers: the text of every <tag>…</tag> in `xml`,
// entities decoded.
std::vector<std::string> XmlAll(const std::string& xml, const std::string& tag);
std::string XmlFirst(const std::string& xml, const std::string& tag);
std::string XmlEscape(const std::string& s);

}  // namespace quire::s3
