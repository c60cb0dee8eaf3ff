// The embedded default Store: one SQLite file in WAL mode.
#pragma once

#include <memory>
#include <mutex>
#include <unordered_map>
#include <string>

#include "store/sqlite/sqlite_db.h"
#include "store/store.h"

namespace quire {

class SqliteStore : public Store {
 public:
  static Result<std::unique_ptr<SqliteStore>> Open(const std::string& path);

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

  Result<std::optional<Job>> ClaimJob(const std::string& owner, int64_t lease_ms) override;
  Status ExtendLease(const Job& job, int64_t lease_ms) override;
  Status RecordOutcome(const Job& job, const IngestOutcome& outcome) override;
  Status RescheduleJob(const Job& job, int64_t next_attempt_ms,
                       const std::string& last_error) override;
  Status ReleaseJobs(const std::string& owner) override;
  Result<std::vector<std::string>> LeaseOwners() override;
  Status ExpireLeases(const std::string& owner) override;

 private:
  explicit SqliteStore(std::unique_ptr<sqlite::Pool> pool) : pool_(std::move(pool)) {}
  Status FillEstimate(sqlite::Connection& conn, Batch* batch);
  Result<double> IngestRatePerMs(sqlite::Connection& conn, int64_t customer, int64_t now);
  std::unique_ptr<sqlite::Pool> pool_;
  std::mutex rate_mu_;
  std::unordered_map<int64_t, std::pair<int64_t, double>> rates_;  // customer → (at, rate)
};

}  // namespace quire
