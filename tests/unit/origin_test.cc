#include "ingest/origin.h"

#include "support/s3_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

namespace quire {
namespace {
namespace fs = std::filesystem;

// A tiny HTTP/1.1 server on a loopback address: one thread per connection, one request per
// connection ("Connection: close"), responses chosen by a handler of the request path.
class LoopbackServer {
 public:
  using Handler =
      std::function<void(const std::string& path, int fd, const std::atomic<bool>& stop)>;

  // A handler that sees the whole request head (method line and headers) as well.
  using RequestHandler =
      std::function<void(const std::string& path, const std::string& request, int fd,
                         const std::atomic<bool>& stop)>;

  explicit LoopbackServer(Handler handler, const char* ip = "127.0.0.1")
      : LoopbackServer(
            [h = std::move(handler)](const std::string& path, const std::string&, int fd,
                                     const std::atomic<bool>& stop) { h(path, fd, stop); },
            ip) {}
  explicit LoopbackServer(RequestHandler handler, const char* ip = "127.0.0.1")
      : handler_(std::move(handler)), ip_(ip) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    ::inet_pton(AF_INET, ip, &addr.sin_addr);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 16) != 0) {
      ::close(listen_fd_);
      listen_fd_ = -1;
      return;
    }
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }

  ~LoopbackServer() {
    stop_ = true;
    if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
    if (acceptor_.joinable()) acceptor_.join();
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& t : workers_) t.join();
    if (listen_fd_ >= 0) ::close(listen_fd_);
  }

  bool ok() const { return listen_fd_ >= 0; }
  std::string Url(const std::string& path) const {
    return "http://" + ip_ + ":" + std::to_string(port_) + path;
  }
  int connections() const { return connections_; }

 private:
  void AcceptLoop() {
    for (;;) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      ++connections_;
      std::lock_guard<std::mutex> lock(mu_);
      workers_.emplace_back([this, fd] {
        std::string req;
        char buf[4096];
        while (req.find("\r\n\r\n") == std::string::npos) {
          ssize_t n = ::recv(fd, buf, sizeof buf, 0);
          if (n <= 0) break;
          req.append(buf, static_cast<size_t>(n));
        }
        std::istringstream line(req);
        std::string method, path;
        line >> method >> path;
        if (!path.empty()) handler_(path, req, fd, stop_);
        ::close(fd);
      });
    }
  }

  RequestHandler handler_;
  std::string ip_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> workers_;
};

void Send(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

void Respond(int fd, int code, const std::string& body, const std::string& extra = "") {
  Send(fd, "HTTP/1.1 " + std::to_string(code) + " X\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\nConnection: close\r\n" + extra + "\r\n" + body);
}

// Waits until the client goes away or the server stops.
void WaitForHangup(int fd, const std::atomic<bool>& stop) {
  while (!stop) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 20) > 0) {
      char c;
      if (::recv(fd, &c, 1, 0) <= 0) return;
    }
  }
}

const std::string kBody = "hello origin \x01\x02\x03";

