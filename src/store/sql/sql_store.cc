#include "store/sql/sql_store.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>
#include <tuple>

#include "core/secrets.h"
#include "core/time_util.h"

namespace quire {

using sql::Connection;
using sql::Statement;
using sql::Transaction;
using sql::TxKind;

namespace {

// Unwraps a prepared statement or returns its error from the enclosing function.
#define PREPARE(var, conn, sql)               \
  auto var##_r = (conn).Prepare(sql);         \
  if (!var##_r.ok()) return var##_r.status(); \
  Statement& var = **var##_r

#define BEGIN_TX(tx, kind)      \
  Transaction tx(*pool_, kind); \
  if (!tx.begin_status().ok()) return tx.begin_status()

#define ACQUIRE(var)                          \
  auto var##_r = pool_->Acquire();            \
  if (!var##_r.ok()) return var##_r.status(); \
  auto& var = *var##_r

const Status& StatusOf(const Status& st) { return st; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

// Runs a transaction again when the database aborted it for a serialization race or a
// deadlock (PostgreSQL; SQLite's single writer never does). Nothing of an aborted attempt
// was written, so running it again is safe.
template <typename F>
auto Retry(F&& attempt) -> decltype(attempt()) {
  thread_local std::minstd_rand rng(std::random_device{}());
  for (int tries = 1;; ++tries) {
    auto r = attempt();
    if (tries >= 50 || !sql::IsRetryable(StatusOf(r))) return r;
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % (200 * std::min(tries, 20))));
  }
}

std::string ToJson(const std::vector<std::string>& v) { return nlohmann::json(v).dump(); }

std::vector<std::string> StringsFromJson(const std::string& s) {
  auto j = nlohmann::json::parse(s, nullptr, false);
  std::vector<std::string> out;
  if (j.is_array())
    for (auto& e : j)
      if (e.is_string()) out.push_back(e.get<std::string>());
  return out;
}

std::string ChannelsToJson(const std::vector<DeliveryChannel>& channels) {
  nlohmann::json j = nlohmann::json::array();
  for (auto& c : channels) j.push_back({{"channel", c.channel}, {"policy", c.policy}});
  return j.dump();
}

std::vector<DeliveryChannel> ChannelsFromJson(const std::string& s) {
  std::vector<DeliveryChannel> out;
  auto j = nlohmann::json::parse(s, nullptr, false);
  if (j.is_array())
    for (auto& e : j) out.push_back({e.value("channel", ""), e.value("policy", "")});
  return out;
}

std::string ThumbsToJson(const std::vector<ThumbnailSize>& thumbs) {
  nlohmann::json j = nlohmann::json::array();
  for (auto& t : thumbs) j.push_back({t.width, t.height});
  return j.dump();
}

std::vector<ThumbnailSize> ThumbsFromJson(const std::string& s) {
  std::vector<ThumbnailSize> out;
  auto j = nlohmann::json::parse(s, nullptr, false);
  if (j.is_array())
    for (auto& e : j)
      if (e.is_array() && e.size() == 2) out.push_back({e[0].get<int>(), e[1].get<int>()});
  return out;
}

constexpr const char* kAssetCols =
    "a.customer, a.space, a.id, a.origin, a.media_type, a.family, a.delivery_channels, a.tags, "
    "a.roles, a.string1, a.string2, a.string3, a.number1, a.number2, a.number3, "
    "a.max_unauthorised, a.created, a.finished, a.ingesting, a.error, a.width, a.height, "
    "a.batch, a.thumbnails, a.upload, a.duration";
constexpr int kAssetColCount = 26;  // columns a query may select after kAssetCols start here

Asset ReadAsset(const Statement& s, int o = 0) {
  Asset a;
  a.customer = s.Int(o + 0);
  a.space = s.Int(o + 1);
  a.id = s.Text(o + 2);
  a.origin = s.Text(o + 3);
  a.media_type = s.Text(o + 4);
  a.family = s.Text(o + 5);
  a.delivery_channels = ChannelsFromJson(s.Text(o + 6));
  a.tags = StringsFromJson(s.Text(o + 7));
  a.roles = StringsFromJson(s.Text(o + 8));
  a.string1 = s.Text(o + 9);
  a.string2 = s.Text(o + 10);
  a.string3 = s.Text(o + 11);
  a.number1 = s.Int(o + 12);
  a.number2 = s.Int(o + 13);
  a.number3 = s.Int(o + 14);
  a.max_unauthorised = s.Int(o + 15);
  a.created_ms = s.Int(o + 16);
  a.finished_ms = s.OptInt(o + 17);
  a.ingesting = s.Int(o + 18) != 0;
  a.error = s.Text(o + 19);
  a.width = static_cast<int>(s.Int(o + 20));
  a.height = static_cast<int>(s.Int(o + 21));
  a.batch = s.OptInt(o + 22);
  a.thumbnails = ThumbsFromJson(s.Text(o + 23));
  a.upload = s.Text(o + 24);
  a.duration_ms = s.Int(o + 25);
  return a;
}

// Binds the nine metadata columns (tags, roles, string1..3, number1..3, max_unauthorised), in
// that order, from parameter `first` on.
Statement& BindAssetMetadata(Statement& st, int first, const Asset& a) {
  return st.Bind(first, ToJson(a.tags))
      .Bind(first + 1, ToJson(a.roles))
      .Bind(first + 2, a.string1)
      .Bind(first + 3, a.string2)
      .Bind(first + 4, a.string3)
      .Bind(first + 5, a.number1)
      .Bind(first + 6, a.number2)
      .Bind(first + 7, a.number3)
      .Bind(first + 8, a.max_unauthorised);
}

constexpr const char* kBatchCols =
    "id, customer, submitted, count, completed, errors, finished, superseded, priority";

Batch ReadBatch(const Statement& s) {
  Batch b;
  b.id = s.Int(0);
  b.customer = s.Int(1);
  b.submitted_ms = s.Int(2);
  b.count = s.Int(3);
  b.completed = s.Int(4);
  b.errors = s.Int(5);
  b.finished_ms = s.OptInt(6);
  b.superseded = s.Int(7) != 0;
  b.priority = s.Int(8) != 0;
  return b;
}

constexpr const char* kCustomerCols = "id, name, display_name, administrator, created";

Customer ReadCustomer(const Statement& s) {
  Customer c;
  c.id = s.Int(0);
  c.name = s.Text(1);
  c.display_name = s.Text(2);
  c.administrator = s.Int(3) != 0;
  c.created_ms = s.Int(4);
  return c;
}

constexpr const char* kSpaceCols =
    "s.customer, s.id, s.name, s.created, s.max_unauthorised, s.default_tags, s.default_roles, "
    "s.image_count";

Space ReadSpace(const Statement& s) {
  Space sp;
  sp.customer = s.Int(0);
  sp.id = s.Int(1);
  sp.name = s.Text(2);
  sp.created_ms = s.Int(3);
  sp.max_unauthorised = s.Int(4);
  sp.default_tags = StringsFromJson(s.Text(5));
  sp.default_roles = StringsFromJson(s.Text(6));
  sp.approximate_images = s.Int(7);
  return sp;
}

Result<int64_t> ScalarInt(Connection& conn, const std::string& sql,
                          const std::vector<int64_t>& args) {
  PREPARE(st, conn, sql);
  for (size_t i = 0; i < args.size(); ++i) st.Bind(static_cast<int>(i + 1), args[i]);
  Status status;
  if (!st.Step(&status)) return status.ok() ? Result<int64_t>(int64_t{0}) : status;
  return st.Int(0);
}

// Counts come from the rows; `finished` is stamped once, when the last member is accounted.
// `finished_now`, when given, is set when this call stamped `finished`.
Status RecomputeBatch(Connection& conn, int64_t batch, int64_t now, bool* finished_now = nullptr) {
  {
    PREPARE(st, conn,
            "UPDATE batches SET "
            "completed = (SELECT COUNT(*) FROM batch_assets WHERE batch = ?1 AND state = "
            "'completed'), "
            "errors = (SELECT COUNT(*) FROM batch_assets WHERE batch = ?1 AND state = 'error') "
            "WHERE id = ?1");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, batch).Run());
  }
  PREPARE(st, conn,
          "UPDATE batches SET finished = ?2 WHERE id = ?1 AND finished IS NULL "
          "AND completed + errors >= count");
  QUIRE_RETURN_IF_ERROR(st.Bind(1, batch).Bind(2, now).Run());
  if (finished_now != nullptr) *finished_now = conn.Changes() > 0;
  return Status::Ok();
}

// What an outcome's transaction wrote besides its rows, for the events published at commit.
struct OutcomeEffects {
  std::set<int64_t> event_customers;  // whose event log grew
  bool webhooks = false;              // deliveries were queued
  void AddTo(std::vector<StoreEvent>* events) const {
    for (int64_t c : event_customers)
      events->push_back(StoreEvent{StoreEvent::Kind::kOutcomeRecorded, c, 0, ""});
    if (webhooks) events->push_back(StoreEvent{StoreEvent::Kind::kWebhookQueued, 0, 0, ""});
  }
};

// Writes one delivery per webhook of `customer` subscribed to `type` (the outbox).
Status QueueWebhooks(Connection& conn, int64_t customer, const std::string& type,
                     const std::string& payload, int64_t now, OutcomeEffects* effects) {
  std::vector<int64_t> hooks;
  {
    PREPARE(st, conn, "SELECT id, events FROM webhooks WHERE customer = ?");
    st.Bind(1, customer);
    Status status;
    while (st.Step(&status)) {
      auto names = StringsFromJson(st.Text(1));
      if (std::find(names.begin(), names.end(), type) != names.end()) hooks.push_back(st.Int(0));
    }
    if (!status.ok()) return status;
  }
  for (int64_t hook : hooks) {
    PREPARE(st, conn,
            "INSERT INTO webhook_deliveries (webhook, customer, event_id, type, payload, "
            "next_attempt_at, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, hook)
                              .Bind(2, customer)
                              .Bind(3, NewUuid())
                              .Bind(4, type)
                              .Bind(5, payload)
                              .Bind(6, now)
                              .Run());
    effects->webhooks = true;
  }
  return Status::Ok();
}

// An image outcome of a batch member: appended to its customer's event log under the next
// sequence number (the counter row serializes outcomes of one customer, so numbers are dense
// and in commit order), plus the webhook deliveries it causes.
Status RecordImageEvent(Connection& conn, int64_t customer, int64_t batch, int64_t space,
                        const std::string& asset, bool success, const std::string& error,
                        int64_t now, OutcomeEffects* effects) {
  int64_t seq = 0;
  {
    PREPARE(st, conn,
            "INSERT INTO event_counters (customer, seq) VALUES (?1, 1) ON CONFLICT (customer) "
            "DO UPDATE SET seq = event_counters.seq + 1 RETURNING seq");
    st.Bind(1, customer);
    Status status;
    if (!st.Step(&status)) return status.ok() ? Status::Internal("no event sequence") : status;
    seq = st.Int(0);
    while (st.Step(&status)) {
    }
    if (!status.ok()) return status;
  }
  {
    PREPARE(st, conn,
            "INSERT INTO events (customer, seq, batch, space, asset_id, state, error, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, customer)
                              .Bind(2, seq)
                              .Bind(3, batch)
                              .Bind(4, space)
                              .Bind(5, asset)
                              .Bind(6, success ? "completed" : "error")
                              .Bind(7, error)
                              .Bind(8, now)
                              .Run());
  }
  effects->event_customers.insert(customer);
  nlohmann::json payload = {
      {"customer", customer}, {"space", space}, {"id", asset}, {"batch", batch}, {"error", error}};
  return QueueWebhooks(conn, customer, success ? kEventImageCompleted : kEventImageFailed,
                       payload.dump(), now, effects);
}

// batch.finished for a batch whose `finished` this transaction just stamped.
Status QueueBatchFinished(Connection& conn, int64_t batch, int64_t now, OutcomeEffects* effects) {
  PREPARE(st, conn, std::string("SELECT ") + kBatchCols + " FROM batches WHERE id = ?");
  st.Bind(1, batch);
  Status status;
  if (!st.Step(&status)) return status;
  Batch b = ReadBatch(st);
  while (st.Step(&status)) {
  }
  if (!status.ok()) return status;
  nlohmann::json payload = {{"id", b.id},
                            {"customer", b.customer},
                            {"count", b.count},
                            {"completed", b.completed},
                            {"errors", b.errors},
                            {"superseded", b.superseded},
                            {"priority", b.priority},
                            {"submitted", b.submitted_ms},
                            {"finished", b.finished_ms.value_or(now)}};
  return QueueWebhooks(conn, b.customer, kEventBatchFinished, payload.dump(), now, effects);
}

// A batch is superseded once no asset names it as its latest batch.
Status MarkSuperseded(Connection& conn, int64_t batch, bool only_if_empty) {
  {
    PREPARE(st, conn,
            only_if_empty ? "UPDATE batches SET superseded = 1 WHERE id = ?1 AND superseded = 0 "
                            "AND NOT EXISTS (SELECT 1 FROM assets WHERE batch = ?1)"
                          : "UPDATE batches SET superseded = 1 WHERE id = ?1 AND superseded = 0");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, batch).Run());
  }
  if (conn.Changes() == 0) return Status::Ok();
  PREPARE(st, conn,
          "UPDATE customers SET superseded_count = superseded_count + 1 "
          "WHERE id = (SELECT customer FROM batches WHERE id = ?)");
  return st.Bind(1, batch).Run();
}

Status RefreshSuperseded(Connection& conn, int64_t batch) {
  return MarkSuperseded(conn, batch, /*only_if_empty=*/true);
}

// Batches whose members this transaction took away (superseded, deleted): their counts
// recomputed, superseded once no image names them, and `batch.finished` for those that just
// ended.
Status SettleBatches(Connection& conn, const std::set<int64_t>& batches, int64_t now,
                     OutcomeEffects* effects) {
  for (int64_t b : batches) {
    bool finished_now = false;
    QUIRE_RETURN_IF_ERROR(RecomputeBatch(conn, b, now, &finished_now));
    QUIRE_RETURN_IF_ERROR(RefreshSuperseded(conn, b));
    if (finished_now) QUIRE_RETURN_IF_ERROR(QueueBatchFinished(conn, b, now, effects));
  }
  return Status::Ok();
}

Result<Batch> ReadBatchRow(Connection& conn, int64_t customer, int64_t id) {
  PREPARE(st, conn,
          std::string("SELECT ") + kBatchCols + " FROM batches WHERE id = ? AND customer = ?");
  st.Bind(1, id).Bind(2, customer);
  Status status;
  if (!st.Step(&status)) return status.ok() ? Status::NotFound("batch not found") : status;
  return ReadBatch(st);
}

Status InsertJob(Connection& conn, const Asset& a, int64_t batch, bool priority, int64_t now) {
  PREPARE(st, conn,
          "INSERT INTO jobs (customer, space, asset_id, batch, priority, created, "
          "next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)");
  return st.Bind(1, a.customer)
      .Bind(2, a.space)
      .Bind(3, a.id)
      .Bind(4, batch)
      .Bind(5, priority ? 1 : 0)
      .Bind(6, now)
      .Run();
}

// The customer takes part in the round-robin from now on (once per batch, not per job).
Status EnsureQueueTurn(Connection& conn, int64_t customer) {
  PREPARE(st, conn,
          "INSERT INTO queue_turns (customer, last_turn) VALUES (?, 0) "
          "ON CONFLICT (customer) DO NOTHING");
  return st.Bind(1, customer).Run();
}

// Which asset column an orderBy name maps to; empty when not allowed.
std::string AssetOrderColumn(const std::string& name) {
  static const std::map<std::string, std::string> kCols = {
      {"id", "a.id"},           {"created", "a.created"}, {"width", "a.width"},
      {"height", "a.height"},   {"string1", "a.string1"}, {"string2", "a.string2"},
      {"string3", "a.string3"}, {"number1", "a.number1"}, {"number2", "a.number2"},
      {"number3", "a.number3"}};
  auto it = kCols.find(name);
  return it == kCols.end() ? "" : it->second;
}

}  // namespace

SqlStore::SqlStore(std::unique_ptr<sql::Pool> pool, Dialect dialect)
    : pool_(std::move(pool)), dialect_(std::move(dialect)) {}

SqlStore::~SqlStore() = default;

// ---------------------------------------------------------------- events

void SqlStore::Subscribe(std::function<void(const StoreEvent&)> listener) {
  bool first;
  {
    std::lock_guard<std::mutex> lock(listeners_mu_);
    first = listeners_.empty();
    listeners_.push_back(std::move(listener));
    events_stopped_ = false;
  }
  if (first) StartListening();
}

void SqlStore::StopEvents() {
  StopListening();
  std::lock_guard<std::mutex> lock(listeners_mu_);
  events_stopped_ = true;
  listeners_.clear();
}

void SqlStore::Deliver(const std::vector<StoreEvent>& events) {
  std::lock_guard<std::mutex> lock(listeners_mu_);
  if (events_stopped_) return;
  for (const StoreEvent& e : events)
    for (auto& listener : listeners_) listener(e);
}

// "w", "k KEY", "a CUSTOMER SPACE ID", "r", "o CUSTOMER [BATCH]", "h", "s CUSTOMER [COOKIE_HASH]";
// lines joined into payloads below NOTIFY's limit.
std::vector<std::string> SqlStore::EncodeEvents(const std::vector<StoreEvent>& events) {
  std::vector<std::string> payloads;
  std::string cur;
  for (const StoreEvent& e : events) {
    std::string line;
    switch (e.kind) {
      case StoreEvent::Kind::kWorkQueued:
        line = "w";
        break;
      case StoreEvent::Kind::kKeyDeleted:
        line = "k " + e.id;
        break;
      case StoreEvent::Kind::kResync:
        line = "r";
        break;
      case StoreEvent::Kind::kAssetChanged:
        line = "a " + std::to_string(e.customer) + " " + std::to_string(e.space) + " " + e.id;
        break;
      case StoreEvent::Kind::kOutcomeRecorded:
        line = "o " + std::to_string(e.customer) + (e.id.empty() ? "" : " " + e.id);
        break;
      case StoreEvent::Kind::kWebhookQueued:
        line = "h";
        break;
      case StoreEvent::Kind::kAuthSessionsChanged:
        line = "s " + std::to_string(e.customer) + (e.id.empty() ? "" : " " + e.id);
        break;
    }
    if (!cur.empty() && cur.size() + line.size() + 1 > 7000)
      payloads.push_back(std::move(cur)), cur.clear();
    if (!cur.empty()) cur += '\n';
    cur += line;
  }
  if (!cur.empty()) payloads.push_back(std::move(cur));
  return payloads;
}

