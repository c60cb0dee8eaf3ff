#include "http/server.h"

#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <array>
#include <charconv>
#include <cerrno>
#include <chrono>
#include <functional>
#include <deque>
#include <list>
#include <optional>

#include "http/framing.h"
#include "ops/log_context.h"

namespace quire::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

Response PlainError(int status, const std::string& text) {
  return Response(status, "text/plain; charset=utf-8", text + "\n");
}

bool HasLineBreak(const std::string& s) {
  for (char c : s)
    if (c == '\r' || c == '\n') return true;
  return false;
}

void AddCors(Response& res) {
  res.Set("Access-Control-Allow-Origin", "*");
  res.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS");
  res.Set("Access-Control-Allow-Headers", "Accept, Authorization, Content-Type, If-None-Match, "
                                          "If-Modified-Since, Range");
  res.Set("Access-Control-Expose-Headers",
          "ETag, Last-Modified, Link, Content-Length, Content-Range, Accept-Ranges");
  res.Set("Access-Control-Max-Age", "86400");
}

}  // namespace

namespace {
class Session;
class SessionStreamWriter;
// A streaming client further behind than this is disconnected rather than buffered for.
constexpr size_t kMaxStreamBacklog = 1 << 20;
}  // namespace

struct Server::Impl {
  const Router& router;
  ServerOptions options;
  // Per I/O context, the sessions waiting for a request with nothing read yet, oldest first.
  // Each list is touched only by its context's thread. When accept() runs out of file
  // descriptors these are closed first: an idle keep-alive connection costs a descriptor
  // that a new client needs more. (Declared before the contexts: sessions still queued in
  // them leave these lists when the contexts are destroyed.)
  std::vector<std::list<Session*>> idle;
  // One io_context per I/O thread, each run by its own thread: a connection lives on one
  // context, so its handlers never race and need no strand, and the threads share no
  // scheduler lock. New connections are dealt out round-robin.
  std::vector<std::unique_ptr<asio::io_context>> iocs;
  size_t next_ioc = 0;  // touched only by the acceptor's handler
  asio::thread_pool cpu_pool;
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;
  std::atomic<int> in_flight{0};
  std::atomic<int> cpu_queued{0};  // work posted to cpu_pool and not yet finished
  std::string base_url;  // set in Start() before any thread runs
  std::atomic<bool> stopping{false};
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work;
  asio::steady_timer accept_retry;
  int accept_backoff_ms = 0;  // touched only by the acceptor's handler
  std::chrono::steady_clock::time_point last_fd_warning{};

  static std::vector<std::unique_ptr<asio::io_context>> MakeContexts(int n) {
    std::vector<std::unique_ptr<asio::io_context>> out;
    for (int i = 0; i < std::max(1, n); ++i) out.push_back(std::make_unique<asio::io_context>(1));
    return out;
  }

  Impl(const Router& r, ServerOptions o)
      : router(r),
        options(o),
        idle(static_cast<size_t>(std::max(1, o.io_threads))),
        iocs(MakeContexts(o.io_threads)),
        cpu_pool(static_cast<size_t>(std::max(1, o.cpu_threads))),
        acceptor(*iocs[0]),
        accept_retry(*iocs[0]) {}

