// Live progress: /customers/{c}/queue/batches/{b}/stream and /customers/{c}/queue/stream
// (spec/platform.md §3). The handler checks access and hands the connection to the event hub;
// everything after the headers is the hub's (events/event_hub.h).
#include "api/common.h"
#include "api/routes.h"

namespace quire::api {

namespace {

// The hub writes to the HTTP layer's stream writer through this.
class WriterSink : public events::EventSink {
 public:
  explicit WriterSink(std::shared_ptr<http::StreamWriter> w) : w_(std::move(w)) {}
  bool Write(std::string bytes) override { return w_->Write(std::move(bytes)); }
  void Close() override { w_->Close(); }
  bool closed() const override { return w_->closed(); }

 private:
  std::shared_ptr<http::StreamWriter> w_;
};

// Last-Event-ID (sent by EventSource on reconnect), or ?lastEventId= for the first connect.
Result<std::optional<int64_t>> LastEventId(const http::Request& req) {
  std::string text = req.Header("last-event-id");
  if (text.empty()) text = req.Query("lastEventId");
  if (text.empty()) return std::optional<int64_t>();
  auto id = ParseId(text);
  if (!id) return Status::Invalid("Last-Event-ID must be an event id (a number)");
  return std::optional<int64_t>(id.value_or(0));
}

http::Response OpenStream(Context& ctx, const http::Request& req, int64_t customer,
                          std::optional<int64_t> batch) {
  auto last = LastEventId(req);
  if (!last.ok()) return Error(ctx, req, 400, last.status().message());
  if (ctx.events == nullptr) return Error(ctx, req, 503, "event streams are not served here");
  if (ctx.events->open_streams() >= ctx.events->max_streams()) {
    http::Response res = Error(ctx, req, 503,
                               "too many open event streams (" +
                                   std::to_string(ctx.events->max_streams()) + "); retry later");
    res.Set("Retry-After", "5");
    return res;
  }
  http::Response res(200, "text/event-stream; charset=utf-8", "");
  res.Set("Cache-Control", "no-cache");
  res.Set("X-Accel-Buffering", "no");  // proxies must not hold events back
  events::EventHub* hub = ctx.events;
  std::optional<int64_t> from = *last;
  res.stream = [hub, customer, batch, from](std::shared_ptr<http::StreamWriter> w) {
    hub->Open(customer, batch, from, std::make_shared<WriterSink>(std::move(w)));
  };
  return res;
}

}  // namespace

void RegisterStreams(http::Router& r, Context& ctx) {
  r.Add("GET", "/customers/{c}/queue/batches/{b}/stream", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    auto b = ParseId(req.Param("b"));
    if (!b) return Error(ctx, req, 404, "batch not found");
    // Another customer's batch is not found, as for the batch GET.
    auto batch = ctx.store.GetBatch(a.customer, *b);
    if (!batch.ok()) return FromStatus(ctx, req, batch.status());
    return OpenStream(ctx, req, a.customer, *b);
  });
  r.Add("GET", "/customers/{c}/queue/stream", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    return OpenStream(ctx, req, a.customer, std::nullopt);
  });
}

}  // namespace quire::api