std::vector<StoreEvent> SqlStore::DecodeEvents(const std::string& payload) {
  std::vector<StoreEvent> events;
  size_t pos = 0;
  while (pos < payload.size()) {
    size_t end = payload.find('\n', pos);
    if (end == std::string::npos) end = payload.size();
    std::string line = payload.substr(pos, end - pos);
    pos = end + 1;
    StoreEvent e;
    if (line == "w") {
      e.kind = StoreEvent::Kind::kWorkQueued;
    } else if (line == "r") {
      e.kind = StoreEvent::Kind::kResync;
    } else if (line == "h") {
      e.kind = StoreEvent::Kind::kWebhookQueued;
    } else if (line.rfind("o ", 0) == 0) {
      e.kind = StoreEvent::Kind::kOutcomeRecorded;
      e.customer = std::atoll(line.substr(2).c_str());
      if (size_t sp = line.find(' ', 2); sp != std::string::npos) e.id = line.substr(sp + 1);
    } else if (line.rfind("s ", 0) == 0) {
      e.kind = StoreEvent::Kind::kAuthSessionsChanged;
      e.customer = std::atoll(line.substr(2).c_str());
      if (size_t sp = line.find(' ', 2); sp != std::string::npos) e.id = line.substr(sp + 1);
    } else if (line.rfind("k ", 0) == 0) {
      e.kind = StoreEvent::Kind::kKeyDeleted;
      e.id = line.substr(2);
    } else if (line.rfind("a ", 0) == 0) {
      e.kind = StoreEvent::Kind::kAssetChanged;
      size_t s1 = line.find(' ', 2);
      size_t s2 = s1 == std::string::npos ? s1 : line.find(' ', s1 + 1);
      if (s2 == std::string::npos) continue;
      e.customer = std::atoll(line.substr(2, s1 - 2).c_str());
      e.space = std::atoll(line.substr(s1 + 1, s2 - s1 - 1).c_str());
      e.id = line.substr(s2 + 1);
    } else {
      continue;  // from a newer node: ignore what is not understood
    }
    events.push_back(std::move(e));
  }
  return events;
}

Status SqlStore::CommitWith(Transaction& tx, const std::vector<StoreEvent>& events) {
  if (!dialect_.notify.empty() && !events.empty()) {
    for (const std::string& payload : EncodeEvents(events)) {
      PREPARE(st, tx.conn(), dialect_.notify);
      QUIRE_RETURN_IF_ERROR(st.Bind(1, payload).Run());
    }
  }
  QUIRE_RETURN_IF_ERROR(tx.Commit());
  // Every event reaches this node's listeners before the change answers, so a reader on the
  // node that made it never sees what its caches kept from before (read your writes). With
  // NOTIFY the same events come back a moment later through the listener: every listener
  // treats an event twice as once.
  if (!events.empty()) Deliver(events);
  return Status::Ok();
}

Status SqlStore::Migrate() {
  // Read committed under the dialect's lock: a node that waited for another node's migration
  // then sees the version that node reached.
  BEGIN_TX(tx, TxKind::kLocking);
  auto& conn = tx.conn();
  if (!dialect_.migrate_lock.empty()) QUIRE_RETURN_IF_ERROR(conn.Exec(dialect_.migrate_lock));
  QUIRE_RETURN_IF_ERROR(
      conn.Exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"));
  auto v = ScalarInt(conn, "SELECT COALESCE(MAX(version), 0) FROM schema_version", {});
  if (!v.ok()) return v.status();
  const auto& migrations = dialect_.migrations;
  if (*v > static_cast<int64_t>(migrations.size()))
    return Status::Invalid("database schema version " + std::to_string(*v) +
                           " is newer than this quire (" + std::to_string(migrations.size()) + ")");
  for (size_t i = static_cast<size_t>(*v); i < migrations.size(); ++i) {
    QUIRE_RETURN_IF_ERROR(conn.Exec(migrations[i]));
    QUIRE_RETURN_IF_ERROR(
        conn.Exec("DELETE FROM schema_version; INSERT INTO schema_version "
                  "VALUES (" +
                  std::to_string(i + 1) + ")"));
  }
  return tx.Commit();
}

Result<int> SqlStore::SchemaVersion() {
  ACQUIRE(lease);
  auto v = ScalarInt(*lease, "SELECT COALESCE(MAX(version), 0) FROM schema_version", {});
  if (!v.ok()) return v.status();
  return static_cast<int>(*v);
}

// ---------------------------------------------------------------- customers and keys

Result<Customer> SqlStore::CreateCustomer(const Customer& in) {
  return Retry([&]() -> Result<Customer> {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    {
      PREPARE(st, conn, "SELECT COUNT(*) FROM customers WHERE name = ? OR id = ?");
      st.Bind(1, in.name).Bind(2, in.id);
      Status status;
      if (st.Step(&status) && st.Int(0) > 0)
        return Status::Conflict("a customer named '" + in.name + "' already exists");
      if (!status.ok()) return status;
    }
    Customer c = in;
    c.created_ms = NowMs();
    {
      // Without an id the database assigns the next one.
      PREPARE(st, conn,
              c.id > 0 ? "INSERT INTO customers (name, display_name, administrator, created, id) "
                         "VALUES (?, ?, ?, ?, ?) RETURNING id"
                       : "INSERT INTO customers (name, display_name, administrator, created) "
                         "VALUES (?, ?, ?, ?) RETURNING id");
      st.Bind(1, c.name).Bind(2, c.display_name).Bind(3, c.administrator).Bind(4, c.created_ms);
      if (c.id > 0) st.Bind(5, c.id);
      Status status;
      if (!st.Step(&status)) return status.ok() ? Status::Internal("no id for customer") : status;
      c.id = st.Int(0);
      QUIRE_RETURN_IF_ERROR(st.Run());
    }
    if (in.id > 0 && !dialect_.after_explicit_customer_id.empty())
      QUIRE_RETURN_IF_ERROR(conn.Exec(dialect_.after_explicit_customer_id));
    QUIRE_RETURN_IF_ERROR(tx.Commit());
    return c;
  });
}

Result<Customer> SqlStore::GetCustomer(int64_t id) {
  ACQUIRE(conn);
  PREPARE(st, *conn, std::string("SELECT ") + kCustomerCols + " FROM customers WHERE id = ?");
  st.Bind(1, id);
  Status status;
  if (!st.Step(&status)) return status.ok() ? Status::NotFound("customer not found") : status;
  return ReadCustomer(st);
}

Result<Customer> SqlStore::GetCustomerByName(const std::string& name) {
  ACQUIRE(conn);
  PREPARE(st, *conn, std::string("SELECT ") + kCustomerCols + " FROM customers WHERE name = ?");
  st.Bind(1, name);
  Status status;
  if (!st.Step(&status)) return status.ok() ? Status::NotFound("customer not found") : status;
  return ReadCustomer(st);
}

Result<Page<Customer>> SqlStore::ListCustomers(const PageRequest& page) {
  BEGIN_TX(tx, TxKind::kRead);
  auto& conn = tx.conn();
  Page<Customer> out;
  auto total = ScalarInt(conn, "SELECT COUNT(*) FROM customers", {});
  if (!total.ok()) return total.status();
  out.total = *total;
  PREPARE(st, conn,
          std::string("SELECT ") + kCustomerCols + " FROM customers ORDER BY id LIMIT ? OFFSET ?");
  st.Bind(1, page.page_size).Bind(2, page.Offset());
  Status status;
  while (st.Step(&status)) out.items.push_back(ReadCustomer(st));
  if (!status.ok()) return status;
  return out;
}

Result<Customer> SqlStore::UpdateCustomer(const Customer& c) {
  return Retry([&]() -> Result<Customer> {
    {
      BEGIN_TX(tx, TxKind::kWrite);
      PREPARE(st, tx.conn(), "UPDATE customers SET display_name = ? WHERE id = ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, c.display_name).Bind(2, c.id).Run());
      if (tx.conn().Changes() == 0) return Status::NotFound("customer not found");
      QUIRE_RETURN_IF_ERROR(tx.Commit());
    }
    return GetCustomer(c.id);
  });
}

Status SqlStore::CreateKey(const ApiKey& k) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kWrite);
    PREPARE(st, tx.conn(),
            "INSERT INTO api_keys (key, customer, salt, secret_hash, created) VALUES (?,?,?,?,?)");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, k.key)
                              .Bind(2, k.customer)
                              .Bind(3, k.salt)
                              .Bind(4, k.secret_hash)
                              .Bind(5, k.created_ms ? k.created_ms : NowMs())
                              .Run());
    return tx.Commit();
  });
}

static ApiKey ReadKey(const Statement& st) {
  ApiKey k;
  k.key = st.Text(0);
  k.customer = st.Int(1);
  k.salt = st.Text(2);
  k.secret_hash = st.Text(3);
  k.created_ms = st.Int(4);
  return k;
}

Result<ApiKey> SqlStore::GetKey(const std::string& key) {
  ACQUIRE(conn);
  PREPARE(st, *conn,
          "SELECT key, customer, salt, secret_hash, created FROM api_keys WHERE key = ?");
  st.Bind(1, key);
  Status status;
  if (!st.Step(&status)) return status.ok() ? Status::NotFound("key not found") : status;
  return ReadKey(st);
}

Result<Page<ApiKey>> SqlStore::ListKeys(int64_t customer, const PageRequest& page) {
  BEGIN_TX(tx, TxKind::kRead);
  auto& conn = tx.conn();
  Page<ApiKey> out;
  auto total = ScalarInt(conn, "SELECT COUNT(*) FROM api_keys WHERE customer = ?", {customer});
  if (!total.ok()) return total.status();
  out.total = *total;
  PREPARE(st, conn,
          "SELECT key, customer, salt, secret_hash, created FROM api_keys WHERE customer = ? "
          "ORDER BY created, key LIMIT ? OFFSET ?");
  st.Bind(1, customer).Bind(2, page.page_size).Bind(3, page.Offset());
  Status status;
  while (st.Step(&status)) out.items.push_back(ReadKey(st));
  if (!status.ok()) return status;
  return out;
}

Status SqlStore::DeleteKey(int64_t customer, const std::string& key) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kWrite);
    PREPARE(st, tx.conn(), "DELETE FROM api_keys WHERE customer = ? AND key = ?");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, customer).Bind(2, key).Run());
    if (tx.conn().Changes() == 0) return Status::NotFound("key not found");
    return CommitWith(tx, {StoreEvent{StoreEvent::Kind::kKeyDeleted, customer, 0, key}});
  });
}

// ---------------------------------------------------------------- portal sessions

Status SqlStore::CreateSession(const PortalSession& s) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kWrite);
    // Sessions nobody signed out of end here, a sign-in at a time.
    PREPARE(expired, tx.conn(), "DELETE FROM portal_sessions WHERE expires <= ?");
    QUIRE_RETURN_IF_ERROR(expired.Bind(1, s.created_ms).Run());
    PREPARE(st, tx.conn(),
            "INSERT INTO portal_sessions (token_hash, customer, admin, api_key, csrf, created, "
            "expires) VALUES (?,?,?,?,?,?,?)");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, s.token_hash)
                              .Bind(2, s.customer)
                              .Bind(3, int64_t{s.admin ? 1 : 0})
                              .Bind(4, s.key)
                              .Bind(5, s.csrf)
                              .Bind(6, s.created_ms)
                              .Bind(7, s.expires_ms)
                              .Run());
    return tx.Commit();
  });
}

Result<PortalSession> SqlStore::GetSession(const std::string& token_hash, int64_t now_ms) {
  ACQUIRE(conn);
  // The key must still exist: revoking a key signs its browsers out too.
  PREPARE(st, *conn,
          "SELECT s.token_hash, s.customer, s.admin, s.api_key, s.csrf, s.created, s.expires "
          "FROM portal_sessions s JOIN api_keys k ON k.key = s.api_key "
          "WHERE s.token_hash = ? AND s.expires > ?");
  st.Bind(1, token_hash).Bind(2, now_ms);
  Status status;
  if (!st.Step(&status)) return status.ok() ? Status::NotFound("session not found") : status;
  PortalSession s;
  s.token_hash = st.Text(0);
  s.customer = st.Int(1);
  s.admin = st.Int(2) != 0;
  s.key = st.Text(3);
  s.csrf = st.Text(4);
  s.created_ms = st.Int(5);
  s.expires_ms = st.Int(6);
  return s;
}

Status SqlStore::DeleteSession(const std::string& token_hash, int64_t now_ms) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kWrite);
    PREPARE(st, tx.conn(), "DELETE FROM portal_sessions WHERE token_hash = ? OR expires <= ?");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, token_hash).Bind(2, now_ms).Run());
    return tx.Commit();
  });
}

// ---------------------------------------------------------------- spaces

static Status InsertSpace(Connection& conn, const Space& s) {
  PREPARE(st, conn,
          "INSERT INTO spaces (customer, id, name, created, max_unauthorised, default_tags, "
          "default_roles) VALUES (?,?,?,?,?,?,?)");
  return st.Bind(1, s.customer)
      .Bind(2, s.id)
      .Bind(3, s.name)
      .Bind(4, s.created_ms)
      .Bind(5, s.max_unauthorised)
      .Bind(6, ToJson(s.default_tags))
      .Bind(7, ToJson(s.default_roles))
      .Run();
}

static Status CheckSpaceName(Connection& conn, const Space& s) {
  PREPARE(st, conn, "SELECT COUNT(*) FROM spaces WHERE customer = ? AND name = ? AND id != ?");
  st.Bind(1, s.customer).Bind(2, s.name).Bind(3, s.id);
  Status status;
  if (st.Step(&status) && st.Int(0) > 0)
    return Status::Conflict("a space named '" + s.name + "' already exists");
  return status;
}

static Result<Space> ReadSpaceRow(Connection& conn, int64_t customer, int64_t id) {
  PREPARE(st, conn,
          std::string("SELECT ") + kSpaceCols + " FROM spaces s WHERE s.customer = ? AND s.id = ?");
  st.Bind(1, customer).Bind(2, id);
  Status status;
  if (!st.Step(&status)) return status.ok() ? Status::NotFound("space not found") : status;
  return ReadSpace(st);
}

Result<Space> SqlStore::CreateSpace(const Space& in) {
  return Retry([&]() -> Result<Space> {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    Space s = in;
    auto next = ScalarInt(conn, "SELECT COALESCE(MAX(id), 0) + 1 FROM spaces WHERE customer = ?",
                          {s.customer});
    if (!next.ok()) return next.status();
    s.id = *next;
    s.created_ms = NowMs();
    QUIRE_RETURN_IF_ERROR(CheckSpaceName(conn, s));
    QUIRE_RETURN_IF_ERROR(InsertSpace(conn, s));
    QUIRE_RETURN_IF_ERROR(tx.Commit());
    return s;
  });
}

Result<Space> SqlStore::PutSpace(const Space& in, bool* created) {
  return Retry([&]() -> Result<Space> {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    QUIRE_RETURN_IF_ERROR(CheckSpaceName(conn, in));
    auto existing = ReadSpaceRow(conn, in.customer, in.id);
    if (existing.ok()) {
      *created = false;
      PREPARE(st, conn,
              "UPDATE spaces SET name = ?, max_unauthorised = ?, default_tags = ?, "
              "default_roles = ? WHERE customer = ? AND id = ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, in.name)
                                .Bind(2, in.max_unauthorised)
                                .Bind(3, ToJson(in.default_tags))
                                .Bind(4, ToJson(in.default_roles))
                                .Bind(5, in.customer)
                                .Bind(6, in.id)
                                .Run());
    } else if (existing.status().code() == Code::kNotFound) {
      *created = true;
      Space s = in;
      s.created_ms = NowMs();
      QUIRE_RETURN_IF_ERROR(InsertSpace(conn, s));
    } else {
      return existing.status();
    }
    auto out = ReadSpaceRow(conn, in.customer, in.id);
    if (!out.ok()) return out.status();
    QUIRE_RETURN_IF_ERROR(tx.Commit());
    return out;
  });
}

Result<Space> SqlStore::GetSpace(int64_t customer, int64_t id) {
  ACQUIRE(conn);
  return ReadSpaceRow(*conn, customer, id);
}

Result<Page<Space>> SqlStore::ListSpaces(int64_t customer, const PageRequest& page) {
  BEGIN_TX(tx, TxKind::kRead);
  auto& conn = tx.conn();
  Page<Space> out;
  auto total = ScalarInt(conn, "SELECT COUNT(*) FROM spaces WHERE customer = ?", {customer});
  if (!total.ok()) return total.status();
  out.total = *total;
  PREPARE(st, conn,
          std::string("SELECT ") + kSpaceCols +
              " FROM spaces s WHERE s.customer = ? ORDER BY s.id LIMIT ? OFFSET ?");
  st.Bind(1, customer).Bind(2, page.page_size).Bind(3, page.Offset());
  Status status;
  while (st.Step(&status)) out.items.push_back(ReadSpace(st));
  if (!status.ok()) return status;
  return out;
}

Status SqlStore::DeleteSpace(int64_t customer, int64_t id) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    auto images = ScalarInt(conn, "SELECT COUNT(*) FROM assets WHERE customer = ? AND space = ?",
                            {customer, id});
    if (!images.ok()) return images.status();
    auto exists = ScalarInt(conn, "SELECT COUNT(*) FROM spaces WHERE customer = ? AND id = ?",
                            {customer, id});
    if (!exists.ok()) return exists.status();
    if (*exists == 0) return Status::NotFound("space not found");
    if (*images > 0)
      return Status::Conflict("space " + std::to_string(id) + " still holds " +
                              std::to_string(*images) + " image(s); delete them first");
    PREPARE(st, conn, "DELETE FROM spaces WHERE customer = ? AND id = ?");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, customer).Bind(2, id).Run());
    return tx.Commit();
  });
}

// ---------------------------------------------------------------- assets

static Result<Asset> ReadAssetRow(Connection& conn, int64_t customer, int64_t space,
                                  const std::string& id) {
  PREPARE(st, conn,
          std::string("SELECT ") + kAssetCols +
              " FROM assets a WHERE a.customer = ? AND a.space = ? AND a.id = ?");
  st.Bind(1, customer).Bind(2, space).Bind(3, id);
  Status status;
  if (!st.Step(&status)) return status.ok() ? Status::NotFound("image not found") : status;
  return ReadAsset(st);
}

Result<Asset> SqlStore::GetAsset(int64_t customer, int64_t space, const std::string& id) {
  ACQUIRE(conn);
  return ReadAssetRow(*conn, customer, space, id);
}

Result<Page<Asset>> SqlStore::ListAssets(const AssetQuery& q) {
  std::string order = AssetOrderColumn(q.order_by);
  if (order.empty()) return Status::Invalid("cannot order images by '" + q.order_by + "'");
  std::string where = " WHERE a.customer = ?1";
  if (q.space) where += " AND a.space = ?2";
  if (q.string1) where += " AND a.string1 = ?3";
  if (q.string2) where += " AND a.string2 = ?4";
  if (q.string3) where += " AND a.string3 = ?5";
  if (q.number1) where += " AND a.number1 = ?6";
  if (q.number2) where += " AND a.number2 = ?7";
  if (q.number3) where += " AND a.number3 = ?8";
  const char* dir = q.descending ? " DESC" : "";
  std::string order_sql = " ORDER BY " + order + dir;
  if (order != "a.created") order_sql += ", a.created" + std::string(dir);
  order_sql += ", a.space" + std::string(dir) + ", a.id" + dir;

  auto bind = [&](Statement& st) {
    st.Bind(1, q.customer);
    if (q.space) st.Bind(2, *q.space);
    if (q.string1) st.Bind(3, *q.string1);
    if (q.string2) st.Bind(4, *q.string2);
    if (q.string3) st.Bind(5, *q.string3);
    if (q.number1) st.Bind(6, *q.number1);
    if (q.number2) st.Bind(7, *q.number2);
    if (q.number3) st.Bind(8, *q.number3);
  };
  BEGIN_TX(tx, TxKind::kRead);
  auto& conn = tx.conn();
  Page<Asset> out;
  bool filtered = q.string1 || q.string2 || q.string3 || q.number1 || q.number2 || q.number3;
  if (q.space && !filtered) {
    // The space keeps its image count, so a plain listing costs the same at any size.
    PREPARE(st, conn, "SELECT image_count FROM spaces WHERE customer = ? AND id = ?");
    st.Bind(1, q.customer).Bind(2, *q.space);
    Status status;
    if (st.Step(&status)) out.total = st.Int(0);
    if (!status.ok()) return status;
  } else {
    PREPARE(st, conn, "SELECT COUNT(*) FROM assets a" + where);
    bind(st);
    Status status;
    if (st.Step(&status)) out.total = st.Int(0);
    if (!status.ok()) return status;
  }
  PREPARE(st, conn,
          std::string("SELECT ") + kAssetCols + " FROM assets a" + where + order_sql +
              " LIMIT ?9 OFFSET ?10");
  bind(st);
  st.Bind(9, q.page.page_size).Bind(10, q.page.Offset());
  Status status;
  while (st.Step(&status)) out.items.push_back(ReadAsset(st));
  if (!status.ok()) return status;
  return out;
}

