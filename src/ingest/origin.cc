#include "ingest/origin.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "blob/asset_keys.h"
#include "blob/free_space.h"
#include "blob/s3/s3_client.h"
#include "core/address_guard.h"

namespace quire {
namespace {

// How often a download looks at the free space of the volume it writes to.
constexpr int64_t kSpaceCheckEvery = 4 << 20;

namespace fs = std::filesystem;

std::string Lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string FormatSeconds(double s) {
  char buf[32];
  if (s >= 10 || std::fabs(s - std::round(s)) < 0.05) {
    std::snprintf(buf, sizeof buf, "%.0f", s);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f", s);
  }
  return buf;
}

Status HttpStatusError(long code) {
  std::string msg = "origin returned HTTP " + std::to_string(code);
  if (code == 408 || code == 429 || code >= 500) return Status::Unavailable(msg);
  if (code == 404 || code == 410) return Status::NotFound(msg);
  if (code == 401 || code == 403) return Status::Forbidden(msg);
  return Status::Invalid(msg);
}

Status NoRoom() {
  return Status::Unavailable("no room in the scratch budget for this download yet");
}

Status RefusedAddress(const std::string& ip) {
  return Status::Forbidden("origin address " + ip + " is private and not allowed");
}

// What every request of one download shares: the destination, the limits and the scratch
// room. Requests of a download run on one thread (one curl multi handle), so no locking.
struct Download {
  int fd = -1;
  int64_t max_bytes = 0;
  int64_t written = 0;  // body bytes written, over all requests
  int64_t reserve_bytes = 0;  // stop once the volume has less free (OriginPolicy)
  int64_t next_space_check = 0;
  std::string volume_full;  // set: the write stopped for lack of space
  int write_errno = 0;
  bool too_large = false;
  const std::function<bool(int64_t)>* reserve = nullptr;  // OriginPolicy::reserve
  bool reserved = false;  // kept across a retry without ranges: the room is asked for once
  bool no_room = false;
  // Ranged mode: the probe (first request) was answered 206 with the body's size.
  bool ranged = false;
  int64_t total = -1;
  std::string if_range;      // the probe's strong ETag, else its Last-Modified
  int64_t next = -1;         // the first byte no request has asked for yet
  int64_t chunk = 0;         // the size of each range after the probe
  int64_t min_chunk = 1;     // OriginPolicy::range_bytes
  int max_ranges = 1;        // OriginPolicy::max_ranges
  std::string range_unusable;  // set: ranges misbehaved; fetch again whole
  bool changed = false;        // a range came back 200 to If-Range: the origin changed
};

// State shared with libcurl's callbacks for one request (the whole body or one range).
struct Transfer {
  Download* d = nullptr;
  CURL* curl = nullptr;
  bool probe = false;   // the download's first request
  int64_t start = 0;    // where its bytes go in the file
  int64_t len = -1;     // bytes asked for (-1: the whole body)
  int64_t got = 0;
  bool vetted = false;  // the response was checked at its first body byte
  bool holds_connection = false;  // an extra connection taken from OriginPolicy::connections
  // Headers of the response being received (reset at each status line: redirects).
  std::string content_range, etag, last_modified;
  const AddressRule* forbidden = nullptr;  // null = every address allowed
  std::string refused_ip;
  const std::atomic<bool>* cancel = nullptr;
  bool cancelled = false;
};

// "bytes S-E/T" -> S, E, T; false for anything else ("bytes */T" included).
bool ParseContentRange(const std::string& v, int64_t* s, int64_t* e, int64_t* t) {
  long long a, b, c;
  char tail;
  if (std::sscanf(v.c_str(), "bytes %lld-%lld/%lld%c", &a, &b, &c, &tail) != 3) return false;
  if (a < 0 || b < a || c <= b) return false;
  *s = a, *e = b, *t = c;
  return true;
}

size_t OnHeader(char* data, size_t size, size_t nmemb, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  const size_t n = size * nmemb;
  std::string line(data, n);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  if (line.rfind("HTTP/", 0) == 0) {
    t->content_range.clear(), t->etag.clear(), t->last_modified.clear();
    return n;
  }
  const size_t colon = line.find(':');
  if (colon == std::string::npos) return n;
  std::string name = Lower(line.substr(0, colon));
  size_t v = colon + 1;
  while (v < line.size() && (line[v] == ' ' || line[v] == '\t')) ++v;
  std::string value = line.substr(v);
  if (name == "content-range") t->content_range = value;
  if (name == "etag") t->etag = value;
  if (name == "last-modified") t->last_modified = value;
  return n;
}

// At a response's first body byte: is it what this request asked for? Sets the download's
// mode from the probe's answer and asks for scratch room once the size is known.
bool Vet(Transfer* t) {
  Download* d = t->d;
  long code = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
  int64_t s = 0, e = 0, total = 0;
  if (t->probe) {
    if (code == 206) {
      if (!ParseContentRange(t->content_range, &s, &e, &total) || s != 0 || e >= t->len) {
        d->range_unusable = "origin answered the first range with \"" + t->content_range + "\"";
        return false;
      }
      if (total > d->max_bytes) {
        d->too_large = true;
        return false;
      }
      d->ranged = true;
      d->total = total;
      t->len = e + 1;
      // The rest in ranges of at least min_chunk, few enough that max_ranges connections
      // cover it in about one round each; they start now, while the probe's body comes.
      d->next = t->len;
      d->chunk = std::max(d->min_chunk, (total - d->next + d->max_ranges - 1) / d->max_ranges);
      if (!t->etag.empty() && t->etag.rfind("W/", 0) != 0)
        d->if_range = t->etag;
      else
        d->if_range = t->last_modified;
    } else {
      t->len = -1;  // the whole body (the origin ignores ranges)
    }
    if (d->reserve != nullptr && !d->reserved) {
      int64_t want = d->max_bytes;
      if (d->ranged) {
        want = d->total;
      } else {
        curl_off_t declared = -1;
        curl_easy_getinfo(t->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &declared);
        if (declared >= 0) want = std::min<int64_t>(declared, d->max_bytes);
      }
      if (!(*d->reserve)(want)) {
        d->no_room = true;
        return false;
      }
      d->reserved = true;
    }
    return true;
  }
  if (code != 206) {
    if (code == 200 && !d->if_range.empty())
      d->changed = true;
    else
      d->range_unusable = "origin answered a range with HTTP " + std::to_string(code);
    return false;
  }
  if (!ParseContentRange(t->content_range, &s, &e, &total) || s != t->start ||
      e != t->start + t->len - 1 || total != d->total) {
    d->range_unusable = "origin answered bytes " + std::to_string(t->start) + "-" +
                        std::to_string(t->start + t->len - 1) + " with \"" + t->content_range +
                        "\"";
    return false;
  }
  return true;
}

size_t WriteBody(char* data, size_t size, size_t nmemb, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  Download* d = t->d;
  const size_t n = size * nmemb;
  if (!t->vetted) {
    if (!Vet(t)) return 0;  // aborts the transfer with CURLE_WRITE_ERROR
    t->vetted = true;
  }
  if (d->written + static_cast<int64_t>(n) > d->max_bytes) {
    d->too_large = true;
    return 0;
  }
  if (t->len >= 0 && t->got + static_cast<int64_t>(n) > t->len) {
    d->range_unusable = "origin sent more than the range it was asked for";
    return 0;
  }
  if (d->reserve_bytes > 0 && d->written >= d->next_space_check) {
    d->next_space_check = d->written + kSpaceCheckEvery;
    Status room = CheckFreeSpace(FreeBytes(d->fd), d->reserve_bytes);
    if (!room.ok()) {
      d->volume_full = room.message();
      return 0;
    }
  }
  for (size_t off = 0; off < n;) {
    ssize_t w = ::pwrite(d->fd, data + off, n - off, t->start + t->got + static_cast<int64_t>(off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      d->write_errno = w < 0 && errno ? errno : EIO;
      return 0;
    }
    off += static_cast<size_t>(w);
  }
  t->got += static_cast<int64_t>(n);
  d->written += static_cast<int64_t>(n);
  return n;
}

// Called for every new connection, before connect(): refusing here means no packet ever
// reaches a forbidden address, whichever hop of a redirect chain asked for it.
curl_socket_t OpenSocket(void* clientp, curlsocktype /*purpose*/, struct curl_sockaddr* address) {
  auto* t = static_cast<Transfer*>(clientp);
  if (t->forbidden != nullptr) {
    std::string ip = SockaddrIp(&address->addr);
    if (ip.empty() || (*t->forbidden)(ip)) {
      t->refused_ip = ip.empty() ? "(unknown family)" : ip;
      return CURL_SOCKET_BAD;
    }
  }
  return ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

// Called before every request, including ones sent on a reused connection.
int BeforeRequest(void* clientp, char* conn_primary_ip, char* /*conn_local_ip*/,
                  int /*conn_primary_port*/, int /*conn_local_port*/) {
  auto* t = static_cast<Transfer*>(clientp);
  if (t->forbidden != nullptr && (*t->forbidden)(conn_primary_ip)) {
    t->refused_ip = conn_primary_ip;
    return CURL_PREREQFUNC_ABORT;
  }
  return CURL_PREREQFUNC_OK;
}

// Called often during a transfer and about once a second while it is idle (stalled).
int OnProgress(void* clientp, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(clientp);
  if (t->cancel != nullptr && t->cancel->load()) {
    t->cancelled = true;
    return 1;  // aborts with CURLE_ABORTED_BY_CALLBACK
  }
  return 0;
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct CurlMultiDeleter {
  void operator()(CURLM* m) const { curl_multi_cleanup(m); }
};

Status AbandonedForStop() {
  return Status::Unavailable("origin download abandoned: the ingest worker is stopping");
}

Status MapCurlError(CURLcode rc, CURL* curl, const Transfer& t, const OriginPolicy& policy,
                    const char* errbuf) {
  std::string detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  const Download& d = *t.d;
  if (t.cancelled && rc == CURLE_ABORTED_BY_CALLBACK) return AbandonedForStop();
  if (!t.refused_ip.empty() && (rc == CURLE_COULDNT_CONNECT || rc == CURLE_ABORTED_BY_CALLBACK)) {
    return RefusedAddress(t.refused_ip);
  }
  switch (rc) {
    case CURLE_HTTP_RETURNED_ERROR: {
      long code = 0;
      curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
      return HttpStatusError(code);
    }
    case CURLE_FILESIZE_EXCEEDED:
      return Status::TooLarge("origin larger than " + std::to_string(policy.max_bytes) + " bytes");
    case CURLE_WRITE_ERROR:
      if (d.no_room) return NoRoom();
      if (d.too_large) {
        return Status::TooLarge("origin larger than " + std::to_string(policy.max_bytes) +
                                " bytes");
      }
      if (d.changed)
        return Status::Unavailable("origin changed during the download (If-Range not matched)");
      if (!d.range_unusable.empty()) return Status::Unavailable(d.range_unusable);
      if (!d.volume_full.empty()) return Status::IOError(d.volume_full);
      if (d.write_errno == ENOSPC)  // the reserve was eaten by other writers between checks
        return Status::IOError("no space left on the data volume: the download met a full disk");
      return Status::IOError("cannot write the downloaded origin: " +
                             std::string(std::strerror(d.write_errno ? d.write_errno : EIO)));
    case CURLE_OPERATION_TIMEDOUT: {
      if (detail.find("too slow") != std::string::npos) {
        return Status::Unavailable("origin stalled: timed out after " +
                                   std::to_string(policy.low_speed_time_s) + " s under " +
                                   std::to_string(policy.low_speed_bytes_per_s) + " bytes/s");
      }
      double total = 0;
      curl_easy_getinfo(curl, CURLINFO_TOTAL_TIME, &total);
      return Status::Unavailable("origin timed out after " + FormatSeconds(total) + " s");
    }
    case CURLE_TOO_MANY_REDIRECTS:
      return Status::Invalid("origin redirected more than " + std::to_string(policy.max_redirects) +
                             " times");
    case CURLE_UNSUPPORTED_PROTOCOL:
      // libcurl says this both for a redirect to another scheme and for a reply without an
      // HTTP status line (which it calls HTTP/0.9).
      if (detail.find("HTTP/0.9") != std::string::npos)
        return Status::Invalid("origin sent a malformed response (no HTTP status line)");
      return Status::Invalid("origin redirected to a scheme other than http or https");
    case CURLE_URL_MALFORMAT:
      return Status::Invalid("origin URL is malformed: " + detail);
    case CURLE_PEER_FAILED_VERIFICATION:
      return Status::Invalid("origin TLS certificate was rejected: " + detail);
    case CURLE_COULDNT_RESOLVE_HOST:
      return Status::Unavailable("origin host could not be resolved: " + detail);
    case CURLE_COULDNT_CONNECT:
      return Status::Unavailable("origin connection failed: " + detail);
    default:
      // Resets, empty replies, truncated bodies, TLS handshake failures: worth another try.
      return Status::Unavailable("origin transfer failed: " + detail);
  }
}

// One request of a download, on its own easy handle (connections are the multi handle's).
struct Request {
  std::unique_ptr<CURL, CurlDeleter> curl;
  Transfer t;
  std::string range;  // CURLOPT_RANGE's text, kept alive while the request runs
  curl_slist* headers = nullptr;
  char errbuf[CURL_ERROR_SIZE] = {};
  ~Request() { curl_slist_free_all(headers); }
};

void Configure(Request* r, const std::string& url, const OriginPolicy& policy, Download* d,
               const AddressRule* forbidden) {
  CURL* c = r->curl.get();
  r->t.d = d;
  r->t.curl = c;
  r->t.forbidden = forbidden;
  r->t.cancel = policy.cancel;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, static_cast<long>(policy.max_redirects));
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
  // The guard must see the origin's own addresses, so no proxy from the environment.
  curl_easy_setopt(c, CURLOPT_PROXY, "");
  curl_easy_setopt(c, CURLOPT_USERAGENT, "Quire-ingest/1");
  if (!policy.basic_user.empty() || !policy.basic_password.empty()) {
    // Sent to the origin's host only: libcurl drops them on a redirect to another host. Every
    // range asks for the origin's own URL, so that rule holds for each of them too.
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    curl_easy_setopt(c, CURLOPT_USERNAME, policy.basic_user.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, policy.basic_password.c_str());
  }
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, policy.connect_timeout_ms);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, policy.total_timeout_ms);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, policy.low_speed_bytes_per_s);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, policy.low_speed_time_s);
  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(policy.max_bytes));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, WriteBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->t);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->t);
  if (policy.cancel != nullptr) {
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, OnProgress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &r->t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  }
  if (forbidden != nullptr) {
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, OpenSocket);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &r->t);
    curl_easy_setopt(c, CURLOPT_PREREQFUNCTION, BeforeRequest);
    curl_easy_setopt(c, CURLOPT_PREREQDATA, &r->t);
  }
}

