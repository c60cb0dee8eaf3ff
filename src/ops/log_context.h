// What every log line of a request carries: its request id (echoed from X-Request-Id or
// generated) and, for the access line, the request's fields. Kept per thread: the HTTP server
// sets it around each handler call and each access-log line. With --log-format json every
// line is one JSON object {ts, level, msg, request_id?, method?, route?, status?, ...}.
#pragma once

#include <cstdint>
#include <string>

namespace quire::ops {

// The request id of the work this thread is doing, "" when none.
const std::string& CurrentRequestId();

// Sets the thread's request id for its lifetime, restoring the previous one after.
class ScopedRequestId {
 public:
  explicit ScopedRequestId(const std::string& id);
  ~ScopedRequestId();

 private:
  std::string previous_;
};

// A fresh id: 16 hex digits.
std::string NewRequestId();
// `id` from a client's X-Request-Id when it is 1–128 visible ASCII characters; else "".
std::string AcceptRequestId(const std::string& id);

struct AccessFields {
  std::string method, route, family;
  int status = 0;
  uint64_t bytes = 0, micros = 0;
};
// Logs the access line of a request (text: "METHOD PATH STATUS BYTES MICROSus rid=ID").
void LogAccess(const AccessFields& fields);

// Switches the default logger to one JSON object per line.
void UseJsonLogs();

}  // namespace quire::ops
