#include "support/origin_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "support/raw_http.h"

namespace quire::test {

namespace {

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 307:
      return "Temporary Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 410:
      return "Gone";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

// Writes everything unless the peer goes away; false on failure.
bool SendAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

OriginServer::OriginServer() {
  listen_fd_ = ListenLoopback("origin server", &port_);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

OriginServer::~OriginServer() {
  stop_ = true;
  cv_.notify_all();
  ::shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& c : conns_) ::shutdown(c->fd, SHUT_RDWR);
  }
  Reap(true);
  ::close(listen_fd_);
}

std::string OriginServer::Url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

void OriginServer::Route(const std::string& path, OriginRoute route) {
  std::lock_guard<std::mutex> lock(mu_);
  routes_[path] = std::move(route);
}

void OriginServer::Serve(const std::string& path, std::string body, std::string content_type,
                         int delay_ms) {
  OriginRoute r;
  r.body = std::move(body);
  r.content_type = std::move(content_type);
  r.delay_ms = delay_ms;
  Route(path, std::move(r));
}

void OriginServer::Status(const std::string& path, int status, std::string body) {
  OriginRoute r;
  r.status = status;
  r.body = body.empty() ? std::to_string(status) + " " + Reason(status) + "\n" : std::move(body);
  r.content_type = "text/plain";
  Route(path, std::move(r));
}

void OriginServer::FailThenServe(const std::string& path, int failures, std::string body,
                                 std::string content_type, int fail_status) {
  OriginRoute r;
  r.body = std::move(body);
  r.content_type = std::move(content_type);
  r.fail_first = failures;
  r.fail_status = fail_status;
  Route(path, std::move(r));
}

void OriginServer::Stall(const std::string& path) {
  OriginRoute r;
  r.stall = true;
  Route(path, std::move(r));
}

void OriginServer::Trickle(const std::string& path, std::string body, std::string content_type,
                           int bytes_per_interval, int interval_ms) {
  OriginRoute r;
  r.body = std::move(body);
  r.content_type = std::move(content_type);
  r.trickle_bytes = bytes_per_interval;
  r.trickle_interval_ms = interval_ms;
  Route(path, std::move(r));
}

void OriginServer::Redirect(const std::string& path, const std::string& location, int status) {
  OriginRoute r;
  r.status = status;
  r.location = location;
  r.content_type = "text/plain";
  r.body = "moved\n";
  Route(path, std::move(r));
}

int OriginServer::Requests(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counts_.find(path);
  return it == counts_.end() ? 0 : it->second;
}

int OriginServer::MaxTotalInFlight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return max_total_in_flight_;
}

int OriginServer::MaxInFlight(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = max_in_flight_.find(path);
  return it == max_in_flight_.end() ? 0 : it->second;
}

std::vector<ReceivedRequest> OriginServer::Received(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = received_.find(path);
  return it == received_.end() ? std::vector<ReceivedRequest>{} : it->second;
}

int OriginServer::TotalRequests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_;
}

bool OriginServer::Sleep(int ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stop_.load(); });
}

void OriginServer::Reap(bool all) {
  std::vector<std::unique_ptr<Conn>> finished;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto keep = conns_.begin();
    for (auto& c : conns_) {
      if (all || c->done.load()) {
        finished.push_back(std::move(c));
      } else {
        *keep++ = std::move(c);
      }
    }
    conns_.erase(keep, conns_.end());
  }
  for (auto& c : finished) {
    if (c->thread.joinable()) c->thread.join();
    ::close(c->fd);
  }
}

void OriginServer::AcceptLoop() {
  while (!stop_.load()) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (stop_.load()) break;
      if (errno == EINTR || errno == ECONNABORTED) continue;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    Reap(false);
    auto conn = std::make_unique<Conn>();
    conn->fd = fd;
    Conn* raw = conn.get();
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_.load()) {
      ::close(fd);
      break;
    }
    conn->thread = std::thread([this, raw] {
      Handle(raw);
      raw->done = true;
    });
    conns_.push_back(std::move(conn));
  }
}

