// A corpus of hostile HTTP requests sent over raw sockets to a live server: malformed request
// lines and headers, smuggling attempts, absurd sizes, bad encodings, deep JSON, path
// traversal in every identifier position, slow senders. Each case asserts its exact outcome:
// the status of the one answer (and that the connection is closed when the framing can no
// longer be trusted). After the corpus the server must still be alive, answer normally, have
// logged no 500, and have written nothing.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <thread>

#include "support/http_client.h"
#include "support/quire_process.h"
#include "support/raw_http.h"

namespace quire::test {
namespace {

using namespace std::chrono_literals;

const std::string kAuth = "Authorization: Basic YWRtaW46YWRtaW4tc2VjcmV0\r\n";  // admin

struct Case {
  std::string name;
  std::string bytes;
  int status;         // the one answer's status
  bool close = true;  // the server must close the connection after it
};

std::string Get(const std::string& target, const std::string& headers = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: q\r\n" + headers + "\r\n";
}

std::string Post(const std::string& target, const std::string& body,
                 const std::string& headers = kAuth) {
  return "POST " + target + " HTTP/1.1\r\nHost: q\r\n" + headers +
         "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

std::vector<Case> Corpus() {
  std::vector<Case> c;
  auto add = [&](std::string name, std::string bytes, int status, bool close = true) {
    c.push_back({std::move(name), std::move(bytes), status, close});
  };

  // --- request lines ---
  add("no target or version", "GET\r\n\r\n", 400);
  add("HTTP/0.9 style", "GET /\r\n\r\n", 400);
  add("extra token", "GET / HTTP/1.1 extra\r\nHost: q\r\n\r\n", 400);
  add("double space", "GET  / HTTP/1.1\r\nHost: q\r\n\r\n", 400);
  add("bad method char", "G@T / HTTP/1.1\r\nHost: q\r\n\r\n", 400);
  add("unknown version", "GET / HTTP/9.9\r\nHost: q\r\n\r\n", 400);
  add("lower-case version", "GET / http/1.1\r\nHost: q\r\n\r\n", 400);
  add("NUL before method", std::string("\0GET / HTTP/1.1\r\nHost: q\r\n\r\n", 29), 400);
  add("control char in target", "GET /\x01 HTTP/1.1\r\nHost: q\r\n\r\n", 400);
  add("space in target", "GET /a b HTTP/1.1\r\nHost: q\r\n\r\n", 400);
  add("absolute-form target", "GET http://evil.example/ HTTP/1.1\r\nHost: q\r\n\r\n", 400, false);
  add("asterisk target", "OPTIONS * HTTP/1.1\r\nHost: q\r\n\r\n", 400, false);
  add("target of 20000 bytes", Get("/" + std::string(20000, 'a')), 431);
  add("unknown method", "BREW / HTTP/1.1\r\nHost: q\r\n\r\n", 405, false);
  add("lower-case method", "get / HTTP/1.1\r\nHost: q\r\n\r\n", 405, false);
  add("binary garbage", std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + "\r\n\r\n", 400);
  add("TLS on the plain port", std::string("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 11), 400);

  // --- headers ---
  add("header without colon", "GET / HTTP/1.1\r\nHost q\r\n\r\n", 400);
  add("space before colon", "GET / HTTP/1.1\r\nHost : q\r\n\r\n", 400);
  // RFC 9112 §5.2 lets a server replace obs-fold with spaces instead of refusing it.
  add("obsolete line folding", "GET / HTTP/1.1\r\nHost: q\r\nX-A: 1\r\n 2\r\n\r\n", 200, false);
  add("NUL in a header value", std::string("GET / HTTP/1.1\r\nHost: q\r\nX-A: a\0b\r\n\r\n", 36), 400);
  add("bad header name", "GET / HTTP/1.1\r\nHost: q\r\nX(A): 1\r\n\r\n", 400);
  add("empty header name", "GET / HTTP/1.1\r\nHost: q\r\n: x\r\n\r\n", 400);
  add("one header of 17 KiB", Get("/", "X-Big: " + std::string(17 * 1024, 'x') + "\r\n"), 431);
  {
    std::string many;
    for (int i = 0; i < 300; ++i) many += "X-H" + std::to_string(i) + ": " + std::string(60, 'v') + "\r\n";
    add("300 headers", Get("/", many), 431);
  }
  add("no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400);
  add("two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
  add("bare LF line ends", "GET /healthz HTTP/1.1\nHost: q\n\n", 400);
  add("header of only spaces (a fold)", "GET / HTTP/1.1\r\nHost: q\r\n   \r\n\r\n", 200, false);

  // --- sizes and lengths ---
  add("negative length", "POST /customers HTTP/1.1\r\nHost: q\r\nContent-Length: -1\r\n\r\n", 400);
  add("non-numeric length", "POST /customers HTTP/1.1\r\nHost: q\r\nContent-Length: abc\r\n\r\n", 400);
  add("list-valued length", "POST /customers HTTP/1.1\r\nHost: q\r\nContent-Length: 1,2\r\n\r\nab", 400);
  add("plus-signed length", "POST /customers HTTP/1.1\r\nHost: q\r\nContent-Length: +2\r\n\r\n{}", 400);
  add("length beyond 64 bits",
      "POST /customers HTTP/1.1\r\nHost: q\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400);
  add("declared 11 MB body", "POST /customers HTTP/1.1\r\nHost: q\r\n" + kAuth +
                                 "Content-Length: 11000000\r\n\r\n{",
      413);
  add("two different lengths", "POST /customers HTTP/1.1\r\nHost: q\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400);
  add("bad chunk size", "POST /customers HTTP/1.1\r\nHost: q\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400);
  add("chunk size overflow", "POST /customers HTTP/1.1\r\nHost: q\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", 400);
  add("chunks beyond the body limit",
      "POST /customers HTTP/1.1\r\nHost: q\r\n" + kAuth +
          "Transfer-Encoding: chunked\r\n\r\n" + "a00001\r\n" + std::string(4096, '{'),
      413);

  // --- smuggling ---
  const std::string smuggled = "GET /healthz HTTP/1.1\r\nHost: q\r\n\r\n";
  for (const char* te : {"gzip", "identity", "chunked, chunked", "xchunked", "chunked, gzip",
                         "gzip, chunked\r\nContent-Length: 4", "chunked\r\nContent-Length: 4",
                         "chunked\r\nTransfer-Encoding: identity", "\"chunked\"", "chunked;q=1"}) {
    add(std::string("Transfer-Encoding: ") + te,
        "POST /customers HTTP/1.1\r\nHost: q\r\nTransfer-Encoding: " + std::string(te) +
            "\r\n\r\n0\r\n\r\n" + smuggled,
        400);
  }
  add("TE in HTTP/1.0", "POST /customers HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);

  // --- encodings in paths and queries ---
  add("lone percent", Get("/customers/%", kAuth), 404, false);
  add("bad escape", Get("/customers/%zz", kAuth), 404, false);
  add("bad escape, no credentials", Get("/customers/%zz"), 401, false);
  add("encoded NUL id", Get("/customers/1/spaces/1/images/a%00b", kAuth), 404, false);
  add("overlong UTF-8 dots", Get("/customers/1/spaces/1/images/%C0%AE%C0%AE", kAuth), 404, false);
  add("invalid UTF-8 id", Get("/customers/1/spaces/1/images/%FF%FE", kAuth), 404, false);
  add("query of 15 KiB", Get("/customers/1/spaces/1/images?q=" + std::string(15000, 'a'), kAuth), 400, false);
  // api.md §3: a page that is not a positive number is page 1.
  add("bad page number", Get("/customers/1/spaces?page=-5", kAuth), 200, false);
  add("page beyond int64", Get("/customers/1/spaces?page=99999999999999999999", kAuth), 200, false);
  add("pageSize beyond int64", Get("/customers/1/spaces?pageSize=99999999999999999999", kAuth), 200, false);
  // The image is looked up before the request is parsed: an unknown one is 404 either way.
  add("IIIF size of 30 digits", Get("/iiif-img/1/1/x/full/" + std::string(30, '9') + ",/0/default.jpg"), 404, false);
  add("IIIF region of NaN", Get("/iiif-img/1/1/x/nan,0,1,1/max/0/default.jpg"), 404, false);

  // --- JSON bodies ---
  add("JSON nested 100000 deep", Post("/customers", std::string(100000, '[') + std::string(100000, ']')), 400, false);
  add("JSON object nested 50000 deep", Post("/customers", [] {
        std::string s;
        for (int i = 0; i < 50000; ++i) s += "{\"a\":";
        return s + "1" + std::string(50000, '}');
      }()), 400, false);
  add("JSON with a lone surrogate", Post("/customers", "{\"name\":\"\\ud800\"}"), 400, false);
  add("JSON with trailing garbage", Post("/customers", "{\"name\":\"x\"} {"), 400, false);
  add("JSON number 1e400", Post("/customers/1/spaces", "{\"name\":\"s\",\"maxUnauthorised\":1e400}"), 400, false);
  add("empty body", Post("/customers", ""), 400, false);

  // --- path traversal in every identifier position ---
  const std::vector<std::string> traversals = {
      "..", "%2e%2e", "..%2f..%2f..%2fetc%2fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
      "%252e%252e%252fetc", "..%5c..%5cwin.ini", "%2fetc%2fpasswd"};
  const std::vector<std::pair<std::string, std::string>> positions = {
      {"/customers/", ""},
      {"/customers/1/spaces/", ""},
      {"/customers/1/spaces/1/images/", ""},
      {"/customers/1/queue/batches/", ""},
      {"/customers/1/keys/", ""},
      {"/iiif-img/1/1/", "/info.json"},
      {"/iiif-img/1/", "/x/info.json"},
      {"/thumbs/1/1/", "/full/100,/0/default.jpg"},
      {"/file/1/1/", ""},
      {"/contexts/", ""},
      {"/thumbnailPolicies/", ""},
  };
  for (const auto& [before, after] : positions) {
    for (const std::string& t : traversals) {
      // Identifiers are looked up, never joined into file paths (blob keys escape them), so
      // every form is simply an identifier that does not exist.
      add("traversal " + t + " in " + before + "{}" + after, Get(before + t + after, kAuth), 404,
          false);
    }
  }
  return c;
}

class HostileHttpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    server_ = new QuireProcess(dir_->path() + "/data", {"--workers", "0", "--request-timeout", "2"});
    // One space, so space 1 routes resolve to something real.
    Http("POST", server_->url() + "/customers/1/spaces", "{\"name\":\"books\"}", server_->admin());
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }
  static inline TempDir* dir_ = nullptr;
  static inline QuireProcess* server_ = nullptr;
};

TEST_F(HostileHttpTest, EveryCaseGetsItsExactAnswer) {
  std::vector<Case> corpus = Corpus();
  ASSERT_GE(corpus.size(), 100u);
  int port = Port(server_->url());
  for (const Case& k : corpus) {
    SCOPED_TRACE(k.name);
    int fd = Connect(port);
    ASSERT_GE(fd, 0);
    SendAll(fd, k.bytes);
    ReadResult r = k.close ? ReadFor(fd, 4s) : ReadResponse(fd, 4s);
    ::close(fd);
    EXPECT_EQ(CountResponses(r.bytes), 1) << r.bytes.substr(0, 300);
    EXPECT_EQ(FirstStatus(r.bytes), k.status) << r.bytes.substr(0, 300);
    if (k.close) {
      EXPECT_TRUE(r.closed) << "connection left open";
    }
    EXPECT_EQ(r.bytes.find("root:"), std::string::npos) << "a file leaked";
  }
  // Still alive and answering, no 500 anywhere, nothing written.
  EXPECT_EQ(Http("GET", server_->url() + "/healthz").status, 200);
  EXPECT_EQ(server_->AnsweredWith(500), 0);
  HttpResult customers = Http("GET", server_->url() + "/customers", "", server_->admin());
  EXPECT_EQ(customers.Json()["totalItems"], 1) << customers.body;
}

// Slow senders are cut off at the request timeout and never hold up anybody else.
TEST_F(HostileHttpTest, SlowSendersAreCutOffAndDoNotBlockOthers) {
  int port = Port(server_->url());
  std::vector<int> slow;
  for (int i = 0; i < 40; ++i) {
    int fd = Connect(port);
    ASSERT_GE(fd, 0);
    SendAll(fd, i % 2 ? "GET / HTTP/1.1\r\nHost: q\r\nX-Slow: " : Post("/customers", "{\"na").substr(0, 120));
    slow.push_back(fd);
  }
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(Http("GET", server_->url() + "/healthz").status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  // A trickler: one header byte every 300 ms never completes a request within 2 s.
  int trickle = Connect(port);
  SendAll(trickle, "GET / HTTP/1.1\r\nHost: q\r\n");
  bool closed = false;
  for (int i = 0; i < 20 && !closed; ++i) {
    SendAll(trickle, "X");
    closed = ReadFor(trickle, 300ms).closed;
  }
  EXPECT_TRUE(closed) << "a trickling sender was never cut off";
  ::close(trickle);
  for (int fd : slow) {
    EXPECT_TRUE(ReadFor(fd, 4s).closed);
    ::close(fd);
  }
}

}  // namespace
}  // namespace quire::test
