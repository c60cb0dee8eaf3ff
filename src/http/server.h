// The HTTP server: Boost.Beast over Asio. A session reads a request, routes it, writes the
// response, and loops (keep-alive). Limits are set here, in one place: body size (413),
// header size (431), per-request read/write timeouts. Handlers marked `offload` run on the
// CPU pool so libvips work never blocks the I/O threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "http/router.h"
#include "ops/metrics.h"

namespace quire::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0: pick a free port
  int io_threads = 2;
  int cpu_threads = 2;
  uint64_t max_body_bytes = 10 * 1024 * 1024;
  uint32_t max_header_bytes = 16 * 1024;
  int request_timeout_s = 30;
  // Requests waiting for or running on the CPU pool (renders, /file); beyond this a request
  // that needs the pool is answered 503 with Retry-After at once instead of queueing.
  int max_cpu_queue = 64;
  // Base of absolute URLs in the server's own error bodies; empty: http://HOST:PORT.
  std::string public_base;
  // Counts every answered request by route family and status, when set.
  ops::Metrics* metrics = nullptr;
};

class Server {
 public:
  Server(const Router& router, ServerOptions options);
  ~Server();

  // Binds and listens. Fails if the address is taken.
  Status Start();
  uint16_t port() const;
  // Stops accepting, lets in-flight requests finish (up to `grace_ms`), then stops.
  void Stop(int grace_ms = 5000);

  struct Impl;  // public so the session type in server.cc can name it

 private:
  std::unique_ptr<Impl> impl_;
};

// Parses "HOST:PORT" (also "[::1]:PORT").
Status ParseListen(const std::string& listen, std::string* host, uint16_t* port);

}  // namespace quire::http