void OriginServer::Handle(Conn* conn) {
  const int fd = conn->fd;
  // Read the request head (the test origin ignores any request body).
  std::string head;
  char buf[4096];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (head.find("\r\n\r\n") == std::string::npos) {
    if (stop_.load() || std::chrono::steady_clock::now() > deadline || head.size() > 65536) return;
    pollfd p{fd, POLLIN, 0};
    int pr = ::poll(&p, 1, 100);
    if (pr < 0 && errno != EINTR) return;
    if (pr <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return;
    head.append(buf, static_cast<size_t>(n));
  }
  // "GET /path?query HTTP/1.1"
  size_t sp1 = head.find(' ');
  size_t sp2 = sp1 == std::string::npos ? std::string::npos : head.find(' ', sp1 + 1);
  if (sp2 == std::string::npos) return;
  std::string target = head.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string path = target.substr(0, target.find('?'));
  ReceivedRequest received;
  received.method = head.substr(0, sp1);
  received.path = path;
  {
    size_t end = head.find("\r\n\r\n");
    size_t line = head.find("\r\n");
    while (line != std::string::npos && line < end) {
      size_t next = head.find("\r\n", line + 2);
      std::string field = head.substr(line + 2, next - line - 2);
      size_t colon = field.find(':');
      if (colon != std::string::npos) {
        std::string name = field.substr(0, colon);
        for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        size_t v = field.find_first_not_of(' ', colon + 1);
        received.headers[name] = v == std::string::npos ? "" : field.substr(v);
      }
      line = next;
    }
    received.body = head.substr(end + 4);
    size_t want = 0;
    if (auto it = received.headers.find("content-length"); it != received.headers.end())
      want = std::strtoul(it->second.c_str(), nullptr, 10);
    while (received.body.size() < want && want < (16u << 20)) {
      if (stop_.load() || std::chrono::steady_clock::now() > deadline) break;
      pollfd p{fd, POLLIN, 0};
      int pr = ::poll(&p, 1, 100);
      if (pr < 0 && errno != EINTR) break;
      if (pr <= 0) continue;
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      received.body.append(buf, static_cast<size_t>(n));
    }
  }

  // Until this handler returns, the request counts as in flight.
  std::shared_ptr<void> in_flight(nullptr, [this, path](void*) {
    std::lock_guard<std::mutex> lock(mu_);
    --in_flight_[path];
    --total_in_flight_;
  });
  OriginRoute route;
  bool found = false;
  int nth = 0;  // 1-based index of this request to the path
  {
    std::lock_guard<std::mutex> lock(mu_);
    nth = ++counts_[path];
    ++total_;
    received_[path].push_back(received);
    int now = ++in_flight_[path];
    max_in_flight_[path] = std::max(max_in_flight_[path], now);
    max_total_in_flight_ = std::max(max_total_in_flight_, ++total_in_flight_);
    auto it = routes_.find(path);
    if (it != routes_.end()) {
      route = it->second;
      found = true;
    }
  }
  if (!found) {
    route = OriginRoute{};
    route.status = 404;
    route.content_type = "text/plain";
    route.body = "no such path\n";
  }

  if (route.delay_ms > 0 && !Sleep(route.delay_ms)) return;
  if (route.stall) {
    // Never answer; hold the connection until the client gives up or the server stops.
    while (!stop_.load()) {
      pollfd p{fd, POLLIN, 0};
      int pr = ::poll(&p, 1, 50);
      if (pr > 0) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return;  // the client hung up
      }
    }
    return;
  }

  if (!route.raw.empty()) {
    SendAll(fd, route.raw.data(), route.raw.size());
    ::shutdown(fd, SHUT_WR);  // the end of what the client gets, whatever it was promised
    return;
  }
  if (route.endless_chunked) {
    std::string head_out = "HTTP/1.1 200 OK\r\nContent-Type: " + route.content_type +
                           "\r\nTransfer-Encoding: chunked\r\n\r\n";
    if (!SendAll(fd, head_out.data(), head_out.size())) return;
    const std::string chunk = "4000\r\n" + std::string(0x4000, '\xff') + "\r\n";
    while (!stop_.load() && SendAll(fd, chunk.data(), chunk.size())) {
    }
    return;
  }

  int status = route.status;
  std::string body = route.body;
  std::string type = route.content_type;
  if (!route.basic_auth.empty()) {
    static const char* kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string expected;
    const std::string& in = route.basic_auth;
    for (size_t i = 0; i < in.size(); i += 3) {
      uint32_t n = static_cast<uint32_t>(static_cast<unsigned char>(in[i])) << 16;
      if (i + 1 < in.size()) n |= static_cast<uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8;
      if (i + 2 < in.size()) n |= static_cast<unsigned char>(in[i + 2]);
      expected += kB64[(n >> 18) & 63];
      expected += kB64[(n >> 12) & 63];
      expected += i + 1 < in.size() ? kB64[(n >> 6) & 63] : '=';
      expected += i + 2 < in.size() ? kB64[n & 63] : '=';
    }
    auto it = received.headers.find("authorization");
    if (it == received.headers.end() || it->second != "Basic " + expected) {
      status = 401;
      body = "401 Unauthorized\n";
      type = "text/plain";
    }
  }
  if (nth <= route.fail_first) {
    status = route.fail_status;
    body = std::to_string(status) + " " + Reason(status) + "\n";
    type = "text/plain";
  }
  bool redirect = !route.location.empty() && nth > route.fail_first;
  std::string content_range;
  if (route.ranges && status == 200 && !redirect) {
    long long a = 0, b = 0;
    auto it = received.headers.find("range");
    if (it != received.headers.end() &&
        std::sscanf(it->second.c_str(), "bytes=%lld-%lld", &a, &b) == 2 && a <= b &&
        a < static_cast<long long>(body.size())) {
      b = std::min<long long>(b, static_cast<long long>(body.size()) - 1);
      content_range = "bytes " + std::to_string(a) + "-" + std::to_string(b) + "/" +
                      std::to_string(body.size());
      body = body.substr(static_cast<size_t>(a), static_cast<size_t>(b - a + 1));
      status = 206;
    }
  }

  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) + "\r\n";
  out += "Content-Type: " + type + "\r\n";
  if (!content_range.empty()) out += "Content-Range: " + content_range + "\r\nETag: \"fixed\"\r\n";
  if (redirect) out += "Location: " + route.location + "\r\n";
  bool failing = nth <= route.fail_first;
  if (route.declared_length >= 0 && !failing && !redirect)
    out += "Content-Length: " + std::to_string(route.declared_length) + "\r\n";
  else if (route.send_length || redirect)
    out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  out += "Connection: close\r\n\r\n";
  if (!SendAll(fd, out.data(), out.size())) return;

  // The request stops counting as in flight just before its last byte goes out: the client
  // cannot begin another before that byte arrives, so MaxInFlight never counts one twice.
  auto send_body = [&](size_t off, size_t n) {
    if (off + n == body.size() && n > 0) {
      if (!SendAll(fd, body.data() + off, n - 1)) return false;
      in_flight.reset();
      return SendAll(fd, body.data() + off + n - 1, 1);
    }
    return SendAll(fd, body.data() + off, n);
  };
  if (route.trickle_bytes > 0 && !redirect && nth > route.fail_first) {
    for (size_t off = 0; off < body.size() && !stop_.load();) {
      size_t n = std::min(body.size() - off, static_cast<size_t>(route.trickle_bytes));
      if (!send_body(off, n)) return;
      off += n;
      if (off < body.size() && !Sleep(route.trickle_interval_ms)) return;
    }
  } else if (!send_body(0, body.size())) {
    return;
  }
  in_flight.reset();  // answered: what follows only waits for the client to hang up
  ::shutdown(fd, SHUT_WR);
  // Let the client read everything before the socket closes (avoids a reset on close).
  for (int i = 0; i < 100 && !stop_.load(); ++i) {
    pollfd p{fd, POLLIN, 0};
    int pr = ::poll(&p, 1, 20);
    if (pr > 0 && ::recv(fd, buf, sizeof buf, 0) <= 0) break;
  }
}

}  // namespace quire::test
