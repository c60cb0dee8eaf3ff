// Webhooks (spec/platform.md §3): a customer's subscription of a URL to event names, and the
// outbox rows ("deliveries") the store writes in the same transaction as the outcome that
// causes them. Plain structs; the rules about names live in model.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace quire {

// The event names a webhook may subscribe to.
inline constexpr const char* kEventBatchFinished = "batch.finished";    // a batch's last outcome
inline constexpr const char* kEventImageFailed = "image.failed";        // a member ended in error
inline constexpr const char* kEventImageCompleted = "image.completed";  // a member was ingested
bool IsWebhookEventName(const std::string& name);

struct Webhook {
  int64_t id = 0;
  int64_t customer = 0;
  std::string url;
  std::vector<std::string> events;
  std::string secret;  // HMAC key of Quire-Signature
  int64_t created_ms = 0;
};

// One event to deliver to one webhook, and how its delivery went.
struct WebhookDelivery {
  int64_t id = 0;
  int64_t webhook = 0;
  int64_t customer = 0;
  std::string event_id;  // Quire-Event-Id: the same on every attempt
  std::string type;      // an event name above
  // What the event is about, as recorded with the outcome: for batch.finished the batch row
  // ({"id","customer","count","completed","errors","superseded","priority","submitted",
  // "finished"}), for image events {"customer","space","id","batch","error"}.
  std::string payload;
  std::string state = "pending";  // pending | delivered | failed
  int attempts = 0;
  int64_t next_attempt_ms = 0;
  int last_status = 0;  // HTTP status of the last attempt, 0 when none arrived
  std::string last_error;
  int64_t created_ms = 0;
  std::optional<int64_t> delivered_ms;
  // Set on a claimed delivery: where to send it, and the lease that must be presented.
  std::string url;
  std::string secret;
  std::string lease_owner;
  int64_t fence = 0;
};

struct DeliveryAttempt {
  int attempt = 0;  // 1-based
  int64_t at_ms = 0;
  int status = 0;  // 0: no HTTP answer (refused, timed out)
  std::string error;
  int64_t micros = 0;
};

// One image outcome in a customer's ordered event log (the SSE `image` events). `seq` is
// dense and in commit order per customer, so a client's Last-Event-ID names a position.
struct ImageEvent {
  int64_t seq = 0;
  int64_t customer = 0;
  std::optional<int64_t> batch;
  int64_t space = 0;
  std::string asset_id;
  std::string state;  // completed | error
  std::string error;
  int64_t at_ms = 0;
};

}  // namespace quire
