// Quire's own request/response types: api/ and iiif/ handlers see these, never Beast.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ops/route_family.h"

namespace quire::http {

struct Request {
  std::string method;  // upper case; HEAD arrives as HEAD
  std::string target;  // as received
  std::string path;    // target without the query, still percent-encoded
  std::string query;   // after '?', raw
  std::vector<std::pair<std::string, std::string>> headers;  // names lower case
  std::string body;
  std::map<std::string, std::string> params;  // route parameters, percent-decoded

  // First header named `name` (lower case), or "".
  const std::string& Header(const std::string& name) const;
  // Decoded value of query parameter `name`, or "" when absent.
  std::string Query(const std::string& name) const;
  bool HasQuery(const std::string& name) const;
  // Value of cookie `name` from the Cookie header(s) ("a=1; name=VALUE; b=2"), or "".
  std::string Cookie(std::string_view name) const;
  const std::string& Param(const std::string& name) const;
};

// The body of a streaming response (server-sent events), written over time. Thread-safe: the
// producer may call it from any thread. Bytes are queued and written in order; a client that
// falls more than a bounded amount behind is disconnected.
class StreamWriter {
 public:
  virtual ~StreamWriter() = default;
  // Queues bytes for the client; false once the connection is gone (then nothing is sent).
  virtual bool Write(std::string bytes) = 0;
  // Sends what is queued, then closes the connection.
  virtual void Close() = 0;
  // True once the client went away or Close() was called.
  virtual bool closed() const = 0;
};

struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // When set, the handler has done the cheap part inline and the rest (libvips work) must
  // run on the CPU pool: the server calls it there and sends what it returns instead.
  std::function<Response()> deferred;
  // When set, the answer is a stream: the server sends the status and headers (no length;
  // the connection closes at the end), then calls this once, on an I/O thread, with the
  // writer of the body. The producer keeps the writer for as long as it streams.
  std::function<void(std::shared_ptr<StreamWriter>)> stream;
  // Set by a handler whose answer belongs to a narrower family than its route's (a stored
  // tile served by the image route).
  std::optional<ops::Family> family;

  Response() = default;
  Response(int s, std::string content_type, std::string b) : status(s), body(std::move(b)) {
    Set("Content-Type", std::move(content_type));
  }
  static Response Defer(std::function<Response()> work) {
    Response r;
    r.deferred = std::move(work);
    return r;
  }
  // Replaces a header of the same name (case-insensitive).
  void Set(const std::string& name, std::string value);
  const std::string* Get(const std::string& name) const;
};

// The body of a streaming route (Router::AddStreaming), consumed piece by piece as it arrives
// instead of being held in Request::body. Destroyed without Finish() when the body never
// arrived whole (the connection was cut, a timeout, or Write refused it): it must then
// discard everything it kept.
class BodySink {
 public:
  virtual ~BodySink() = default;
  // The next piece, in order, on an I/O thread: keep it short (a file write, a hash).
  // A response stops the request there: it is sent and the connection closed.
  virtual std::optional<Response> Write(std::string_view piece) = 0;
  // The body ended; runs on the CPU pool and may block (blob store, database).
  virtual Response Finish() = 0;
};

// What a streaming route's handler decides from the request line and headers alone
// (Request::body is empty then): refuse at once, or take the body with a sink.
struct BodyStart {
  std::optional<Response> reject;
  std::unique_ptr<BodySink> sink;
};

std::string PercentDecode(const std::string& s, bool plus_is_space = false);
std::string PercentEncodeSegment(const std::string& s);
// For a value in a query string: everything but unreserved characters is escaped, '+' (read
// back as a space) and '&' included.
std::string PercentEncodeQueryValue(const std::string& s);

}  // namespace quire::http