Result<Asset> SqlStore::UpdateAssetMetadata(const Asset& a) {
  return Retry([&]() -> Result<Asset> {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    PREPARE(st, conn,
            "UPDATE assets SET tags = ?, roles = ?, string1 = ?, string2 = ?, string3 = ?, "
            "number1 = ?, number2 = ?, number3 = ?, max_unauthorised = ? "
            "WHERE customer = ? AND space = ? AND id = ?");
    QUIRE_RETURN_IF_ERROR(
        BindAssetMetadata(st, 1, a).Bind(10, a.customer).Bind(11, a.space).Bind(12, a.id).Run());
    if (conn.Changes() == 0) return Status::NotFound("image not found");
    auto out = ReadAssetRow(conn, a.customer, a.space, a.id);
    if (!out.ok()) return out.status();
    QUIRE_RETURN_IF_ERROR(
        CommitWith(tx, {StoreEvent{StoreEvent::Kind::kAssetChanged, a.customer, a.space, a.id}}));
    return out;
  });
}

// Marks a member's waiting row in every batch as an error (the asset left that batch before
// it was processed) and returns the batches touched.
static Result<std::set<int64_t>> AbandonWaitingRows(Connection& conn, const Asset& a,
                                                    const std::string& why, int64_t now,
                                                    OutcomeEffects* effects) {
  std::set<int64_t> touched;
  {
    PREPARE(st, conn,
            "SELECT batch FROM batch_assets WHERE customer = ? AND space = ? AND asset_id = ? "
            "AND state = 'waiting'");
    st.Bind(1, a.customer).Bind(2, a.space).Bind(3, a.id);
    Status status;
    while (st.Step(&status)) touched.insert(st.Int(0));
    if (!status.ok()) return status;
  }
  {
    PREPARE(st, conn,
            "UPDATE batch_assets SET state = 'error', error = ?, finished = ? "
            "WHERE customer = ? AND space = ? AND asset_id = ? AND state = 'waiting'");
    QUIRE_RETURN_IF_ERROR(
        st.Bind(1, why).Bind(2, now).Bind(3, a.customer).Bind(4, a.space).Bind(5, a.id).Run());
  }
  // Each abandoned member is an outcome of its batch, shown to that batch's streams.
  for (int64_t b : touched)
    QUIRE_RETURN_IF_ERROR(
        RecordImageEvent(conn, a.customer, b, a.space, a.id, false, why, now, effects));
  PREPARE(st, conn, "DELETE FROM jobs WHERE customer = ? AND space = ? AND asset_id = ?");
  QUIRE_RETURN_IF_ERROR(st.Bind(1, a.customer).Bind(2, a.space).Bind(3, a.id).Run());
  return touched;
}

Status SqlStore::DeleteAsset(int64_t customer, int64_t space, const std::string& id) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    auto asset = ReadAssetRow(conn, customer, space, id);
    if (!asset.ok()) return asset.status();
    int64_t now = NowMs();
    OutcomeEffects effects;
    auto touched =
        AbandonWaitingRows(conn, *asset, "image deleted before it was processed", now, &effects);
    if (!touched.ok()) return touched.status();
    {
      PREPARE(st, conn, "DELETE FROM assets WHERE customer = ? AND space = ? AND id = ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, customer).Bind(2, space).Bind(3, id).Run());
    }
    {
      // Its memberships stay (a batch's counts keep the outcome it had) but leave listings.
      PREPARE(st, conn,
              "UPDATE batch_assets SET deleted = 1 WHERE customer = ? AND space = ? AND "
              "asset_id = ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, customer).Bind(2, space).Bind(3, id).Run());
    }
    {
      PREPARE(st, conn,
              "UPDATE spaces SET image_count = image_count - 1 WHERE customer = ? AND id = ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, customer).Bind(2, space).Run());
    }
    if (asset->batch) touched->insert(*asset->batch);
    QUIRE_RETURN_IF_ERROR(SettleBatches(conn, *touched, now, &effects));
    std::vector<StoreEvent> events = {
        StoreEvent{StoreEvent::Kind::kAssetChanged, customer, space, id}};
    effects.AddTo(&events);
    return CommitWith(tx, events);
  });
}

// ---------------------------------------------------------------- uploads

namespace {

constexpr const char* kUploadCols =
    "u.customer, u.id, u.media_type, u.size, u.sha256, u.created, u.expires, "
    "(SELECT COUNT(*) FROM assets a WHERE a.customer = u.customer AND a.upload = u.id)";

Upload ReadUpload(const Statement& s) {
  Upload u;
  u.customer = s.Int(0);
  u.id = s.Text(1);
  u.media_type = s.Text(2);
  u.size = s.Int(3);
  u.sha256 = s.Text(4);
  u.created_ms = s.Int(5);
  u.expires_ms = s.Int(6);
  u.used_by = s.Int(7);
  return u;
}

Result<Upload> ReadUploadRow(Connection& conn, int64_t customer, const std::string& id) {
  PREPARE(
      st, conn,
      std::string("SELECT ") + kUploadCols + " FROM uploads u WHERE u.customer = ? AND u.id = ?");
  st.Bind(1, customer).Bind(2, id);
  Status status;
  if (!st.Step(&status)) return status.ok() ? Status::NotFound("upload not found") : status;
  return ReadUpload(st);
}

}  // namespace

Status SqlStore::CreateUpload(const Upload& u) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    PREPARE(st, conn,
            "INSERT INTO uploads (customer, id, media_type, size, sha256, created, expires) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)");
    Status s = st.Bind(1, u.customer)
                   .Bind(2, u.id)
                   .Bind(3, u.media_type)
                   .Bind(4, u.size)
                   .Bind(5, u.sha256)
                   .Bind(6, u.created_ms)
                   .Bind(7, u.expires_ms)
                   .Run();
    if (s.code() == Code::kConflict) return Status::Conflict("upload " + u.id + " exists");
    QUIRE_RETURN_IF_ERROR(s);
    return tx.Commit();
  });
}

Result<Upload> SqlStore::GetUpload(int64_t customer, const std::string& id) {
  ACQUIRE(conn);
  return ReadUploadRow(*conn, customer, id);
}

Result<Page<Upload>> SqlStore::ListUploads(int64_t customer, const PageRequest& page) {
  BEGIN_TX(tx, TxKind::kRead);
  auto& conn = tx.conn();
  Page<Upload> out;
  auto total = ScalarInt(conn, "SELECT COUNT(*) FROM uploads WHERE customer = ?", {customer});
  if (!total.ok()) return total.status();
  out.total = *total;
  PREPARE(st, conn,
          std::string("SELECT ") + kUploadCols +
              " FROM uploads u WHERE u.customer = ? ORDER BY u.created, u.id LIMIT ? OFFSET ?");
  st.Bind(1, customer).Bind(2, page.page_size).Bind(3, page.Offset());
  Status status;
  while (st.Step(&status)) out.items.push_back(ReadUpload(st));
  if (!status.ok()) return status;
  return out;
}

Status SqlStore::DeleteUpload(int64_t customer, const std::string& id) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    auto found = ReadUploadRow(conn, customer, id);
    if (!found.ok()) return found.status();
    if (found->used_by > 0)
      return Status::Conflict("upload " + id + " is the origin of " +
                              std::to_string(found->used_by) +
                              " image(s); delete them or change their origin first");
    PREPARE(st, conn, "DELETE FROM uploads WHERE customer = ? AND id = ?");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, customer).Bind(2, id).Run());
    return tx.Commit();
  });
}

Result<std::vector<Upload>> SqlStore::ExpiredUploads(int64_t now_ms, int limit) {
  ACQUIRE(conn);
  PREPARE(st, *conn,
          std::string("SELECT ") + kUploadCols +
              " FROM uploads u WHERE u.expires < ? AND NOT EXISTS (SELECT 1 FROM assets a "
              "WHERE a.customer = u.customer AND a.upload = u.id) ORDER BY u.expires LIMIT ?");
  st.Bind(1, now_ms).Bind(2, static_cast<int64_t>(limit));
  std::vector<Upload> out;
  Status status;
  while (st.Step(&status)) out.push_back(ReadUpload(st));
  if (!status.ok()) return status;
  return out;
}

// ---------------------------------------------------------------- queue and batches

namespace {
Result<DeliveryChannelPolicy> ReadChannelPolicyRow(Connection& conn, int64_t customer,
                                                   const std::string& channel,
                                                   const std::string& name);
}  // namespace

// Refuses (InsufficientStorage) when the customer's images, `added` of them new in this
// transaction and already counted in its spaces, exceed its policy's maximum, or when its
// stored bytes are already at the policy's maximum (a new image's size is known only after
// its ingest, so bytes are judged before it).
static Status CheckStoragePolicy(Connection& conn, int64_t customer, int64_t added) {
  PREPARE(st, conn,
          "SELECT p.id, p.max_images, p.max_bytes, "
          "(SELECT COALESCE(SUM(s.image_count), 0) FROM spaces s WHERE s.customer = c.id), "
          "(SELECT COALESCE(SUM(s.stored_bytes), 0) FROM spaces s WHERE s.customer = c.id) "
          "FROM customers c JOIN storage_policies p ON p.id = c.storage_policy WHERE c.id = ?");
  st.Bind(1, customer);
  Status status;
  if (!st.Step(&status)) return status;  // no policy row: nothing to enforce
  std::string policy = st.Text(0);
  int64_t max_images = st.Int(1), max_bytes = st.Int(2), images = st.Int(3), bytes = st.Int(4);
  if (added > 0 && images > max_images)
    return Status::InsufficientStorage(
        "Storage policy '" + policy + "' allows " + std::to_string(max_images) +
        " images; this request would make " + std::to_string(images) + ", " +
        std::to_string(images - max_images) + " over the maximum");
  if (bytes >= max_bytes)
    return Status::InsufficientStorage(
        "Storage policy '" + policy + "' allows " + std::to_string(max_bytes) +
        " bytes; the customer already stores " + std::to_string(bytes) + ", " +
        std::to_string(bytes - max_bytes) + " bytes at or over the maximum");
  return Status::Ok();
}

// Adds `members` to batch `batch_id` from membership `ordinal` on: each image upserted
// (ingesting, error "", batch = this one), an older batch still waiting for it recording it as
// superseded (and settled), a membership and a job each, the spaces' image counts, the storage
// policy judged with them, and the customer's queue turn. Invalid for an id already in the
// batch.
static Status AddBatchMembers(Connection& conn, int64_t customer, int64_t batch_id,
                              const std::vector<Asset>& members, bool priority, int64_t ordinal,
                              int64_t now, OutcomeEffects* effects) {
  std::set<int64_t> touched;              // older batches these images leave
  std::map<int64_t, int64_t> new_images;  // space → images this batch adds to it
  for (const Asset& in : members) {
    Asset m = in;
    m.customer = customer;
    {
      auto old = ReadAssetRow(conn, customer, m.space, m.id);
      if (!old.ok() && old.status().code() != Code::kNotFound) return old.status();
      if (old.ok()) {
        // Only an existing image can be waiting in an older batch or have queued work.
        if (old->batch) touched.insert(*old->batch);
        auto abandoned = AbandonWaitingRows(
            conn, m, "superseded by batch " + std::to_string(batch_id) + " before it was processed",
            now, effects);
        if (!abandoned.ok()) return abandoned.status();
        touched.insert(abandoned->begin(), abandoned->end());
      } else {
        ++new_images[m.space];
      }
    }
    {
      PREPARE(st, conn,
              "INSERT INTO assets (customer, space, id, origin, media_type, family, "
              "delivery_channels, tags, roles, string1, string2, string3, number1, number2, "
              "number3, max_unauthorised, created, finished, ingesting, error, batch, upload) "
              "VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,NULL,1,'',?18,"
              "?19) "
              "ON CONFLICT (customer, space, id) DO UPDATE SET origin = ?4, media_type = ?5, "
              "family = ?6, delivery_channels = ?7, tags = ?8, roles = ?9, string1 = ?10, "
              "string2 = ?11, string3 = ?12, number1 = ?13, number2 = ?14, number3 = ?15, "
              "max_unauthorised = ?16, finished = NULL, ingesting = 1, error = '', batch = ?18, "
              "upload = ?19");
      st.Bind(1, customer)
          .Bind(2, m.space)
          .Bind(3, m.id)
          .Bind(4, m.origin)
          .Bind(5, m.media_type)
          .Bind(6, m.family)
          .Bind(7, ChannelsToJson(m.delivery_channels));
      QUIRE_RETURN_IF_ERROR(
          BindAssetMetadata(st, 8, m).Bind(17, now).Bind(18, batch_id).Bind(19, m.upload).Run());
    }
    {
      PREPARE(st, conn,
              "INSERT INTO batch_assets (batch, customer, space, asset_id, ordinal) "
              "VALUES (?, ?, ?, ?, ?)");
      Status s = st.Bind(1, batch_id)
                     .Bind(2, customer)
                     .Bind(3, m.space)
                     .Bind(4, m.id)
                     .Bind(5, ordinal++)
                     .Run();
      if (s.code() == Code::kConflict)
        return Status::Invalid("Members contains a duplicate Id: Id:" + m.id +
                               ",Space:" + std::to_string(m.space));
      QUIRE_RETURN_IF_ERROR(s);
    }
    QUIRE_RETURN_IF_ERROR(InsertJob(conn, m, batch_id, priority, now));
  }
  for (auto [space, n] : new_images) {
    PREPARE(st, conn,
            "UPDATE spaces SET image_count = image_count + ? WHERE customer = ? AND id = ?");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, n).Bind(2, customer).Bind(3, space).Run());
  }
  // The storage policy, judged inside this transaction: refused, nothing is written.
  {
    int64_t added = 0;
    for (auto [space, n] : new_images) added += n;
    QUIRE_RETURN_IF_ERROR(CheckStoragePolicy(conn, customer, added));
  }
  QUIRE_RETURN_IF_ERROR(EnsureQueueTurn(conn, customer));
  touched.erase(batch_id);
  return SettleBatches(conn, touched, now, effects);
}