  void Accept();
  // Out of descriptors: closes the oldest idle sessions on every context, then retries the
  // accept after a short, growing pause instead of spinning on EMFILE.
  void OnAcceptExhausted(const beast::error_code& ec);
  void ShedIdle(size_t ioc_index);
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, Server::Impl* server, size_t ioc_index)
      : stream_(std::move(socket)), server_(server), ioc_index_(ioc_index) {}
  ~Session() { LeaveIdle(); }

  void Start() {
    asio::dispatch(stream_.get_executor(),
                   beast::bind_front_handler(&Session::Read, shared_from_this()));
  }

  // On this session's context: closes the connection if it is still waiting for a request.
  void ShedIfIdle() {
    if (!idle_) return;
    LeaveIdle();
    shed_ = true;
    beast::error_code ec;
    stream_.socket().close(ec);  // the pending read ends with operation_aborted
  }

 private:
  void EnterIdle() {
    auto& list = server_->idle[ioc_index_];
    idle_ = list.insert(list.end(), this);
  }
  void LeaveIdle() {
    if (!idle_) return;
    server_->idle[ioc_index_].erase(*idle_);
    idle_.reset();
  }

  void Read() {
    // Nothing of the next request read yet: the connection is idle and may be shed.
    if (buffer_.size() == 0) EnterIdle();
    parser_.emplace();
    body_parser_.reset();
    // The body limit depends on the route (uploads stream past it), so it is set once the
    // header is in; here it must not refuse a large Content-Length before routing.
    parser_->body_limit(boost::none);
    parser_->header_limit(server_->options.max_header_bytes);
    stream_.expires_after(std::chrono::seconds(server_->options.request_timeout_s));
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
  }

  void OnHeader(beast::error_code ec, std::size_t) {
    LeaveIdle();
    if (shed_) return;  // closed to free its descriptor
    if (ec == bhttp::error::end_of_stream || ec == asio::error::connection_reset ||
        ec == beast::error::timeout || ec == asio::error::operation_aborted) {
      return Close();
    }
    started_ = std::chrono::steady_clock::now();
    server_->in_flight.fetch_add(1);
    family_ = ops::Family::kOther;
    request_id_.clear();
    if (parser_->is_header_done())
      request_id_ = ops::AcceptRequestId(std::string(parser_->get()["X-Request-Id"]));
    if (request_id_.empty()) request_id_ = ops::NewRequestId();
    if (ec == bhttp::error::header_limit) {
      return SendError(431, "request headers too large", false);
    }
    if (ec) return SendError(400, "malformed HTTP request: " + ec.message(), false);

    auto& msg = parser_->get();
    if (std::string why = FramingProblem(msg); !why.empty())
      return SendError(400, "ambiguous request framing: " + why, false);
    auto req = std::make_shared<Request>();
    req->method = std::string(msg.method_string());
    req->target = std::string(msg.target());
    size_t q = req->target.find('?');
    req->path = req->target.substr(0, q);
    if (q != std::string::npos) req->query = req->target.substr(q + 1);
    for (auto& field : msg) {
      std::string name(field.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      req->headers.emplace_back(std::move(name), std::string(field.value()));
    }
    keep_alive_ = msg.keep_alive();
    version_ = msg.version();
    if (req->path.empty() || req->path[0] != '/')
      return SendError(400, "request target must be an absolute path", keep_alive_);

    auto match = std::make_shared<Match>(server_->router.Find(*req));
    if (match->stream != nullptr) return StartStream(req, match);
    uint64_t limit = server_->options.max_body_bytes;
    auto too_large = [&] {
      SendError(413, "request body larger than " + std::to_string(limit) + " bytes", false);
    };
    if (parser_->content_length() && *parser_->content_length() > limit) return too_large();
    parser_->body_limit(limit);
    if (parser_->is_done()) return Dispatch(req, *match);
    ContinueThen(*req, [self = shared_from_this(), req, match] {
      bhttp::async_read(self->stream_, self->buffer_, *self->parser_,
                        [self, req, match](beast::error_code ec, std::size_t) {
                          self->OnBody(ec, req, *match);
                        });
    });
  }

  // A client that sent `Expect: 100-continue` waits for this before the body (curl does for
  // bodies over 1 MiB, for a second): say it, then go on. Read from the request, not the
  // parser: a streaming route has moved the parser on by now.
  void ContinueThen(const Request& req, std::function<void()> next) {
    if (version_ < 11 || !beast::iequals(req.Header("expect"), "100-continue")) return next();
    static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    asio::async_write(stream_, asio::buffer(kContinue),
                      [self = shared_from_this(), next = std::move(next)](beast::error_code ec,
                                                                          std::size_t) {
                        if (ec) return self->Abandon();
                        next();
                      });
  }

  // The request ends without an answer (the client went away mid-body).
  void Abandon() {
    server_->in_flight.fetch_sub(1);
    Close();
  }

  void OnBody(beast::error_code ec, const std::shared_ptr<Request>& req, const Match& match) {
    if (ec == bhttp::error::body_limit) {
      return SendError(413, "request body larger than " +
                                std::to_string(server_->options.max_body_bytes) + " bytes",
                       false);
    }
    if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message ||
        ec == asio::error::connection_reset || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted) {
      return Abandon();
    }
    if (ec) return SendError(400, "malformed HTTP request: " + ec.message(), false);
    req->body = std::move(parser_->get().body());
    Dispatch(req, match);
  }

  // --- streaming routes: the body goes to the route's sink piece by piece, never whole.
  void StartStream(const std::shared_ptr<Request>& req, const std::shared_ptr<Match>& match) {
    family_ = match->options.family;
    BodyStart start;
    try {
      ops::ScopedRequestId rid(request_id_);
      start = (*match->stream)(*req);
    } catch (const std::exception& e) {
      spdlog::error("handler for {} {} threw: {}", req->method, req->path, e.what());
      start.reject = ErrorJson(500, "Internal server error", "an internal error occurred",
                               server_->base_url + req->path);
    }
    if (!start.reject && !start.sink)
      start.reject = ErrorJson(500, "Internal server error", "an internal error occurred",
                               server_->base_url + req->path);
    if (start.reject) return Refuse(std::move(*start.reject), req);
    sink_ = std::move(start.sink);
    body_parser_.emplace(std::move(*parser_));
    parser_.reset();
    body_parser_->body_limit(boost::none);  // the sink enforces its own
    if (piece_.empty()) piece_.resize(1 << 20);
    if (!body_parser_->chunked() && body_parser_->content_length()) {
      // A body of known length is read straight from the socket in large pieces: the parser
      // would read it 64 KiB at a time, with a timer armed per read.
      raw_remaining_ = *body_parser_->content_length();
      uint64_t have = std::min<uint64_t>(buffer_.size(), raw_remaining_);
      if (have > 0) {
        auto data = buffer_.data();
        if (std::optional<Response> stop = WritePiece(
                std::string_view(static_cast<const char*>(data.data()), have), *req))
          return Refuse(std::move(*stop), req);
        buffer_.consume(have);
        raw_remaining_ -= have;
      }
      return ContinueThen(*req, [self = shared_from_this(), req] { self->ReadRaw(req); });
    }
    ContinueThen(*req, [self = shared_from_this(), req] { self->ReadPiece(req); });
  }

  // Hands a piece to the sink; a response when it refuses (or throws).
  std::optional<Response> WritePiece(std::string_view piece, const Request& req) {
    try {
      return sink_->Write(piece);
    } catch (const std::exception& e) {
      spdlog::error("body sink for {} {} threw: {}", req.method, req.path, e.what());
      return ErrorJson(500, "Internal server error", "an internal error occurred",
                       server_->base_url + req.path);
    }
  }

  void ReadRaw(const std::shared_ptr<Request>& req) {
    if (raw_remaining_ == 0) return FinishStream(req);
    size_t want = static_cast<size_t>(std::min<uint64_t>(piece_.size(), raw_remaining_));
    // An idle timeout per piece: a large upload may take longer than one request timeout.
    stream_.expires_after(std::chrono::seconds(server_->options.request_timeout_s));
    stream_.async_read_some(asio::buffer(piece_.data(), want),
                            [self = shared_from_this(), req](beast::error_code ec, std::size_t n) {
                              self->OnRaw(ec, n, req);
                            });
  }

  void OnRaw(beast::error_code ec, std::size_t n, const std::shared_ptr<Request>& req) {
    if (n > 0) {
      raw_remaining_ -= n;
      if (std::optional<Response> stop = WritePiece(std::string_view(piece_.data(), n), *req))
        return Refuse(std::move(*stop), req);
    }
    if (ec) {
      sink_.reset();  // discards what it kept
      spdlog::info("{} {}: the body was cut off ({}); nothing kept", req->method, req->path,
                   ec.message());
      return Abandon();
    }
    ReadRaw(req);
  }

  // Answers and closes, reading on for a moment so the client sees the answer (it may still be
  // sending the body we refused).
  void Refuse(Response res, const std::shared_ptr<Request>& req) {
    sink_.reset();
    keep_alive_ = false;
    linger_ = true;
    Send(std::move(res), req);
  }

  void ReadPiece(const std::shared_ptr<Request>& req) {
    if (body_parser_->is_done()) return FinishStream(req);
    auto& body = body_parser_->get().body();
    body.data = piece_.data();
    body.size = piece_.size();
    body.more = true;
    // An idle timeout per piece: a large upload may take longer than one request timeout.
    stream_.expires_after(std::chrono::seconds(server_->options.request_timeout_s));
    bhttp::async_read(stream_, buffer_, *body_parser_,
                      [self = shared_from_this(), req](beast::error_code ec, std::size_t) {
                        self->OnPiece(ec, req);
                      });
  }

  void OnPiece(beast::error_code ec, const std::shared_ptr<Request>& req) {
    if (ec == bhttp::error::need_buffer) ec = {};
    if (ec) {
      sink_.reset();  // discards what it kept
      if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message ||
          ec == asio::error::connection_reset || ec == beast::error::timeout ||
          ec == asio::error::operation_aborted || ec == asio::error::eof) {
        spdlog::info("{} {}: the body was cut off ({}); nothing kept", req->method, req->path,
                     ec.message());
        return Abandon();
      }
      return SendError(400, "malformed HTTP request body: " + ec.message(), false);
    }
    size_t n = piece_.size() - body_parser_->get().body().size;
    if (n > 0) {
      if (std::optional<Response> stop = WritePiece(std::string_view(piece_.data(), n), *req))
        return Refuse(std::move(*stop), req);
    }
    ReadPiece(req);
  }

  void FinishStream(const std::shared_ptr<Request>& req) {
    keep_alive_ = body_parser_->get().keep_alive();
    body_parser_.reset();
    if (!EnterCpuQueue()) return Refuse(Busy(false, *req), req);
    auto self = shared_from_this();
    std::shared_ptr<BodySink> sink(std::move(sink_));
    asio::post(server_->cpu_pool, [self, req, sink] {
      Response res = self->Invoke([&sink](Request&) { return sink->Finish(); }, *req, false);
      self->server_->cpu_queued.fetch_sub(1);
      asio::post(self->stream_.get_executor(), [self, req, res = std::move(res)]() mutable {
        self->Send(std::move(res), req);
      });
    });
  }

  void Dispatch(const std::shared_ptr<Request>& req, const Match& match) {
    if (match.handler != nullptr) family_ = match.options.family;
    if (match.handler == nullptr) {
      Response res;
      if (match.status == 204) {
        res.status = 204;
        res.Set("Allow", match.allow);
      } else if (match.status == 405) {
        std::string why = req->method + " is not allowed on " + req->path;
        // Delivery answers errors in short text (spec/iiif.md); the API in Hydra JSON.
        res = match.options.cors ? PlainError(405, why)
                                 : ErrorJson(405, "Method not allowed", why, server_->base_url + req->path);
        res.Set("Allow", match.allow);
      } else {
        std::string why = "no resource at " + req->path;
        res = match.options.cors ? PlainError(404, why)
                                 : ErrorJson(404, "Not found", why, server_->base_url + req->path);
      }
      if (match.options.cors) AddCors(res);
      return Send(std::move(res), req);
    }
    if (match.options.offload) {
      if (!EnterCpuQueue()) return Send(Busy(match.options.cors, *req), req);
      auto self = shared_from_this();
      const Handler* handler = match.handler;
      bool cors = match.options.cors;
      asio::post(server_->cpu_pool, [self, handler, req, cors] {
        Response res = self->Invoke(*handler, *req, cors);
        self->server_->cpu_queued.fetch_sub(1);
        asio::post(self->stream_.get_executor(), [self, req, res = std::move(res)]() mutable {
          self->Send(std::move(res), req);
        });
      });
      return;
    }
    Response res = Invoke(*match.handler, *req, match.options.cors);
    if (res.deferred) {
      if (!EnterCpuQueue()) return Send(Busy(match.options.cors, *req), req);
      auto self = shared_from_this();
      bool cors = match.options.cors;
      auto work = std::move(res.deferred);
      asio::post(server_->cpu_pool, [self, req, cors, work = std::move(work)] {
        Response out = self->Invoke([&work](Request&) { return work(); }, *req, cors);
        self->server_->cpu_queued.fetch_sub(1);
        asio::post(self->stream_.get_executor(), [self, req, out = std::move(out)]() mutable {
          self->Send(std::move(out), req);
        });
      });
      return;
    }
    Send(std::move(res), req);
  }

  // Takes a place in the CPU pool's bounded queue; false when it is full.
  bool EnterCpuQueue() {
    if (server_->cpu_queued.fetch_add(1) < server_->options.max_cpu_queue) return true;
    server_->cpu_queued.fetch_sub(1);
    return false;
  }

  // The answer when the CPU pool's queue is full: come back in a second.
  Response Busy(bool cors, const Request& req) {
    std::string why = "the server is busy (" + std::to_string(server_->options.max_cpu_queue) +
                      " requests waiting for rendering); retry shortly";
    Response res = cors ? PlainError(503, why)
                        : ErrorJson(503, "Service unavailable", why, server_->base_url + req.path);
    res.Set("Retry-After", "1");
    if (cors) AddCors(res);
    return res;
  }

  // Runs a handler (or deferred work), turning exceptions into a 500.
  Response Invoke(const Handler& handler, Request& req, bool cors) {
    ops::ScopedRequestId rid(request_id_);  // every log line of the handler names the request
    Response res;
    try {
      res = handler(req);
      if (res.deferred) return res;  // CORS is added when the deferred part completes
    } catch (const std::exception& e) {
      spdlog::error("handler for {} {} threw: {}", req.method, req.path, e.what());
      res = ErrorJson(500, "Internal server error", "an internal error occurred",
                      server_->base_url + req.path);
    }
    if (cors) AddCors(res);
    return res;
  }

  static Response ErrorJson(int status, const std::string& title, const std::string& detail,
                            const std::string& instance) {
    // Minimal Hydra/RFC 7807 error for transport-level failures; api/ builds the same shape.
    auto esc = [](const std::string& s) {
      std::string o;
      for (char c : s) {
        if (c == '"' || c == '\\') {
          o += '\\';
          o += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          o += buf;
        } else {
          o += c;
        }
      }
      return o;
    };
    std::string body = "{\"@context\":\"http://www.w3.org/ns/hydra/context.jsonld\","
                       "\"@type\":\"Error\",\"statusCode\":" + std::to_string(status) +
                       ",\"title\":\"" + esc(title) + "\",\"description\":\"" + esc(detail) +
                       "\",\"status\":" + std::to_string(status) + ",\"detail\":\"" +
                       esc(detail) + "\",\"instance\":\"" + esc(instance) + "\"}";
    return Response(status, "application/json", std::move(body));
  }

  void SendError(int status, const std::string& text, bool keep_alive) {
    keep_alive_ = keep_alive;
    // The client may still be sending the body we refused; closing at once would reset the
    // connection and lose our answer, so drain it for a moment first.
    linger_ = !keep_alive;
    auto req = std::make_shared<Request>();
    req->method = "?";
    req->path = "?";
    if (parser_ && parser_->is_header_done()) {
      req->method = std::string(parser_->get().method_string());
      req->path = std::string(parser_->get().target());
    } else if (body_parser_) {
      req->method = std::string(body_parser_->get().method_string());
      req->path = std::string(body_parser_->get().target());
    }
    Response res = ErrorJson(status,
                             status == 413   ? "Payload too large"
                             : status == 431 ? "Request header fields too large"
                                             : "Bad request",
                             text, server_->base_url + req->path);
    (void)PlainError;
    Send(std::move(res), req);
  }

  void Send(Response res, const std::shared_ptr<Request>& req) {
    if (res.stream && req->method != "HEAD" && res.status == 200)
      return StartStream(std::move(res), req);
    bool head = req->method == "HEAD";
    size_t bytes = res.body.size();
    // The length the header declares: the body's, except that a handler answering HEAD may
    // say it without holding the body (a recording), and 204/304 declare none of their own.
    std::optional<size_t> length;
    if (res.status == 204 || res.status == 304) {
      bytes = 0;
    } else if (head) {
      if (res.Get("Content-Length") == nullptr) length = res.body.size();
    } else {
      length = res.body.size();
    }
    bool keep = keep_alive_ && !server_->stopping.load();
    auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::steady_clock::now() - started_)
                      .count();
    ops::Family family = res.family.value_or(family_);
    if (server_->options.metrics != nullptr)
      server_->options.metrics->ObserveRequest(family, res.status, static_cast<double>(micros) / 1e6);
    {
      ops::ScopedRequestId rid(request_id_);
      ops::LogAccess({req->method, req->path, std::string(ops::FamilyName(family)), res.status,
                      head ? 0 : bytes, static_cast<uint64_t>(micros)});
    }
    FormatHead(res, length, !head && length.has_value(), keep, &head_out_);
    body_out_ = head || !length ? std::string() : std::move(res.body);
    stream_.expires_after(std::chrono::seconds(server_->options.request_timeout_s));
    // One gathered write: the header block and the body, as they are.
    std::array<asio::const_buffer, 2> buffers{asio::buffer(head_out_), asio::buffer(body_out_)};
    asio::async_write(stream_, buffers,
                      [self = shared_from_this(), keep](beast::error_code ec, std::size_t) {
                        self->OnWrite(keep, ec);
                      });
  }

  // The status line and header block of `res`, formatted once into `out` (its capacity kept
  // from one response to the next): Server, the handler's headers as they are (a header whose
  // name or value holds CR or LF is dropped, never sent), Content-Length, the connection's
  // fate as HTTP/1.0 and 1.1 each say it, and X-Request-Id.
  void FormatHead(const Response& res, std::optional<size_t> length, bool length_is_body,
                  bool keep, std::string* out) {
    out->clear();
    const unsigned status = static_cast<unsigned>(res.status);
    const unsigned version = version_ ? version_ : 11;
    out->append(version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
    char code[8];
    auto [end, err] = std::to_chars(code, code + sizeof code, status);
    (void)err;
    out->append(code, end);
    out->push_back(' ');
    beast::string_view reason = bhttp::obsolete_reason(bhttp::int_to_status(status));
    out->append(reason.data(), reason.size());
    out->append("\r\nServer: quire\r\n");
    for (const auto& [k, v] : res.headers) {
      if (HasLineBreak(k) || HasLineBreak(v)) {
        spdlog::error("a response header \"{}\" with a line break was dropped", k);
        continue;
      }
      // The server says these itself.
      if (beast::iequals(k, "Connection") || beast::iequals(k, "Server") ||
          (length_is_body && beast::iequals(k, "Content-Length"))) {
        continue;
      }
      out->append(k);
      out->append(": ");
      out->append(v);
      out->append("\r\n");
    }
    if (length) {
      out->append("Content-Length: ");
      end = std::to_chars(code, code + sizeof code, *length).ptr;
      out->append(code, end);
      out->append("\r\n");
    }
    if (version == 10 && keep) out->append("Connection: keep-alive\r\n");
    if (version != 10 && !keep) out->append("Connection: close\r\n");
    out->append("X-Request-Id: ");
    out->append(request_id_);
    out->append("\r\n\r\n");
  }

  // --- streaming responses (server-sent events): the header, then bytes as the producer
  // writes them, until it closes or the client goes away. The connection is not reused.
  friend class SessionStreamWriter;
  void StartStream(Response res, const std::shared_ptr<Request>& req);
  void StreamEnqueue(std::string bytes);
  void StreamFinish();
  void StreamWriteNext();
  void WatchStreamClient();
  void StreamGone();

  void OnWrite(bool keep, beast::error_code ec) {
    if (body_out_.capacity() > (64u << 10)) std::string().swap(body_out_);  // not kept idle
    body_out_.clear();
    server_->in_flight.fetch_sub(1);
    if (!ec && !keep && linger_) return LingerClose();
    if (ec || !keep) return Close();
    Read();
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.close();
  }

  // Half-closes, then reads and discards what the client still sends (up to a time and byte
  // budget) so its unread upload does not turn our close into a reset.
  void LingerClose() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(std::chrono::seconds(3));
    Drain(std::make_shared<std::array<char, 65536>>(), 0);
  }

  void Drain(std::shared_ptr<std::array<char, 65536>> buf, size_t drained) {
    stream_.async_read_some(
        asio::buffer(*buf), [self = shared_from_this(), buf, drained](beast::error_code ec,
                                                                      std::size_t n) {
          if (ec || drained + n > 64u * 1024 * 1024) return self->stream_.close();
          self->Drain(buf, drained + n);
        });
  }

  beast::tcp_stream stream_;
  Server::Impl* server_;
  size_t ioc_index_;
  ops::Family family_ = ops::Family::kOther;
  std::string request_id_;
  std::optional<std::list<Session*>::iterator> idle_;
  bool shed_ = false;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  // Streaming routes: the parser the header parser becomes, the piece buffer, the sink.
  std::optional<bhttp::request_parser<bhttp::buffer_body>> body_parser_;
  std::vector<char> piece_;
  std::unique_ptr<BodySink> sink_;
  uint64_t raw_remaining_ = 0;  // body bytes still to come when read straight from the socket
  // The response being written: its header block and body (Send keeps them until OnWrite).
  std::string head_out_, body_out_;
  bool keep_alive_ = true;
  bool linger_ = false;
  unsigned version_ = 11;
  std::chrono::steady_clock::time_point started_;
  // Streaming state, touched only on this session's context.
  std::shared_ptr<SessionStreamWriter> writer_;
  std::deque<std::string> stream_out_;
  bool stream_writing_ = false;
  bool stream_finish_ = false;
  bool stream_closed_ = false;
  std::array<char, 256> stream_in_{};
};

