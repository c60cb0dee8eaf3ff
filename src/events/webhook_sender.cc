#include "events/webhook_sender.h"

#include <curl/curl.h>
#include <openssl/hmac.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/address_guard.h"

namespace quire::events {

namespace {

using json = nlohmann::json;

// What one request's callbacks share.
struct Call {
  bool guard = false;
  std::string refused_ip;
  const std::atomic<bool>* stop = nullptr;
  std::string response;  // the start of the receiver's answer, for the log
};

curl_socket_t OpenSocket(void* clientp, curlsocktype, struct curl_sockaddr* address) {
  auto* call = static_cast<Call*>(clientp);
  if (call->guard) {
    std::string ip = SockaddrIp(&address->addr);
    if (ip.empty() || IsForbiddenAddress(ip)) {
      call->refused_ip = ip.empty() ? "(unknown family)" : ip;
      return CURL_SOCKET_BAD;
    }
  }
  return ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

size_t KeepSome(char* data, size_t size, size_t n, void* userp) {
  auto* call = static_cast<Call*>(userp);
  size_t len = size * n;
  if (call->response.size() < 200) call->response.append(data, std::min<size_t>(len, 200));
  return len;
}

int Progress(void* clientp, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<Call*>(clientp)->stop->load() ? 1 : 0;
}

std::string Hex(const unsigned char* p, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[p[i] >> 4];
    out += kDigits[p[i] & 15];
  }
  return out;
}

int64_t NowMsWall() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string WebhookSignature(const std::string& secret, int64_t unix_s, const std::string& body) {
  std::string signed_text = std::to_string(unix_s) + "." + body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(signed_text.data()), signed_text.size(), mac, &len);
  return "t=" + std::to_string(unix_s) + ",v1=" + Hex(mac, len);
}

std::string WebhookBody(const hydra::Urls& urls, const WebhookDelivery& d) {
  json p = json::parse(d.payload, nullptr, false);
  if (!p.is_object()) p = json::object();
  json body = {{"type", d.type}, {"id", d.event_id}};
  if (d.type == kEventBatchFinished) {
    Batch b;
    b.id = p.value("id", int64_t{0});
    b.customer = p.value("customer", int64_t{0});
    b.count = p.value("count", int64_t{0});
    b.completed = p.value("completed", int64_t{0});
    b.errors = p.value("errors", int64_t{0});
    b.superseded = p.value("superseded", false);
    b.priority = p.value("priority", false);
    b.submitted_ms = p.value("submitted", int64_t{0});
    b.finished_ms = p.value("finished", int64_t{0});
    json batch = hydra::BatchJson(urls, b);
    batch["customer"] = b.customer;  // DLCS BatchCompleted names it
    body["batch"] = std::move(batch);
  } else {
    int64_t customer = p.value("customer", int64_t{0});
    int64_t space = p.value("space", int64_t{0});
    std::string id = p.value("id", std::string());
    json image = {{"@id", urls.Image(customer, space, id)},
                  {"id", id},
                  {"space", space},
                  {"customer", customer},
                  {"state", d.type == kEventImageFailed ? "error" : "completed"},
                  {"error", p.value("error", std::string())}};
    if (p.contains("batch") && p["batch"].is_number_integer())
      image["batch"] = urls.Batch(customer, p["batch"].get<int64_t>());
    body["image"] = std::move(image);
  }
  return body.dump();
}

WebhookSender::WebhookSender(Store& store, hydra::Urls urls, WebhookOptions options)
    : store_(store), urls_(std::move(urls)), options_(std::move(options)) {}

WebhookSender::~WebhookSender() { Stop(); }

void WebhookSender::Start() {
  if (!threads_.empty()) return;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  for (int i = 0; i < std::max(1, options_.threads); ++i)
    threads_.emplace_back([this, i] { Run(i); });
}

void WebhookSender::Stop() {
  stop_ = true;
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void WebhookSender::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++wakes_;
  }
  cv_.notify_all();
}

