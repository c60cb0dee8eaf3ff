// SqlStore: the one implementation of Store — batch accounting, claims, leases, listings —
// written once over the small SQL connection interface (sql_connection.h). A database
// contributes a connection class and a Dialect: its migrations and the few statements that
// differ. sqlite/ and postgres/ hold nothing else.
//
// Isolation: every write that touches batch counts runs in a kWrite (serializable)
// transaction and is run again, whole, when the database aborts it for a serialization race
// or a deadlock — except an ingest outcome, which locks its batch's row first and then runs
// at read committed (Dialect::lock_batch), so that outcomes of one batch wait for each other
// instead of aborting. Lease updates run as kLocking and take the row locks they need.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "store/sql/sql_connection.h"
#include "store/store.h"

namespace quire {

struct Dialect {
  std::string name;  // "sqlite", "postgresql"
  // Migration i (1-based) upgrades schema version i-1 to i.
  std::vector<std::string> migrations;
  // Taken inside the migration transaction so that nodes starting together migrate once;
  // empty when the transaction itself excludes other writers.
  std::string migrate_lock;
  // Returns (customer, job id) of the next claimable job of priority ?1 at time ?2: the
  // customer served longest ago first, then the earliest ready job. Where the database can,
  // it locks that job row and skips rows other claimers hold.
  std::string claim_next;
  // Run after a customer was inserted with an explicit id, so that the id sequence stays
  // ahead of it; empty when ids need no sequence.
  std::string after_explicit_customer_id;
  // Locks batch ?1's row until the transaction ends, so that an outcome can run at read
  // committed; empty: outcomes run serializable (SQLite: one writer at a time anyway).
  std::string lock_batch;
  // Whether a hot read of a few statements (a batch GET) is cheaper inside one transaction
  // (SQLite: one lock cycle) than as separate statements (a server: no BEGIN/COMMIT trips).
  bool group_reads = false;
  // Publishes the events payload ?1 to every node, at commit; empty: events stay in-process.
  std::string notify;
};

class SqlStore : public Store {
 public:
  SqlStore(std::unique_ptr<sql::Pool> pool, Dialect dialect);
  ~SqlStore() override;

  void Subscribe(std::function<void(const StoreEvent&)> listener) override;
  bool EventsFromEveryProcess() const override { return !dialect_.notify.empty(); }
  void StopEvents() override;

  Status Migrate() override;
  Result<int> SchemaVersion() override;

  Result<Customer> CreateCustomer(const Customer& customer) override;
  Result<Customer> GetCustomer(int64_t id) override;
  Result<Customer> GetCustomerByName(const std::string& name) override;
  Result<Page<Customer>> ListCustomers(const PageRequest& page) override;
  Result<Customer> UpdateCustomer(const Customer& customer) override;

  Status CreateKey(const ApiKey& key) override;
  Result<ApiKey> GetKey(const std::string& key) override;
  Result<Page<ApiKey>> ListKeys(int64_t customer, const PageRequest& page) override;
  Status DeleteKey(int64_t customer, const std::string& key) override;

  Status CreateSession(const PortalSession& session) override;
  Result<PortalSession> GetSession(const std::string& token_hash, int64_t now_ms) override;
  Status DeleteSession(const std::string& token_hash, int64_t now_ms) override;

  Result<Space> CreateSpace(const Space& space) override;
  Result<Space> PutSpace(const Space& space, bool* created) override;
  Result<Space> GetSpace(int64_t customer, int64_t id) override;
  Result<Page<Space>> ListSpaces(int64_t customer, const PageRequest& page) override;
  Status DeleteSpace(int64_t customer, int64_t id) override;

  Result<Asset> GetAsset(int64_t customer, int64_t space, const std::string& id) override;
  Result<Page<Asset>> ListAssets(const AssetQuery& query) override;
  Result<Asset> UpdateAssetMetadata(const Asset& asset) override;
  Status DeleteAsset(int64_t customer, int64_t space, const std::string& id) override;

  Result<Batch> CreateBatch(int64_t customer, const std::vector<Asset>& members,
                            bool priority) override;
  Result<Batch> GetBatch(int64_t customer, int64_t id) override;
  Result<Page<Batch>> ListBatches(const BatchQuery& query) override;
  Result<Page<Asset>> ListBatchAssets(int64_t customer, int64_t batch, BatchMemberFilter filter,
                                      const PageRequest& page) override;
  Result<bool> TestBatch(int64_t customer, int64_t batch) override;
  Result<Batch> RetryBatch(int64_t customer, int64_t batch) override;
  Result<QueueCounts> GetQueueCounts(int64_t customer, bool priority_only) override;
  Result<GlobalQueueCounts> GetGlobalQueueCounts() override;
  Result<Page<Asset>> ListQueuedAssets(int64_t customer, const PageRequest& page) override;