Result<Batch> SqlStore::CreateBatch(int64_t customer, const std::vector<Asset>& members,
                                    bool priority) {
  return Retry([&]() -> Result<Batch> {
    if (members.empty()) return Status::Invalid("Members cannot be empty");
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    int64_t now = NowMs();

    // Every space must exist (all-or-nothing: checked before anything is written).
    std::set<int64_t> spaces;
    for (auto& m : members) spaces.insert(m.space);
    std::string missing;
    for (int64_t s : spaces) {
      auto n = ScalarInt(conn, "SELECT COUNT(*) FROM spaces WHERE customer = ? AND id = ?",
                         {customer, s});
      if (!n.ok()) return n.status();
      if (*n == 0) missing += (missing.empty() ? "" : ", ") + std::to_string(s);
    }
    if (!missing.empty())
      return Status::Invalid("The following space(s) could not be found: " + missing);
    // An origin naming an upload needs that upload to exist now (checked in this
    // transaction, so a concurrent DELETE of the upload either wins first or is refused).
    std::set<std::string> uploads;
    for (auto& m : members)
      if (!m.upload.empty()) uploads.insert(m.upload);
    for (const std::string& u : uploads) {
      PREPARE(st, conn, "SELECT COUNT(*) FROM uploads WHERE customer = ? AND id = ?");
      st.Bind(1, customer).Bind(2, u);
      Status status;
      if (!st.Step(&status)) return status.ok() ? Status::Internal("no count") : status;
      if (st.Int(0) == 0) missing += (missing.empty() ? "" : ", ") + u;
    }
    if (!missing.empty())
      return Status::Invalid("The following upload(s) could not be found: " + missing);
    // A thumbs policy of the customer's own must exist now (the built-in ones always do).
    std::set<std::string> thumb_policies;
    for (auto& m : members)
      for (auto& ch : m.delivery_channels)
        if (ch.channel == "thumbs" && !ch.policy.empty() &&
            !IsBuiltInChannelPolicy("thumbs", ch.policy))
          thumb_policies.insert(ch.policy);
    for (const std::string& name : thumb_policies) {
      auto p = ReadChannelPolicyRow(conn, customer, "thumbs", name);
      if (!p.ok() && p.status().code() != Code::kNotFound) return p.status();
      if (!p.ok()) missing += (missing.empty() ? "" : ", ") + name;
    }
    if (!missing.empty())
      return Status::Invalid("The following thumbs policy(ies) could not be found: " + missing);

    int64_t batch_id;
    {
      PREPARE(st, conn,
              "INSERT INTO batches (customer, submitted, count, priority) VALUES (?, ?, ?, ?) "
              "RETURNING id");
      st.Bind(1, customer)
          .Bind(2, now)
          .Bind(3, static_cast<int64_t>(members.size()))
          .Bind(4, priority ? 1 : 0);
      Status status;
      if (!st.Step(&status)) return status.ok() ? Status::Internal("no id for batch") : status;
      batch_id = st.Int(0);
      QUIRE_RETURN_IF_ERROR(st.Run());
    }
    {
      PREPARE(st, conn, "UPDATE customers SET batch_count = batch_count + 1 WHERE id = ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, customer).Run());
    }
    OutcomeEffects effects;
    QUIRE_RETURN_IF_ERROR(
        AddBatchMembers(conn, customer, batch_id, members, priority, 0, now, &effects));
    auto batch = ReadBatchRow(conn, customer, batch_id);
    if (!batch.ok()) return batch.status();
    {
      std::lock_guard<std::mutex> lock(rate_mu_);
      queues_.erase(customer);  // this batch's members join the queue now
    }
    QUIRE_RETURN_IF_ERROR(FillEstimate(conn, &*batch));
    std::vector<StoreEvent> events = {StoreEvent{StoreEvent::Kind::kWorkQueued, 0, 0, ""}};
    for (const Asset& m : members)
      events.push_back(StoreEvent{StoreEvent::Kind::kAssetChanged, customer, m.space, m.id});
    effects.AddTo(&events);
    QUIRE_RETURN_IF_ERROR(CommitWith(tx, events));
    return batch;
  });
}

// estCompletion: the images still ahead of the batch's last one (its own and those of the
// customer's batches before it), divided by the pace at which this customer's images are
// being finished (PaceOf), counted from the batch's latest outcome (so that it does not drift
// between outcomes), and never before its images waiting out a retry can be done.
Status SqlStore::FillEstimate(Connection& conn, Batch* b) {
  if (b->finished_ms) {
    b->est_completion_ms = b->finished_ms;
    return Status::Ok();
  }
  int64_t now = NowMs();
  auto ahead = ImagesAhead(conn, *b, now);
  if (!ahead.ok()) return ahead.status();
  auto pace = PaceOf(conn, *b, now);
  if (!pace.ok()) return pace.status();
  if (pace->per_ms <= 0) return Status::Ok();  // nothing measured yet
  double work = std::max(static_cast<double>(*ahead) - pace->in_flight_done, 0.5);
  double left_ms = work / pace->per_ms;
  int64_t est = std::max(now, pace->anchor_ms + static_cast<int64_t>(left_ms));
  // Images in backoff: the batch cannot end before the last retry has run.
  auto retry_at = ScalarInt(conn,
                            "SELECT COALESCE(MAX(next_attempt_at), 0) FROM jobs WHERE batch = ? "
                            "AND state = 'queued' AND next_attempt_at > ?",
                            {b->id, now});
  if (!retry_at.ok()) return retry_at.status();
  if (*retry_at > 0) est = std::max(est, *retry_at + pace->image_ms);
  b->est_completion_ms = est;
  return Status::Ok();
}

// The pace of the customer's images, from its logged outcomes (the batch's own among them, and
// soon only those: a collection's images tend to be alike):
// - measured, from two outcomes on: those outcomes over the time at least one conversion
//   thread was working for the customer (the union of each image's thread time,
//   IngestOutcome::worker_ms, which includes waiting for a download under way). That is
//   everything at once — image sizes, downloads, conversions, the share of the workers other
//   customers leave it — and the idle minutes between batches are not in it;
// - at the customer's first outcome, estimated: the number of its jobs being converted as it
//   ended over the time it took.
Result<SqlStore::Pace> SqlStore::PaceOf(Connection& conn, const Batch& b, int64_t now) {
  auto customer = CustomerPace(conn, b.customer, now);
  if (!customer.ok()) return customer.status();
  Pace pace = *customer;
  pace.anchor_ms = now;
  // Estimated: the jobs being converted now are half done, on average. Measured: the rate
  // already holds them.
  pace.in_flight_done = pace.measured ? 0 : pace.workers / 2;
  if (pace.per_ms > 0 && b.completed + b.errors >= 1) {
    // Counted from the batch's latest outcome, so that the estimate stands still between
    // outcomes.
    auto last = ScalarInt(conn, "SELECT COALESCE(MAX(finished), 0) FROM ingest_log WHERE batch = ?",
                          {b.id});
    if (!last.ok()) return last.status();
    if (*last > 0 && *last <= now) {
      pace.anchor_ms = *last;
      if (!pace.measured) pace.in_flight_done = (pace.workers - 1) / 2;
    }
  }
  return pace;
}

// Cached for a second: every read of an unstarted batch needs it, and it moves slowly.
Result<SqlStore::Pace> SqlStore::CustomerPace(Connection& conn, int64_t customer, int64_t now) {
  {
    std::lock_guard<std::mutex> lock(rate_mu_);
    auto it = rates_.find(customer);
    if (it != rates_.end() && now >= it->second.first && now - it->second.first < 1000)
      return it->second.second;
  }
  Pace pace;
  // The customer's last 30 outcomes of the last 15 minutes (everyone's when the customer has
  // none yet), newest first.
  for (bool own : {true, false}) {
    PREPARE(st, conn,
            own ? "SELECT finished, duration_ms, busy FROM ingest_log WHERE "
                  "customer = ?1 AND finished >= ?2 ORDER BY finished DESC LIMIT 30"
                : "SELECT finished, duration_ms, busy FROM ingest_log WHERE "
                  "finished >= ?2 AND ?1 = ?1 ORDER BY finished DESC LIMIT 30");
    st.Bind(1, customer).Bind(2, now - 15 * 60 * 1000);
    Status status;
    struct Row {
      int64_t finished, duration_ms, busy;
    };
    std::vector<Row> rows;
    while (st.Step(&status)) rows.push_back({st.Int(0), st.Int(1), st.Int(2)});
    if (!status.ok()) return status;
    if (rows.empty()) continue;
    // Estimated: the median of the converting counts (a count taken now could fall between
    // one job's end and the next one's start; a mean would be pulled down by the tail of the
    // previous batch), over the mean time per image.
    const size_t n = std::min<size_t>(rows.size(), 30);
    double total_ms = 0;
    std::vector<int64_t> busy;
    for (size_t i = 0; i < n; ++i) {
      total_ms += static_cast<double>(rows[i].duration_ms);
      busy.push_back(rows[i].busy);
    }
    std::sort(busy.begin(), busy.end());
    size_t mid = busy.size() / 2;
    double workers = busy.size() % 2 ? static_cast<double>(busy[mid])
                                     : static_cast<double>(busy[mid - 1] + busy[mid]) / 2;
    double image_ms = std::max(1.0, total_ms / static_cast<double>(n));
    workers = std::max(1.0, workers);
    pace.image_ms = static_cast<int64_t>(image_ms);
    pace.per_ms = workers / image_ms;
    pace.workers = workers;
    // Measured: the outcomes over the union of their threads' time.
    if (n >= 2) {
      std::vector<std::pair<int64_t, int64_t>> spans;
      for (size_t i = 0; i < n; ++i)
        spans.push_back(
            {rows[i].finished - std::max<int64_t>(rows[i].duration_ms, 1), rows[i].finished});
      std::sort(spans.begin(), spans.end());
      int64_t covered = 0, open = spans[0].first, close = spans[0].second;
      for (const auto& [from, to] : spans) {
        if (from > close) {
          covered += close - open;
          open = from;
        }
        close = std::max(close, to);
      }
      covered += close - open;
      pace.per_ms = static_cast<double>(n) / static_cast<double>(std::max<int64_t>(covered, 1));
      pace.measured = true;
    }
    break;
  }
  std::lock_guard<std::mutex> lock(rate_mu_);
  if (rates_.size() > 100000) rates_.clear();
  rates_[customer] = {now, pace};
  return pace;
}

// The images of the customer that will be processed before batch `b` is done: the waiting
// members of its unfinished batches on a higher-priority queue, or on the same queue and
// submitted no later (jobs are claimed in submission order within a customer's queue). From
// the customer's unfinished batches — few next to their jobs — read at most once a second and
// then answered by binary search, so that a listing costs the same at any queue length.
Result<int64_t> SqlStore::ImagesAhead(Connection& conn, const Batch& b, int64_t now) {
  std::shared_ptr<const QueueSnapshot> snap;
  {
    std::lock_guard<std::mutex> lock(rate_mu_);
    auto it = queues_.find(b.customer);
    if (it != queues_.end() && now >= it->second->at_ms && now - it->second->at_ms < 1000)
      snap = it->second;  // (a time ahead of now: the clock went back; refresh)
  }
  if (!snap) {
    auto fresh = std::make_shared<QueueSnapshot>();
    fresh->at_ms = now;
    PREPARE(st, conn,
            "SELECT priority, id, count - completed - errors FROM batches WHERE customer = ? "
            "AND finished IS NULL AND superseded = 0 ORDER BY priority DESC, id");
    st.Bind(1, b.customer);
    Status status;
    int64_t sum = 0;
    while (st.Step(&status)) {
      sum += std::max<int64_t>(st.Int(2), 0);
      fresh->entries.push_back({-st.Int(0), st.Int(1), sum});
    }
    if (!status.ok()) return status;
    snap = fresh;
    std::lock_guard<std::mutex> lock(rate_mu_);
    if (queues_.size() > 100000) queues_.clear();
    queues_[b.customer] = snap;
  }
  // Entries are ordered by (−priority, id); the batches before `b` are ahead of it, and so
  // are b's own waiting images — counted from b's row as read now, not from the snapshot: a
  // second-old count of the batch being processed would overstate its work by a second's
  // worth of outcomes.
  QueueSnapshot::Entry key{b.priority ? -1 : 0, b.id, 0};
  auto it = std::lower_bound(snap->entries.begin(), snap->entries.end(), key,
                             [](const QueueSnapshot::Entry& x, const QueueSnapshot::Entry& y) {
                               return std::tie(x.neg_priority, x.batch) <
                                      std::tie(y.neg_priority, y.batch);
                             });
  int64_t before = it == snap->entries.begin() ? 0 : std::prev(it)->cumulative;
  return before + std::max<int64_t>(b.count - b.completed - b.errors, 0);
}

Result<Batch> SqlStore::GetBatch(int64_t customer, int64_t id) {
  auto read = [&](Connection& conn) -> Result<Batch> {
    auto b = ReadBatchRow(conn, customer, id);
    if (!b.ok()) return b;
    QUIRE_RETURN_IF_ERROR(FillEstimate(conn, &*b));
    return b;
  };
  if (dialect_.group_reads) {
    // One read transaction: a single lock cycle for the row and the estimate's queries.
    BEGIN_TX(tx, TxKind::kRead);
    return read(tx.conn());
  }
  // Each statement on its own: BEGIN and COMMIT would be two more round trips to the server.
  ACQUIRE(conn);
  return read(*conn);
}

Result<Page<Batch>> SqlStore::ListBatches(const BatchQuery& q) {
  static const std::map<std::string, std::string> kOrder = {
      {"id", "id"}, {"submitted", "submitted"}, {"finished", "finished"}};
  auto col = kOrder.find(q.order_by);
  if (col == kOrder.end()) return Status::Invalid("cannot order batches by '" + q.order_by + "'");
  std::string where = " WHERE customer = ?1";
  if (q.filter == BatchListFilter::kActive) where += " AND finished IS NULL AND superseded = 0";
  if (q.filter == BatchListFilter::kRecent) where += " AND finished IS NOT NULL AND superseded = 0";
  const char* dir = q.descending ? " DESC" : "";
  // NULLs (unfinished) sort first ascending, last descending, on every backend.
  std::string nulls = q.order_by != "finished" ? "" : q.descending ? " NULLS LAST" : " NULLS FIRST";
  std::string order = " ORDER BY " + col->second + dir + nulls + ", id" + dir;
  BEGIN_TX(tx, TxKind::kRead);
  auto& conn = tx.conn();
  Page<Batch> out;
  {
    // Totals from the customer's counters (kept by triggers): all = batch_count; recent =
    // all − active − superseded. No listing counts rows, however long the backlog.
    PREPARE(st, conn,
            "SELECT c.batch_count, c.superseded_count, c.active_count FROM customers c "
            "WHERE c.id = ?1");
    st.Bind(1, q.customer);
    Status status;
    if (st.Step(&status)) {
      int64_t all = st.Int(0), superseded = st.Int(1), active = st.Int(2);
      out.total = q.filter == BatchListFilter::kAll      ? all
                  : q.filter == BatchListFilter::kActive ? active
                                                         : all - active - superseded;
    }
    if (!status.ok()) return status;
  }
  PREPARE(st, conn,
          std::string("SELECT ") + kBatchCols + " FROM batches" + where + order +
              " LIMIT ?2 OFFSET ?3");
  st.Bind(1, q.customer).Bind(2, q.page.page_size).Bind(3, q.page.Offset());
  Status status;
  while (st.Step(&status)) out.items.push_back(ReadBatch(st));
  if (!status.ok()) return status;
  for (auto& b : out.items) QUIRE_RETURN_IF_ERROR(FillEstimate(conn, &b));
  return out;
}

Result<Page<Asset>> SqlStore::ListBatchAssets(int64_t customer, int64_t batch,
                                              BatchMemberFilter filter, const PageRequest& page) {
  BEGIN_TX(tx, TxKind::kRead);
  auto& conn = tx.conn();
  auto b = ReadBatchRow(conn, customer, batch);
  if (!b.ok()) return b.status();
  // Members whose image was deleted are marked (DeleteAsset), so the total is counted from
  // batch_assets alone: a range of the batch's index, whatever the size of assets.
  std::string members = " WHERE ba.batch = ?1 AND ba.deleted = 0";
  if (filter == BatchMemberFilter::kCompleted) members += " AND ba.state = 'completed'";
  if (filter == BatchMemberFilter::kError) members += " AND ba.state = 'error'";
  std::string join =
      " FROM batch_assets ba JOIN assets a ON a.customer = ba.customer AND a.space = ba.space "
      "AND a.id = ba.asset_id" +
      members;
  Page<Asset> out;
  {
    PREPARE(st, conn, "SELECT COUNT(*) FROM batch_assets ba" + members);
    st.Bind(1, batch);
    Status status;
    if (st.Step(&status)) out.total = st.Int(0);
    if (!status.ok()) return status;
  }
  PREPARE(st, conn,
          std::string("SELECT ") + kAssetCols + ", ba.error" + join +
              " ORDER BY ba.ordinal LIMIT ?2 OFFSET ?3");
  st.Bind(1, batch).Bind(2, page.page_size).Bind(3, page.Offset());
  Status status;
  while (st.Step(&status)) {
    Asset a = ReadAsset(st);
    // An error image shows why it failed in this batch, even if a later batch fixed it.
    if (filter == BatchMemberFilter::kError) a.error = st.Text(kAssetColCount);
    out.items.push_back(std::move(a));
  }
  if (!status.ok()) return status;
  return out;
}

Result<bool> SqlStore::TestBatch(int64_t customer, int64_t id) {
  return Retry([&]() -> Result<bool> {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    auto b = ReadBatchRow(conn, customer, id);
    if (!b.ok()) return b.status();
    auto pointing = ScalarInt(conn, "SELECT COUNT(*) FROM assets WHERE batch = ?", {id});
    if (!pointing.ok()) return pointing.status();
    bool changed = false;
    bool finished_now = false;
    if (*pointing == 0) {
      if (!b->superseded) {
        QUIRE_RETURN_IF_ERROR(MarkSuperseded(conn, id, /*only_if_empty=*/false));
        changed = true;
      }
    } else {
      auto unfinished = ScalarInt(conn,
                                  "SELECT COUNT(*) FROM assets WHERE batch = ? AND "
                                  "(finished IS NULL OR finished < ? OR ingesting = 1)",
                                  {id, b->submitted_ms});
      if (!unfinished.ok()) return unfinished.status();
      if (*unfinished == 0) {
        if (!b->finished_ms) {
          PREPARE(st, conn, "UPDATE batches SET finished = ? WHERE id = ? AND finished IS NULL");
          QUIRE_RETURN_IF_ERROR(st.Bind(1, NowMs()).Bind(2, id).Run());
          changed = true;
          finished_now = true;
        }
        if (b->count != *pointing) {
          auto errors =
              ScalarInt(conn, "SELECT COUNT(*) FROM assets WHERE batch = ? AND error != ''", {id});
          if (!errors.ok()) return errors.status();
          PREPARE(st, conn, "UPDATE batches SET count = ?, errors = ?, completed = ? WHERE id = ?");
          QUIRE_RETURN_IF_ERROR(st.Bind(1, *pointing)
                                    .Bind(2, *errors)
                                    .Bind(3, *pointing - *errors)
                                    .Bind(4, id)
                                    .Run());
          changed = true;
        }
      }
    }
    std::vector<StoreEvent> events;
    if (finished_now) {
      // The counts are final now (set above): batch.finished carries them.
      OutcomeEffects effects;
      QUIRE_RETURN_IF_ERROR(QueueBatchFinished(conn, id, NowMs(), &effects));
      effects.AddTo(&events);
    }
    if (changed)
      events.push_back(
          StoreEvent{StoreEvent::Kind::kOutcomeRecorded, customer, 0, std::to_string(id)});
    QUIRE_RETURN_IF_ERROR(CommitWith(tx, events));
    return changed;
  });
}

Result<Batch> SqlStore::RetryBatch(int64_t customer, int64_t id) {
  return Retry([&]() -> Result<Batch> {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    auto b = ReadBatchRow(conn, customer, id);
    if (!b.ok()) return b.status();
    int64_t now = NowMs();
    std::vector<Asset> retry;
    {
      PREPARE(st, conn,
              std::string("SELECT ") + kAssetCols +
                  " FROM batch_assets ba JOIN assets a ON a.customer = ba.customer AND "
                  "a.space = ba.space AND a.id = ba.asset_id "
                  "WHERE ba.batch = ?1 AND ba.state = 'error' AND a.batch = ?1");
      st.Bind(1, id);
      Status status;
      while (st.Step(&status)) retry.push_back(ReadAsset(st));
      if (!status.ok()) return status;
    }
    for (const Asset& a : retry) {
      {
        PREPARE(st, conn,
                "UPDATE batch_assets SET state = 'waiting', error = '', finished = NULL "
                "WHERE batch = ? AND customer = ? AND space = ? AND asset_id = ?");
        QUIRE_RETURN_IF_ERROR(
            st.Bind(1, id).Bind(2, a.customer).Bind(3, a.space).Bind(4, a.id).Run());
      }
      {
        PREPARE(st, conn,
                "UPDATE assets SET ingesting = 1, error = '', finished = NULL "
                "WHERE customer = ? AND space = ? AND id = ?");
        QUIRE_RETURN_IF_ERROR(st.Bind(1, a.customer).Bind(2, a.space).Bind(3, a.id).Run());
      }
      QUIRE_RETURN_IF_ERROR(InsertJob(conn, a, id, b->priority, now));
    }
    if (!retry.empty()) QUIRE_RETURN_IF_ERROR(EnsureQueueTurn(conn, customer));
    if (!retry.empty()) {
      PREPARE(st, conn, "UPDATE batches SET finished = NULL WHERE id = ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, id).Run());
    }
    QUIRE_RETURN_IF_ERROR(RecomputeBatch(conn, id, now));
    auto out = ReadBatchRow(conn, customer, id);
    if (!out.ok()) return out.status();
    {
      std::lock_guard<std::mutex> lock(rate_mu_);
      queues_.erase(customer);  // this batch's members join the queue now
    }
    QUIRE_RETURN_IF_ERROR(FillEstimate(conn, &*out));
    std::vector<StoreEvent> events;
    if (!retry.empty()) events.push_back(StoreEvent{StoreEvent::Kind::kWorkQueued, 0, 0, ""});
    if (!retry.empty())
      events.push_back(
          StoreEvent{StoreEvent::Kind::kOutcomeRecorded, customer, 0, std::to_string(id)});
    for (const Asset& a : retry)
      events.push_back(StoreEvent{StoreEvent::Kind::kAssetChanged, a.customer, a.space, a.id});
    QUIRE_RETURN_IF_ERROR(CommitWith(tx, events));
    return out;
  });
}

Result<QueueCounts> SqlStore::GetQueueCounts(int64_t customer, bool priority_only) {
  BEGIN_TX(tx, TxKind::kRead);
  auto& conn = tx.conn();
  QueueCounts c;
  // priority >= ?2: with 0 every job counts, with 1 only the priority queue's.
  auto size = ScalarInt(conn, "SELECT COUNT(*) FROM jobs WHERE customer = ? AND priority >= ?",
                        {customer, priority_only ? 1 : 0});
  if (!size.ok()) return size.status();
  c.size = *size;
  PREPARE(st, conn,
          "SELECT COUNT(*), COALESCE(SUM(count - completed - errors), 0) FROM batches "
          "WHERE customer = ? AND priority >= ? AND finished IS NULL AND superseded = 0");
  st.Bind(1, customer).Bind(2, priority_only ? 1 : 0);
  Status status;
  if (st.Step(&status)) {
    c.batches_waiting = st.Int(0);
    c.images_waiting = st.Int(1);
  }
  if (!status.ok()) return status;
  return c;
}

Result<GlobalQueueCounts> SqlStore::GetGlobalQueueCounts() {
  ACQUIRE(conn);
  GlobalQueueCounts c;
  PREPARE(st, *conn, "SELECT priority, COUNT(*) FROM jobs GROUP BY priority");
  Status status;
  while (st.Step(&status)) (st.Int(0) ? c.priority : c.incoming) += st.Int(1);
  if (!status.ok()) return status;
  // Kept exact per customer by triggers (migration 4): no count over the batches.
  auto active = ScalarInt(*conn, "SELECT COALESCE(SUM(active_count), 0) FROM customers", {});
  if (!active.ok()) return active.status();
  c.batches_active = *active;
  return c;
}

Result<Page<Asset>> SqlStore::ListQueuedAssets(int64_t customer, const PageRequest& page) {
  BEGIN_TX(tx, TxKind::kRead);
  auto& conn = tx.conn();
  Page<Asset> out;
  auto total = ScalarInt(conn, "SELECT COUNT(*) FROM jobs WHERE customer = ?", {customer});
  if (!total.ok()) return total.status();
  out.total = *total;
  PREPARE(st, conn,
          std::string("SELECT ") + kAssetCols +
              " FROM jobs j JOIN assets a ON a.customer = j.customer AND a.space = j.space AND "
              "a.id = j.asset_id WHERE j.customer = ? ORDER BY j.priority DESC, "
              "j.next_attempt_at, j.id "
              "LIMIT ? OFFSET ?");
  st.Bind(1, customer).Bind(2, page.page_size).Bind(3, page.Offset());
  Status status;
  while (st.Step(&status)) out.items.push_back(ReadAsset(st));
  if (!status.ok()) return status;
  return out;
}

// ---------------------------------------------------------------- ingest jobs

static Job ReadJob(const Statement& st) {
  Job j;
  j.id = st.Int(0);
  j.customer = st.Int(1);
  j.space = st.Int(2);
  j.asset_id = st.Text(3);
  j.batch = st.Int(4);
  j.priority = st.Int(5) != 0;
  j.attempts = static_cast<int>(st.Int(6));
  j.lease_owner = st.Text(7);
  j.lease_until_ms = st.Int(8);
  j.fence = st.Int(9);
  return j;
}

// Job times (next_attempt_at, lease_until) are wall-clock milliseconds, which every node of a
// cluster can compare. When the clock is stepped back by D (a wrong clock corrected, a VM
// restored), every time written before the step lies D in the future: retries would wait D
// longer and a dead worker's lease would block its image D longer. Claims keep the latest time
// they have seen; finding the clock more than kClockStepMs behind it, one claim (the UPDATE
// of the high-water row decides which, on every backend) moves the pending times back by D.
// Forward steps need nothing: leases end early (the fence rejects a stale outcome) and
// retries come sooner. The high-water row is written at most once a second (a step is
// measured to within that).
constexpr int64_t kClockStepMs = 60'000;

Status SqlStore::NoticeClockStep(Connection& conn, int64_t now, std::string* note) {
  auto high = ScalarInt(conn, "SELECT high_water FROM clock WHERE id = 1", {});
  if (!high.ok()) return high.status();
  if (*high - now > kClockStepMs) {
    int64_t step = *high - now;
    {
      PREPARE(st, conn, "UPDATE clock SET high_water = ? WHERE id = 1 AND high_water > ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, now).Bind(2, now + kClockStepMs).Run());
    }
    if (conn.Changes() == 0) return Status::Ok();  // another claim has just done it
    {
      PREPARE(st, conn,
              "UPDATE jobs SET next_attempt_at = next_attempt_at - ? "
              "WHERE state = 'queued' AND next_attempt_at > ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, step).Bind(2, now).Run());
    }
    int64_t moved = conn.Changes();
    {
      PREPARE(st, conn,
              "UPDATE jobs SET lease_until = lease_until - ? "
              "WHERE state = 'leased' AND lease_until > ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, step).Bind(2, now).Run());
    }
    *note = "the clock went back by " + std::to_string(step / 1000) + " s: moved " +
            std::to_string(moved) + " waiting job(s) and " + std::to_string(conn.Changes()) +
            " lease(s) back by as much";
  } else if (now - *high > 1'000) {
    PREPARE(st, conn, "UPDATE clock SET high_water = ? WHERE id = 1 AND high_water < ?");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, now).Bind(2, now).Run());
  }
  return Status::Ok();
}

Result<std::optional<Job>> SqlStore::ClaimJob(const std::string& owner, int64_t lease_ms) {
  return Retry([&]() -> Result<std::optional<Job>> {
    BEGIN_TX(tx, TxKind::kLocking);
    auto& conn = tx.conn();
    int64_t now = NowMs();
    std::string clock_note;
    QUIRE_RETURN_IF_ERROR(NoticeClockStep(conn, now, &clock_note));
    {
      // A crashed worker's leases expire and become claimable again.
      PREPARE(st, conn,
              "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL "
              "WHERE state = 'leased' AND lease_until < ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, now).Run());
    }
    int64_t job_id = 0, customer = 0;
    for (int prio : {1, 0}) {
      PREPARE(st, conn, dialect_.claim_next);
      st.Bind(1, prio).Bind(2, now);
      Status status;
      if (st.Step(&status)) {
        customer = st.Int(0);
        job_id = st.Int(1);
        break;
      }
      if (!status.ok()) return status;
    }
    if (job_id == 0) {
      QUIRE_RETURN_IF_ERROR(tx.Commit());  // keeps expired leases and a clock step's moves
      if (!clock_note.empty()) spdlog::warn("{}", clock_note);
      return std::optional<Job>();
    }
    {
      PREPARE(st, conn,
              "UPDATE jobs SET state = 'leased', lease_owner = ?, lease_until = ?, "
              "attempts = attempts + 1, fence = fence + 1, converting = 0 WHERE id = ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, owner).Bind(2, now + lease_ms).Bind(3, job_id).Run());
    }
    {
      PREPARE(st, conn,
              "UPDATE queue_turns SET last_turn = (SELECT MAX(last_turn) + 1 FROM queue_turns) "
              "WHERE customer = ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, customer).Run());
    }
    PREPARE(st, conn,
            "SELECT id, customer, space, asset_id, batch, priority, attempts, lease_owner, "
            "lease_until, fence FROM jobs WHERE id = ?");
    st.Bind(1, job_id);
    Status status;
    if (!st.Step(&status)) return status.ok() ? Status::Internal("claimed job vanished") : status;
    Job job = ReadJob(st);
    QUIRE_RETURN_IF_ERROR(tx.Commit());
    if (!clock_note.empty()) spdlog::warn("{}", clock_note);
    return std::optional<Job>(job);
  });
}

Status SqlStore::ExtendLease(const Job& job, int64_t lease_ms) {
  return RenewLease(job, lease_ms, false);
}

Status SqlStore::StartConverting(const Job& job, int64_t lease_ms) {
  return RenewLease(job, lease_ms, true);
}

Status SqlStore::RenewLease(const Job& job, int64_t lease_ms, bool converting) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kLocking);
    PREPARE(st, tx.conn(),
            converting ? "UPDATE jobs SET lease_until = ?, converting = 1 WHERE id = ? AND "
                         "lease_owner = ? AND fence = ? AND state = 'leased'"
                       : "UPDATE jobs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND "
                         "fence = ? AND state = 'leased'");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, NowMs() + lease_ms)
                              .Bind(2, job.id)
                              .Bind(3, job.lease_owner)
                              .Bind(4, job.fence)
                              .Run());
    if (tx.conn().Changes() == 0) return Status::NotFound("lease lost");
    return tx.Commit();
  });
}

