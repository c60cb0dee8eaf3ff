#include "client/api_client.h"

#include <curl/curl.h>

#include <cstdio>
#include <mutex>

namespace quire::client {

namespace {

size_t Collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

struct UploadState {
  FILE* file = nullptr;
  const std::function<void(int64_t)>* progress = nullptr;
  const std::atomic<bool>* cancel = nullptr;
};

size_t ReadFile(char* buffer, size_t size, size_t n, void* user) {
  auto* st = static_cast<UploadState*>(user);
  if (st->cancel != nullptr && st->cancel->load()) return CURL_READFUNC_ABORT;
  return std::fread(buffer, 1, size * n, st->file);
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t ulnow) {
  auto* st = static_cast<UploadState*>(user);
  if (st->progress != nullptr && *st->progress) (*st->progress)(static_cast<int64_t>(ulnow));
  return st->cancel != nullptr && st->cancel->load() ? 1 : 0;
}

}  // namespace

nlohmann::json HttpReply::Json() const {
  return nlohmann::json::parse(body, nullptr, false);
}

std::string HttpReply::Detail() const {
  auto j = Json();
  if (j.is_object() && j.contains("detail") && j["detail"].is_string())
    return j["detail"].get<std::string>();
  std::string text = body.substr(0, 200);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text.empty() ? "HTTP " + std::to_string(status) : text;
}

bool IsTransientStatus(long status) {
  return status == 408 || status == 429 || status >= 500;
}

ApiClient::ApiClient(Endpoint endpoint) : endpoint_(std::move(endpoint)) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  while (!endpoint_.url.empty() && endpoint_.url.back() == '/') endpoint_.url.pop_back();
  curl_ = curl_easy_init();
}

ApiClient::~ApiClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

std::string ApiClient::Absolute(const std::string& p) const {
  if (p.rfind("http://", 0) == 0 || p.rfind("https://", 0) == 0) return p;
  return endpoint_.url + (p.empty() || p[0] != '/' ? "/" : "") + p;
}

static Status CurlFailure(CURLcode rc, const std::string& url, const char* errbuf) {
  std::string why = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
  return Status::Unavailable("cannot reach " + url + ": " + why);
}

// What every request shares: the URL, the error buffer, no signals, the connect timeout, the
// key's Basic auth and the body collected into `reply`.
void ApiClient::Prepare(const std::string& url, char* errbuf, HttpReply* reply) {
  CURL* c = static_cast<CURL*>(curl_);
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  if (!endpoint_.key.empty()) {
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_USERNAME, endpoint_.key.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, endpoint_.secret.c_str());
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply->body);
}

Result<HttpReply> ApiClient::Call(const std::string& method, const std::string& path_or_url,
                                  const std::string& body) {
  CURL* c = static_cast<CURL*>(curl_);
  std::string url = Absolute(path_or_url);
  HttpReply reply;
  char errbuf[CURL_ERROR_SIZE] = {0};
  Prepare(url, errbuf, &reply);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
  struct curl_slist* headers = curl_slist_append(nullptr, "Accept: application/json");
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) return CurlFailure(rc, url, errbuf);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply.status);
  return reply;
}

Result<HttpReply> ApiClient::UploadFile(const std::string& url_in, const std::string& path,
                                        const std::map<std::string, std::string>& extra,
                                        const std::function<void(int64_t)>& progress,
                                        const std::atomic<bool>* cancel,
                                        int64_t max_bytes_per_s) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return Status::IOError("cannot open " + path);
  std::fseek(f, 0, SEEK_END);
  long size = std::ftell(f);
  std::fseek(f, 0, SEEK_SET);
  UploadState st{f, &progress, cancel};
  CURL* c = static_cast<CURL*>(curl_);
  std::string url = Absolute(url_in);
  HttpReply reply;
  char errbuf[CURL_ERROR_SIZE] = {0};
  Prepare(url, errbuf, &reply);
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_READFUNCTION, ReadFile);
  curl_easy_setopt(c, CURLOPT_READDATA, &st);
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(size));
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &st);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  // A stalled transfer (under 1 KiB/s for 60 s) is abandoned and retried.
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
  if (max_bytes_per_s > 0)
    curl_easy_setopt(c, CURLOPT_MAX_SEND_SPEED_LARGE, static_cast<curl_off_t>(max_bytes_per_s));
  struct curl_slist* headers = curl_slist_append(nullptr, "Accept: application/json");
  headers = curl_slist_append(headers, "Expect:");  // the server takes the body at once
  for (auto& [k, v] : extra) headers = curl_slist_append(headers, (k + ": " + v).c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  std::fclose(f);
  if (cancel != nullptr && cancel->load()) return Status::Unavailable("interrupted");
  if (rc != CURLE_OK) return CurlFailure(rc, url, errbuf);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply.status);
  return reply;
}

}  // namespace quire::client