void StandardRoutes(const std::string& path, int fd, const std::atomic<bool>& stop) {
  if (path == "/ok") return Respond(fd, 200, kBody);
  if (path.rfind("/status/", 0) == 0) return Respond(fd, std::stoi(path.substr(8)), "error page");
  if (path == "/stall") {
    Send(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nConnection: close\r\n\r\nabc");
    return WaitForHangup(fd, stop);
  }
  if (path == "/slow") {  // a trickle: 1 byte every 100 ms, far under 1024 bytes/s
    Send(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n");
    while (!stop) {
      Send(fd, "x");
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) > 0) {
        char c;
        if (::recv(fd, &c, 1, 0) <= 0) return;
      }
    }
    return;
  }
  if (path == "/big") return Respond(fd, 200, std::string(5000, 'b'));
  if (path == "/big-unsized") {  // no Content-Length: only the streaming check can stop it
    Send(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    for (int i = 0; i < 50 && !stop; ++i) Send(fd, std::string(1000, 'b'));
    return;
  }
  if (path == "/loop") return Respond(fd, 302, "", "Location: /loop\r\n");
  if (path == "/to-ok") return Respond(fd, 301, "", "Location: /ok\r\n");
  if (path == "/to-file") return Respond(fd, 302, "", "Location: file:///etc/passwd\r\n");
  Respond(fd, 404, "not found");
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class OriginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "quire-origin-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    dest_ = dir_ + "/download";
    loopback_.allow_private_origins = true;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string dir_;
  std::string dest_;
  OriginPolicy loopback_;
};

TEST(IsForbiddenAddressTest, Classifies) {
  for (const char* ip : {"127.0.0.1",
                         "127.9.9.9",
                         "10.1.2.3",
                         "172.16.0.1",
                         "172.31.255.255",
                         "192.168.1.1",
                         "169.254.169.254",
                         "169.254.0.1",
                         "0.0.0.0",
                         "0.1.2.3",
                         "100.64.0.1",
                         "100.127.255.255",
                         "224.0.0.1",
                         "255.255.255.255",
                         "::1",
                         "::",
                         "fc00::1",
                         "fd12:3456::1",
                         "fe80::1",
                         "fe80::1%eth0",
                         "febf::1",
                         "::ffff:127.0.0.1",
                         "::ffff:10.0.0.1",
                         "::ffff:169.254.169.254",
                         "64:ff9b::a00:1",
                         "2002:7f00:1::",
                         "not an ip",
                         ""}) {
    EXPECT_TRUE(IsForbiddenAddress(ip)) << ip;
  }
  for (const char* ip : {"8.8.8.8", "1.1.1.1", "172.15.255.255", "172.32.0.1", "100.63.255.255",
                         "100.128.0.0", "192.167.1.1", "169.253.1.1", "2001:4860:4860::8888",
                         "::ffff:8.8.8.8", "2606:4700::1111"}) {
    EXPECT_FALSE(IsForbiddenAddress(ip)) << ip;
  }
}

TEST_F(OriginTest, DownloadsBody) {
  LoopbackServer server(StandardRoutes);
  ASSERT_TRUE(server.ok());
  Status st = FetchOrigin(server.Url("/ok"), loopback_, dest_);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(ReadFile(dest_), kBody);
}

TEST_F(OriginTest, FollowsRedirect) {
  LoopbackServer server(StandardRoutes);
  ASSERT_TRUE(server.ok());
  ASSERT_TRUE(FetchOrigin(server.Url("/to-ok"), loopback_, dest_).ok());
  EXPECT_EQ(ReadFile(dest_), kBody);
}

TEST_F(OriginTest, HttpErrorsArePermanentOrTransient) {
  LoopbackServer server(StandardRoutes);
  ASSERT_TRUE(server.ok());
  struct Case {
    int code;
    Code expected;
  };
  for (Case c :
       {Case{404, Code::kNotFound}, Case{410, Code::kNotFound}, Case{403, Code::kForbidden},
        Case{400, Code::kInvalid}, Case{500, Code::kUnavailable}, Case{503, Code::kUnavailable},
        Case{429, Code::kUnavailable}, Case{408, Code::kUnavailable}}) {
    Status st = FetchOrigin(server.Url("/status/" + std::to_string(c.code)), loopback_, dest_);
    EXPECT_EQ(st.code(), c.expected) << c.code;
    EXPECT_EQ(st.message(), "origin returned HTTP " + std::to_string(c.code));
    EXPECT_FALSE(fs::exists(dest_));
  }
}

TEST_F(OriginTest, StalledOriginTimesOut) {
  LoopbackServer server(StandardRoutes);
  ASSERT_TRUE(server.ok());
  loopback_.total_timeout_ms = 300;
  auto start = std::chrono::steady_clock::now();
  Status st = FetchOrigin(server.Url("/stall"), loopback_, dest_);
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_NE(st.message().find("origin timed out after"), std::string::npos) << st.message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_FALSE(fs::exists(dest_));
}

TEST_F(OriginTest, TrickleIsAbandoned) {
  LoopbackServer server(StandardRoutes);
  ASSERT_TRUE(server.ok());
  loopback_.low_speed_time_s = 1;
  Status st = FetchOrigin(server.Url("/slow"), loopback_, dest_);
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_NE(st.message().find("origin stalled"), std::string::npos) << st.message();
}

TEST_F(OriginTest, RefusedConnectionIsTransient) {
  int port;
  {
    LoopbackServer server(StandardRoutes);
    ASSERT_TRUE(server.ok());
    port = std::stoi(server.Url("").substr(17));
  }  // closed: nothing listens there now
  Status st = FetchOrigin("http://127.0.0.1:" + std::to_string(port) + "/ok", loopback_, dest_);
  EXPECT_EQ(st.code(), Code::kUnavailable) << st.message();
}

TEST_F(OriginTest, SizeLimitByContentLength) {
  LoopbackServer server(StandardRoutes);
  ASSERT_TRUE(server.ok());
  loopback_.max_bytes = 1000;
  Status st = FetchOrigin(server.Url("/big"), loopback_, dest_);
  EXPECT_EQ(st.code(), Code::kTooLarge);
  EXPECT_EQ(st.message(), "origin larger than 1000 bytes");
  EXPECT_FALSE(fs::exists(dest_));
  loopback_.max_bytes = 5000;  // exactly the size is fine
  EXPECT_TRUE(FetchOrigin(server.Url("/big"), loopback_, dest_).ok());
}

TEST_F(OriginTest, SizeLimitWhileStreaming) {
  LoopbackServer server(StandardRoutes);
  ASSERT_TRUE(server.ok());
  loopback_.max_bytes = 10000;
  Status st = FetchOrigin(server.Url("/big-unsized"), loopback_, dest_);
  EXPECT_EQ(st.code(), Code::kTooLarge) << st.message();
  EXPECT_EQ(st.message(), "origin larger than 10000 bytes");
  EXPECT_FALSE(fs::exists(dest_));
}

TEST_F(OriginTest, RedirectLoopIsPermanent) {
  LoopbackServer server(StandardRoutes);
  ASSERT_TRUE(server.ok());
  loopback_.max_redirects = 3;
  Status st = FetchOrigin(server.Url("/loop"), loopback_, dest_);
  EXPECT_EQ(st.code(), Code::kInvalid);
  EXPECT_EQ(st.message(), "origin redirected more than 3 times");
}

TEST_F(OriginTest, RedirectToFileSchemeIsRefused) {
  LoopbackServer server(StandardRoutes);
  ASSERT_TRUE(server.ok());
  loopback_.file_root = "/";
  Status st = FetchOrigin(server.Url("/to-file"), loopback_, dest_);
  EXPECT_EQ(st.code(), Code::kInvalid) << st.message();
  EXPECT_FALSE(fs::exists(dest_));
}

TEST_F(OriginTest, LoopbackRefusedUnlessAllowed) {
  LoopbackServer server(StandardRoutes);
  ASSERT_TRUE(server.ok());
  OriginPolicy strict;
  Status st = FetchOrigin(server.Url("/ok"), strict, dest_);
  EXPECT_EQ(st.code(), Code::kForbidden);
  EXPECT_EQ(st.message(), "origin address 127.0.0.1 is private and not allowed");
  std::string by_name = server.Url("/ok");
  by_name.replace(by_name.find("127.0.0.1"), 9, "localhost");
  st = FetchOrigin(by_name, strict, dest_);
  EXPECT_EQ(st.code(), Code::kForbidden) << st.message();
  EXPECT_EQ(server.connections(), 0);  // refused before connect()
  EXPECT_FALSE(fs::exists(dest_));
}

TEST_F(OriginTest, RedirectTargetIsCheckedAgain) {
  // The first hop (127.0.0.1) is allowed, the redirect target (127.0.0.2) is not: the rule
  // must be applied to the address actually connected to on the second hop.
  LoopbackServer target(StandardRoutes, "127.0.0.2");
  if (!target.ok()) GTEST_SKIP() << "cannot bind 127.0.0.2";
  std::string target_url = target.Url("/ok");
  LoopbackServer first([&](const std::string&, int fd, const std::atomic<bool>&) {
    Respond(fd, 302, "", "Location: " + target_url + "\r\n");
  });
  ASSERT_TRUE(first.ok());
  AddressRule no_second_host = [](const std::string& ip) { return ip == "127.0.0.2"; };
  Status st = FetchOriginWithRule(first.Url("/start"), OriginPolicy{}, dest_, no_second_host);
  EXPECT_EQ(st.code(), Code::kForbidden);
  EXPECT_EQ(st.message(), "origin address 127.0.0.2 is private and not allowed");
  EXPECT_EQ(first.connections(), 1);
  EXPECT_EQ(target.connections(), 0);

  // With the rule satisfied the same chain succeeds.
  AddressRule none = [](const std::string&) { return false; };
  ASSERT_TRUE(FetchOriginWithRule(first.Url("/start"), OriginPolicy{}, dest_, none).ok());
  EXPECT_EQ(ReadFile(dest_), kBody);
}

TEST_F(OriginTest, SchemesOutsideTheListAreRefused) {
  Status st = FetchOrigin("s3://bucket/key.jpg", loopback_, dest_);
  EXPECT_EQ(st.code(), Code::kForbidden);  // no bucket is allowed by default
  EXPECT_NE(st.message().find("--origin-s3-buckets"), std::string::npos);
  EXPECT_EQ(FetchOrigin("ftp://example.org/a.jpg", loopback_, dest_).code(), Code::kInvalid);
  EXPECT_EQ(FetchOrigin("gopher://x/", loopback_, dest_).code(), Code::kInvalid);
  EXPECT_EQ(FetchOrigin("just words", loopback_, dest_).code(), Code::kInvalid);
  EXPECT_EQ(FetchOrigin("", loopback_, dest_).code(), Code::kInvalid);
}

TEST_F(OriginTest, FileOriginsStayBelowTheRoot) {
  fs::create_directories(dir_ + "/root/sub");
  fs::create_directories(dir_ + "/outside");
  std::ofstream(dir_ + "/root/sub/a b.jpg") << "inside";
  std::ofstream(dir_ + "/outside/secret") << "secret";
  fs::create_symlink(dir_ + "/outside/secret", dir_ + "/root/link");
  fs::create_symlink(dir_ + "/root/sub/a b.jpg", dir_ + "/root/good-link");
  fs::create_directories(dir_ + "/rootx");
  std::ofstream(dir_ + "/rootx/sibling") << "sibling";

  OriginPolicy policy;
  EXPECT_EQ(FetchOrigin("file://" + dir_ + "/root/sub/a%20b.jpg", policy, dest_).code(),
            Code::kForbidden);  // no root configured

  policy.file_root = dir_ + "/root/";
  Status st = FetchOrigin("file://" + dir_ + "/root/sub/a%20b.jpg", policy, dest_);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(ReadFile(dest_), "inside");
  EXPECT_TRUE(FetchOrigin("file://localhost" + dir_ + "/root/good-link", policy, dest_).ok());

  for (std::string escape :
       {dir_ + "/root/../outside/secret", dir_ + "/root/sub/../../outside/secret",
        dir_ + "/root/link", dir_ + "/outside/secret", dir_ + "/rootx/sibling",
        dir_ + "/root/%2E%2E/outside/secret"}) {
    fs::remove(dest_);
    st = FetchOrigin("file://" + escape, policy, dest_);
    EXPECT_EQ(st.code(), Code::kForbidden) << escape << ": " << st.message();
    EXPECT_FALSE(fs::exists(dest_)) << escape;
  }
  EXPECT_EQ(FetchOrigin("file://" + dir_ + "/root/missing", policy, dest_).code(), Code::kNotFound);
  EXPECT_EQ(FetchOrigin("file://otherhost" + dir_ + "/root/sub/a%20b.jpg", policy, dest_).code(),
            Code::kInvalid);
  policy.max_bytes = 3;
  EXPECT_EQ(FetchOrigin("file://" + dir_ + "/root/sub/a%20b.jpg", policy, dest_).code(),
            Code::kTooLarge);
}

}  // namespace
}  // namespace quire