// Points `r` at bytes [start, start + len) of the body (a range request after the probe).
void AskRange(Request* r, int64_t start, int64_t len, const std::string& if_range) {
  r->t.start = start;
  r->t.len = len;
  r->t.got = 0;
  r->t.vetted = false;
  r->t.probe = false;
  r->range = std::to_string(start) + "-" + std::to_string(start + len - 1);
  curl_easy_setopt(r->curl.get(), CURLOPT_RANGE, r->range.c_str());
  if (!if_range.empty() && r->headers == nullptr) {
    r->headers = curl_slist_append(nullptr, ("If-Range: " + if_range).c_str());
    curl_easy_setopt(r->curl.get(), CURLOPT_HTTPHEADER, r->headers);
  }
}

// One attempt at an http(s) download into `d->fd`: with ranges when `policy.connections` is
// set and `ranges`, else one plain GET. Returns with d->range_unusable set when the origin's
// answers to ranges were unusable (the caller then tries again without ranges).
Status FetchHttpAttempt(const std::string& url, const OriginPolicy& policy, Download* d,
                        const AddressRule* forbidden, bool ranges) {
  std::unique_ptr<CURLM, CurlMultiDeleter> multi(curl_multi_init());
  if (!multi) return Status::Internal("cannot start libcurl");
  FetchConnections* pool = ranges ? policy.connections.get() : nullptr;
  const int64_t first = std::max<int64_t>(1, policy.range_bytes);
  std::vector<std::unique_ptr<Request>> requests;
  auto start_request = [&]() -> Request* {
    auto r = std::make_unique<Request>();
    r->curl.reset(curl_easy_init());
    if (!r->curl) return nullptr;
    Configure(r.get(), url, policy, d, forbidden);
    requests.push_back(std::move(r));
    return requests.back().get();
  };
  Request* probe = start_request();
  if (probe == nullptr) return Status::Internal("cannot start libcurl");
  probe->t.probe = true;
  if (pool != nullptr) {
    probe->t.len = first;
    probe->range = "0-" + std::to_string(first - 1);
    curl_easy_setopt(probe->curl.get(), CURLOPT_RANGE, probe->range.c_str());
  }
  curl_multi_add_handle(multi.get(), probe->curl.get());

  int active = 1;      // requests in the multi handle
  const int max_active = std::max(1, policy.max_ranges);
  d->min_chunk = first;
  d->max_ranges = max_active;
  Status st;
  auto give_back = [&](Request* r) {
    if (r->t.holds_connection) pool->Give();
    r->t.holds_connection = false;
  };
  auto more = [&] { return d->ranged && d->next >= 0 && d->next < d->total; };
  // The next range for `r`: a chunk, or all the rest when the process has no connections to
  // share (one round trip instead of several).
  auto ask_next = [&](Request* r) {
    int64_t len = std::min(d->chunk, d->total - d->next);
    if (pool->Capacity() == 0) len = d->total - d->next;
    AskRange(r, d->next, len, d->if_range);
    d->next += len;
    curl_multi_add_handle(multi.get(), r->curl.get());
    ++active;
  };
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed_ms = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 t0)
        .count();
  };
  for (;;) {
    int running = 0;
    curl_multi_perform(multi.get(), &running);
    int queued;
    while (CURLMsg* m = curl_multi_info_read(multi.get(), &queued)) {
      if (m->msg != CURLMSG_DONE) continue;
      --active;
      Request* r = nullptr;
      for (auto& q : requests)
        if (q->curl.get() == m->easy_handle) r = q.get();
      const CURLcode result = m->data.result;
      curl_multi_remove_handle(multi.get(), m->easy_handle);
      if (!st.ok()) continue;
      if (result != CURLE_OK) {
        st = MapCurlError(result, r->curl.get(), r->t, policy, r->errbuf);
        continue;
      }
      long code = 0;
      curl_easy_getinfo(r->curl.get(), CURLINFO_RESPONSE_CODE, &code);
      if (code < 200 || code > 299) {  // e.g. a 3xx without Location
        st = HttpStatusError(code);
        continue;
      }
      if (!r->t.vetted) {  // an empty body: the write callback never ran
        if (!Vet(&r->t)) {
          st = d->no_room             ? NoRoom()
               : d->too_large         ? Status::TooLarge("origin larger than " +
                                                         std::to_string(policy.max_bytes) + " bytes")
               : d->changed           ? Status::Unavailable("origin changed during the download")
                                      : Status::Unavailable(d->range_unusable);
          continue;
        }
        r->t.vetted = true;
      }
      if (r->t.len >= 0 && r->t.got != r->t.len) {
        d->range_unusable = "origin sent " + std::to_string(r->t.got) + " of the " +
                            std::to_string(r->t.len) + " bytes of a range";
        st = Status::Unavailable(d->range_unusable);
        continue;
      }
      // This connection goes on with the next range, if any; else its extra connection goes
      // back to the pool for other downloads.
      if (more())
        ask_next(r);
      else
        give_back(r);
    }
    if (st.ok() && policy.cancel != nullptr && policy.cancel->load()) st = AbandonedForStop();
    if (st.ok() && elapsed_ms() > policy.total_timeout_ms)
      st = Status::Unavailable("origin timed out after " +
                               FormatSeconds(static_cast<double>(elapsed_ms()) / 1000) + " s");
    if (!st.ok()) break;
    // More connections for the ranges no one has asked for yet, while the pool has some.
    while (more() && active < max_active && pool->TryTake()) {
      Request* r = start_request();
      if (r == nullptr) {
        pool->Give();
        break;
      }
      r->t.holds_connection = true;
      ask_next(r);
    }
    if (active == 0) break;
    curl_multi_poll(multi.get(), nullptr, 0, 100, nullptr);
  }
  for (auto& q : requests) {
    curl_multi_remove_handle(multi.get(), q->curl.get());
    if (pool != nullptr) give_back(q.get());
  }
  if (st.ok() && d->ranged && d->written != d->total)
    st = Status::Unavailable("origin download ended after " + std::to_string(d->written) +
                             " of " + std::to_string(d->total) + " bytes");
  return st;
}

