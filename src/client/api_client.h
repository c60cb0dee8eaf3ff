// The HTTP side of `quire client`: blocking calls to a Quire (or DLCS) API over libcurl, with
// HTTP Basic credentials, keep-alive on one connection per ApiClient, and uploads streamed
// from a file with a progress callback. It uses only the public API, as any client would.
// One ApiClient per thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace quire::client {

struct Endpoint {
  std::string url;  // API base, no trailing slash
  std::string key, secret;
};

struct HttpReply {
  long status = 0;
  std::string body;
  nlohmann::json Json() const;  // discarded value when not JSON
  // The API error's `detail` (or the body's start) for messages.
  std::string Detail() const;
};

// True for answers worth trying again: 408, 429, 5xx.
bool IsTransientStatus(long status);

class ApiClient {
 public:
  explicit ApiClient(Endpoint endpoint);
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  // `path_or_url`: an absolute URL or a path below the endpoint. kUnavailable when the server
  // cannot be reached or the connection broke (worth retrying); the reply otherwise, whatever
  // its status.
  Result<HttpReply> Call(const std::string& method, const std::string& path_or_url,
                         const std::string& body = "");
  Result<HttpReply> Get(const std::string& path_or_url) { return Call("GET", path_or_url); }
  Result<HttpReply> PostJson(const std::string& path_or_url, const nlohmann::json& body) {
    return Call("POST", path_or_url, body.dump());
  }

  // POSTs the file at `path` as the raw body, streamed, with `headers`. `progress(sent)` is
  // called as bytes go out; when `cancel` becomes true the transfer stops (kUnavailable
  // "interrupted"). `max_bytes_per_s` > 0 limits the sending rate.
  Result<HttpReply> UploadFile(const std::string& url, const std::string& path,
                               const std::map<std::string, std::string>& headers,
                               const std::function<void(int64_t sent)>& progress,
                               const std::atomic<bool>* cancel, int64_t max_bytes_per_s);

  std::string Absolute(const std::string& path_or_url) const;

 private:
  // Resets the handle and sets what every request shares (see the .cc).
  void Prepare(const std::string& url, char* errbuf, HttpReply* reply);
  Endpoint endpoint_;
  void* curl_ = nullptr;
};

}  // namespace quire::client
