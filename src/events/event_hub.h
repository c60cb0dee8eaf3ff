// The live-progress hub (spec/platform.md §3): server-sent event streams of one batch, or of
// every batch of a customer. One thread serves every open stream of the process, so a
// thousand idle streams cost a thousand small objects and their connections, not threads.
//
// An idle stream costs no database query: the hub reads a customer's event log only when the
// store reports that it grew (StoreEvent::kOutcomeRecorded — in-process on SQLite, LISTEN/
// NOTIFY from any node on PostgreSQL), once for all of that customer's streams.
//
// Wire format (text/event-stream): `image` events, one per outcome, with `id: SEQ` (the
// customer's event sequence, dense and in commit order); `batch` events with the Batch JSON,
// at most one per stream per `coalesce_ms` while counts change, carrying the id of the last
// outcome the stream has seen; a comment line every `heartbeat_ms`. A batch stream ends with
// a `batch` event carrying `finished`, sent after every image event of the batch, then the
// connection closes. Resuming with Last-Event-ID N sends exactly the outcomes after N.
//
// Thread-safe. Nothing here knows HTTP: a stream writes to an EventSink.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "hydra/hydra.h"
#include "store/store.h"

namespace quire::events {

// Where a stream's bytes go (the HTTP layer's stream writer). Thread-safe.
class EventSink {
 public:
  virtual ~EventSink() = default;
  // False once the client is gone.
  virtual bool Write(std::string bytes) = 0;
  virtual void Close() = 0;
  virtual bool closed() const = 0;
};

struct EventHubOptions {
  int heartbeat_ms = 15000;  // a comment line this often keeps proxies from timing out
  int coalesce_ms = 250;     // batch events at most this often per stream (4 a second)
  int max_streams = 10000;   // more are refused (503) by the API
  // Events (and finished webhook deliveries) older than this are deleted; a client resuming
  // from an older Last-Event-ID gets what is still kept.
  int64_t retention_ms = 7LL * 24 * 3600 * 1000;
};

class EventHub {
 public:
  EventHub(Store& store, hydra::Urls urls, EventHubOptions options = {});
  ~EventHub();

  void Start();
  // Closes every stream and stops the thread.
  void Stop();

  // For Store::Subscribe: quick, never blocks on the database.
  void OnStoreEvent(const StoreEvent& e);

  // Starts streaming to `sink`: every batch of `customer`, or only `batch`. With
  // `last_event_id` the stream resumes after that event; without, a batch stream replays the
  // batch's outcomes still kept and a customer stream starts from now. REQUIRES: the caller
  // checked that the customer may see the batch.
  void Open(int64_t customer, std::optional<int64_t> batch, std::optional<int64_t> last_event_id,
            std::shared_ptr<EventSink> sink);
  int open_streams() const;
  int max_streams() const { return options_.max_streams; }

 private:
  struct Stream {
    int64_t customer = 0;
    std::optional<int64_t> batch;
    std::optional<int64_t> resume;
    int64_t cursor = 0;  // the last event of the customer's log this stream has seen
    std::shared_ptr<EventSink> sink;
    std::set<int64_t> changed;  // batches whose `batch` event is due
    int64_t last_write_ms = 0;  // steady clock
    bool done = false;
  };
  void Run();
  void Admit(const std::shared_ptr<Stream>& s, int64_t now);
  // Sends the customer's new events to its streams; false when the store failed.
  bool Scan(int64_t customer, int64_t now);
  void RefreshBatches(int64_t now);
  void Send(Stream& s, std::string bytes, int64_t now);
  void Reap();

  Store& store_;
  const hydra::Urls urls_;
  const EventHubOptions options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool resync_ = false;
  std::vector<std::shared_ptr<Stream>> pending_;
  std::set<int64_t> dirty_;                        // customers whose log grew
  std::set<std::pair<int64_t, int64_t>> touched_;  // (customer, batch) changed without events
  int open_ = 0;                                   // streams admitted or pending, not yet reaped

  // Touched only by the hub thread.
  std::map<int64_t, std::vector<std::shared_ptr<Stream>>> streams_;  // by customer
  std::thread thread_;
};

}  // namespace quire::events
