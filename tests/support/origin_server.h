// A test origin: a tiny HTTP/1.1 server on 127.0.0.1 (plain sockets, one thread per
// connection, one request per connection, "Connection: close") serving registered paths.
// Each path can answer with a body, a status code, "fail N times then succeed", a delay, a
// stall (never answer, or trickle the body slower than any sane low-speed limit) or a
// redirect; every request to a path is counted. Routes may be changed while serving.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace quire::test {

struct OriginRoute {
  int status = 200;
  std::string body;
  std::string content_type = "application/octet-stream";
  std::string location;  // set: answer `status` (3xx) with this Location
  int fail_first = 0;    // answer fail_status to the first N requests, then normally
  int fail_status = 500;
  int delay_ms = 0;       // wait this long before answering
  bool stall = false;     // read the request, then never answer
  int trickle_bytes = 0;  // >0: send headers, then this many body bytes per interval
  int trickle_interval_ms = 1000;
  bool send_length = true;  // false: no Content-Length, the body ends at close
  long declared_length = -1;  // >=0: Content-Length to claim (e.g. more than is sent)
  std::string raw;            // set: send exactly these bytes instead of a response, then close
  bool endless_chunked = false;  // 200 with chunked body that never ends (until the client hangs up)
  // "user:password": a request without exactly these HTTP Basic credentials is answered 401.
  std::string basic_auth;
  // Answer "Range: bytes=S-E" with 206 and that slice (Content-Range, ETag "\"fixed\""), as
  // web servers and object stores do; trickle and delay apply to each range as to a whole body.
  bool ranges = false;
};

// A request as the origin received it (for receivers of webhooks: headers and body).
struct ReceivedRequest {
  std::string method;
  std::string path;
  std::map<std::string, std::string> headers;  // names lower case
  std::string body;
};

class OriginServer {
 public:
  OriginServer();
  ~OriginServer();
  OriginServer(const OriginServer&) = delete;
  OriginServer& operator=(const OriginServer&) = delete;

  int port() const { return port_; }
  // "http://127.0.0.1:PORT" + path
  std::string Url(const std::string& path) const;

  void Route(const std::string& path, OriginRoute route);
  // Shorthands.
  void Serve(const std::string& path, std::string body, std::string content_type, int delay_ms = 0);
  void Status(const std::string& path, int status, std::string body = "");
  void FailThenServe(const std::string& path, int failures, std::string body,
                     std::string content_type, int fail_status = 500);
  void Stall(const std::string& path);
  void Trickle(const std::string& path, std::string body, std::string content_type,
               int bytes_per_interval, int interval_ms);
  void Redirect(const std::string& path, const std::string& location, int status = 302);

  // Requests seen for `path` (query string ignored) / for every path.
  int Requests(const std::string& path) const;
  int TotalRequests() const;
  // Every request received for `path`, in arrival order (bodies read up to Content-Length).
  std::vector<ReceivedRequest> Received(const std::string& path) const;
  // The most requests for `path` that were ever being answered at the same time.
  int MaxInFlight(const std::string& path) const;
  // The most requests, over all paths, that were ever being answered at the same time.
  int MaxTotalInFlight() const;

 private:
  struct Conn {
    int fd = -1;
    std::thread thread;
    std::atomic<bool> done{false};
  };
  void AcceptLoop();
  void Handle(Conn* conn);
  // Sleeps up to ms; returns false when the server is stopping.
  bool Sleep(int ms);
  void Reap(bool all);

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, OriginRoute> routes_;
  std::map<std::string, int> counts_;
  std::map<std::string, std::vector<ReceivedRequest>> received_;
  std::map<std::string, int> in_flight_, max_in_flight_;
  int total_in_flight_ = 0, max_total_in_flight_ = 0;
  int total_ = 0;
  std::vector<std::unique_ptr<Conn>> conns_;
};

}  // namespace quire::test