namespace quire {
namespace {

// s3:// origins against the fixture's radosgw, with the server's (environment) credentials.
TEST_F(OriginTest, S3OriginsFromAllowedBucketsOnly) {
  test::UseS3Credentials();
  const auto& s3 = test::S3Server();
  const std::string key = test::UniqueS3Prefix("origin") + "/master image.jpg";
  std::string local = dir_ + "/master";
  std::ofstream(local, std::ios::binary) << kBody;
  int rc = 0;
  test::AwsCli({"s3", "cp", local, "s3://" + s3.bucket + "/" + key}, &rc);
  ASSERT_EQ(rc, 0);
  OriginPolicy p = loopback_;
  p.s3_endpoint = s3.endpoint;
  p.s3_region = s3.region;
  p.s3_path_style = true;
  // Not on the allow-list: refused before any request.
  Status refused = FetchOrigin("s3://" + s3.bucket + "/" + key, p, dest_);
  EXPECT_EQ(refused.code(), Code::kForbidden);
  EXPECT_FALSE(fs::exists(dest_));
  p.s3_buckets = {"other", s3.bucket};
  Status st = FetchOrigin("s3://" + s3.bucket + "/" + key, p, dest_);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(ReadFile(dest_), kBody);
  fs::remove(dest_);
  EXPECT_EQ(FetchOrigin("s3://" + s3.bucket + "/" + key + ".missing", p, dest_).code(),
            Code::kNotFound);
  EXPECT_FALSE(fs::exists(dest_));
  p.max_bytes = 3;
  EXPECT_EQ(FetchOrigin("s3://" + s3.bucket + "/" + key, p, dest_).code(), Code::kTooLarge);
  p.max_bytes = 1 << 20;
  EXPECT_EQ(FetchOrigin("s3://" + s3.bucket, p, dest_).code(), Code::kInvalid);
  // The service down: transient.
  p.s3_endpoint = "http://127.0.0.1:9";
  EXPECT_EQ(FetchOrigin("s3://" + s3.bucket + "/" + key, p, dest_).code(), Code::kUnavailable);
}


// An origin that answers byte ranges as web servers and object stores do (206 with
// Content-Range, If-Range against its ETag), slowly enough that parallel ranges overlap, and
// can be told to misbehave. Every request's Range and If-Range is recorded.
struct RangedOrigin {
  enum class Mode { kRanges, kIgnoreRanges, kWrongContentRange, kChangesAfterProbe };
  std::string body;
  Mode mode = Mode::kRanges;
  int delay_ms = 30;  // before each answer
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> asked;  // (Range, If-Range) per request
  std::atomic<int> in_flight{0}, max_in_flight{0};