Status FetchHttp(const std::string& url, const OriginPolicy& policy, const std::string& dest,
                 const AddressRule* forbidden) {
  InitCurlOnce();
  Download d;
  d.max_bytes = policy.max_bytes;
  d.reserve_bytes = policy.reserve_bytes;
  if (policy.reserve) d.reserve = &policy.reserve;
  Status st;
  for (bool ranges : {policy.connections != nullptr, false}) {
    d.fd = ::open(dest.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (d.fd < 0) return Status::IOError("cannot create " + dest + ": " + std::strerror(errno));
    d.written = 0, d.next_space_check = 0, d.ranged = false, d.total = -1, d.if_range.clear();
    d.next = -1;
    d.range_unusable.clear();
    st = FetchHttpAttempt(url, policy, &d, forbidden, ranges);
    if (::close(d.fd) != 0 && st.ok())
      st = Status::IOError("cannot write " + dest + ": " + std::strerror(errno));
    // A 416 to the first range (an empty body) or unusable answers to ranges: once more,
    // whole, over one connection.
    const bool retry_whole =
        ranges && (!d.range_unusable.empty() || st.message() == "origin returned HTTP 416");
    if (!retry_whole) break;
  }
  if (!policy.credentials_from.empty() && st.code() == Code::kForbidden &&
      st.message().rfind("origin returned HTTP 40", 0) == 0)
    st = Status::Forbidden("origin refused the credentials of " + policy.credentials_from + ": " +
                           st.message());
  if (!st.ok()) ::unlink(dest.c_str());
  return st;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Status FetchFile(const std::string& origin, const std::string& rest, const OriginPolicy& policy,
                 const std::string& dest) {
  if (policy.file_root.empty()) return Status::Forbidden("file:// origins are not allowed");
  // rest is "HOST/path"; only an empty host or localhost names this machine.
  size_t slash = rest.find('/');
  std::string host = Lower(rest.substr(0, slash));
  if (slash == std::string::npos || (!host.empty() && host != "localhost")) {
    return Status::Invalid("origin \"" + origin + "\" is not a local file URL");
  }
  std::string path;
  for (size_t i = slash; i < rest.size(); ++i) {
    if (rest[i] == '?' || rest[i] == '#') break;
    if (rest[i] == '%' && i + 2 < rest.size() && HexValue(rest[i + 1]) >= 0 &&
        HexValue(rest[i + 2]) >= 0) {
      path.push_back(static_cast<char>(HexValue(rest[i + 1]) * 16 + HexValue(rest[i + 2])));
      i += 2;
    } else {
      path.push_back(rest[i]);
    }
  }
  if (path.find('\0') != std::string::npos) return Status::Invalid("origin path holds a NUL byte");

  char root_buf[PATH_MAX];
  if (::realpath(policy.file_root.c_str(), root_buf) == nullptr) {
    return Status::Invalid("origin file root " + policy.file_root + " does not exist");
  }
  std::string root = root_buf;
  char real_buf[PATH_MAX];
  if (::realpath(path.c_str(), real_buf) == nullptr) {
    if (errno == ENOENT || errno == ENOTDIR) return Status::NotFound("origin file not found");
    return Status::Forbidden("origin file cannot be read: " + std::string(std::strerror(errno)));
  }
  std::string real = real_buf;
  std::string root_slash = root == "/" ? root : root + "/";
  if (real.compare(0, root_slash.size(), root_slash) != 0) {
    return Status::Forbidden("origin file is outside the allowed file root");
  }
  int fd = ::open(real.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    return Status::Forbidden("origin file cannot be read: " + std::string(std::strerror(errno)));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::Invalid("origin file is not a regular file");
  }
  if (st.st_size > policy.max_bytes) {
    ::close(fd);
    return Status::TooLarge("origin larger than " + std::to_string(policy.max_bytes) + " bytes");
  }
  if (policy.reserve && !policy.reserve(static_cast<int64_t>(st.st_size))) {
    ::close(fd);
    return NoRoom();
  }
  int out = ::open(dest.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    ::close(fd);
    return Status::IOError("cannot create " + dest + ": " + std::strerror(errno));
  }
  Status result;
  char buf[1 << 16];
  int64_t total = 0;
  int64_t next_space_check = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      result = Status::IOError("cannot read origin file: " + std::string(std::strerror(errno)));
      break;
    }
    if (n == 0) break;
    if (policy.cancel != nullptr && policy.cancel->load()) {
      result = Status::Unavailable("origin download abandoned: the ingest worker is stopping");
      break;
    }
    total += n;
    if (total > policy.max_bytes) {  // the file grew after fstat
      result =
          Status::TooLarge("origin larger than " + std::to_string(policy.max_bytes) + " bytes");
      break;
    }
    if (policy.reserve_bytes > 0 && total - n >= next_space_check) {
      next_space_check = total + kSpaceCheckEvery;
      result = CheckFreeSpace(FreeBytes(out), policy.reserve_bytes);
      if (!result.ok()) break;
    }
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::write(out, buf + off, static_cast<size_t>(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        result = Status::IOError("cannot write " + dest + ": " + std::strerror(errno));
        break;
      }
      off += w;
    }
    if (!result.ok()) break;
  }
  ::close(fd);
  if (::close(out) != 0 && result.ok()) {
    result = Status::IOError("cannot write " + dest + ": " + std::strerror(errno));
  }
  if (!result.ok()) ::unlink(dest.c_str());
  return result;
}

}  // namespace