void WebhookSender::Run(int index) {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  std::string owner = (options_.node_id.empty() ? std::string(host) : options_.node_id) + ":" +
                      std::to_string(getpid()) + "/webhooks-" + std::to_string(index);
  // A lease outlives the request it covers, so a live sender never loses it mid-request.
  const int64_t lease_ms = options_.timeout_ms + 30000;
  while (!stop_) {
    uint64_t seen;
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen = wakes_;
    }
    auto claimed = store_.ClaimDelivery(owner, lease_ms);
    int64_t wait_ms = 30000;  // also notices other nodes' expired leases
    if (claimed.ok() && claimed->has_value()) {
      Deliver(**claimed);
      continue;
    }
    if (!claimed.ok()) {
      spdlog::warn("webhooks: cannot claim deliveries: {}", claimed.status().message());
      wait_ms = 1000;
    } else if (auto due = store_.NextDeliveryDue(); due.ok() && due->has_value()) {
      wait_ms = std::clamp<int64_t>(**due - NowMsWall() + 5, 0, wait_ms);
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(wait_ms),
                 [&] { return stop_.load() || wakes_ != seen; });
  }
}

void WebhookSender::Deliver(WebhookDelivery& d) {
  std::string body = WebhookBody(urls_, d);
  int attempt = d.attempts + 1;
  int64_t started = NowMsWall();
  std::string signature = WebhookSignature(d.secret, started / 1000, body);

  Call call;
  call.guard = !options_.allow_private;
  call.stop = &stop_;
  CURL* c = curl_easy_init();
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, ("Quire-Event-Id: " + d.event_id).c_str());
  headers = curl_slist_append(headers, ("Quire-Event-Type: " + d.type).c_str());
  headers =
      curl_slist_append(headers, ("Quire-Delivery-Attempt: " + std::to_string(attempt)).c_str());
  headers = curl_slist_append(headers, ("Quire-Signature: " + signature).c_str());
  headers = curl_slist_append(headers, "Expect:");
  char errbuf[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(c, CURLOPT_URL, d.url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);  // a redirect is a failed delivery
  curl_easy_setopt(c, CURLOPT_PROXY, "");           // the guard must see the receiver itself
  curl_easy_setopt(c, CURLOPT_USERAGENT, "Quire-webhooks/1");
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout_ms));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.timeout_ms));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, KeepSome);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &call);
  curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, OpenSocket);
  curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &call);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, Progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &call);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  CURLcode rc = curl_easy_perform(c);
  long code = 0;
  if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_slist_free_all(headers);
  curl_easy_cleanup(c);
  if (rc == CURLE_ABORTED_BY_CALLBACK && stop_) return;  // stopping: the lease will expire

  DeliveryAttempt a;
  a.attempt = attempt;
  a.at_ms = started;
  a.status = static_cast<int>(code);
  a.micros = (NowMsWall() - started) * 1000;
  bool ok = rc == CURLE_OK && code >= 200 && code <= 299;
  if (rc == CURLE_OPERATION_TIMEDOUT) {
    a.error = "no answer within " + std::to_string(options_.timeout_ms) + " ms";
  } else if (!call.refused_ip.empty()) {
    a.error = "receiver address " + call.refused_ip + " is private and not allowed";
  } else if (rc != CURLE_OK) {
    a.error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  } else if (!ok) {
    a.error = "receiver answered HTTP " + std::to_string(code);
  }
  std::optional<int64_t> next;
  if (!ok) {
    int64_t delay = options_.backoff_ms;
    for (int i = 1; i < attempt && delay < options_.max_backoff_ms; ++i) delay *= 2;
    delay = std::min(delay, options_.max_backoff_ms);
    int64_t at = NowMsWall() + delay;
    if (at - d.created_ms <= options_.give_up_ms) next = at;
  }
  Status st = store_.RecordDeliveryAttempt(d, a, ok, next);
  if (!st.ok()) {
    spdlog::warn("webhooks: cannot record attempt {} of event {}: {}", attempt, d.event_id,
                 st.message());
    return;
  }
  if (ok) {
    spdlog::info("webhook {} delivered event {} ({}) on attempt {}", d.webhook, d.event_id, d.type,
                 attempt);
  } else {
    spdlog::info("webhook {} attempt {} of event {} failed: {}{}", d.webhook, attempt, d.event_id,
                 a.error,
                 next ? "; next attempt in " + std::to_string((*next - NowMsWall()) / 1000) + " s"
                      : "; giving up");
  }
}

}  // namespace quire::events