// An outcome's writes, in the caller's transaction (the batch's row locked where the dialect
// locks it): the fenced job delete (Conflict when the lease was lost: nothing is written), the
// membership, the image, the batch's counts recomputed, the throughput sample, the event and,
// when this was the batch's last image, its end.
static Status WriteOutcome(Connection& conn, const Job& job, const IngestOutcome& outcome,
                           int64_t now, OutcomeEffects* effects) {
  {
    PREPARE(st, conn,
            "DELETE FROM jobs WHERE id = ? AND lease_owner = ? AND fence = ? AND state = 'leased'");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, job.id).Bind(2, job.lease_owner).Bind(3, job.fence).Run());
    if (conn.Changes() == 0)
      return Status::Conflict("job " + std::to_string(job.id) + " is no longer held by " +
                              job.lease_owner);
  }
  {
    PREPARE(st, conn,
            "UPDATE batch_assets SET state = ?, error = ?, finished = ? WHERE batch = ? AND "
            "customer = ? AND space = ? AND asset_id = ? AND state = 'waiting'");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, outcome.success ? "completed" : "error")
                              .Bind(2, outcome.success ? std::string() : outcome.error)
                              .Bind(3, now)
                              .Bind(4, job.batch)
                              .Bind(5, job.customer)
                              .Bind(6, job.space)
                              .Bind(7, job.asset_id)
                              .Run());
  }
  // Only an outcome that ended a batch member is an event (not one for a member already
  // accounted, e.g. abandoned when the image was deleted).
  const bool accounted = conn.Changes() > 0;
  {
    PREPARE(st, conn,
            "UPDATE assets SET ingesting = CASE WHEN EXISTS (SELECT 1 FROM jobs j WHERE "
            "j.customer = ?1 AND j.space = ?2 AND j.asset_id = ?3) THEN 1 ELSE 0 END, "
            "finished = ?4, error = ?5, "
            "width = CASE WHEN ?6 = 1 THEN ?7 ELSE width END, "
            "height = CASE WHEN ?6 = 1 THEN ?8 ELSE height END, "
            "thumbnails = CASE WHEN ?6 = 1 THEN ?9 ELSE thumbnails END, "
            "duration = CASE WHEN ?6 = 1 THEN ?14 ELSE duration END, "
            "stored_bytes = CASE WHEN ?13 = 1 THEN ?11 ELSE stored_bytes END, "
            "thumbnail_bytes = CASE WHEN ?13 = 1 THEN ?12 ELSE thumbnail_bytes END "
            "WHERE customer = ?1 AND space = ?2 AND id = ?3 AND batch = ?10");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, job.customer)
                              .Bind(2, job.space)
                              .Bind(3, job.asset_id)
                              .Bind(4, now)
                              .Bind(5, outcome.success ? std::string() : outcome.error)
                              .Bind(6, outcome.success)
                              .Bind(7, outcome.width)
                              .Bind(8, outcome.height)
                              .Bind(9, ThumbsToJson(outcome.thumbnails))
                              .Bind(10, job.batch)
                              .Bind(11, outcome.storage ? outcome.storage->bytes : 0)
                              .Bind(12, outcome.storage ? outcome.storage->thumbnail_bytes : 0)
                              .Bind(13, outcome.storage.has_value())
                              .Bind(14, outcome.media_duration_ms)
                              .Run());
  }
  bool finished_now = false;
  QUIRE_RETURN_IF_ERROR(RecomputeBatch(conn, job.batch, now, &finished_now));
  {
    // With how many of the customer's jobs were being converted (this one included; not
    // those only downloaded ahead): the workers it really had, for estCompletion.
    PREPARE(st, conn,
            "INSERT INTO ingest_log (customer, batch, finished, duration_ms, busy) VALUES "
            "(?1, ?2, ?3, ?4, 1 + (SELECT COUNT(*) FROM jobs WHERE customer = ?1 AND "
            "priority IN (0, 1) AND state = 'leased' AND converting = 1))");
    QUIRE_RETURN_IF_ERROR(
        st.Bind(1, job.customer)
            .Bind(2, job.batch)
            .Bind(3, now)
            .Bind(4, outcome.worker_ms > 0 ? outcome.worker_ms : outcome.duration_ms)
            .Run());
  }
  {
    PREPARE(st, conn, "DELETE FROM ingest_log WHERE finished < ?");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, now - 3600 * 1000).Run());
  }
  // Last: the customer's event counter row stays locked only until the commit.
  if (accounted)
    QUIRE_RETURN_IF_ERROR(
        RecordImageEvent(conn, job.customer, job.batch, job.space, job.asset_id, outcome.success,
                         outcome.success ? std::string() : outcome.error, now, effects));
  if (finished_now) QUIRE_RETURN_IF_ERROR(QueueBatchFinished(conn, job.batch, now, effects));
  return Status::Ok();
}

Status SqlStore::RecordOutcome(const Job& job, const IngestOutcome& outcome) {
  return Retry([&]() -> Status {
    // The hottest write: outcomes of one batch queue on the batch's row lock instead of
    // aborting each other as serializable transactions would. Every other writer of the
    // batch's counts is serializable and so fails (and is run again) rather than overwrite
    // what this transaction committed after its snapshot.
    BEGIN_TX(tx, dialect_.lock_batch.empty() ? TxKind::kWrite : TxKind::kLocking);
    auto& conn = tx.conn();
    int64_t now = NowMs();
    if (!dialect_.lock_batch.empty()) {
      PREPARE(st, conn, dialect_.lock_batch);
      QUIRE_RETURN_IF_ERROR(st.Bind(1, job.batch).Run());
    }
    OutcomeEffects effects;
    QUIRE_RETURN_IF_ERROR(WriteOutcome(conn, job, outcome, now, &effects));
    std::vector<StoreEvent> events = {
        StoreEvent{StoreEvent::Kind::kAssetChanged, job.customer, job.space, job.asset_id}};
    effects.AddTo(&events);
    QUIRE_RETURN_IF_ERROR(CommitWith(tx, events));
    std::lock_guard<std::mutex> lock(rate_mu_);
    rates_.erase(job.customer);  // the measured rate just changed
    return Status::Ok();
  });
}

Status SqlStore::SplitComposite(const Job& job, const IngestOutcome& outcome,
                                const std::vector<Asset>& pages) {
  return Retry([&]() -> Status {
    if (pages.empty()) return Status::Invalid("a composite needs at least one page");
    // Locked as an outcome is (the batch's counts change), then the same writes as a POST's
    // members and an outcome, in one transaction: the batch never shows its new count without
    // its pages, nor finishes before they are done.
    BEGIN_TX(tx, dialect_.lock_batch.empty() ? TxKind::kWrite : TxKind::kLocking);
    auto& conn = tx.conn();
    int64_t now = NowMs();
    if (!dialect_.lock_batch.empty()) {
      PREPARE(st, conn, dialect_.lock_batch);
      QUIRE_RETURN_IF_ERROR(st.Bind(1, job.batch).Run());
    }
    {
      // The lease first: a split from a lost lease writes nothing (and so cannot run twice).
      PREPARE(st, conn,
              "SELECT COUNT(*) FROM jobs WHERE id = ? AND lease_owner = ? AND fence = ? AND "
              "state = 'leased'");
      st.Bind(1, job.id).Bind(2, job.lease_owner).Bind(3, job.fence);
      Status status;
      if (!st.Step(&status)) return status.ok() ? Status::Internal("no count") : status;
      if (st.Int(0) == 0)
        return Status::Conflict("job " + std::to_string(job.id) + " is no longer held by " +
                                job.lease_owner);
    }
    int64_t ordinal = 0;
    bool priority = false;
    {
      PREPARE(st, conn,
              "SELECT b.priority, (SELECT COALESCE(MAX(ordinal), -1) + 1 FROM batch_assets a "
              "WHERE a.batch = b.id) FROM batches b WHERE b.id = ?");
      st.Bind(1, job.batch);
      Status status;
      if (!st.Step(&status)) return status.ok() ? Status::NotFound("batch is gone") : status;
      priority = st.Int(0) != 0;
      ordinal = st.Int(1);
    }
    OutcomeEffects effects;
    Status added =
        AddBatchMembers(conn, job.customer, job.batch, pages, priority, ordinal, now, &effects);
    if (added.code() == Code::kInvalid)
      return Status::Invalid("cannot add the pages to batch " + std::to_string(job.batch) + ": " +
                             added.message());
    QUIRE_RETURN_IF_ERROR(added);
    {
      PREPARE(st, conn, "UPDATE batches SET count = count + ? WHERE id = ?");
      QUIRE_RETURN_IF_ERROR(
          st.Bind(1, static_cast<int64_t>(pages.size())).Bind(2, job.batch).Run());
    }
    QUIRE_RETURN_IF_ERROR(WriteOutcome(conn, job, outcome, now, &effects));
    std::vector<StoreEvent> events = {
        StoreEvent{StoreEvent::Kind::kWorkQueued, 0, 0, ""},
        StoreEvent{StoreEvent::Kind::kAssetChanged, job.customer, job.space, job.asset_id}};
    for (const Asset& p : pages)
      events.push_back(StoreEvent{StoreEvent::Kind::kAssetChanged, job.customer, p.space, p.id});
    effects.AddTo(&events);
    QUIRE_RETURN_IF_ERROR(CommitWith(tx, events));
    std::lock_guard<std::mutex> lock(rate_mu_);
    rates_.erase(job.customer);
    queues_.erase(job.customer);  // the pages join the queue now
    return Status::Ok();
  });
}

Status SqlStore::RescheduleJob(const Job& job, int64_t delay_ms, const std::string& last_error) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kLocking);
    const int64_t next_attempt_ms = NowMs() + delay_ms;
    PREPARE(st, tx.conn(),
            "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL, "
            "next_attempt_at = ?, last_error = ? WHERE id = ? AND lease_owner = ? AND fence = ? "
            "AND state = 'leased'");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, next_attempt_ms)
                              .Bind(2, last_error)
                              .Bind(3, job.id)
                              .Bind(4, job.lease_owner)
                              .Bind(5, job.fence)
                              .Run());
    if (tx.conn().Changes() == 0) return Status::Conflict("lease lost");
    return tx.Commit();
  });
}

Status SqlStore::ReleaseJobs(const std::string& owner) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kLocking);
    PREPARE(st, tx.conn(),
            "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL, "
            "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END "
            "WHERE lease_owner = ? AND state = 'leased'");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, owner).Run());
    return CommitWith(tx, {StoreEvent{StoreEvent::Kind::kWorkQueued, 0, 0, ""}});
  });
}

Result<std::vector<std::string>> SqlStore::LeaseOwners() {
  ACQUIRE(conn);
  PREPARE(st, *conn, "SELECT DISTINCT lease_owner FROM jobs WHERE state = 'leased'");
  std::vector<std::string> owners;
  Status status;
  while (st.Step(&status)) owners.push_back(st.Text(0));
  if (!status.ok()) return status;
  return owners;
}

Status SqlStore::ExpireLeases(const std::string& owner) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kLocking);
    PREPARE(st, tx.conn(),
            "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_until = NULL "
            "WHERE lease_owner = ? AND state = 'leased'");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, owner).Run());
    return CommitWith(tx, {StoreEvent{StoreEvent::Kind::kWorkQueued, 0, 0, ""}});
  });
}

// ---------------------------------------------------------------- events and webhooks

namespace {

constexpr const char* kWebhookCols = "id, customer, url, events, secret, created";

Webhook ReadWebhook(const Statement& s) {
  Webhook w;
  w.id = s.Int(0);
  w.customer = s.Int(1);
  w.url = s.Text(2);
  w.events = StringsFromJson(s.Text(3));
  w.secret = s.Text(4);
  w.created_ms = s.Int(5);
  return w;
}

constexpr const char* kDeliveryCols =
    "d.id, d.webhook, d.customer, d.event_id, d.type, d.payload, d.state, d.attempts, "
    "d.next_attempt_at, d.last_status, d.last_error, d.created, d.delivered, d.fence";

WebhookDelivery ReadDelivery(const Statement& s) {
  WebhookDelivery d;
  d.id = s.Int(0);
  d.webhook = s.Int(1);
  d.customer = s.Int(2);
  d.event_id = s.Text(3);
  d.type = s.Text(4);
  d.payload = s.Text(5);
  d.state = s.Text(6);
  d.attempts = static_cast<int>(s.Int(7));
  d.next_attempt_ms = s.Int(8);
  d.last_status = static_cast<int>(s.Int(9));
  d.last_error = s.Text(10);
  d.created_ms = s.Int(11);
  d.delivered_ms = s.OptInt(12);
  d.fence = s.Int(13);
  return d;
}

Result<Webhook> ReadWebhookRow(Connection& conn, int64_t customer, int64_t id) {
  PREPARE(st, conn,
          std::string("SELECT ") + kWebhookCols + " FROM webhooks WHERE customer = ? AND id = ?");
  st.Bind(1, customer).Bind(2, id);
  Status status;
  if (!st.Step(&status)) return status.ok() ? Status::NotFound("webhook not found") : status;
  return ReadWebhook(st);
}

}  // namespace

