#include "events/event_hub.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>

namespace quire::events {

namespace {

constexpr int kScanLimit = 500;
constexpr int64_t kTrimEveryMs = 3600 * 1000;
constexpr int64_t kStoreRetryMs = 1000;  // after a failed read, the next try

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Frame(const char* event, int64_t id, const std::string& data) {
  return "id: " + std::to_string(id) + "\nevent: " + event + "\ndata: " + data + "\n\n";
}

}  // namespace

EventHub::EventHub(Store& store, hydra::Urls urls, EventHubOptions options)
    : store_(store), urls_(std::move(urls)), options_(options) {}

EventHub::~EventHub() { Stop(); }

void EventHub::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Run(); });
}

void EventHub::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (auto& [customer, list] : streams_)
    for (auto& s : list) s->sink->Close();
  streams_.clear();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& s : pending_) s->sink->Close();
  pending_.clear();
  open_ = 0;
}

void EventHub::OnStoreEvent(const StoreEvent& e) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (e.kind == StoreEvent::Kind::kOutcomeRecorded) {
      dirty_.insert(e.customer);
      if (!e.id.empty()) touched_.insert({e.customer, std::atoll(e.id.c_str())});
    } else if (e.kind == StoreEvent::Kind::kResync) {
      resync_ = true;
    } else {
      return;
    }
  }
  cv_.notify_one();
}

void EventHub::Open(int64_t customer, std::optional<int64_t> batch,
                    std::optional<int64_t> last_event_id, std::shared_ptr<EventSink> sink) {
  auto s = std::make_shared<Stream>();
  s->customer = customer;
  s->batch = batch;
  s->resume = last_event_id;
  s->sink = std::move(sink);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) {
      s->sink->Close();
      return;
    }
    pending_.push_back(std::move(s));
    ++open_;
  }
  cv_.notify_one();
}

int EventHub::open_streams() const {
  std::lock_guard<std::mutex> lock(mu_);
  return open_;
}

void EventHub::Send(Stream& s, std::string bytes, int64_t now) {
  if (s.done) return;
  if (!s.sink->Write(std::move(bytes))) s.done = true;
  s.last_write_ms = now;
}

void EventHub::Admit(const std::shared_ptr<Stream>& s, int64_t now) {
  if (s->resume) {
    s->cursor = *s->resume;
  } else {
    auto start = store_.EventStart(s->customer, s->batch);
    if (!start.ok()) {
      spdlog::warn("event stream: cannot read where to start: {}", start.status().message());
      s->sink->Write(": the database is unavailable; reconnect later\n\n");
      s->sink->Close();
      s->done = true;
      return;
    }
    s->cursor = *start;
  }
  // Tells EventSource how long to wait before reconnecting, and shows the stream is live.
  Send(*s, "retry: 2000\n: stream open\n\n", now);
  if (s->batch) s->changed.insert(*s->batch);  // the batch's state, at once
  streams_[s->customer].push_back(s);
}

bool EventHub::Scan(int64_t customer, int64_t now) {
  auto it = streams_.find(customer);
  if (it == streams_.end()) return true;
  auto& list = it->second;
  for (;;) {
    int64_t from = INT64_MAX;
    for (auto& s : list)
      if (!s->done) from = std::min(from, s->cursor);
    if (from == INT64_MAX) return true;
    auto events = store_.ListImageEvents(customer, from, kScanLimit);
    if (!events.ok()) {
      spdlog::warn("event stream: cannot read events of customer {}: {}", customer,
                   events.status().message());
      return false;
    }
    for (const ImageEvent& e : *events) {
      nlohmann::json data = {
          {"id", e.asset_id}, {"space", e.space}, {"state", e.state}, {"error", e.error}};
      if (e.batch) data["batch"] = *e.batch;
      std::string frame;
      for (auto& s : list) {
        if (s->done || e.seq <= s->cursor) continue;
        if (!s->batch || (e.batch && *s->batch == *e.batch)) {
          if (frame.empty()) frame = Frame("image", e.seq, data.dump());
          Send(*s, frame, now);
          if (e.batch) s->changed.insert(*e.batch);
        }
        s->cursor = e.seq;  // seen, whether or not it was for this stream
      }
    }
    if (static_cast<int>(events->size()) < kScanLimit) return true;
  }
}

