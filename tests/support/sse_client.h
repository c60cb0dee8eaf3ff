// A server-sent events client over a raw loopback socket, for stream tests: sends one GET
// (Basic auth, optional Last-Event-ID), checks the status, then parses events as they arrive.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "support/http_client.h"

namespace quire::test {

struct SseEvent {
  std::string id;
  std::string event;  // "message" when the server named none
  std::string data;
};

class SseClient {
 public:
  // Connects and sends the request; status() is 0 when the server did not answer in time.
  SseClient(const std::string& base_url, const std::string& path, const Credentials& auth,
            const std::string& last_event_id = "",
            std::chrono::milliseconds header_timeout = std::chrono::seconds(10));
  ~SseClient();
  SseClient(const SseClient&) = delete;
  SseClient& operator=(const SseClient&) = delete;

  int status() const { return status_; }
  const std::string& head() const { return head_; }
  // The next event, or nullopt when the stream closed or `timeout` passed (see closed()).
  std::optional<SseEvent> Next(std::chrono::milliseconds timeout);
  bool closed() const { return closed_; }
  // Comment lines (heartbeats) seen so far.
  int comments() const { return comments_; }
  // Hangs up.
  void Disconnect();

 private:
  bool Fill(std::chrono::steady_clock::time_point deadline);
  int fd_ = -1;
  int status_ = 0;
  bool closed_ = false;
  int comments_ = 0;
  std::string head_;
  std::string buf_;
};

std::string Base64(const std::string& in);

}  // namespace quire::test
