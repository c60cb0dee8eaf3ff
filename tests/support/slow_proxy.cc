#include "support/slow_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>

#include "support/raw_http.h"

namespace quire::test {

namespace {

// Writes all of `data`; false when the peer is gone (raw_http's SendAll does not say).
bool Forward(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = ::send(fd, data, len, MSG_NOSIGNAL);
    if (n <= 0) return false;
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

SlowProxy::SlowProxy(int upstream_port, int delay_ms)
    : upstream_port_(upstream_port), delay_ms_(delay_ms) {
  listen_fd_ = ListenLoopback("slow proxy", &port_, 64);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

SlowProxy::~SlowProxy() {
  stop_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);
  acceptor_.join();
  ::close(listen_fd_);
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    threads.swap(connections_);
  }
  for (auto& t : threads) t.join();
  for (int fd : fds_) ::close(fd);
}

void SlowProxy::AcceptLoop() {
  while (!stop_) {
    int client = ::accept(listen_fd_, nullptr, nullptr);
    if (client < 0) {
      if (stop_) return;
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) {
      ::close(client);
      return;
    }
    fds_.push_back(client);
    connections_.emplace_back([this, client] { Serve(client); });
  }
}

// One connection: the client's bytes go upstream at once; the first answer bytes after each
// request wait until `delay_ms` after that request began.
void SlowProxy::Serve(int client) {
  int up = Connect(upstream_port_);
  if (up < 0) {
    ::shutdown(client, SHUT_RDWR);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    fds_.push_back(up);
  }
  int one = 1;
  ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  using Clock = std::chrono::steady_clock;
  bool awaiting_answer = false;  // a request went up and its answer has not begun
  Clock::time_point asked{};
  char buf[64 * 1024];
  while (!stop_) {
    pollfd fds[2] = {{client, POLLIN, 0}, {up, POLLIN, 0}};
    if (::poll(fds, 2, 200) < 0) break;
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::recv(client, buf, sizeof buf, 0);
      if (n <= 0) break;
      if (!awaiting_answer) {
        awaiting_answer = true;
        asked = Clock::now();
        ++requests_;
      }
      if (!Forward(up, buf, static_cast<size_t>(n))) break;
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      if (awaiting_answer) {
        // Hold the answer back until the round trip has passed.
        auto due = asked + std::chrono::milliseconds(delay_ms_);
        while (!stop_ && Clock::now() < due)
          std::this_thread::sleep_for(
              std::min<Clock::duration>(due - Clock::now(), std::chrono::milliseconds(20)));
        awaiting_answer = false;
      }
      ssize_t n = ::recv(up, buf, sizeof buf, 0);
      if (n <= 0) break;
      if (!Forward(client, buf, static_cast<size_t>(n))) break;
    }
  }
  ::shutdown(client, SHUT_RDWR);
  ::shutdown(up, SHUT_RDWR);
  // The fds are closed by the destructor (shutdown above already ended the streams), so a
  // number is never reused while the destructor may still shut it down.
}

}  // namespace quire::test