  static std::string Header(const std::string& req, const std::string& name) {
    std::istringstream in(req);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.size() > name.size() && strncasecmp(line.c_str(), name.c_str(), name.size()) == 0 &&
          line[name.size()] == ':')
        return line.substr(line.find_first_not_of(' ', name.size() + 1));
    }
    return "";
  }

  void Answer(const std::string& req, int fd) {
    const int now = ++in_flight;
    for (int m = max_in_flight; now > m && !max_in_flight.compare_exchange_weak(m, now);) {
    }
    const std::string range = Header(req, "Range"), if_range = Header(req, "If-Range");
    size_t n;
    {
      std::lock_guard<std::mutex> lock(mu);
      asked.emplace_back(range, if_range);
      n = asked.size();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    std::string etag = "\"v1\"";
    if (mode == Mode::kChangesAfterProbe && n > 1) etag = "\"v2\"";
    long long a = 0, b = 0;
    const bool use = mode != Mode::kIgnoreRanges && !range.empty() &&
                     std::sscanf(range.c_str(), "bytes=%lld-%lld", &a, &b) == 2 &&
                     (if_range.empty() || if_range == etag);
    if (!use) {
      Send(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                   "\r\nETag: " + etag + "\r\nConnection: close\r\n\r\n" + body);
    } else if (body.empty() || a >= static_cast<long long>(body.size())) {
      Send(fd, "HTTP/1.1 416 X\r\nContent-Range: bytes */" + std::to_string(body.size()) +
                   "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    } else {
      b = std::min<long long>(b, static_cast<long long>(body.size()) - 1);
      long long claimed = a;
      if (mode == Mode::kWrongContentRange && a > 0) ++claimed;  // an off-by-one server
      Send(fd, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes " + std::to_string(claimed) +
                   "-" + std::to_string(b) + "/" + std::to_string(body.size()) +
                   "\r\nContent-Length: " + std::to_string(b - a + 1) + "\r\nETag: " + etag +
                   "\r\nConnection: close\r\n\r\n" + body.substr(a, b - a + 1));
    }
    --in_flight;
  }
};

std::string RandomBytes(size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1103515245u + 12345u;
    s[i] = static_cast<char>(seed >> 16);
  }
  return s;
}

class RangedFetchTest : public OriginTest {
 protected:
  void SetUp() override {
    OriginTest::SetUp();
    origin_.body = RandomBytes(3 << 20, 7);
    server_ = std::make_unique<LoopbackServer>(
        LoopbackServer::RequestHandler([this](const std::string&, const std::string& req, int fd,
                                              const std::atomic<bool>&) {
          origin_.Answer(req, fd);
        }));
    pool_ = std::make_shared<FetchConnections>(6);
    policy_ = loopback_;
    policy_.connections = pool_;
    policy_.range_bytes = 256 << 10;
    policy_.max_ranges = 4;
    policy_.reserve = [this](int64_t bytes) {
      reserved_.push_back(bytes);
      return true;
    };
  }

