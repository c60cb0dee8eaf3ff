#include "support/sse_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/raw_http.h"

namespace quire::test {

std::string Base64(const std::string& in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                 (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (i + 1 == in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    unsigned v =
        (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

SseClient::SseClient(const std::string& base_url, const std::string& path, const Credentials& auth,
                     const std::string& last_event_id, std::chrono::milliseconds header_timeout) {
  fd_ = Connect(Port(base_url));
  if (fd_ < 0) {
    closed_ = true;
    return;
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n";
  if (!auth.empty()) req += "Authorization: Basic " + Base64(auth.key + ":" + auth.secret) + "\r\n";
  if (!last_event_id.empty()) req += "Last-Event-ID: " + last_event_id + "\r\n";
  req += "\r\n";
  SendAll(fd_, req);
  auto deadline = std::chrono::steady_clock::now() + header_timeout;
  while (buf_.find("\r\n\r\n") == std::string::npos) {
    if (!Fill(deadline)) break;
  }
  size_t end = buf_.find("\r\n\r\n");
  if (end == std::string::npos) return;
  head_ = buf_.substr(0, end);
  buf_.erase(0, end + 4);
  if (head_.rfind("HTTP/1.", 0) == 0 && head_.size() > 12) status_ = std::stoi(head_.substr(9, 3));
}

SseClient::~SseClient() { Disconnect(); }

void SseClient::Disconnect() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  closed_ = true;
}

bool SseClient::Fill(std::chrono::steady_clock::time_point deadline) {
  if (fd_ < 0) return false;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return false;
  pollfd p{fd_, POLLIN, 0};
  int pr = ::poll(&p, 1, static_cast<int>(left.count()));
  if (pr <= 0) return false;
  char buf[16384];
  ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
  if (n <= 0) {
    closed_ = true;
    ::close(fd_);
    fd_ = -1;
    return false;
  }
  buf_.append(buf, static_cast<size_t>(n));
  return true;
}

std::optional<SseEvent> SseClient::Next(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    size_t end;
    while ((end = buf_.find("\n\n")) != std::string::npos) {
      std::string block = buf_.substr(0, end + 1);
      buf_.erase(0, end + 2);
      SseEvent e;
      e.event = "message";
      bool any = false;
      size_t pos = 0;
      while (pos < block.size()) {
        size_t nl = block.find('\n', pos);
        std::string line = block.substr(pos, nl - pos);
        pos = nl + 1;
        if (line.empty()) continue;
        if (line[0] == ':') {
          ++comments_;
          continue;
        }
        size_t colon = line.find(':');
        std::string field = line.substr(0, colon);
        std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
        if (!value.empty() && value[0] == ' ') value.erase(0, 1);
        if (field == "id") e.id = value, any = true;
        if (field == "event") e.event = value, any = true;
        if (field == "data") e.data += (e.data.empty() ? "" : "\n") + value, any = true;
      }
      if (any && !e.data.empty()) return e;
    }
    if (!Fill(deadline)) return std::nullopt;
  }
}

}  // namespace quire::test
