#include "blob/s3/s3_client.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <boost/url.hpp>
#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>

#include "blob/s3/sigv4.h"

namespace quire::s3 {
namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

bool ParseInt(const std::string& s, int64_t lo, int64_t hi, int64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  int64_t v = std::stoll(s);
  if (v < lo || v > hi) return false;
  *out = v;
  return true;
}

struct Transfer {
  const std::string* body = nullptr;
  size_t body_at = 0;
  int out_fd = -1;
  CURL* curl = nullptr;
  S3Response* response = nullptr;
  bool write_failed = false;
};

size_t ReadBody(char* buf, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t left = t->body->size() - t->body_at;
  size_t k = std::min(left, size * n);
  std::memcpy(buf, t->body->data() + t->body_at, k);
  t->body_at += k;
  return k;
}

size_t WriteBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t total = size * n;
  long status = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  if (t->out_fd >= 0 && status >= 200 && status < 300) {
    size_t done = 0;
    while (done < total) {
      ssize_t w = ::write(t->out_fd, data + done, total - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        t->write_failed = true;
        return 0;
      }
      done += size_t(w);
    }
    return total;
  }
  t->response->body.append(data, total);
  return total;
}

size_t WriteHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) t->response->headers.clear();  // a new (final) response
  size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = Lower(line.substr(0, colon));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
      value.pop_back();
    t->response->headers[name] = value;
  }
  return size * n;
}

bool TransientCurl(CURLcode c) {
  switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

std::string Decode(std::string s) {
  static const std::pair<const char*, const char*> kEntities[] = {
      {"&quot;", "\""}, {"&apos;", "'"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&#34;", "\""},
      {"&amp;", "&"}};
  for (const auto& [from, to] : kEntities) {
    size_t at = 0;
    const size_t flen = std::strlen(from);
    while ((at = s.find(from, at)) != std::string::npos) {
      s.replace(at, flen, to);
      at += std::strlen(to);
    }
  }
  return s;
}

}  // namespace

std::vector<std::string> XmlAll(const std::string& xml, const std::string& tag) {
  std::vector<std::string> out;
  const std::string open = "<" + tag + ">", close = "</" + tag + ">";
  size_t at = 0;
  while ((at = xml.find(open, at)) != std::string::npos) {
    size_t start = at + open.size();
    size_t end = xml.find(close, start);
    if (end == std::string::npos) break;
    out.push_back(Decode(xml.substr(start, end - start)));
    at = end + close.size();
  }
  return out;
}

std::string XmlFirst(const std::string& xml, const std::string& tag) {
  auto all = XmlAll(xml, tag);
  return all.empty() ? "" : all.front();
}

std::string XmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

Result<S3Config> ParseS3Url(const std::string& url) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed || parsed->scheme() != "s3" || parsed->host().empty()) {
    return Status::Invalid("storage URL \"" + url +
                           "\" is not s3://bucket/prefix?endpoint=…&region=…");
  }
  if (parsed->has_userinfo()) {
    return Status::Invalid("storage URL must not carry credentials; set QUIRE_S3_ACCESS_KEY and "
                           "QUIRE_S3_SECRET_KEY");
  }
  S3Config c;
  c.bucket = std::string(parsed->host());
  std::string prefix = std::string(parsed->path());
  while (!prefix.empty() && prefix.front() == '/') prefix.erase(0, 1);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  c.prefix = prefix;
  std::string endpoint = "https://s3.amazonaws.com";
  for (auto p : parsed->params()) {
    std::string k(p.key), v(p.has_value ? std::string(p.value) : "");
    int64_t n = 0;
    if (k == "endpoint") {
      endpoint = v;
    } else if (k == "region") {
      c.region = v;
    } else if (k == "path_style") {
      c.path_style = v == "1" || v == "true";
    } else if (k == "multipart_threshold" && ParseInt(v, 1 << 20, int64_t(1) << 40, &n)) {
      c.multipart_threshold = n;
    } else if (k == "part_size" && ParseInt(v, 1 << 20, int64_t(5) << 30, &n)) {
      c.part_size = n;
    } else if (k == "max_attempts" && ParseInt(v, 1, 100, &n)) {
      c.max_attempts = int(n);
    } else if (k == "backoff_ms" && ParseInt(v, 1, 600000, &n)) {
      c.backoff_ms = int(n);
    } else if (k == "upload_cleanup_s" && ParseInt(v, 0, int64_t(1) << 32, &n)) {
      c.upload_cleanup_s = n;
    } else {
      return Status::Invalid("storage URL parameter \"" + k + "=" + v + "\" is not understood");
    }
  }
  auto ep = boost::urls::parse_uri(endpoint);
  if (!ep || (ep->scheme() != "http" && ep->scheme() != "https") || ep->host().empty()) {
    return Status::Invalid("S3 endpoint \"" + endpoint + "\" is not http(s)://host[:port]");
  }
  c.scheme = std::string(ep->scheme());
  c.endpoint_host = std::string(ep->encoded_host_and_port());
  if (c.region.empty()) return Status::Invalid("S3 region is empty");
  c.access_key = Env("QUIRE_S3_ACCESS_KEY");
  c.secret_key = Env("QUIRE_S3_SECRET_KEY");
  if (c.access_key.empty() && c.secret_key.empty()) {
    c.access_key = Env("AWS_ACCESS_KEY_ID");
    c.secret_key = Env("AWS_SECRET_ACCESS_KEY");
  }
  if (c.access_key.empty() || c.secret_key.empty()) {
    return Status::Invalid("S3 storage needs credentials: set QUIRE_S3_ACCESS_KEY and "
                           "QUIRE_S3_SECRET_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
  }
  return c;
}

