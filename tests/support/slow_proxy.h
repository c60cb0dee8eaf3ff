// A TCP proxy on 127.0.0.1 that stands for a distant server: every answer the upstream sends
// after a request reaches the client `delay_ms` late (one round trip of latency per request,
// keep-alive connections included). Bytes pass unchanged both ways, so signed requests (S3
// SigV4 over the Host header the client sent) stay valid. One thread per direction per
// connection; stopped and joined by the destructor.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace quire::test {

class SlowProxy {
 public:
  SlowProxy(int upstream_port, int delay_ms);
  ~SlowProxy();
  SlowProxy(const SlowProxy&) = delete;
  SlowProxy& operator=(const SlowProxy&) = delete;

  int port() const { return port_; }
  // Requests forwarded so far (client writes that began a new round trip).
  int requests() const { return requests_.load(); }

 private:
  void AcceptLoop();
  void Serve(int client);

  int upstream_port_;
  int delay_ms_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> connections_;
  std::vector<int> fds_;  // every open socket, shut down by the destructor
};

}  // namespace quire::test