Result<std::vector<ImageEvent>> SqlStore::ListImageEvents(int64_t customer, int64_t after_seq,
                                                          int limit) {
  ACQUIRE(conn);
  PREPARE(st, *conn,
          "SELECT seq, batch, space, asset_id, state, error, at FROM events "
          "WHERE customer = ? AND seq > ? ORDER BY seq LIMIT ?");
  st.Bind(1, customer).Bind(2, after_seq).Bind(3, static_cast<int64_t>(limit));
  std::vector<ImageEvent> out;
  Status status;
  while (st.Step(&status)) {
    ImageEvent e;
    e.seq = st.Int(0);
    e.customer = customer;
    e.batch = st.OptInt(1);
    e.space = st.Int(2);
    e.asset_id = st.Text(3);
    e.state = st.Text(4);
    e.error = st.Text(5);
    e.at_ms = st.Int(6);
    out.push_back(std::move(e));
  }
  if (!status.ok()) return status;
  return out;
}

Result<int64_t> SqlStore::EventStart(int64_t customer, std::optional<int64_t> batch) {
  ACQUIRE(conn);
  // One statement, so both answers come from the same snapshot: a batch without events yet
  // starts at the customer's latest, and every later event of it is numbered above that.
  PREPARE(st, *conn,
          "SELECT COALESCE((SELECT MIN(seq) - 1 FROM events WHERE customer = ?1 AND batch = ?2), "
          "(SELECT MAX(seq) FROM events WHERE customer = ?1), 0)");
  st.Bind(1, customer).Bind(2, batch.value_or(-1));
  Status status;
  if (!st.Step(&status)) return status.ok() ? Result<int64_t>(int64_t{0}) : status;
  return st.Int(0);
}

Status SqlStore::TrimEvents(int64_t before_ms) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kLocking);
    auto& conn = tx.conn();
    {
      PREPARE(st, conn, "DELETE FROM events WHERE at < ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, before_ms).Run());
    }
    {
      PREPARE(st, conn,
              "DELETE FROM webhook_attempts WHERE delivery IN (SELECT id FROM webhook_deliveries "
              "WHERE state != 'pending' AND created < ?)");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, before_ms).Run());
    }
    {
      PREPARE(st, conn, "DELETE FROM webhook_deliveries WHERE state != 'pending' AND created < ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, before_ms).Run());
    }
    return tx.Commit();
  });
}

Result<Webhook> SqlStore::CreateWebhook(const Webhook& in) {
  return Retry([&]() -> Result<Webhook> {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    Webhook w = in;
    w.created_ms = NowMs();
    {
      PREPARE(st, conn,
              "INSERT INTO webhooks (customer, url, events, secret, created) "
              "VALUES (?, ?, ?, ?, ?) RETURNING id");
      st.Bind(1, w.customer)
          .Bind(2, w.url)
          .Bind(3, ToJson(w.events))
          .Bind(4, w.secret)
          .Bind(5, w.created_ms);
      Status status;
      if (!st.Step(&status)) return status.ok() ? Status::Internal("no webhook id") : status;
      w.id = st.Int(0);
      while (st.Step(&status)) {
      }
      if (!status.ok()) return status;
    }
    QUIRE_RETURN_IF_ERROR(tx.Commit());
    return w;
  });
}

Result<Webhook> SqlStore::GetWebhook(int64_t customer, int64_t id) {
  ACQUIRE(conn);
  return ReadWebhookRow(*conn, customer, id);
}

Result<Page<Webhook>> SqlStore::ListWebhooks(int64_t customer, const PageRequest& page) {
  BEGIN_TX(tx, TxKind::kRead);
  auto& conn = tx.conn();
  Page<Webhook> out;
  auto total = ScalarInt(conn, "SELECT COUNT(*) FROM webhooks WHERE customer = ?", {customer});
  if (!total.ok()) return total.status();
  out.total = *total;
  PREPARE(st, conn,
          std::string("SELECT ") + kWebhookCols +
              " FROM webhooks WHERE customer = ? ORDER BY id LIMIT ? OFFSET ?");
  st.Bind(1, customer).Bind(2, page.page_size).Bind(3, page.Offset());
  Status status;
  while (st.Step(&status)) out.items.push_back(ReadWebhook(st));
  if (!status.ok()) return status;
  return out;
}

Result<Webhook> SqlStore::UpdateWebhook(const Webhook& w) {
  return Retry([&]() -> Result<Webhook> {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    {
      PREPARE(st, conn,
              "UPDATE webhooks SET url = ?, events = ?, secret = ? WHERE customer = ? AND id = ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, w.url)
                                .Bind(2, ToJson(w.events))
                                .Bind(3, w.secret)
                                .Bind(4, w.customer)
                                .Bind(5, w.id)
                                .Run());
      if (conn.Changes() == 0) return Status::NotFound("webhook not found");
    }
    auto out = ReadWebhookRow(conn, w.customer, w.id);
    if (!out.ok()) return out;
    QUIRE_RETURN_IF_ERROR(tx.Commit());
    return out;
  });
}

Status SqlStore::DeleteWebhook(int64_t customer, int64_t id) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    {
      PREPARE(st, conn, "DELETE FROM webhooks WHERE customer = ? AND id = ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, customer).Bind(2, id).Run());
      if (conn.Changes() == 0) return Status::NotFound("webhook not found");
    }
    {
      PREPARE(st, conn,
              "DELETE FROM webhook_attempts WHERE delivery IN "
              "(SELECT id FROM webhook_deliveries WHERE webhook = ?)");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, id).Run());
    }
    PREPARE(st, conn, "DELETE FROM webhook_deliveries WHERE webhook = ?");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, id).Run());
    return tx.Commit();
  });
}

Result<Page<WebhookDelivery>> SqlStore::ListDeliveries(int64_t customer, int64_t webhook,
                                                       const PageRequest& page) {
  BEGIN_TX(tx, TxKind::kRead);
  auto& conn = tx.conn();
  auto hook = ReadWebhookRow(conn, customer, webhook);
  if (!hook.ok()) return hook.status();
  Page<WebhookDelivery> out;
  auto total =
      ScalarInt(conn, "SELECT COUNT(*) FROM webhook_deliveries WHERE webhook = ?", {webhook});
  if (!total.ok()) return total.status();
  out.total = *total;
  PREPARE(st, conn,
          std::string("SELECT ") + kDeliveryCols +
              " FROM webhook_deliveries d WHERE d.webhook = ? ORDER BY d.id DESC LIMIT ? OFFSET ?");
  st.Bind(1, webhook).Bind(2, page.page_size).Bind(3, page.Offset());
  Status status;
  while (st.Step(&status)) out.items.push_back(ReadDelivery(st));
  if (!status.ok()) return status;
  return out;
}

Result<std::vector<DeliveryAttempt>> SqlStore::ListDeliveryAttempts(int64_t delivery) {
  ACQUIRE(conn);
  PREPARE(st, *conn,
          "SELECT attempt, at, status, error, micros FROM webhook_attempts WHERE delivery = ? "
          "ORDER BY attempt");
  st.Bind(1, delivery);
  std::vector<DeliveryAttempt> out;
  Status status;
  while (st.Step(&status)) {
    DeliveryAttempt a;
    a.attempt = static_cast<int>(st.Int(0));
    a.at_ms = st.Int(1);
    a.status = static_cast<int>(st.Int(2));
    a.error = st.Text(3);
    a.micros = st.Int(4);
    out.push_back(std::move(a));
  }
  if (!status.ok()) return status;
  return out;
}

Result<std::optional<WebhookDelivery>> SqlStore::ClaimDelivery(const std::string& owner,
                                                               int64_t lease_ms) {
  return Retry([&]() -> Result<std::optional<WebhookDelivery>> {
    BEGIN_TX(tx, TxKind::kLocking);
    auto& conn = tx.conn();
    int64_t now = NowMs();
    std::vector<int64_t> candidates;
    {
      PREPARE(st, conn,
              "SELECT id FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= ?1 "
              "AND (lease_until IS NULL OR lease_until < ?1) ORDER BY next_attempt_at, id LIMIT 8");
      st.Bind(1, now);
      Status status;
      while (st.Step(&status)) candidates.push_back(st.Int(0));
      if (!status.ok()) return status;
    }
    // Compare-and-set on the lease: of several nodes that saw the same row, one wins (the
    // UPDATE re-reads the row under its lock).
    for (int64_t id : candidates) {
      {
        PREPARE(st, conn,
                "UPDATE webhook_deliveries SET lease_owner = ?1, lease_until = ?2, "
                "fence = fence + 1 WHERE id = ?3 AND state = 'pending' AND "
                "(lease_until IS NULL OR lease_until < ?4)");
        QUIRE_RETURN_IF_ERROR(
            st.Bind(1, owner).Bind(2, now + lease_ms).Bind(3, id).Bind(4, now).Run());
        if (conn.Changes() == 0) continue;
      }
      PREPARE(st, conn,
              std::string("SELECT ") + kDeliveryCols +
                  ", w.url, w.secret FROM webhook_deliveries d JOIN webhooks w ON "
                  "w.id = d.webhook WHERE d.id = ?");
      st.Bind(1, id);
      Status status;
      if (!st.Step(&status)) {
        if (!status.ok()) return status;
        continue;  // its webhook is gone
      }
      WebhookDelivery d = ReadDelivery(st);
      d.url = st.Text(14);
      d.secret = st.Text(15);
      d.lease_owner = owner;
      while (st.Step(&status)) {
      }
      if (!status.ok()) return status;
      QUIRE_RETURN_IF_ERROR(tx.Commit());
      return std::optional<WebhookDelivery>(std::move(d));
    }
    QUIRE_RETURN_IF_ERROR(tx.Commit());
    return std::optional<WebhookDelivery>();
  });
}

Status SqlStore::RecordDeliveryAttempt(const WebhookDelivery& d, const DeliveryAttempt& a,
                                       bool delivered, std::optional<int64_t> next_attempt_ms) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kLocking);
    auto& conn = tx.conn();
    {
      PREPARE(st, conn,
              "UPDATE webhook_deliveries SET attempts = attempts + 1, state = ?1, "
              "next_attempt_at = ?2, last_status = ?3, last_error = ?4, delivered = ?5, "
              "lease_owner = NULL, lease_until = NULL "
              "WHERE id = ?6 AND lease_owner = ?7 AND fence = ?8 AND state = 'pending'");
      const char* state = delivered ? "delivered" : next_attempt_ms ? "pending" : "failed";
      st.Bind(1, state)
          .Bind(2, next_attempt_ms.value_or(a.at_ms))
          .Bind(3, a.status)
          .Bind(4, a.error)
          .Bind(5, delivered ? std::optional<int64_t>(a.at_ms) : std::nullopt)
          .Bind(6, d.id)
          .Bind(7, d.lease_owner)
          .Bind(8, d.fence);
      QUIRE_RETURN_IF_ERROR(st.Run());
      if (conn.Changes() == 0) return Status::Conflict("delivery lease lost");
    }
    PREPARE(st, conn,
            "INSERT INTO webhook_attempts (delivery, attempt, at, status, error, micros) "
            "VALUES (?1, (SELECT attempts FROM webhook_deliveries WHERE id = ?1), ?2, ?3, ?4, ?5)");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, d.id)
                              .Bind(2, a.at_ms)
                              .Bind(3, a.status)
                              .Bind(4, a.error)
                              .Bind(5, a.micros)
                              .Run());
    return tx.Commit();
  });
}

Result<std::optional<int64_t>> SqlStore::NextDeliveryDue() {
  ACQUIRE(conn);
  PREPARE(st, *conn,
          "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > next_attempt_at "
          "THEN lease_until ELSE next_attempt_at END) FROM webhook_deliveries "
          "WHERE state = 'pending'");
  Status status;
  if (!st.Step(&status)) return status.ok() ? Result<std::optional<int64_t>>(std::nullopt) : status;
  return st.OptInt(0);
}

// ---------------------------------------------------------------- storage policies and usage

namespace {

StoragePolicy ReadStoragePolicy(const Statement& s) {
  StoragePolicy p;
  p.id = s.Text(0);
  p.max_images = s.Int(1);
  p.max_bytes = s.Int(2);
  return p;
}

Result<StoragePolicy> ReadStoragePolicyRow(Connection& conn, const std::string& id) {
  PREPARE(st, conn, "SELECT id, max_images, max_bytes FROM storage_policies WHERE id = ?");
  st.Bind(1, id);
  Status status;
  if (!st.Step(&status)) return status.ok() ? Status::NotFound("storage policy not found") : status;
  return ReadStoragePolicy(st);
}

}  // namespace

Result<Page<StoragePolicy>> SqlStore::ListStoragePolicies(const PageRequest& page) {
  BEGIN_TX(tx, TxKind::kRead);
  auto& conn = tx.conn();
  Page<StoragePolicy> out;
  auto total = ScalarInt(conn, "SELECT COUNT(*) FROM storage_policies", {});
  if (!total.ok()) return total.status();
  out.total = *total;
  PREPARE(st, conn,
          "SELECT id, max_images, max_bytes FROM storage_policies ORDER BY id LIMIT ? OFFSET ?");
  st.Bind(1, page.page_size).Bind(2, page.Offset());
  Status status;
  while (st.Step(&status)) out.items.push_back(ReadStoragePolicy(st));
  if (!status.ok()) return status;
  return out;
}

Result<StoragePolicy> SqlStore::GetStoragePolicy(const std::string& id) {
  ACQUIRE(conn);
  return ReadStoragePolicyRow(*conn, id);
}

Result<StoragePolicy> SqlStore::PutStoragePolicy(const StoragePolicy& p, bool* created) {
  return Retry([&]() -> Result<StoragePolicy> {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    auto old = ReadStoragePolicyRow(conn, p.id);
    if (!old.ok() && old.status().code() != Code::kNotFound) return old.status();
    *created = !old.ok();
    PREPARE(st, conn,
            *created ? "INSERT INTO storage_policies (max_images, max_bytes, id) VALUES (?, ?, ?)"
                     : "UPDATE storage_policies SET max_images = ?, max_bytes = ? WHERE id = ?");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, p.max_images).Bind(2, p.max_bytes).Bind(3, p.id).Run());
    QUIRE_RETURN_IF_ERROR(tx.Commit());
    return p;
  });
}

Status SqlStore::DeleteStoragePolicy(const std::string& id) {
  return Retry([&]() -> Status {
    if (id == "default") return Status::Conflict("the default storage policy cannot be deleted");
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    auto old = ReadStoragePolicyRow(conn, id);
    if (!old.ok()) return old.status();
    PREPARE(used, conn, "SELECT COUNT(*) FROM customers WHERE storage_policy = ?");
    used.Bind(1, id);
    Status status;
    if (!used.Step(&status)) return status.ok() ? Status::Internal("no count") : status;
    if (used.Int(0) > 0)
      return Status::Conflict("storage policy '" + id + "' is used by " +
                              std::to_string(used.Int(0)) + " customer(s)");
    PREPARE(st, conn, "DELETE FROM storage_policies WHERE id = ?");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, id).Run());
    return tx.Commit();
  });
}

Status SqlStore::SetCustomerStoragePolicy(int64_t customer, const std::string& policy) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    auto p = ReadStoragePolicyRow(conn, policy);
    if (!p.ok())
      return p.status().code() == Code::kNotFound
                 ? Status::Invalid("storage policy '" + policy + "' does not exist")
                 : p.status();
    PREPARE(st, conn, "UPDATE customers SET storage_policy = ? WHERE id = ?");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, policy).Bind(2, customer).Run());
    if (conn.Changes() == 0) return Status::NotFound("customer not found");
    return tx.Commit();
  });
}

Result<StorageUsage> SqlStore::GetStorageUsage(int64_t customer, std::optional<int64_t> space) {
  BEGIN_TX(tx, TxKind::kRead);
  auto& conn = tx.conn();
  StorageUsage u;
  u.customer = customer;
  u.space = space.value_or(0);
  {
    PREPARE(st, conn, "SELECT storage_policy FROM customers WHERE id = ?");
    st.Bind(1, customer);
    Status status;
    if (!st.Step(&status)) return status.ok() ? Status::NotFound("customer not found") : status;
    u.policy = st.Text(0);
  }
  PREPARE(st, conn,
          std::string("SELECT COUNT(*), COALESCE(SUM(image_count), 0), "
                      "COALESCE(SUM(stored_bytes), 0), COALESCE(SUM(thumbnail_bytes), 0) "
                      "FROM spaces WHERE customer = ?") +
              (space ? " AND id = ?" : ""));
  st.Bind(1, customer);
  if (space) st.Bind(2, *space);
  Status status;
  if (!st.Step(&status)) return status.ok() ? Status::Internal("no usage row") : status;
  if (space && st.Int(0) == 0) return Status::NotFound("space not found");
  u.images = st.Int(1);
  u.bytes = st.Int(2);
  u.thumbnail_bytes = st.Int(3);
  return u;
}

Result<ImageStorage> SqlStore::GetImageStorage(int64_t customer, int64_t space,
                                               const std::string& id) {
  ACQUIRE(conn);
  PREPARE(st, *conn,
          "SELECT stored_bytes, thumbnail_bytes FROM assets WHERE customer = ? AND space = ? "
          "AND id = ?");
  st.Bind(1, customer).Bind(2, space).Bind(3, id);
  Status status;
  if (!st.Step(&status)) return status.ok() ? Status::NotFound("image not found") : status;
  return ImageStorage{st.Int(0), st.Int(1)};
}

// ---------------------------------------------------------------- origin strategies

namespace {

constexpr const char* kStrategyCols =
    "customer, id, regex, strategy, credentials, optimised, ordinal";

OriginStrategy ReadStrategy(const Statement& s) {
  OriginStrategy o;
  o.customer = s.Int(0);
  o.id = s.Text(1);
  o.regex = s.Text(2);
  o.strategy = s.Text(3);
  o.sealed_credentials = s.Text(4);
  o.optimised = s.Int(5) != 0;
  o.order = s.Int(6);
  return o;
}

}  // namespace

Result<std::vector<OriginStrategy>> SqlStore::ListOriginStrategies(int64_t customer) {
  ACQUIRE(conn);
  PREPARE(st, *conn,
          std::string("SELECT ") + kStrategyCols +
              " FROM origin_strategies WHERE customer = ? ORDER BY ordinal, id");
  st.Bind(1, customer);
  std::vector<OriginStrategy> out;
  Status status;
  while (st.Step(&status)) out.push_back(ReadStrategy(st));
  if (!status.ok()) return status;
  return out;
}

Result<OriginStrategy> SqlStore::GetOriginStrategy(int64_t customer, const std::string& id) {
  ACQUIRE(conn);
  PREPARE(st, *conn,
          std::string("SELECT ") + kStrategyCols +
              " FROM origin_strategies WHERE customer = ? AND id = ?");
  st.Bind(1, customer).Bind(2, id);
  Status status;
  if (!st.Step(&status))
    return status.ok() ? Status::NotFound("origin strategy not found") : status;
  return ReadStrategy(st);
}

