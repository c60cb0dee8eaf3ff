#include "core/address_guard.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

namespace quire {

namespace {

bool InV4Range(uint32_t addr, uint32_t net, int bits) {
  uint32_t mask = bits == 0 ? 0 : ~uint32_t{0} << (32 - bits);
  return (addr & mask) == (net & mask);
}

constexpr uint32_t V4(int a, int b, int c, int d) {
  return (uint32_t(a) << 24) | (uint32_t(b) << 16) | (uint32_t(c) << 8) | uint32_t(d);
}

bool IsForbiddenV4(uint32_t a) {
  return InV4Range(a, V4(0, 0, 0, 0), 8) ||       // "this network", 0.0.0.0
         InV4Range(a, V4(10, 0, 0, 0), 8) ||      // private
         InV4Range(a, V4(100, 64, 0, 0), 10) ||   // CGNAT
         InV4Range(a, V4(127, 0, 0, 0), 8) ||     // loopback
         InV4Range(a, V4(169, 254, 0, 0), 16) ||  // link-local, cloud metadata
         InV4Range(a, V4(172, 16, 0, 0), 12) ||   // private
         InV4Range(a, V4(192, 168, 0, 0), 16) ||  // private
         InV4Range(a, V4(224, 0, 0, 0), 4) ||     // multicast
         InV4Range(a, V4(240, 0, 0, 0), 4);       // reserved, broadcast
}

uint32_t V4At(const unsigned char* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

bool IsForbiddenV6(const unsigned char* b) {
  static const unsigned char kZero[16] = {};
  if (std::memcmp(b, kZero, 15) == 0 && (b[15] == 0 || b[15] == 1)) return true;  // ::, ::1
  if ((b[0] & 0xfe) == 0xfc) return true;                                         // fc00::/7
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return true;                         // fe80::/10
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return true;                         // fec0::/10
  if (b[0] == 0xff) return true;                                                  // multicast
  static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(b, kMapped, 12) == 0) return IsForbiddenV4(V4At(b + 12));  // ::ffff:a.b.c.d
  if (std::memcmp(b, kZero, 12) == 0) return IsForbiddenV4(V4At(b + 12));    // ::a.b.c.d
  static const unsigned char kNat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (std::memcmp(b, kNat64, 12) == 0) return IsForbiddenV4(V4At(b + 12));  // 64:ff9b::/96
  if (b[0] == 0x20 && b[1] == 0x02) return IsForbiddenV4(V4At(b + 2));      // 6to4 2002::/16
  return false;
}

}  // namespace

std::string SockaddrIp(const struct sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
  } else if (sa->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof buf);
  }
  return buf;
}

bool IsForbiddenAddress(const std::string& ip) {
  unsigned char buf[16];
  if (inet_pton(AF_INET, ip.c_str(), buf) == 1) return IsForbiddenV4(V4At(buf));
  std::string v6 = ip;
  size_t zone = v6.find('%');  // fe80::1%eth0
  if (zone != std::string::npos) v6.resize(zone);
  if (inet_pton(AF_INET6, v6.c_str(), buf) == 1) return IsForbiddenV6(buf);
  return true;
}

Status CheckUrlHost(const std::string& host) {
  if (host.empty()) return Status::Invalid("the URL has no host");
  std::string h = host;
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(h.c_str(), nullptr, &hints, &res);
  if (rc != 0) return Status::Invalid("cannot resolve host " + host + ": " + gai_strerror(rc));
  Status out;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    std::string ip = SockaddrIp(ai->ai_addr);
    if (ip.empty() || IsForbiddenAddress(ip)) {
      out = Status::Forbidden("address " + (ip.empty() ? host : ip) + " of host " + host +
                              " is private and not allowed");
      break;
    }
  }
  freeaddrinfo(res);
  return out;
}

}  // namespace quire