// Hands a producer's writes to the session's context. Holds the session weakly: a stream
// whose client went away costs nothing but this small object until the producer drops it.
class SessionStreamWriter : public StreamWriter {
 public:
  SessionStreamWriter(std::weak_ptr<Session> session, asio::any_io_executor ex)
      : session_(std::move(session)), ex_(std::move(ex)) {}
  bool Write(std::string bytes) override {
    if (closed_.load()) return false;
    size_t n = bytes.size();
    if (backlog_.fetch_add(n) + n > kMaxStreamBacklog) {
      Close();
      return false;
    }
    auto s = session_.lock();
    if (!s) {
      closed_.store(true);
      return false;
    }
    asio::post(ex_, [s, b = std::move(bytes)]() mutable { s->StreamEnqueue(std::move(b)); });
    return true;
  }
  void Close() override {
    if (closed_.exchange(true)) return;
    if (auto s = session_.lock()) asio::post(ex_, [s] { s->StreamFinish(); });
  }
  bool closed() const override { return closed_.load(); }
  void MarkClosed() { closed_.store(true); }
  void Written(size_t n) { backlog_.fetch_sub(n); }

 private:
  std::weak_ptr<Session> session_;
  asio::any_io_executor ex_;
  std::atomic<bool> closed_{false};
  std::atomic<size_t> backlog_{0};
};