// s3://bucket/key with the server's credentials, from allowed buckets only.
static Status FetchS3Origin(const std::string& origin, const OriginPolicy& policy,
                            const std::string& dest) {
  const std::string rest = origin.substr(5);
  const size_t slash = rest.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == rest.size()) {
    return Status::Invalid("origin \"" + origin + "\" is not s3://bucket/key");
  }
  const std::string bucket = rest.substr(0, slash), key = rest.substr(slash + 1);
  if (std::find(policy.s3_buckets.begin(), policy.s3_buckets.end(), bucket) ==
      policy.s3_buckets.end()) {
    return Status::Forbidden("s3 bucket \"" + bucket +
                             "\" is not allowed for origins (see --origin-s3-buckets)");
  }
  auto config = s3::ParseS3Url("s3://" + bucket + "?endpoint=" + policy.s3_endpoint + "&region=" +
                               policy.s3_region + (policy.s3_path_style ? "&path_style=1" : ""));
  if (!config.ok()) return config.status();
  // One client (and its kept-alive connections) per bucket for the life of the process.
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<s3::S3Client>> clients;
  s3::S3Client* client;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto& c = clients[policy.s3_endpoint + "\n" + bucket];
    if (!c) c = std::make_unique<s3::S3Client>(std::move(*config));
    client = c.get();
  }
  s3::S3Request head;
  head.method = "HEAD";
  head.key = key;
  auto h = client->Send(head);
  if (!h.ok()) return Status::Unavailable("s3 origin unreachable: " + h.status().message());
  if (h->status == 404) return Status::NotFound("s3 origin " + origin + " does not exist");
  if (h->status == 403) return Status::Forbidden("s3 origin " + origin + " is not readable");
  if (h->status != 200) return s3::ErrorStatus(*h, "s3 origin " + origin);
  const int64_t size = std::atoll(h->headers["content-length"].c_str());
  if (size > policy.max_bytes) {
    return Status::TooLarge("origin is " + std::to_string(size) + " bytes, over the limit of " +
                            std::to_string(policy.max_bytes));
  }
  if (policy.reserve && !policy.reserve(size)) return NoRoom();
  int fd = ::open(dest.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError("cannot create " + dest + ": " + std::strerror(errno));
  s3::S3Request get;
  get.key = key;
  get.out_fd = fd;
  auto r = client->Send(get);
  ::close(fd);
  Status st;
  if (!r.ok()) {
    st = Status::Unavailable("s3 origin unreachable: " + r.status().message());
  } else if (r->status == 404) {
    st = Status::NotFound("s3 origin " + origin + " does not exist");
  } else if (r->status != 200) {
    st = s3::ErrorStatus(*r, "s3 origin " + origin);
  }
  if (!st.ok()) ::unlink(dest.c_str());
  return st;
}

