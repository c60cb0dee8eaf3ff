// Delivers the webhook outbox (spec/platform.md §3): a few threads claim due deliveries from
// the store with a lease (so one node sends a row at a time), POST them with a per-request
// timeout, and record each attempt. At least once: a delivery is done only once a 2xx is
// recorded; a failure is tried again after backoff_ms, doubling, capped at max_backoff_ms,
// until give_up_ms after the event, then marked failed. A restart loses nothing (the outbox
// and its schedule are rows). Every attempt of an event carries the same Quire-Event-Id.
//
// Headers: Quire-Event-Id, Quire-Event-Type, Quire-Delivery-Attempt, and
// Quire-Signature: t=UNIX,v1=HEX(HMAC-SHA256(secret, t + "." + body)).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "hydra/hydra.h"
#include "store/store.h"

namespace quire::events {

struct WebhookOptions {
  int threads = 2;
  int64_t backoff_ms = 5000;
  int64_t max_backoff_ms = 3600 * 1000;
  int64_t give_up_ms = 24 * 3600 * 1000;
  int64_t timeout_ms = 10000;  // per request, connect included
  bool allow_private = false;  // --allow-private-origins: loopback/private receivers allowed
  std::string node_id;         // names the leases of this process
};

class WebhookSender {
 public:
  WebhookSender(Store& store, hydra::Urls urls, WebhookOptions options);
  ~WebhookSender();
  void Start();
  // Abandons requests in flight (their leases expire and another node or a restart sends
  // them again) and joins the threads.
  void Stop();
  // New deliveries were queued (StoreEvent::kWebhookQueued): look now.
  void Wake();

 private:
  void Run(int index);
  void Deliver(WebhookDelivery& d);

  Store& store_;
  const hydra::Urls urls_;
  const WebhookOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t wakes_ = 0;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

// The JSON body of a delivery (the same for every attempt).
std::string WebhookBody(const hydra::Urls& urls, const WebhookDelivery& d);
// "t=UNIX,v1=HEX" over `body`.
std::string WebhookSignature(const std::string& secret, int64_t unix_s, const std::string& body);

}  // namespace quire::events