void Session::StartStream(Response res, const std::shared_ptr<Request>& req) {
  auto out = std::make_shared<bhttp::response<bhttp::empty_body>>();
  out->version(version_ ? version_ : 11);
  out->result(static_cast<unsigned>(res.status));
  out->set(bhttp::field::server, "quire");
  for (auto& [k, v] : res.headers) out->set(k, v);
  out->set("X-Request-Id", request_id_);
  out->keep_alive(false);  // the body ends when the connection closes
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now() - started_)
                    .count();
  ops::Family family = res.family.value_or(family_);
  if (server_->options.metrics != nullptr)
    server_->options.metrics->ObserveRequest(family, res.status,
                                             static_cast<double>(micros) / 1e6);
  {
    ops::ScopedRequestId rid(request_id_);
    ops::LogAccess({req->method, req->path, std::string(ops::FamilyName(family)), res.status, 0,
                    static_cast<uint64_t>(micros)});
  }
  auto sr = std::make_shared<bhttp::response_serializer<bhttp::empty_body>>(*out);
  stream_.expires_after(std::chrono::seconds(server_->options.request_timeout_s));
  auto start = std::move(res.stream);
  bhttp::async_write_header(
      stream_, *sr,
      [self = shared_from_this(), out, sr, start = std::move(start)](beast::error_code ec,
                                                                    std::size_t) {
        // A stream is not in flight: shutdown does not wait for it to end.
        self->server_->in_flight.fetch_sub(1);
        if (ec) return self->Close();
        self->stream_.expires_never();
        self->writer_ = std::make_shared<SessionStreamWriter>(self, self->stream_.get_executor());
        self->WatchStreamClient();
        start(self->writer_);
      });
}