void EventHub::RefreshBatches(int64_t now) {
  // One read per batch, however many streams show it.
  std::map<std::pair<int64_t, int64_t>, std::optional<Batch>> fetched;
  std::set<int64_t> finished_customers;
  for (auto& [customer, list] : streams_) {
    for (auto& s : list) {
      if (s->done) continue;
      for (int64_t b : s->changed) {
        auto key = std::make_pair(customer, b);
        if (fetched.count(key)) continue;
        auto batch = store_.GetBatch(customer, b);
        if (batch.ok()) {
          if (batch->finished_ms) finished_customers.insert(customer);
          fetched[key] = *batch;
        } else if (batch.status().code() == Code::kNotFound) {
          fetched[key] = std::nullopt;
        }  // else: kept changed, tried again next time
      }
    }
  }
  // A batch read as finished had all its outcomes committed before: read them now, so its
  // last image events go out before its final batch event.
  for (int64_t c : finished_customers) Scan(c, now);
  for (auto& [customer, list] : streams_) {
    for (auto& s : list) {
      if (s->done) continue;
      for (auto b = s->changed.begin(); b != s->changed.end();) {
        auto f = fetched.find(std::make_pair(customer, *b));
        if (f == fetched.end()) {
          ++b;
          continue;
        }
        bool final_event = false;
        if (f->second) {
          Send(*s, Frame("batch", s->cursor, hydra::BatchJson(urls_, *f->second).dump()), now);
          final_event = s->batch && *s->batch == *b && f->second->finished_ms.has_value();
        } else if (s->batch && *s->batch == *b) {
          final_event = true;  // the batch is gone: nothing more will happen
        }
        b = s->changed.erase(b);
        if (final_event) {
          s->sink->Close();
          s->done = true;
          break;
        }
      }
    }
  }
}

void EventHub::Reap() {
  int reaped = 0;
  for (auto it = streams_.begin(); it != streams_.end();) {
    auto& list = it->second;
    auto keep = std::stable_partition(
        list.begin(), list.end(),
        [](const std::shared_ptr<Stream>& s) { return !s->done && !s->sink->closed(); });
    reaped += static_cast<int>(list.end() - keep);
    for (auto i = keep; i != list.end(); ++i) (*i)->sink->Close();
    list.erase(keep, list.end());
    it = list.empty() ? streams_.erase(it) : std::next(it);
  }
  if (reaped > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    open_ -= reaped;
  }
}

void EventHub::Run() {
  int64_t next_refresh = 0;
  int64_t next_trim = SteadyMs();
  std::set<int64_t> retry;  // customers whose last read failed
  int64_t retry_at = 0;
  for (;;) {
    std::vector<std::shared_ptr<Stream>> admitted;
    std::set<int64_t> dirty;
    std::set<std::pair<int64_t, int64_t>> touched;
    bool resync = false;
    {
      // The next moment something is due: a heartbeat, a coalesced batch event, a retry.
      int64_t now = SteadyMs();
      int64_t wake = now + options_.heartbeat_ms;
      bool any_changed = false;
      for (auto& [c, list] : streams_)
        for (auto& s : list) {
          wake = std::min(wake, s->last_write_ms + options_.heartbeat_ms);
          any_changed = any_changed || !s->changed.empty();
        }
      if (any_changed) wake = std::min(wake, next_refresh);
      if (!retry.empty()) wake = std::min(wake, retry_at);
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(0, wake - now)),
                   [&] { return stop_ || resync_ || !pending_.empty() || !dirty_.empty(); });
      if (stop_) return;
      admitted.swap(pending_);
      dirty.swap(dirty_);
      touched.swap(touched_);
      resync = resync_;
      resync_ = false;
    }
    int64_t now = SteadyMs();
    for (auto& s : admitted) {
      Admit(s, now);
      if (!s->done) dirty.insert(s->customer);
    }
    if (resync) {
      // Notifications may have been lost: look at everything again.
      for (auto& [c, list] : streams_) {
        dirty.insert(c);
        for (auto& s : list)
          if (s->batch) s->changed.insert(*s->batch);
      }
    }
    for (auto [customer, batch] : touched) {
      auto it = streams_.find(customer);
      if (it == streams_.end()) continue;
      for (auto& s : it->second)
        if (!s->batch || *s->batch == batch) s->changed.insert(batch);
    }
    if (!retry.empty() && now >= retry_at) {
      dirty.insert(retry.begin(), retry.end());
      retry.clear();
    }
    for (int64_t c : dirty) {
      if (!Scan(c, now)) {
        retry.insert(c);
        retry_at = now + kStoreRetryMs;
      }
    }
    if (now >= next_refresh) {
      bool any = false;
      for (auto& [c, list] : streams_)
        for (auto& s : list) any = any || !s->changed.empty();
      if (any) {
        RefreshBatches(now);
        next_refresh = now + options_.coalesce_ms;
      }
    }
    for (auto& [c, list] : streams_)
      for (auto& s : list)
        if (!s->done && now - s->last_write_ms >= options_.heartbeat_ms) Send(*s, ":\n\n", now);
    Reap();
    if (now >= next_trim) {
      next_trim = now + kTrimEveryMs;
      Status st = store_.TrimEvents(WallMs() - options_.retention_ms);
      if (!st.ok()) spdlog::warn("cannot trim old events: {}", st.message());
    }
  }
}

}  // namespace quire::events