Status SqlStore::CreateOriginStrategy(const OriginStrategy& o) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kWrite);
    PREPARE(st, tx.conn(),
            "INSERT INTO origin_strategies (customer, id, regex, strategy, credentials, "
            "optimised, ordinal) VALUES (?, ?, ?, ?, ?, ?, ?)");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, o.customer)
                              .Bind(2, o.id)
                              .Bind(3, o.regex)
                              .Bind(4, o.strategy)
                              .Bind(5, o.sealed_credentials)
                              .Bind(6, o.optimised)
                              .Bind(7, o.order)
                              .Run());
    return tx.Commit();
  });
}

Status SqlStore::UpdateOriginStrategy(const OriginStrategy& o) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kWrite);
    PREPARE(st, tx.conn(),
            "UPDATE origin_strategies SET regex = ?, strategy = ?, credentials = ?, "
            "optimised = ?, ordinal = ? WHERE customer = ? AND id = ?");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, o.regex)
                              .Bind(2, o.strategy)
                              .Bind(3, o.sealed_credentials)
                              .Bind(4, o.optimised)
                              .Bind(5, o.order)
                              .Bind(6, o.customer)
                              .Bind(7, o.id)
                              .Run());
    if (tx.conn().Changes() == 0) return Status::NotFound("origin strategy not found");
    return tx.Commit();
  });
}

Status SqlStore::DeleteOriginStrategy(int64_t customer, const std::string& id) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kWrite);
    PREPARE(st, tx.conn(), "DELETE FROM origin_strategies WHERE customer = ? AND id = ?");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, customer).Bind(2, id).Run());
    if (tx.conn().Changes() == 0) return Status::NotFound("origin strategy not found");
    return tx.Commit();
  });
}

// ---------------------------------------------------------------- bulk metadata

Result<Store::AssetEdits> SqlStore::EditAssetsMetadata(int64_t customer, int64_t space,
                                                       const std::vector<std::string>& ids,
                                                       const AssetEdit& edit) {
  return Retry([&]() -> Result<AssetEdits> {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    AssetEdits out;
    std::vector<Asset> edited;
    for (size_t i = 0; i < ids.size(); ++i) {
      auto row = ReadAssetRow(conn, customer, space, ids[i]);
      if (!row.ok()) {
        if (row.status().code() != Code::kNotFound) return row.status();
        out.missing.push_back(ids[i]);
        continue;
      }
      for (std::string& p : edit(i, &*row)) out.problems.push_back(std::move(p));
      edited.push_back(std::move(*row));
    }
    // The transaction rolls back: no image changes when one is missing or an edit is wrong.
    if (!out.missing.empty() || !out.problems.empty()) return out;
    for (const Asset& a : edited) {
      PREPARE(st, conn,
              "UPDATE assets SET tags = ?, roles = ?, string1 = ?, string2 = ?, string3 = ?, "
              "number1 = ?, number2 = ?, number3 = ?, max_unauthorised = ? "
              "WHERE customer = ? AND space = ? AND id = ?");
      QUIRE_RETURN_IF_ERROR(
          BindAssetMetadata(st, 1, a).Bind(10, customer).Bind(11, space).Bind(12, a.id).Run());
      auto row = ReadAssetRow(conn, customer, space, a.id);
      if (!row.ok()) return row.status();
      out.updated.push_back(std::move(*row));
    }
    std::vector<StoreEvent> events;
    for (const Asset& a : out.updated)
      events.push_back(StoreEvent{StoreEvent::Kind::kAssetChanged, a.customer, a.space, a.id});
    QUIRE_RETURN_IF_ERROR(CommitWith(tx, events));
    return out;
  });
}

// ---------------------------------------------------------------- delivery channel policies

namespace {

constexpr const char* kChannelPolicyCols =
    "customer, channel, name, display_name, policy_data, created, modified";

DeliveryChannelPolicy ReadChannelPolicy(const Statement& s) {
  DeliveryChannelPolicy p;
  p.customer = s.Int(0);
  p.channel = s.Text(1);
  p.name = s.Text(2);
  p.display_name = s.Text(3);
  p.policy_data = s.Text(4);
  p.created_ms = s.Int(5);
  p.modified_ms = s.Int(6);
  return p;
}

Result<DeliveryChannelPolicy> ReadChannelPolicyRow(Connection& conn, int64_t customer,
                                                   const std::string& channel,
                                                   const std::string& name) {
  PREPARE(st, conn,
          std::string("SELECT ") + kChannelPolicyCols +
              " FROM delivery_channel_policies WHERE customer = ? AND channel = ? AND name = ?");
  st.Bind(1, customer).Bind(2, channel).Bind(3, name);
  Status status;
  if (!st.Step(&status))
    return status.ok() ? Status::NotFound("delivery channel policy not found") : status;
  return ReadChannelPolicy(st);
}

}  // namespace

Result<std::vector<DeliveryChannelPolicy>> SqlStore::ListChannelPolicies(
    int64_t customer, const std::string& channel) {
  ACQUIRE(conn);
  PREPARE(st, *conn,
          std::string("SELECT ") + kChannelPolicyCols +
              " FROM delivery_channel_policies WHERE customer = ?" +
              (channel.empty() ? "" : " AND channel = ?") + " ORDER BY channel, name");
  st.Bind(1, customer);
  if (!channel.empty()) st.Bind(2, channel);
  std::vector<DeliveryChannelPolicy> out;
  Status status;
  while (st.Step(&status)) out.push_back(ReadChannelPolicy(st));
  if (!status.ok()) return status;
  return out;
}

Result<DeliveryChannelPolicy> SqlStore::GetChannelPolicy(int64_t customer,
                                                         const std::string& channel,
                                                         const std::string& name) {
  ACQUIRE(conn);
  return ReadChannelPolicyRow(*conn, customer, channel, name);
}

Result<DeliveryChannelPolicy> SqlStore::PutChannelPolicy(const DeliveryChannelPolicy& p,
                                                         bool* created) {
  return Retry([&]() -> Result<DeliveryChannelPolicy> {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    auto old = ReadChannelPolicyRow(conn, p.customer, p.channel, p.name);
    if (!old.ok() && old.status().code() != Code::kNotFound) return old.status();
    *created = !old.ok();
    int64_t now = NowMs();
    if (*created) {
      PREPARE(st, conn,
              "INSERT INTO delivery_channel_policies (customer, channel, name, display_name, "
              "policy_data, created, modified) VALUES (?, ?, ?, ?, ?, ?, ?)");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, p.customer)
                                .Bind(2, p.channel)
                                .Bind(3, p.name)
                                .Bind(4, p.display_name)
                                .Bind(5, p.policy_data)
                                .Bind(6, now)
                                .Bind(7, now)
                                .Run());
    } else {
      PREPARE(st, conn,
              "UPDATE delivery_channel_policies SET display_name = ?, policy_data = ?, "
              "modified = ? WHERE customer = ? AND channel = ? AND name = ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, p.display_name)
                                .Bind(2, p.policy_data)
                                .Bind(3, now)
                                .Bind(4, p.customer)
                                .Bind(5, p.channel)
                                .Bind(6, p.name)
                                .Run());
    }
    auto out = ReadChannelPolicyRow(conn, p.customer, p.channel, p.name);
    if (!out.ok()) return out.status();
    QUIRE_RETURN_IF_ERROR(tx.Commit());
    return out;
  });
}

Status SqlStore::DeleteChannelPolicy(int64_t customer, const std::string& channel,
                                     const std::string& name) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kWrite);
    PREPARE(st, tx.conn(),
            "DELETE FROM delivery_channel_policies WHERE customer = ? AND channel = ? AND "
            "name = ?");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, customer).Bind(2, channel).Bind(3, name).Run());
    if (tx.conn().Changes() == 0) return Status::NotFound("delivery channel policy not found");
    return tx.Commit();
  });
}

// ---------------------------------------------------------------- default delivery channels

namespace {

constexpr const char* kDefaultChannelCols = "customer, space, id, media_type, channel, policy";

DefaultDeliveryChannel ReadDefaultChannel(const Statement& s) {
  return DefaultDeliveryChannel{s.Int(0), s.Int(1), s.Text(2), s.Text(3), s.Text(4), s.Text(5)};
}

}  // namespace

Result<std::vector<DefaultDeliveryChannel>> SqlStore::ListDefaultChannels(
    int64_t customer, std::optional<int64_t> space) {
  ACQUIRE(conn);
  PREPARE(st, *conn,
          std::string("SELECT ") + kDefaultChannelCols +
              " FROM default_delivery_channels WHERE customer = ?" +
              (space ? " AND space = ?" : "") + " ORDER BY space, media_type, channel, id");
  st.Bind(1, customer);
  if (space) st.Bind(2, *space);
  std::vector<DefaultDeliveryChannel> out;
  Status status;
  while (st.Step(&status)) out.push_back(ReadDefaultChannel(st));
  if (!status.ok()) return status;
  return out;
}

Result<DefaultDeliveryChannel> SqlStore::GetDefaultChannel(int64_t customer,
                                                           const std::string& id) {
  ACQUIRE(conn);
  PREPARE(st, *conn,
          std::string("SELECT ") + kDefaultChannelCols +
              " FROM default_delivery_channels WHERE customer = ? AND id = ?");
  st.Bind(1, customer).Bind(2, id);
  Status status;
  if (!st.Step(&status))
    return status.ok() ? Status::NotFound("default delivery channel not found") : status;
  return ReadDefaultChannel(st);
}

Status SqlStore::PutDefaultChannel(const DefaultDeliveryChannel& r) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kWrite);
    {
      PREPARE(st, tx.conn(), "DELETE FROM default_delivery_channels WHERE customer = ? AND id = ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, r.customer).Bind(2, r.id).Run());
    }
    PREPARE(st, tx.conn(),
            "INSERT INTO default_delivery_channels (customer, space, id, media_type, channel, "
            "policy) VALUES (?, ?, ?, ?, ?, ?)");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, r.customer)
                              .Bind(2, r.space)
                              .Bind(3, r.id)
                              .Bind(4, r.media_type)
                              .Bind(5, r.channel)
                              .Bind(6, r.policy)
                              .Run());
    return tx.Commit();
  });
}

Status SqlStore::DeleteDefaultChannel(int64_t customer, const std::string& id) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kWrite);
    PREPARE(st, tx.conn(), "DELETE FROM default_delivery_channels WHERE customer = ? AND id = ?");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, customer).Bind(2, id).Run());
    if (tx.conn().Changes() == 0) return Status::NotFound("default delivery channel not found");
    return tx.Commit();
  });
}

// ---------------------------------------------------------------- custom headers

Result<std::vector<CustomHeader>> SqlStore::ListCustomHeaders(int64_t customer) {
  ACQUIRE(conn);
  PREPARE(st, *conn,
          "SELECT customer, id, space, key, value FROM custom_headers WHERE customer = ? "
          "ORDER BY space, id");
  st.Bind(1, customer);
  std::vector<CustomHeader> out;
  Status status;
  while (st.Step(&status))
    out.push_back(CustomHeader{st.Int(0), st.Text(1), st.Int(2), st.Text(3), st.Text(4)});
  if (!status.ok()) return status;
  return out;
}

Status SqlStore::PutCustomHeader(const CustomHeader& h) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kWrite);
    {
      PREPARE(st, tx.conn(), "DELETE FROM custom_headers WHERE customer = ? AND id = ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, h.customer).Bind(2, h.id).Run());
    }
    PREPARE(st, tx.conn(),
            "INSERT INTO custom_headers (customer, id, space, key, value) VALUES (?, ?, ?, ?, ?)");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, h.customer)
                              .Bind(2, h.id)
                              .Bind(3, h.space)
                              .Bind(4, h.key)
                              .Bind(5, h.value)
                              .Run());
    return tx.Commit();
  });
}

Status SqlStore::DeleteCustomHeader(int64_t customer, const std::string& id) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kWrite);
    PREPARE(st, tx.conn(), "DELETE FROM custom_headers WHERE customer = ? AND id = ?");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, customer).Bind(2, id).Run());
    if (tx.conn().Changes() == 0) return Status::NotFound("custom header not found");
    return tx.Commit();
  });
}

// ---------------------------------------------------------------- named queries

namespace {

constexpr const char* kNamedQueryCols = "id, customer, name, is_global, template_text, created";

NamedQuery ReadNamedQuery(const Statement& s) {
  NamedQuery q;
  q.id = s.Text(0);
  q.customer = s.Int(1);
  q.name = s.Text(2);
  q.global = s.Int(3) != 0;
  q.template_text = s.Text(4);
  q.created_ms = s.Int(5);
  return q;
}

Result<NamedQuery> OneNamedQuery(Statement& st) {
  Status status;
  if (!st.Step(&status)) return status.ok() ? Status::NotFound("named query not found") : status;
  return ReadNamedQuery(st);
}

// The WHERE clause and ORDER BY of a selection, with the values to bind in order.
struct SelectionSql {
  std::string from = " FROM assets a";
  std::string where, order;
  std::vector<int64_t> ints;  // bound where the clause has ?I
  std::vector<std::string> texts;
  std::vector<bool> is_text;  // per placeholder, in order
};

// `sqlite`: the statement names the index of its first equality on a metadata field. SQLite
// has no statistics unless someone runs ANALYZE (nothing does on a live server), and without
// them it prefers the index that gives the ORDER BY: for "s1=book, ordered by n1" it walked
// every image of the customer in number1 order (a scan of 1,000,000 to find 500). The
// equality's index (customer, stringN | numberN, space) finds exactly the matches, which are
// then sorted. PostgreSQL plans from its statistics and gets no hint.
SelectionSql BuildSelectionSql(const AssetSelection& sel, bool sqlite) {
  SelectionSql q;
  if (sqlite) {
    std::string index;
    for (int i = 2; i >= 0; --i)
      if (sel.numbers[i]) index = "assets_number" + std::to_string(i + 1);
    for (int i = 2; i >= 0; --i)
      if (sel.strings[i]) index = "assets_string" + std::to_string(i + 1);
    if (!index.empty()) q.from += " INDEXED BY " + index;
  }
  auto add_int = [&](const std::string& clause, int64_t v) {
    q.where += clause;
    q.ints.push_back(v);
    q.is_text.push_back(false);
  };
  auto add_text = [&](const std::string& clause, const std::string& v) {
    q.where += clause;
    q.texts.push_back(v);
    q.is_text.push_back(true);
  };
  add_int(" WHERE a.customer = ?", sel.customer);
  q.where +=
      " AND a.width > 0 AND (a.delivery_channels LIKE '%\"channel\":\"iiif-img\"%' OR "
      "a.delivery_channels LIKE '%\"channel\":\"thumbs\"%')";
  if (sel.space) {
    add_int(" AND a.space = ?", *sel.space);
  } else if (sel.space_name) {
    add_int(" AND a.space = (SELECT id FROM spaces WHERE customer = ?", sel.customer);
    add_text(" AND name = ?)", *sel.space_name);
  }
  static const char* kStringCols[] = {"a.string1", "a.string2", "a.string3"};
  static const char* kNumberCols[] = {"a.number1", "a.number2", "a.number3"};
  for (int i = 0; i < 3; ++i) {
    if (sel.strings[i]) add_text(std::string(" AND ") + kStringCols[i] + " = ?", *sel.strings[i]);
    if (sel.numbers[i]) add_int(std::string(" AND ") + kNumberCols[i] + " = ?", *sel.numbers[i]);
  }
  if (sel.batches) {
    // Padded to a power of two (repeating the last id) so that few statement texts exist.
    std::vector<int64_t> ids = *sel.batches;
    if (ids.empty()) ids.push_back(-1);
    size_t n = 1;
    while (n < ids.size()) n *= 2;
    while (ids.size() < n) ids.push_back(ids.back());
    q.where +=
        " AND (a.customer, a.space, a.id) IN (SELECT customer, space, asset_id FROM "
        "batch_assets WHERE batch IN (";
    for (size_t i = 0; i < ids.size(); ++i) add_int(i ? ", ?" : "?", ids[i]);
    q.where += "))";
  }
  q.order = " ORDER BY ";
  for (const OrderField& f : sel.order)
    q.order += std::string(f.field < 3 ? kStringCols[f.field] : kNumberCols[f.field - 3]) +
               (f.descending ? " DESC, " : ", ");
  q.order += "a.space, a.id";
  return q;
}

// Binds the selection's values from parameter 1 on; returns the next parameter number.
int BindSelection(Statement& st, const SelectionSql& q) {
  size_t ni = 0, nt = 0;
  int p = 1;
  for (bool text : q.is_text) {
    if (text)
      st.Bind(p++, q.texts[nt++]);
    else
      st.Bind(p++, q.ints[ni++]);
  }
  return p;
}

}  // namespace

Result<NamedQuery> SqlStore::CreateNamedQuery(const NamedQuery& in) {
  return Retry([&]() -> Result<NamedQuery> {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    NamedQuery q = in;
    q.created_ms = NowMs();
    PREPARE(st, conn,
            "INSERT INTO named_queries (id, customer, name, is_global, template_text, created) "
            "VALUES (?, ?, ?, ?, ?, ?)");
    Status s = st.Bind(1, q.id)
                   .Bind(2, q.customer)
                   .Bind(3, q.name)
                   .Bind(4, q.global)
                   .Bind(5, q.template_text)
                   .Bind(6, q.created_ms)
                   .Run();
    if (s.code() == Code::kConflict)
      return Status::Conflict("a named query called '" + q.name + "' exists");
    QUIRE_RETURN_IF_ERROR(s);
    QUIRE_RETURN_IF_ERROR(tx.Commit());
    return q;
  });
}

Result<NamedQuery> SqlStore::GetNamedQuery(int64_t customer, const std::string& id) {
  ACQUIRE(conn);
  PREPARE(st, *conn,
          std::string("SELECT ") + kNamedQueryCols +
              " FROM named_queries WHERE id = ? AND (customer = ? OR is_global = 1)");
  st.Bind(1, id).Bind(2, customer);
  return OneNamedQuery(st);
}

Result<NamedQuery> SqlStore::FindNamedQuery(int64_t customer, const std::string& name) {
  ACQUIRE(conn);
  {
    PREPARE(st, *conn,
            std::string("SELECT ") + kNamedQueryCols +
                " FROM named_queries WHERE customer = ? AND name = ?");
    st.Bind(1, customer).Bind(2, name);
    auto own = OneNamedQuery(st);
    if (own.ok() || own.status().code() != Code::kNotFound) return own;
  }
  PREPARE(st, *conn,
          std::string("SELECT ") + kNamedQueryCols +
              " FROM named_queries WHERE is_global = 1 AND name = ? ORDER BY created, id "
              "LIMIT 1");
  st.Bind(1, name);
  return OneNamedQuery(st);
}

Result<Page<NamedQuery>> SqlStore::ListNamedQueries(int64_t customer, const PageRequest& page) {
  BEGIN_TX(tx, TxKind::kRead);
  auto& conn = tx.conn();
  Page<NamedQuery> out;
  auto total = ScalarInt(
      conn, "SELECT COUNT(*) FROM named_queries WHERE customer = ? OR is_global = 1", {customer});
  if (!total.ok()) return total.status();
  out.total = *total;
  PREPARE(st, conn,
          std::string("SELECT ") + kNamedQueryCols +
              " FROM named_queries WHERE customer = ? OR is_global = 1 "
              "ORDER BY name, customer, id LIMIT ? OFFSET ?");
  st.Bind(1, customer).Bind(2, page.page_size).Bind(3, page.Offset());
  Status status;
  while (st.Step(&status)) out.items.push_back(ReadNamedQuery(st));
  if (!status.ok()) return status;
  return out;
}