// The client sends nothing more on a stream; a read ends only when it hangs up.
void Session::WatchStreamClient() {
  stream_.async_read_some(asio::buffer(stream_in_),
                          [self = shared_from_this()](beast::error_code ec, std::size_t) {
                            if (ec) return self->StreamGone();
                            self->WatchStreamClient();
                          });
}

void Session::StreamGone() {
  if (writer_) writer_->MarkClosed();
  if (stream_closed_) return;
  stream_closed_ = true;
  // A write in flight still reads its buffer: the queue is dropped when it completes.
  if (!stream_writing_) stream_out_.clear();
  Close();
}

void Session::StreamEnqueue(std::string bytes) {
  if (stream_closed_ || stream_finish_) return;
  stream_out_.push_back(std::move(bytes));
  if (!stream_writing_) StreamWriteNext();
}

void Session::StreamFinish() {
  stream_finish_ = true;
  if (!stream_writing_ && !stream_closed_) {
    stream_closed_ = true;
    Close();
  }
}

void Session::StreamWriteNext() {
  if (stream_out_.empty() || stream_closed_) {
    stream_writing_ = false;
    if (stream_finish_ && !stream_closed_) {
      stream_closed_ = true;
      Close();
    }
    return;
  }
  stream_writing_ = true;
  // A client that stops reading is dropped after the request timeout, not kept forever.
  stream_.expires_after(std::chrono::seconds(server_->options.request_timeout_s));
  asio::async_write(stream_, asio::buffer(stream_out_.front()),
                    [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                      if (self->writer_) self->writer_->Written(n);
                      self->stream_out_.pop_front();
                      if (ec || self->stream_closed_) {
                        self->stream_writing_ = false;
                        self->stream_out_.clear();
                        if (ec) self->StreamGone();
                        return;
                      }
                      self->stream_.expires_never();
                      self->StreamWriteNext();
                    });
}

}  // namespace