  RangedOrigin origin_;
  std::unique_ptr<LoopbackServer> server_;
  std::shared_ptr<FetchConnections> pool_;
  OriginPolicy policy_;
  std::vector<int64_t> reserved_;
};

TEST_F(RangedFetchTest, AnOriginThatAnswersRangesIsFetchedOverSeveralConnections) {
  Status st = FetchOrigin(server_->Url("/master.tif"), policy_, dest_);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_TRUE(ReadFile(dest_) == origin_.body) << "the ranges put together are not the body";
  // The probe asked for the first 256 KiB; the rest (2.75 MiB) went in four ranges of at least
  // 256 KiB, at most four requests at a time, each tied to the probe's ETag.
  ASSERT_EQ(origin_.asked.size(), 5u);
  EXPECT_EQ(origin_.asked[0].first, "bytes=0-262143");
  EXPECT_EQ(origin_.asked[0].second, "");
  int64_t covered = 262144;
  for (size_t i = 1; i < origin_.asked.size(); ++i) {
    EXPECT_EQ(origin_.asked[i].second, "\"v1\"");
    long long a = 0, b = 0;
    ASSERT_EQ(std::sscanf(origin_.asked[i].first.c_str(), "bytes=%lld-%lld", &a, &b), 2);
    covered += b - a + 1;
  }
  EXPECT_EQ(covered, static_cast<int64_t>(origin_.body.size()));
  EXPECT_GE(origin_.max_in_flight.load(), 3);
  EXPECT_LE(origin_.max_in_flight.load(), 4);
  // The scratch room is asked for once, with the whole size; the connections are all back.
  EXPECT_EQ(reserved_, std::vector<int64_t>{static_cast<int64_t>(origin_.body.size())});
  EXPECT_EQ(pool_->Free(), 6);
}

TEST_F(RangedFetchTest, WithNoFreeConnectionTheRestComesInOneRange) {
  auto none = std::make_shared<FetchConnections>(0);
  policy_.connections = none;
  Status st = FetchOrigin(server_->Url("/master.tif"), policy_, dest_);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_TRUE(ReadFile(dest_) == origin_.body);
  ASSERT_EQ(origin_.asked.size(), 2u);
  EXPECT_EQ(origin_.asked[1].first, "bytes=262144-" + std::to_string(origin_.body.size() - 1));
  EXPECT_EQ(origin_.max_in_flight.load(), 1);
}

TEST_F(RangedFetchTest, AnOriginThatIgnoresRangesIsFetchedWholeOnce) {
  origin_.mode = RangedOrigin::Mode::kIgnoreRanges;
  Status st = FetchOrigin(server_->Url("/master.tif"), policy_, dest_);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_TRUE(ReadFile(dest_) == origin_.body);
  EXPECT_EQ(origin_.asked.size(), 1u);
  EXPECT_EQ(reserved_, std::vector<int64_t>{static_cast<int64_t>(origin_.body.size())});
  EXPECT_EQ(pool_->Free(), 6);
}

TEST_F(RangedFetchTest, AWrongContentRangeFallsBackToOneWholeGet) {
  origin_.mode = RangedOrigin::Mode::kWrongContentRange;
  Status st = FetchOrigin(server_->Url("/master.tif"), policy_, dest_);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_TRUE(ReadFile(dest_) == origin_.body) << "bytes of a misplaced range were kept";
  ASSERT_GE(origin_.asked.size(), 3u);
  EXPECT_EQ(origin_.asked.back().first, "") << "the last request should be a plain GET";
  // Room was asked for once; the whole GET used it again.
  EXPECT_EQ(reserved_.size(), 1u);
  EXPECT_EQ(pool_->Free(), 6);
}

TEST_F(RangedFetchTest, AnOriginThatChangesMidDownloadIsATransientFailure) {
  origin_.mode = RangedOrigin::Mode::kChangesAfterProbe;
  Status st = FetchOrigin(server_->Url("/master.tif"), policy_, dest_);
  EXPECT_EQ(st.code(), Code::kUnavailable) << st.message();
  EXPECT_NE(st.message().find("changed during the download"), std::string::npos) << st.message();
  EXPECT_FALSE(fs::exists(dest_));
  EXPECT_EQ(pool_->Free(), 6);
}

TEST_F(RangedFetchTest, AnEmptyOriginAnswering416IsFetchedWhole) {
  origin_.body.clear();
  Status st = FetchOrigin(server_->Url("/empty"), policy_, dest_);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_TRUE(fs::exists(dest_));
  EXPECT_EQ(fs::file_size(dest_), 0u);
  ASSERT_EQ(origin_.asked.size(), 2u);
  EXPECT_EQ(origin_.asked[1].first, "");
}

TEST_F(RangedFetchTest, ASizeOverTheLimitIsRefusedFromTheFirstRange) {
  policy_.max_bytes = 1 << 20;
  Status st = FetchOrigin(server_->Url("/master.tif"), policy_, dest_);
  EXPECT_EQ(st.code(), Code::kTooLarge) << st.message();
  EXPECT_EQ(origin_.asked.size(), 1u);
  EXPECT_TRUE(reserved_.empty());
  EXPECT_FALSE(fs::exists(dest_));
}

TEST_F(RangedFetchTest, NoRoomInTheScratchBudgetWritesNothing) {
  policy_.reserve = [this](int64_t bytes) {
    reserved_.push_back(bytes);
    return false;
  };
  Status st = FetchOrigin(server_->Url("/master.tif"), policy_, dest_);
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_NE(st.message().find("scratch budget"), std::string::npos) << st.message();
  EXPECT_EQ(origin_.asked.size(), 1u);
  EXPECT_FALSE(fs::exists(dest_));
  EXPECT_EQ(pool_->Free(), 6);
}

TEST_F(RangedFetchTest, AStopAbandonsEveryRange) {
  origin_.delay_ms = 400;
  std::atomic<bool> stop{false};
  policy_.cancel = &stop;
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(600));  // the ranges are under way
    stop = true;
  });
  auto t0 = std::chrono::steady_clock::now();
  Status st = FetchOrigin(server_->Url("/master.tif"), policy_, dest_);
  stopper.join();
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_NE(st.message().find("abandoned"), std::string::npos) << st.message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_FALSE(fs::exists(dest_));
  EXPECT_EQ(pool_->Free(), 6);
}


