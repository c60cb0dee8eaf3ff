#include "support/raw_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <stdexcept>

namespace quire::test {

using Clock = std::chrono::steady_clock;

int Port(const std::string& url) { return std::stoi(url.substr(url.rfind(':') + 1)); }

int Connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

int ListenLoopback(const char* who, int* port, int backlog) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string(who) + ": socket failed");
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, backlog) != 0) {
    ::close(fd);
    throw std::runtime_error(std::string(who) + ": bind/listen failed");
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

void SendAll(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

ReadResult ReadFor(int fd, std::chrono::milliseconds timeout, const std::string& until) {
  ReadResult out;
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (!until.empty() && out.bytes.find(until) != std::string::npos) break;
    pollfd p{fd, POLLIN, 0};
    int left = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    if (::poll(&p, 1, std::max(1, left)) <= 0) continue;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      out.closed = true;
      break;
    }
    out.bytes.append(buf, static_cast<size_t>(n));
  }
  return out;
}

ReadResult ReadResponse(int fd, std::chrono::milliseconds timeout,
                        std::chrono::milliseconds linger) {
  ReadResult out = ReadFor(fd, timeout, "\r\n\r\n");
  size_t head = out.bytes.find("\r\n\r\n");
  if (head != std::string::npos && !out.closed) {
    size_t length = 0;
    std::string lower = out.bytes.substr(0, head);
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    size_t at = lower.find("\r\ncontent-length:");
    if (at != std::string::npos) length = std::strtoul(lower.c_str() + at + 17, nullptr, 10);
    auto deadline = Clock::now() + timeout;
    while (!out.closed && out.bytes.size() < head + 4 + length && Clock::now() < deadline) {
      ReadResult more = ReadFor(fd, std::chrono::milliseconds(100));
      out.bytes += more.bytes;
      out.closed = more.closed;
    }
  }
  if (!out.closed) {
    ReadResult more = ReadFor(fd, linger);
    out.bytes += more.bytes;
    out.closed = more.closed;
  }
  return out;
}

int CountResponses(const std::string& bytes) {
  int n = 0;
  for (size_t at = 0; (at = bytes.find("HTTP/1.", at)) != std::string::npos; at += 7)
    if (at == 0 || bytes[at - 1] == '\n') ++n;  // status lines, not the text of a body
  return n;
}

int FirstStatus(const std::string& bytes) {
  if (bytes.rfind("HTTP/1.", 0) != 0 || bytes.size() < 12) return 0;
  return std::atoi(bytes.substr(9, 3).c_str());
}

}  // namespace quire::test