void Server::Impl::Accept() {
  size_t index = next_ioc % iocs.size();
  acceptor.async_accept(*iocs[index], [this, index](beast::error_code ec, tcp::socket socket) {
    if (stopping.load()) return;
    if (!ec) {
      ++next_ioc;
      accept_backoff_ms = 0;
      socket.set_option(tcp::no_delay(true), ec);
      std::make_shared<Session>(std::move(socket), this, index)->Start();
    } else if (ec.value() == EMFILE || ec.value() == ENFILE || ec.value() == ENOBUFS ||
               ec.value() == ENOMEM) {
      return OnAcceptExhausted(ec);
    }
    Accept();  // other failures (a client that reset before accept) concern one connection
  });
}

void Server::Impl::OnAcceptExhausted(const beast::error_code& ec) {
  for (size_t i = 0; i < iocs.size(); ++i) asio::post(*iocs[i], [this, i] { ShedIdle(i); });
  // The pending connections stay in the listen backlog meanwhile; the pause lets the shed
  // sessions close (and lets busy ones finish) before accept() is tried again.
  accept_backoff_ms = std::clamp(accept_backoff_ms * 2, 5, 500);
  auto now = std::chrono::steady_clock::now();
  if (now - last_fd_warning > std::chrono::seconds(10)) {
    last_fd_warning = now;
    spdlog::warn("cannot accept connections: {}; closing idle keep-alive connections and "
                 "retrying in {} ms",
                 ec.message(), accept_backoff_ms);
  }
  accept_retry.expires_after(std::chrono::milliseconds(accept_backoff_ms));
  accept_retry.async_wait([this](beast::error_code wait_ec) {
    if (!wait_ec && !stopping.load()) Accept();
  });
}