  Status CreateUpload(const Upload& upload) override;
  Result<Upload> GetUpload(int64_t customer, const std::string& id) override;
  Result<Page<Upload>> ListUploads(int64_t customer, const PageRequest& page) override;
  Status DeleteUpload(int64_t customer, const std::string& id) override;
  Result<std::vector<Upload>> ExpiredUploads(int64_t now_ms, int limit) override;

  Result<std::optional<Job>> ClaimJob(const std::string& owner, int64_t lease_ms) override;
  Status ExtendLease(const Job& job, int64_t lease_ms) override;
  Status StartConverting(const Job& job, int64_t lease_ms) override;
  Status RecordOutcome(const Job& job, const IngestOutcome& outcome) override;
  Status SplitComposite(const Job& job, const IngestOutcome& outcome,
                        const std::vector<Asset>& pages) override;
  Status RescheduleJob(const Job& job, int64_t delay_ms,
                       const std::string& last_error) override;
  Status ReleaseJobs(const std::string& owner) override;
  Result<std::vector<std::string>> LeaseOwners() override;
  Status ExpireLeases(const std::string& owner) override;

  Result<std::vector<ImageEvent>> ListImageEvents(int64_t customer, int64_t after_seq,
                                                  int limit) override;
  Result<int64_t> EventStart(int64_t customer, std::optional<int64_t> batch) override;
  Status TrimEvents(int64_t before_ms) override;
  Result<Webhook> CreateWebhook(const Webhook& webhook) override;
  Result<Webhook> GetWebhook(int64_t customer, int64_t id) override;
  Result<Page<Webhook>> ListWebhooks(int64_t customer, const PageRequest& page) override;
  Result<Webhook> UpdateWebhook(const Webhook& webhook) override;
  Status DeleteWebhook(int64_t customer, int64_t id) override;
  Result<Page<WebhookDelivery>> ListDeliveries(int64_t customer, int64_t webhook,
                                               const PageRequest& page) override;
  Result<std::vector<DeliveryAttempt>> ListDeliveryAttempts(int64_t delivery) override;
  Result<std::optional<WebhookDelivery>> ClaimDelivery(const std::string& owner,
                                                       int64_t lease_ms) override;
  Status RecordDeliveryAttempt(const WebhookDelivery& delivery, const DeliveryAttempt& attempt,
                               bool delivered, std::optional<int64_t> next_attempt_ms) override;
  Result<std::optional<int64_t>> NextDeliveryDue() override;

  Result<Page<StoragePolicy>> ListStoragePolicies(const PageRequest& page) override;
  Result<StoragePolicy> GetStoragePolicy(const std::string& id) override;
  Result<StoragePolicy> PutStoragePolicy(const StoragePolicy& policy, bool* created) override;
  Status DeleteStoragePolicy(const std::string& id) override;
  Status SetCustomerStoragePolicy(int64_t customer, const std::string& policy) override;
  Result<StorageUsage> GetStorageUsage(int64_t customer, std::optional<int64_t> space) override;
  Result<ImageStorage> GetImageStorage(int64_t customer, int64_t space,
                                       const std::string& id) override;
  Result<std::vector<OriginStrategy>> ListOriginStrategies(int64_t customer) override;
  Result<OriginStrategy> GetOriginStrategy(int64_t customer, const std::string& id) override;
  Status CreateOriginStrategy(const OriginStrategy& strategy) override;
  Status UpdateOriginStrategy(const OriginStrategy& strategy) override;
  Status DeleteOriginStrategy(int64_t customer, const std::string& id) override;
  Result<AssetEdits> EditAssetsMetadata(int64_t customer, int64_t space,
                                        const std::vector<std::string>& ids,
                                        const AssetEdit& edit) override;
  Result<std::vector<DeliveryChannelPolicy>> ListChannelPolicies(
      int64_t customer, const std::string& channel) override;
  Result<DeliveryChannelPolicy> GetChannelPolicy(int64_t customer, const std::string& channel,
                                                 const std::string& name) override;
  Result<DeliveryChannelPolicy> PutChannelPolicy(const DeliveryChannelPolicy& policy,
                                                 bool* created) override;
  Status DeleteChannelPolicy(int64_t customer, const std::string& channel,
                             const std::string& name) override;
  Result<std::vector<DefaultDeliveryChannel>> ListDefaultChannels(
      int64_t customer, std::optional<int64_t> space) override;
  Result<DefaultDeliveryChannel> GetDefaultChannel(int64_t customer,
                                                   const std::string& id) override;
  Status PutDefaultChannel(const DefaultDeliveryChannel& rule) override;
  Status DeleteDefaultChannel(int64_t customer, const std::string& id) override;
  Result<std::vector<CustomHeader>> ListCustomHeaders(int64_t customer) override;
  Status PutCustomHeader(const CustomHeader& header) override;
  Status DeleteCustomHeader(int64_t customer, const std::string& id) override;
  Result<NamedQuery> CreateNamedQuery(const NamedQuery& query) override;
  Result<NamedQuery> GetNamedQuery(int64_t customer, const std::string& id) override;
  Result<NamedQuery> FindNamedQuery(int64_t customer, const std::string& name) override;
  Result<Page<NamedQuery>> ListNamedQueries(int64_t customer, const PageRequest& page) override;
  Result<NamedQuery> UpdateNamedQueryTemplate(int64_t customer, const std::string& id,
                                              const std::string& template_text) override;
  Status DeleteNamedQuery(int64_t customer, const std::string& id) override;
  Result<Page<Asset>> SelectAssets(const AssetSelection& selection, int limit) override;
  Result<std::string> ExplainSelectAssets(const AssetSelection& selection, int limit) override;
  Result<Role> PutRole(const Role& role, bool* created) override;
  Result<Role> GetRole(int64_t customer, const std::string& name) override;
  Result<Page<Role>> ListRoles(int64_t customer, const PageRequest& page) override;
  Status DeleteRole(int64_t customer, const std::string& name) override;
  Status CreateAuthGrant(const AuthGrant& grant) override;
  Result<AuthGrant> GetAuthGrant(int64_t customer, const std::string& role,
                                 const std::string& id) override;
  Result<AuthGrant> FindAuthGrantByCode(const std::string& code_hash) override;
  Result<Page<AuthGrant>> ListAuthGrants(int64_t customer, const std::string& role,
                                         const PageRequest& page) override;
  Status DeleteAuthGrant(int64_t customer, const std::string& role, const std::string& id) override;
  Result<AuthGrant> RedeemAuthGrant(const std::string& code_hash, int64_t customer,
                                    const AuthSession& session, int64_t now_ms) override;
  Status GrantSessionRole(const AuthSession& session, const std::string& role,
                          int64_t now_ms) override;
  Result<AuthSession> FindAuthSession(const std::string& cookie_hash,
                                      const std::string& token_hash) override;
  Result<int64_t> DropSessionRole(const std::string& cookie_hash, const std::string& role) override;