TEST_F(RangedFetchTest, EveryRangeGoesThroughTheRedirectAndTheAddressGuard) {
  // The ranged origin sits behind a redirect on another address: every range asks for the
  // origin's own URL again (so credentials never reach another host) and every connection
  // passes the address rule.
  LoopbackServer target(
      LoopbackServer::RequestHandler([this](const std::string&, const std::string& req, int fd,
                                            const std::atomic<bool>&) { origin_.Answer(req, fd); }),
      "127.0.0.2");
  if (!target.ok()) GTEST_SKIP() << "cannot bind 127.0.0.2";
  std::string target_url = target.Url("/master.tif");
  LoopbackServer first([&](const std::string&, int fd, const std::atomic<bool>&) {
    Respond(fd, 302, "", "Location: " + target_url + "\r\n");
  });
  ASSERT_TRUE(first.ok());
  AddressRule none = [](const std::string&) { return false; };
  Status st = FetchOriginWithRule(first.Url("/start"), policy_, dest_, none);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_TRUE(ReadFile(dest_) == origin_.body);
  EXPECT_EQ(static_cast<size_t>(first.connections()), origin_.asked.size());
  EXPECT_GT(origin_.asked.size(), 2u);

  AddressRule no_second_host = [](const std::string& ip) { return ip == "127.0.0.2"; };
  const int before = target.connections();
  st = FetchOriginWithRule(first.Url("/start"), policy_, dest_, no_second_host);
  EXPECT_EQ(st.code(), Code::kForbidden) << st.message();
  EXPECT_EQ(target.connections(), before);
  EXPECT_FALSE(fs::exists(dest_));
  EXPECT_EQ(pool_->Free(), 6);
}

}  // namespace
}  // namespace quire