void Server::Impl::ShedIdle(size_t ioc_index) {
  // A quarter of the idle sessions (at least one), oldest first: enough to let new clients in
  // without dropping every reader that is between two requests.
  auto& list = idle[ioc_index];
  size_t n = std::max<size_t>(1, list.size() / 4);
  for (size_t i = 0; i < n && !list.empty(); ++i) list.front()->ShedIfIdle();
}

Server::Server(const Router& router, ServerOptions options)
    : impl_(std::make_unique<Impl>(router, options)) {}

Server::~Server() { Stop(0); }

Status Server::Start() {
  beast::error_code ec;
  auto address = asio::ip::make_address(impl_->options.host, ec);
  if (ec) return Status::Invalid("bad listen address '" + impl_->options.host + "'");
  tcp::endpoint endpoint(address, impl_->options.port);
  auto& acc = impl_->acceptor;
  acc.open(endpoint.protocol(), ec);
  if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(endpoint, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return Status::Unavailable("cannot listen on " + impl_->options.host + ":" +
                               std::to_string(impl_->options.port) + ": " + ec.message());
  impl_->base_url = impl_->options.public_base.empty()
                        ? "http://" + impl_->options.host + ":" + std::to_string(port())
                        : impl_->options.public_base;
  while (!impl_->base_url.empty() && impl_->base_url.back() == '/') impl_->base_url.pop_back();
  for (auto& ioc : impl_->iocs) {
    impl_->work.push_back(asio::make_work_guard(*ioc));
    // Asio creates a context's reactor (an epoll fd, an eventfd) with its first socket and
    // throws if it cannot; make them now, so a first connection that arrives while the
    // process is out of descriptors meets EMFILE, not an exception.
    tcp::socket socket(*ioc);
    asio::steady_timer timer(*ioc);
  }
  impl_->Accept();
  for (auto& ioc : impl_->iocs) {
    asio::io_context* c = ioc.get();
    impl_->threads.emplace_back([c] { c->run(); });
  }
  return Status::Ok();
}

uint16_t Server::port() const {
  beast::error_code ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

void Server::Stop(int grace_ms) {
  if (impl_->threads.empty()) return;
  impl_->stopping.store(true);
  asio::post(impl_->acceptor.get_executor(), [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
    impl_->accept_retry.cancel();
  });
  impl_->work.clear();
  // Let in-flight sessions finish their current response; idle keep-alive sessions are
  // closed by stopping the loop after the grace period.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
  while (std::chrono::steady_clock::now() < deadline && impl_->in_flight.load() > 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  for (auto& ioc : impl_->iocs) ioc->stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
  impl_->cpu_pool.join();
}

Status ParseListen(const std::string& listen, std::string* host, uint16_t* port) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return Status::Invalid("--listen must be HOST:PORT, got '" + listen + "'");
  std::string h = listen.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  std::string p = listen.substr(colon + 1);
  char* end = nullptr;
  long v = std::strtol(p.c_str(), &end, 10);
  if (p.empty() || *end != '\0' || v < 0 || v > 65535)
    return Status::Invalid("--listen port must be 0–65535, got '" + p + "'");
  *host = h == "localhost" ? "127.0.0.1" : h;
  *port = static_cast<uint16_t>(v);
  return Status::Ok();
}

}  // namespace quire::http