Status FetchOriginWithRule(const std::string& origin, const OriginPolicy& policy,
                           const std::string& dest_path, const AddressRule& forbidden) {
  size_t sep = origin.find("://");
  if (sep == std::string::npos || sep == 0) {
    return Status::Invalid("origin \"" + origin + "\" is not an absolute URL");
  }
  std::string scheme = Lower(origin.substr(0, sep));
  if (scheme == "http" || scheme == "https") {
    return FetchHttp(origin, policy, dest_path, forbidden ? &forbidden : nullptr);
  }
  if (scheme == "file") return FetchFile(origin, origin.substr(sep + 3), policy, dest_path);
  if (scheme == "s3") return FetchS3Origin(origin, policy, dest_path);
  return Status::Invalid("origin scheme \"" + scheme + "\" is not supported");
}

Status FetchOrigin(const std::string& origin, const OriginPolicy& policy,
                   const std::string& dest_path) {
  AddressRule rule;
  if (!policy.allow_private_origins) rule = IsForbiddenAddress;
  return FetchOriginWithRule(origin, policy, dest_path, rule);
}

namespace {

// FetchStoredBlob; `no_room` tells NoRoom() (the scratch budget) from the storage's errors.
Status CopyStoredBlob(const BlobStore& blobs, const std::string& key, const std::string& dest_path,
                      const std::function<bool(int64_t)>& reserve, bool* no_room) {
  *no_room = false;
  Status st;
  if (reserve) {
    auto stat = blobs.Stat(key);
    if (stat.ok() && !reserve(stat->size)) {
      *no_room = true;
      return NoRoom();
    }
    if (!stat.ok()) st = stat.status();
  }
  if (st.ok()) st = blobs.GetToFile(key, dest_path);
  if (st.ok()) return st;
  std::error_code ec;
  std::filesystem::remove(dest_path, ec);
  return st;
}

}  // namespace

Status FetchStoredBlob(const BlobStore& blobs, const std::string& key, const std::string& dest_path,
                       const std::function<bool(int64_t)>& reserve) {
  bool no_room;
  return CopyStoredBlob(blobs, key, dest_path, reserve, &no_room);
}

Status FetchUploadOrigin(const BlobStore& blobs, int64_t customer, const std::string& upload_id,
                         const std::string& dest_path,
                         const std::function<bool(int64_t)>& reserve) {
  bool no_room;
  Status st = CopyStoredBlob(blobs, UploadKey(customer, upload_id), dest_path, reserve, &no_room);
  if (st.ok() || no_room) return st;
  if (st.code() == Code::kNotFound)
    return Status::NotFound("the uploaded bytes of upload " + upload_id + " are gone");
  return Status(st.code(), "cannot read upload " + upload_id + ": " + st.message());
}

}  // namespace quire