 protected:
  sql::Pool& pool() { return *pool_; }
  const Dialect& dialect() const { return dialect_; }
  // Hands events to the listeners (backends call it with what arrived from the database).
  void Deliver(const std::vector<StoreEvent>& events);
  // Called once, when the first listener subscribes (a backend starts listening then).
  virtual void StartListening() {}
  virtual void StopListening() {}
  // The payload of Dialect::notify: one event per line.
  static std::vector<std::string> EncodeEvents(const std::vector<StoreEvent>& events);
  static std::vector<StoreEvent> DecodeEvents(const std::string& payload);

 private:
  Status FillEstimate(sql::Connection& conn, Batch* batch);
  // Ends the customer's auth sessions that hold no role any more.
  Status DropEmptyAuthSessions(sql::Connection& conn, int64_t customer);
  // Conflict when `cookie_hash` names a session of a customer other than `customer`.
  Status SessionOfCustomer(sql::Connection& conn, const std::string& cookie_hash, int64_t customer);
  // Inside a claim: notices the wall clock stepped back and moves pending job times with it
  // (sets `note` to say so, for the log after commit).
  Status NoticeClockStep(sql::Connection& conn, int64_t now, std::string* note);
  // How fast a batch's images are being finished: images per ms, counted from anchor_ms,
  // and the mean time of one image. per_ms 0: nothing measured.
  struct Pace {
    double per_ms = 0;
    int64_t anchor_ms = 0;
    int64_t image_ms = 0;
    double in_flight_done = 0;  // images' worth of work done at anchor_ms by jobs in flight
    double workers = 0;         // the customer's jobs being converted, on average
    bool measured = false;      // per_ms is the rate outcomes were seen at (else estimated)
  };
  Status RenewLease(const Job& job, int64_t lease_ms, bool converting);
  Result<Pace> PaceOf(sql::Connection& conn, const Batch& b, int64_t now);
  Result<Pace> CustomerPace(sql::Connection& conn, int64_t customer, int64_t now);
  Result<int64_t> ImagesAhead(sql::Connection& conn, const Batch& b, int64_t now);
  // A customer's unfinished batches in claim order, with running sums of waiting images.
  struct QueueSnapshot {
    struct Entry {
      int64_t neg_priority, batch, cumulative;
    };
    int64_t at_ms = 0;
    std::vector<Entry> entries;
  };
  // Publishes `events` inside the transaction, commits, then delivers them in-process when
  // the database does not carry them.
  Status CommitWith(sql::Transaction& tx, const std::vector<StoreEvent>& events);
  std::unique_ptr<sql::Pool> pool_;
  Dialect dialect_;
  std::mutex listeners_mu_;
  std::vector<std::function<void(const StoreEvent&)>> listeners_;
  bool events_stopped_ = false;
  std::mutex rate_mu_;
  std::unordered_map<int64_t, std::pair<int64_t, Pace>> rates_;  // customer → (at, pace)
  std::unordered_map<int64_t, std::shared_ptr<const QueueSnapshot>> queues_;  // by customer
};

}  // namespace quire
