// The HTTP server at its edges, over raw loopback sockets: request framing that a proxy could
// read differently (request smuggling), and running out of file descriptors.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "support/live_server.h"
#include "support/raw_http.h"

namespace quire::test {
namespace {

// ---------- framing ----------

class HttpFramingTest : public LiveServerTest {};

// Each request carries a smuggled second request in what a chunk-aware proxy would call its
// body. Exactly one answer may come back — a 400 — and the connection must be closed, so the
// smuggled bytes are never read as a request.
TEST_F(HttpFramingTest, AmbiguousTransferEncodingIsRefusedAndTheConnectionClosed) {
  const std::string smuggled = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::vector<std::string> framings = {
      "Transfer-Encoding: gzip\r\n",
      "Transfer-Encoding: identity\r\n",
      "Transfer-Encoding: chunked, chunked\r\n",
      "Transfer-Encoding: xchunked\r\n",
      "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
      "Transfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n",
      "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
  };
  for (const std::string& framing : framings) {
    SCOPED_TRACE(framing);
    int fd = Connect(Port(server_->url()));
    ASSERT_GE(fd, 0);
    std::string body = framing.find("chunked\r\nContent") != std::string::npos ||
                               framing.find("gzip, chunked") != std::string::npos
                           ? "0\r\n\r\n" + smuggled
                           : smuggled;
    SendAll(fd, "POST /customers/1/spaces HTTP/1.1\r\nHost: x\r\n" + framing +
                    "Content-Type: application/json\r\n\r\n" + body);
    ReadResult r = ReadFor(fd, std::chrono::seconds(5));
    ::close(fd);
    EXPECT_TRUE(r.closed) << "connection left open: " << r.bytes;
    EXPECT_EQ(CountResponses(r.bytes), 1) << r.bytes;
    EXPECT_EQ(r.bytes.rfind("HTTP/1.1 400 ", 0), 0u) << r.bytes;
  }
  // The server still answers normally afterwards.
  EXPECT_EQ(Http("GET", U("/healthz")).status, 200);
}

TEST_F(HttpFramingTest, TransferEncodingInHttp10IsRefused) {
  int fd = Connect(Port(server_->url()));
  ASSERT_GE(fd, 0);
  SendAll(fd, "POST /customers HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
              "GET /healthz HTTP/1.0\r\n\r\n");
  ReadResult r = ReadFor(fd, std::chrono::seconds(5));
  ::close(fd);
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(CountResponses(r.bytes), 1) << r.bytes;
  EXPECT_NE(r.bytes.find(" 400 "), std::string::npos) << r.bytes;
}

TEST_F(HttpFramingTest, ConflictingContentLengthsAreRefused) {
  int fd = Connect(Port(server_->url()));
  ASSERT_GE(fd, 0);
  SendAll(fd, "POST /customers HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 40\r\n"
              "\r\n{}GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  ReadResult r = ReadFor(fd, std::chrono::seconds(5));
  ::close(fd);
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(CountResponses(r.bytes), 1) << r.bytes;
  EXPECT_EQ(r.bytes.rfind("HTTP/1.1 400 ", 0), 0u) << r.bytes;
}

// The one sound transfer coding keeps working, and keep-alive with it.
TEST_F(HttpFramingTest, ChunkedBodyIsReadAndTheConnectionKeptAlive) {
  int fd = Connect(Port(server_->url()));
  ASSERT_GE(fd, 0);
  std::string json = "{\"name\":\"chunked-customer\",\"displayName\":\"Chunked\"}";
  char size[16];
  std::snprintf(size, sizeof size, "%zx", json.size() - 10);
  SendAll(fd, "POST /customers HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46YWRtaW4tc2VjcmV0\r\n"
              "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
                  std::string(size) + "\r\n" + json.substr(0, json.size() - 10) + "\r\na\r\n" +
                  json.substr(json.size() - 10) + "\r\n0\r\n\r\n");
  ReadResult first = ReadFor(fd, std::chrono::seconds(5), "chunked-customer");
  EXPECT_EQ(first.bytes.rfind("HTTP/1.1 201 ", 0), 0u) << first.bytes;
  SendAll(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  ReadResult second = ReadFor(fd, std::chrono::seconds(5), "\r\n\r\n");
  ::close(fd);
  EXPECT_FALSE(second.closed);
  EXPECT_EQ(second.bytes.rfind("HTTP/1.1 200 ", 0), 0u) << second.bytes;
}

// The response head the server writes itself: one status line of the request's version, one
// Server and one Content-Length (the body's, or for HEAD the length GET would send, with no
// body), and the connection's fate as each HTTP version says it.
TEST_F(HttpFramingTest, ResponseHeadsSayLengthAndConnectionAsEachVersionExpects) {
  auto count = [](const std::string& head, const std::string& name) {
    int n = 0;
    for (size_t at = head.find("\r\n" + name + ": "); at != std::string::npos;
         at = head.find("\r\n" + name + ": ", at + 1))
      ++n;
    return n;
  };
  auto head_of = [](const std::string& bytes) { return bytes.substr(0, bytes.find("\r\n\r\n") + 2); };
  const std::string body = Http("GET", U("/healthz")).body;
  ASSERT_FALSE(body.empty());

  // HTTP/1.1 keep-alive: no Connection header, the connection stays; then HEAD on it.
  int fd = Connect(Port(server_->url()));
  ASSERT_GE(fd, 0);
  SendAll(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  ReadResult get = ReadResponse(fd, std::chrono::seconds(5));
  std::string head = head_of(get.bytes);
  EXPECT_EQ(get.bytes.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << get.bytes;
  EXPECT_EQ(count(head, "Server"), 1) << head;
  EXPECT_EQ(count(head, "Content-Length"), 1) << head;
  EXPECT_NE(head.find("\r\nContent-Length: " + std::to_string(body.size()) + "\r\n"),
            std::string::npos) << head;
  EXPECT_EQ(count(head, "Connection"), 0) << head;
  EXPECT_EQ(count(head, "X-Request-Id"), 1) << head;
  EXPECT_EQ(get.bytes.substr(head.size() + 2), body);
  EXPECT_FALSE(get.closed);
  SendAll(fd, "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  ReadResult got_head = ReadFor(fd, std::chrono::milliseconds(500));
  EXPECT_EQ(got_head.bytes.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << got_head.bytes;
  EXPECT_NE(got_head.bytes.find("\r\nContent-Length: " + std::to_string(body.size()) + "\r\n"),
            std::string::npos) << got_head.bytes;
  EXPECT_EQ(got_head.bytes.size(), got_head.bytes.find("\r\n\r\n") + 4) << "HEAD sent a body";
  // HTTP/1.1 asking to close: Connection: close, then the server closes.
  SendAll(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  ReadResult closing = ReadFor(fd, std::chrono::seconds(5));
  ::close(fd);
  EXPECT_NE(head_of(closing.bytes).find("\r\nConnection: close\r\n"), std::string::npos)
      << closing.bytes;
  EXPECT_TRUE(closing.closed);

  // HTTP/1.0 with keep-alive: answered in 1.0 with Connection: keep-alive, and kept.
  fd = Connect(Port(server_->url()));
  ASSERT_GE(fd, 0);
  SendAll(fd, "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  ReadResult kept = ReadResponse(fd, std::chrono::seconds(5));
  EXPECT_EQ(kept.bytes.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << kept.bytes;
  EXPECT_NE(head_of(kept.bytes).find("\r\nConnection: keep-alive\r\n"), std::string::npos)
      << kept.bytes;
  EXPECT_FALSE(kept.closed);
  // HTTP/1.0 without it: no Connection header, and the server closes after the answer.
  SendAll(fd, "GET /healthz HTTP/1.0\r\n\r\n");
  ReadResult plain = ReadFor(fd, std::chrono::seconds(5));
  ::close(fd);
  EXPECT_EQ(plain.bytes.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << plain.bytes;
  EXPECT_EQ(count(head_of(plain.bytes), "Connection"), 0) << plain.bytes;
  EXPECT_TRUE(plain.closed);
  EXPECT_EQ(plain.bytes.substr(plain.bytes.find("\r\n\r\n") + 4), body);
}

// ---------- file descriptors ----------

// The number the process's next descriptor would get: RLIMIT_NOFILE bounds descriptor
// numbers, so a soft limit of this value leaves it none.
int LowestFreeFd(pid_t pid) {
  std::set<int> used;
  DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (d == nullptr) return -1;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') used.insert(std::atoi(e->d_name));
  ::closedir(d);
  int n = 0;
  while (used.count(n)) ++n;
  return n;
}

// User + system CPU seconds the process has used.
double CpuSeconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i)
    if (i == 14 || i == 15) ticks += std::stod(field);
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Sets the running server's soft limit (the hard one stays: raising a hard limit again
// needs CAP_SYS_RESOURCE, which a test may not have).
void SetFileLimit(pid_t pid, rlim_t n) {
  struct rlimit lim;
  ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, nullptr, &lim), 0) << std::strerror(errno);
  lim.rlim_cur = n;
  ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, &lim, nullptr), 0) << std::strerror(errno);
}

class FileDescriptorTest : public ::testing::Test {
 protected:
  TempDir dir_;
};

TEST_F(FileDescriptorTest, SoftLimitIsRaisedToTheHardLimitAtStart) {
  struct rlimit lim;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &lim), 0);
  if (lim.rlim_max <= 1024) GTEST_SKIP() << "hard limit is only " << lim.rlim_max;
  struct rlimit low{1024, lim.rlim_max};
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);  // the server inherits a soft limit of 1024
  QuireProcess server(dir_.path() + "/data", {"--workers", "0"});
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lim), 0);
  std::ifstream limits("/proc/" + std::to_string(server.pid()) + "/limits");
  std::string text((std::istreambuf_iterator<char>(limits)), std::istreambuf_iterator<char>());
  std::smatch m;
  ASSERT_TRUE(std::regex_search(text, m, std::regex("Max open files +([0-9]+) +([0-9]+)")));
  EXPECT_EQ(m[1].str(), m[2].str()) << text;
}

// No descriptor left at all: accept() fails with EMFILE and there is nothing idle to close.
// The server must wait between tries instead of spinning, and answer the waiting client once
// descriptors are free again.
TEST_F(FileDescriptorTest, ExhaustedDescriptorsDoNotSpinAndRecover) {
  QuireProcess server(dir_.path() + "/data", {"--workers", "0"});
  pid_t pid = server.pid();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // start-up probes closed
  int next_fd = LowestFreeFd(pid);
  ASSERT_GT(next_fd, 0);
  SetFileLimit(pid, static_cast<rlim_t>(next_fd));

  int fd = Connect(Port(server.url()));  // completes in the kernel's backlog
  ASSERT_GE(fd, 0);
  SendAll(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  double cpu0 = CpuSeconds(pid);
  ReadResult starved = ReadFor(fd, std::chrono::seconds(2), "\r\n\r\n");
  double cpu = CpuSeconds(pid) - cpu0;
  EXPECT_FALSE(starved.closed);
  EXPECT_EQ(CountResponses(starved.bytes), 0) << "answered without a descriptor?";
  EXPECT_LT(cpu, 0.3) << "the accept loop spins on EMFILE (" << cpu << " s of CPU in 2 s)";

  SetFileLimit(pid, 4096);
  ReadResult answered = ReadFor(fd, std::chrono::seconds(3), "\r\n\r\n");
  ::close(fd);
  EXPECT_EQ(answered.bytes.rfind("HTTP/1.1 200 ", 0), 0u) << answered.bytes << server.Log();
  EXPECT_NE(server.Log().find("cannot accept connections"), std::string::npos);
}

// Idle keep-alive connections hold every descriptor: new clients are let in by closing the
// oldest idle ones.
TEST_F(FileDescriptorTest, IdleKeepAliveConnectionsAreShedForNewClients) {
  QuireProcess server(dir_.path() + "/data", {"--workers", "0"});
  pid_t pid = server.pid();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // start-up probes closed
  SetFileLimit(pid, static_cast<rlim_t>(LowestFreeFd(pid) + 16));
  int port = Port(server.url());

  std::vector<int> conns;
  int answered = 0;
  for (int i = 0; i < 48; ++i) {
    int fd = Connect(port);
    ASSERT_GE(fd, 0);
    SendAll(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    ReadResult r = ReadFor(fd, std::chrono::seconds(3), "\r\n\r\n");
    if (r.bytes.rfind("HTTP/1.1 200 ", 0) == 0) ++answered;
    conns.push_back(fd);  // kept open and idle
  }
  EXPECT_EQ(answered, 48) << "new clients were not answered while idle connections held the fds";
  int shed = 0;
  for (int fd : conns) {
    if (ReadFor(fd, std::chrono::milliseconds(20)).closed) ++shed;
    ::close(fd);
  }
  EXPECT_GE(shed, 48 - 16) << "idle connections should have been closed to make room";
  EXPECT_EQ(Http("GET", server.url() + "/healthz").status, 200);
}

}  // namespace
}  // namespace quire::test