Result<NamedQuery> SqlStore::UpdateNamedQueryTemplate(int64_t customer, const std::string& id,
                                                      const std::string& template_text) {
  return Retry([&]() -> Result<NamedQuery> {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    {
      PREPARE(st, conn, "UPDATE named_queries SET template_text = ? WHERE customer = ? AND id = ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, template_text).Bind(2, customer).Bind(3, id).Run());
      if (conn.Changes() == 0) return Status::NotFound("named query not found");
    }
    PREPARE(st, conn,
            std::string("SELECT ") + kNamedQueryCols +
                " FROM named_queries WHERE customer = ? AND id = ?");
    st.Bind(1, customer).Bind(2, id);
    auto out = OneNamedQuery(st);
    if (!out.ok()) return out.status();
    QUIRE_RETURN_IF_ERROR(tx.Commit());
    return out;
  });
}

Status SqlStore::DeleteNamedQuery(int64_t customer, const std::string& id) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    PREPARE(st, conn, "DELETE FROM named_queries WHERE customer = ? AND id = ?");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, customer).Bind(2, id).Run());
    if (conn.Changes() == 0) return Status::NotFound("named query not found");
    return tx.Commit();
  });
}

Result<Page<Asset>> SqlStore::SelectAssets(const AssetSelection& sel, int limit) {
  SelectionSql q = BuildSelectionSql(sel, dialect_.name == "sqlite");
  BEGIN_TX(tx, TxKind::kRead);
  auto& conn = tx.conn();
  Page<Asset> out;
  {
    PREPARE(st, conn,
            std::string("SELECT ") + kAssetCols + q.from + q.where + q.order + " LIMIT ?");
    int next = BindSelection(st, q);
    st.Bind(next, static_cast<int64_t>(limit) + 1);
    Status status;
    while (st.Step(&status)) out.items.push_back(ReadAsset(st));
    if (!status.ok()) return status;
  }
  out.total = static_cast<int64_t>(out.items.size());
  if (out.total > limit) {
    out.items.resize(limit);
    PREPARE(st, conn, "SELECT COUNT(*)" + q.from + q.where);
    BindSelection(st, q);
    Status status;
    if (st.Step(&status)) out.total = st.Int(0);
    if (!status.ok()) return status;
  }
  return out;
}

Result<std::string> SqlStore::ExplainSelectAssets(const AssetSelection& sel, int limit) {
  bool sqlite = dialect_.name == "sqlite";
  SelectionSql q = BuildSelectionSql(sel, sqlite);
  ACQUIRE(conn);
  PREPARE(st, *conn,
          std::string(sqlite ? "EXPLAIN QUERY PLAN " : "EXPLAIN ") + "SELECT " + kAssetCols +
              q.from + q.where + q.order + " LIMIT ?");
  int next = BindSelection(st, q);
  st.Bind(next, static_cast<int64_t>(limit) + 1);
  std::string plan;
  Status status;
  while (st.Step(&status)) plan += st.Text(sqlite ? 3 : 0) + "\n";
  if (!status.ok()) return status;
  return plan;
}

// ---------------------------------------------------------------- roles

namespace {

constexpr const char* kRoleCols =
    "customer, name, label, heading, note, confirm_label, logout_label, provider, "
    "session_ttl, created";

Role ReadRole(const Statement& s) {
  Role r;
  r.customer = s.Int(0);
  r.name = s.Text(1);
  r.label = s.Text(2);
  r.heading = s.Text(3);
  r.note = s.Text(4);
  r.confirm_label = s.Text(5);
  r.logout_label = s.Text(6);
  r.provider = s.Text(7);
  r.session_ttl_s = s.Int(8);
  r.created_ms = s.Int(9);
  return r;
}

Result<Role> ReadRoleRow(Connection& conn, int64_t customer, const std::string& name) {
  PREPARE(st, conn,
          std::string("SELECT ") + kRoleCols + " FROM roles WHERE customer = ? AND name = ?");
  st.Bind(1, customer).Bind(2, name);
  Status status;
  if (!st.Step(&status)) return status.ok() ? Status::NotFound("role not found") : status;
  return ReadRole(st);
}

}  // namespace

Result<Role> SqlStore::PutRole(const Role& in, bool* created) {
  return Retry([&]() -> Result<Role> {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    auto old = ReadRoleRow(conn, in.customer, in.name);
    if (!old.ok() && old.status().code() != Code::kNotFound) return old.status();
    *created = !old.ok();
    if (*created) {
      PREPARE(st, conn,
              "INSERT INTO roles (customer, name, label, heading, note, confirm_label, "
              "logout_label, provider, session_ttl, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
              "?)");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, in.customer)
                                .Bind(2, in.name)
                                .Bind(3, in.label)
                                .Bind(4, in.heading)
                                .Bind(5, in.note)
                                .Bind(6, in.confirm_label)
                                .Bind(7, in.logout_label)
                                .Bind(8, in.provider)
                                .Bind(9, in.session_ttl_s)
                                .Bind(10, NowMs())
                                .Run());
    } else {
      PREPARE(st, conn,
              "UPDATE roles SET label = ?, heading = ?, note = ?, confirm_label = ?, "
              "logout_label = ?, provider = ?, session_ttl = ? WHERE customer = ? AND name = ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, in.label)
                                .Bind(2, in.heading)
                                .Bind(3, in.note)
                                .Bind(4, in.confirm_label)
                                .Bind(5, in.logout_label)
                                .Bind(6, in.provider)
                                .Bind(7, in.session_ttl_s)
                                .Bind(8, in.customer)
                                .Bind(9, in.name)
                                .Run());
    }
    auto out = ReadRoleRow(conn, in.customer, in.name);
    if (!out.ok()) return out.status();
    QUIRE_RETURN_IF_ERROR(tx.Commit());
    return out;
  });
}

Result<Role> SqlStore::GetRole(int64_t customer, const std::string& name) {
  ACQUIRE(conn);
  return ReadRoleRow(*conn, customer, name);
}

Result<Page<Role>> SqlStore::ListRoles(int64_t customer, const PageRequest& page) {
  BEGIN_TX(tx, TxKind::kRead);
  auto& conn = tx.conn();
  Page<Role> out;
  auto total = ScalarInt(conn, "SELECT COUNT(*) FROM roles WHERE customer = ?", {customer});
  if (!total.ok()) return total.status();
  out.total = *total;
  PREPARE(st, conn,
          std::string("SELECT ") + kRoleCols +
              " FROM roles WHERE customer = ? ORDER BY name LIMIT ? OFFSET ?");
  st.Bind(1, customer).Bind(2, page.page_size).Bind(3, page.Offset());
  Status status;
  while (st.Step(&status)) out.items.push_back(ReadRole(st));
  if (!status.ok()) return status;
  return out;
}

Status SqlStore::DeleteRole(int64_t customer, const std::string& name) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    PREPARE(st, conn, "DELETE FROM roles WHERE customer = ? AND name = ?");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, customer).Bind(2, name).Run());
    if (conn.Changes() == 0) return Status::NotFound("role not found");
    PREPARE(grants, conn, "DELETE FROM auth_grants WHERE customer = ? AND role = ?");
    QUIRE_RETURN_IF_ERROR(grants.Bind(1, customer).Bind(2, name).Run());
    PREPARE(held, conn,
            "DELETE FROM auth_session_roles WHERE role = ? AND cookie_hash IN "
            "(SELECT cookie_hash FROM auth_sessions WHERE customer = ?)");
    QUIRE_RETURN_IF_ERROR(held.Bind(1, name).Bind(2, customer).Run());
    QUIRE_RETURN_IF_ERROR(DropEmptyAuthSessions(conn, customer));
    return CommitWith(tx, {StoreEvent{StoreEvent::Kind::kAuthSessionsChanged, customer, 0, ""}});
  });
}

// ---------------------------------------------------------------- access grants, auth sessions

namespace {

constexpr const char* kGrantCols =
    "id, customer, role, code_hash, label, created, expires, max_uses, uses";

AuthGrant ReadGrant(const Statement& s) {
  AuthGrant g;
  g.id = s.Text(0);
  g.customer = s.Int(1);
  g.role = s.Text(2);
  g.code_hash = s.Text(3);
  g.label = s.Text(4);
  g.created_ms = s.Int(5);
  g.expires_ms = s.Int(6);
  g.max_uses = s.Int(7);
  g.uses = s.Int(8);
  return g;
}

// Roles a day past their expiry are forgotten (until then a session can still be told
// "expired" rather than "unknown"), and with them sessions left without any.
constexpr int64_t kExpiredRoleKeepMs = 24 * 3600 * 1000;

// Creates the session row when absent, then sets `role` to expire at `expires`.
Status PutSessionRole(Connection& conn, const AuthSession& s, const std::string& role,
                      int64_t expires, const std::string& grant_id, int64_t now) {
  {
    PREPARE(old, conn, "DELETE FROM auth_session_roles WHERE expires <= ?");
    QUIRE_RETURN_IF_ERROR(old.Bind(1, now - kExpiredRoleKeepMs).Run());
    if (conn.Changes() > 0) {
      PREPARE(empty, conn,
              "DELETE FROM auth_sessions WHERE NOT EXISTS (SELECT 1 FROM auth_session_roles r "
              "WHERE r.cookie_hash = auth_sessions.cookie_hash)");
      QUIRE_RETURN_IF_ERROR(empty.Run());
    }
  }
  {
    PREPARE(st, conn,
            "INSERT INTO auth_sessions (cookie_hash, token_hash, customer, created) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (cookie_hash) DO NOTHING");
    QUIRE_RETURN_IF_ERROR(
        st.Bind(1, s.cookie_hash).Bind(2, s.token_hash).Bind(3, s.customer).Bind(4, now).Run());
  }
  PREPARE(st, conn,
          "INSERT INTO auth_session_roles (cookie_hash, role, expires, grant_id) "
          "VALUES (?, ?, ?, ?) ON CONFLICT (cookie_hash, role) DO UPDATE SET "
          "expires = excluded.expires, grant_id = excluded.grant_id");
  return st.Bind(1, s.cookie_hash).Bind(2, role).Bind(3, expires).Bind(4, grant_id).Run();
}

}  // namespace

Status SqlStore::DropEmptyAuthSessions(Connection& conn, int64_t customer) {
  PREPARE(st, conn,
          "DELETE FROM auth_sessions WHERE customer = ? AND NOT EXISTS (SELECT 1 FROM "
          "auth_session_roles r WHERE r.cookie_hash = auth_sessions.cookie_hash)");
  return st.Bind(1, customer).Run();
}

Status SqlStore::CreateAuthGrant(const AuthGrant& g) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    auto role = ReadRoleRow(conn, g.customer, g.role);
    if (!role.ok()) return role.status();
    PREPARE(st, conn,
            std::string("INSERT INTO auth_grants (") + kGrantCols +
                ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)");
    QUIRE_RETURN_IF_ERROR(st.Bind(1, g.id)
                              .Bind(2, g.customer)
                              .Bind(3, g.role)
                              .Bind(4, g.code_hash)
                              .Bind(5, g.label)
                              .Bind(6, g.created_ms)
                              .Bind(7, g.expires_ms)
                              .Bind(8, g.max_uses)
                              .Run());
    return tx.Commit();
  });
}

Result<AuthGrant> SqlStore::GetAuthGrant(int64_t customer, const std::string& role,
                                         const std::string& id) {
  ACQUIRE(conn);
  PREPARE(st, *conn,
          std::string("SELECT ") + kGrantCols +
              " FROM auth_grants WHERE customer = ? AND role = ? AND id = ?");
  st.Bind(1, customer).Bind(2, role).Bind(3, id);
  Status status;
  if (!st.Step(&status)) return status.ok() ? Status::NotFound("grant not found") : status;
  return ReadGrant(st);
}

Result<AuthGrant> SqlStore::FindAuthGrantByCode(const std::string& code_hash) {
  ACQUIRE(conn);
  PREPARE(st, *conn, std::string("SELECT ") + kGrantCols + " FROM auth_grants WHERE code_hash = ?");
  st.Bind(1, code_hash);
  Status status;
  if (!st.Step(&status)) return status.ok() ? Status::NotFound("no such code") : status;
  return ReadGrant(st);
}

Result<Page<AuthGrant>> SqlStore::ListAuthGrants(int64_t customer, const std::string& role,
                                                 const PageRequest& page) {
  BEGIN_TX(tx, TxKind::kRead);
  auto& conn = tx.conn();
  auto exists = ReadRoleRow(conn, customer, role);
  if (!exists.ok()) return exists.status();
  Page<AuthGrant> out;
  {
    PREPARE(count, conn, "SELECT COUNT(*) FROM auth_grants WHERE customer = ? AND role = ?");
    count.Bind(1, customer).Bind(2, role);
    Status status;
    if (count.Step(&status)) out.total = count.Int(0);
    if (!status.ok()) return status;
  }
  PREPARE(st, conn,
          std::string("SELECT ") + kGrantCols +
              " FROM auth_grants WHERE customer = ? AND role = ? ORDER BY created DESC, id "
              "LIMIT ? OFFSET ?");
  st.Bind(1, customer).Bind(2, role).Bind(3, page.page_size).Bind(4, page.Offset());
  Status status;
  while (st.Step(&status)) out.items.push_back(ReadGrant(st));
  if (!status.ok()) return status;
  return out;
}

Status SqlStore::DeleteAuthGrant(int64_t customer, const std::string& role, const std::string& id) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    {
      PREPARE(st, conn, "DELETE FROM auth_grants WHERE customer = ? AND role = ? AND id = ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, customer).Bind(2, role).Bind(3, id).Run());
      if (conn.Changes() == 0) return Status::NotFound("grant not found");
    }
    // Its sessions end whole: every role they hold, not only the one it gave.
    {
      PREPARE(st, conn,
              "DELETE FROM auth_session_roles WHERE cookie_hash IN (SELECT cookie_hash FROM "
              "auth_session_roles WHERE grant_id = ?)");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, id).Run());
    }
    QUIRE_RETURN_IF_ERROR(DropEmptyAuthSessions(conn, customer));
    return CommitWith(tx, {StoreEvent{StoreEvent::Kind::kAuthSessionsChanged, customer, 0, ""}});
  });
}

Result<AuthGrant> SqlStore::RedeemAuthGrant(const std::string& code_hash, int64_t customer,
                                            const AuthSession& session, int64_t now_ms) {
  return Retry([&]() -> Result<AuthGrant> {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    // The use is spent by the UPDATE's own condition, so two redemptions racing for the
    // last use cannot both win.
    {
      PREPARE(st, conn,
              "UPDATE auth_grants SET uses = uses + 1 WHERE code_hash = ? AND (? = 0 OR "
              "customer = ?) AND expires > ? AND uses < max_uses");
      QUIRE_RETURN_IF_ERROR(
          st.Bind(1, code_hash).Bind(2, customer).Bind(3, customer).Bind(4, now_ms).Run());
      if (conn.Changes() == 0) return Status::NotFound("no such code, or it is spent or expired");
    }
    AuthGrant g;
    {
      PREPARE(st, conn,
              std::string("SELECT ") + kGrantCols + " FROM auth_grants WHERE code_hash = ?");
      st.Bind(1, code_hash);
      Status status;
      if (!st.Step(&status)) return status.ok() ? Status::NotFound("grant not found") : status;
      g = ReadGrant(st);
    }
    auto role = ReadRoleRow(conn, g.customer, g.role);
    if (!role.ok()) return role.status();
    AuthSession s = session;
    s.customer = g.customer;
    QUIRE_RETURN_IF_ERROR(SessionOfCustomer(conn, s.cookie_hash, g.customer));
    QUIRE_RETURN_IF_ERROR(
        PutSessionRole(conn, s, g.role, now_ms + role->session_ttl_s * 1000, g.id, now_ms));
    QUIRE_RETURN_IF_ERROR(tx.Commit());
    return g;
  });
}

Status SqlStore::GrantSessionRole(const AuthSession& session, const std::string& role,
                                  int64_t now_ms) {
  return Retry([&]() -> Status {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    auto r = ReadRoleRow(conn, session.customer, role);
    if (!r.ok()) return r.status();
    QUIRE_RETURN_IF_ERROR(SessionOfCustomer(conn, session.cookie_hash, session.customer));
    QUIRE_RETURN_IF_ERROR(
        PutSessionRole(conn, session, role, now_ms + r->session_ttl_s * 1000, "", now_ms));
    return tx.Commit();
  });
}

Result<AuthSession> SqlStore::FindAuthSession(const std::string& cookie_hash,
                                              const std::string& token_hash) {
  if (cookie_hash.empty() == token_hash.empty())
    return Status::Invalid("FindAuthSession: give a cookie hash or a token hash");
  BEGIN_TX(tx, TxKind::kRead);
  auto& conn = tx.conn();
  AuthSession s;
  {
    PREPARE(st, conn,
            cookie_hash.empty()
                ? "SELECT cookie_hash, token_hash, customer, created FROM auth_sessions WHERE "
                  "token_hash = ?"
                : "SELECT cookie_hash, token_hash, customer, created FROM auth_sessions WHERE "
                  "cookie_hash = ?");
    st.Bind(1, cookie_hash.empty() ? token_hash : cookie_hash);
    Status status;
    if (!st.Step(&status)) return status.ok() ? Status::NotFound("no such session") : status;
    s.cookie_hash = st.Text(0);
    s.token_hash = st.Text(1);
    s.customer = st.Int(2);
    s.created_ms = st.Int(3);
  }
  PREPARE(st, conn, "SELECT role, expires FROM auth_session_roles WHERE cookie_hash = ?");
  st.Bind(1, s.cookie_hash);
  Status status;
  while (st.Step(&status)) s.roles[st.Text(0)] = st.Int(1);
  if (!status.ok()) return status;
  return s;
}

Result<int64_t> SqlStore::DropSessionRole(const std::string& cookie_hash, const std::string& role) {
  return Retry([&]() -> Result<int64_t> {
    BEGIN_TX(tx, TxKind::kWrite);
    auto& conn = tx.conn();
    {
      PREPARE(st, conn, "DELETE FROM auth_session_roles WHERE cookie_hash = ? AND role = ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, cookie_hash).Bind(2, role).Run());
    }
    int64_t left = 0;
    {
      PREPARE(st, conn, "SELECT COUNT(*) FROM auth_session_roles WHERE cookie_hash = ?");
      st.Bind(1, cookie_hash);
      Status status;
      if (st.Step(&status)) left = st.Int(0);
      if (!status.ok()) return status;
    }
    if (left == 0) {
      PREPARE(st, conn, "DELETE FROM auth_sessions WHERE cookie_hash = ?");
      QUIRE_RETURN_IF_ERROR(st.Bind(1, cookie_hash).Run());
    }
    QUIRE_RETURN_IF_ERROR(
        CommitWith(tx, {StoreEvent{StoreEvent::Kind::kAuthSessionsChanged, 0, 0, cookie_hash}}));
    return left;
  });
}

// A cookie that already names a session of another customer cannot be reused for this one
// (cookies are per customer, so it would be a forged or confused one).
Status SqlStore::SessionOfCustomer(Connection& conn, const std::string& cookie_hash,
                                   int64_t customer) {
  PREPARE(st, conn, "SELECT customer FROM auth_sessions WHERE cookie_hash = ?");
  st.Bind(1, cookie_hash);
  Status status;
  if (st.Step(&status)) {
    if (st.Int(0) != customer) return Status::Conflict("the session belongs to another customer");
    return Status::Ok();
  }
  return status;
}

}  // namespace quire