struct S3Client::Handle {
  CURL* curl = nullptr;
};

S3Client::S3Client(S3Config config) : config_(std::move(config)) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

S3Client::~S3Client() {
  for (Handle* h : idle_) {
    curl_easy_cleanup(h->curl);
    delete h;
  }
}

std::string S3Client::FullKey(const std::string& key) const {
  return config_.prefix.empty() ? key : config_.prefix + "/" + key;
}

int64_t S3Client::requests_sent() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sent_;
}

S3Client::Handle* S3Client::Take() const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++sent_;
    if (!idle_.empty()) {
      Handle* h = idle_.back();
      idle_.pop_back();
      return h;
    }
  }
  auto* h = new Handle;
  h->curl = curl_easy_init();
  return h;
}

void S3Client::Give(Handle* h) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_.size() < 64) {
    idle_.push_back(h);
    return;
  }
  curl_easy_cleanup(h->curl);
  delete h;
}

Result<S3Response> S3Client::SendOnce(Handle* h, const S3Request& req, bool* transient) const {
  *transient = false;
  CURL* curl = h->curl;
  curl_easy_reset(curl);  // keeps the connection cache
  const std::string host = config_.path_style ? config_.endpoint_host
                                              : config_.bucket + "." + config_.endpoint_host;
  std::string path = "/";
  if (config_.path_style) path += UriEncode(config_.bucket, false) + (req.key.empty() ? "" : "/");
  path += UriEncode(req.key, true);
  SigningInput in;
  in.method = req.method;
  in.host = host;
  in.canonical_path = path;
  in.query = req.query;
  in.headers = req.headers;
  in.payload_sha256 = req.body ? Sha256Hex(*req.body) : kEmptySha256;
  in.region = config_.region;
  in.access_key = config_.access_key;
  in.secret_key = config_.secret_key;
  in.amz_date = AmzDateNow();
  std::string query = CanonicalQuery(req.query);
  std::string url = config_.scheme + "://" + host + path + (query.empty() ? "" : "?" + query);

  curl_slist* headers = nullptr;
  for (const auto& [k, v] : SignedHeaders(in)) {
    if (k == "host") continue;  // curl sends it from the URL, identically
    headers = curl_slist_append(headers, (k + ": " + v).c_str());
  }
  headers = curl_slist_append(headers, "Expect:");
  if (req.body && !req.headers.count("content-type"))
    headers = curl_slist_append(headers, "Content-Type: application/octet-stream");

  S3Response response;
  Transfer t;
  t.body = req.body;
  t.out_fd = req.out_fd;
  t.curl = curl;
  t.response = &response;
  if (req.out_fd >= 0) {
    if (::ftruncate(req.out_fd, 0) != 0 || ::lseek(req.out_fd, 0, SEEK_SET) != 0)
      return Status::IOError("cannot truncate a download file");
  }
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, config_.connect_timeout_ms);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, config_.low_speed_time_s);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, WriteBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, WriteHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L);
  if (req.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (req.method == "PUT" || req.method == "POST") {
    static const std::string kEmpty;
    t.body = req.body ? req.body : &kEmpty;
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, ReadBody);
    curl_easy_setopt(curl, CURLOPT_READDATA, &t);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, curl_off_t(t.body->size()));
    if (req.method == "POST") curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "POST");
  } else if (req.method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }
  CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  if (t.write_failed) return Status::IOError("cannot write a download file");
  if (rc != CURLE_OK) {
    *transient = TransientCurl(rc);
    return Status::Unavailable(std::string("S3 ") + req.method + " failed: " +
                               curl_easy_strerror(rc));
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  if (response.status >= 500 || XmlFirst(response.body, "Code") == "SlowDown") {
    *transient = true;
  }
  return response;
}

Result<S3Response> S3Client::Send(const S3Request& req) const {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  Result<S3Response> last = Status::Unavailable("S3 request not sent");
  for (int attempt = 1; attempt <= config_.max_attempts; ++attempt) {
    Handle* h = Take();
    bool transient = false;
    last = SendOnce(h, req, &transient);
    Give(h);
    if (last.ok()) last->attempts = attempt;
    if (!transient) return last;
    if (attempt == config_.max_attempts) break;
    // Full jitter: a random delay up to the doubled cap, so retrying clients spread out.
    int64_t cap = std::min<int64_t>(config_.max_backoff_ms,
                                    int64_t(config_.backoff_ms) << std::min(attempt - 1, 20));
    std::uniform_int_distribution<int64_t> d(cap / 2, cap);
    std::this_thread::sleep_for(std::chrono::milliseconds(d(rng)));
  }
  if (last.ok()) return last;  // a final 5xx: the caller maps it to kUnavailable
  return Status::Unavailable(last.status().message() + " (after " +
                             std::to_string(config_.max_attempts) + " tries)");
}

Status ErrorStatus(const S3Response& r, const std::string& what) {
  const std::string code = XmlFirst(r.body, "Code");
  const std::string message = XmlFirst(r.body, "Message");
  std::string text = what + ": S3 answered " + std::to_string(r.status);
  if (!code.empty()) text += " " + code;
  if (!message.empty()) text += " (" + message + ")";
  if (r.status == 404) return Status::NotFound(text);
  if (r.status == 403) return Status::Forbidden(text);
  if (r.status == 412) return Status::Conflict(text);
  if (r.status >= 500 || code == "SlowDown") return Status::Unavailable(text);
  return Status::IOError(text);
}

}  // namespace quire::s3
