// Store: everything Quire keeps in its database — customers, keys, spaces, assets, batches and
// the ingest queue. One implementation (store/sql/sql_store.h) over two databases: SQLite, the
// embedded default, and PostgreSQL for many nodes; one contract test suite runs on both.
//
// Thread-safe: one Store is shared by every HTTP and ingest thread.
// Every method that changes more than one row does so in ONE transaction: a batch POST writes
// all of its rows or none; an ingest outcome updates the asset, its batch_assets row and the
// batch counts together. Counts are recomputed from rows, never incremented blindly.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/asset.h"
#include "model/auth.h"
#include "model/batch.h"
#include "model/channel_policy.h"
#include "model/custom_header.h"
#include "model/customer.h"
#include "model/named_query.h"
#include "model/origin_strategy.h"
#include "model/paging.h"
#include "model/role.h"
#include "model/session.h"
#include "model/space.h"
#include "model/storage.h"
#include "model/upload.h"
#include "model/webhook.h"

namespace quire {

// Filters and order for image listings (spec §3).
struct AssetQuery {
  int64_t customer = 0;
  std::optional<int64_t> space;
  std::optional<std::string> string1, string2, string3;
  std::optional<int64_t> number1, number2, number3;
  std::string order_by = "created";  // id, created, width, height, string1..3, number1..3
  bool descending = false;
  PageRequest page;
};

struct BatchQuery {
  int64_t customer = 0;
  BatchListFilter filter = BatchListFilter::kAll;
  std::string order_by = "id";  // id, submitted, finished
  bool descending = false;
  PageRequest page;
};

struct QueueCounts {
  int64_t size = 0;             // images waiting or in progress
  int64_t batches_waiting = 0;  // unfinished, not superseded
  int64_t images_waiting = 0;   // Σ count − completed − errors over those batches
};

struct GlobalQueueCounts {
  int64_t incoming = 0;        // waiting images on default queues
  int64_t priority = 0;        // waiting images on priority queues
  int64_t batches_active = 0;  // batches not finished and not superseded, every customer
};

// One unit of ingest work: the latest request to ingest one asset, tied to its batch.
struct Job {
  int64_t id = 0;
  int64_t customer = 0;
  int64_t space = 0;
  std::string asset_id;
  int64_t batch = 0;
  bool priority = false;
  int attempts = 0;  // including the current one once claimed
  std::string lease_owner;
  int64_t lease_until_ms = 0;
  // Fencing token: the number of times the job was claimed (its attempt number, counting
  // attempts handed back at shutdown). A heartbeat, reschedule or outcome must present the
  // token of the current lease; one from a lease that was lost is refused.
  int64_t fence = 0;
};

struct IngestOutcome {
  bool success = false;
  std::string error;  // human message naming the stage, on failure
  int width = 0;
  int height = 0;
  std::vector<ThumbnailSize> thumbnails;
  int64_t media_duration_ms = 0;  // audio/video: the length of the output (Asset::duration_ms)
  // What the image's blobs take once this outcome is recorded (success or not: a failed
  // reingest may leave blobs), for storage usage and quotas.
  // Unset: the recorded figures stay as they were (no blob was looked at).
  std::optional<ImageStorage> storage;
  int64_t duration_ms = 0;  // from the claim to the outcome: the image's own processing
  // The conversion thread's time for this image: from when it was free for it (the end of
  // its previous image, or the image's claim if that came later) to the outcome, so a wait for
  // the download counts and so does the recording. The union of these over the customer's
  // images is the time its work was under way, which estCompletion's pace is measured over.
  // 0: use duration_ms.
  int64_t worker_ms = 0;
};

// A change that other nodes may hold in a cache, or new work. See Store::Subscribe.
struct StoreEvent {
  enum class Kind {
    kWorkQueued,    // jobs became claimable
    kAssetChanged,  // an asset's row changed (metadata, ingest outcome, deletion, re-queue)
    kKeyDeleted,    // an API key was deleted (`id` is the key)
    kResync,        // events may have been missed (the channel was lost): drop every cache
    // `customer`'s event log grew (an image outcome), or (`id` = a batch id) that batch's
    // counts or state changed without one (test, retry): wake its streams.
    kOutcomeRecorded,
    kWebhookQueued,  // webhook deliveries were written to the outbox
    // IIIF Auth sessions lost roles (a logout, a revoked grant, a deleted role): `id` is the
    // session's cookie hash, or empty for every session of `customer`.
    kAuthSessionsChanged,
  };
  Kind kind = Kind::kWorkQueued;
  int64_t customer = 0;
  int64_t space = 0;
  std::string id;
};

class Store {
 public:
  virtual ~Store() = default;

  // Calls `listener` for every event committed by this node or any other node sharing the
  // database: on the committing thread right after the commit (before the change returns),
  // and on PostgreSQL also through LISTEN/NOTIFY (a listener thread; delivered at commit,
  // well within a second) — to every node, the committing one again among them. Listeners
  // must be quick, thread-safe and idempotent (an event twice means what it means once).
  virtual void Subscribe(std::function<void(const StoreEvent&)> listener) = 0;
  // After it returns no listener is called again (call before the listeners' objects go).
  virtual void StopEvents() = 0;
  // True when the changes of every process sharing the database reach the listeners
  // (PostgreSQL's NOTIFY); false on SQLite, where another process's commits (a `quire
  // worker` beside `quire serve`) are not seen. Caches that live until an event need it.
  virtual bool EventsFromEveryProcess() const = 0;

  // Creates or upgrades the schema. Idempotent.
  virtual Status Migrate() = 0;
  virtual Result<int> SchemaVersion() = 0;

  // --- customers and keys
  // `id` 0 assigns the next id. Conflict when the name (or id) exists.
  virtual Result<Customer> CreateCustomer(const Customer& customer) = 0;
  virtual Result<Customer> GetCustomer(int64_t id) = 0;
  virtual Result<Customer> GetCustomerByName(const std::string& name) = 0;
  virtual Result<Page<Customer>> ListCustomers(const PageRequest& page) = 0;
  virtual Result<Customer> UpdateCustomer(const Customer& customer) = 0;

  virtual Status CreateKey(const ApiKey& key) = 0;
  virtual Result<ApiKey> GetKey(const std::string& key) = 0;
  virtual Result<Page<ApiKey>> ListKeys(int64_t customer, const PageRequest& page) = 0;
  virtual Status DeleteKey(int64_t customer, const std::string& key) = 0;

  // --- portal sessions (spec/platform.md §5), shared by every node
  // Also drops the sessions that expired before `session.created_ms`.
  virtual Status CreateSession(const PortalSession& session) = 0;
  // NotFound when absent, expired (`now_ms` ≥ expiry) or its key was deleted.
  virtual Result<PortalSession> GetSession(const std::string& token_hash, int64_t now_ms) = 0;
  // Ends the session (idempotent) and drops every expired one.
  virtual Status DeleteSession(const std::string& token_hash, int64_t now_ms) = 0;

  // --- spaces
  // Assigns the next id of the customer. Conflict when the name is taken.
  virtual Result<Space> CreateSpace(const Space& space) = 0;
  // Creates with the given id or replaces its mutable fields. `*created` says which.
  virtual Result<Space> PutSpace(const Space& space, bool* created) = 0;
  virtual Result<Space> GetSpace(int64_t customer, int64_t id) = 0;
  virtual Result<Page<Space>> ListSpaces(int64_t customer, const PageRequest& page) = 0;
  // Conflict while the space holds images.
  virtual Status DeleteSpace(int64_t customer, int64_t id) = 0;

  // --- assets
  virtual Result<Asset> GetAsset(int64_t customer, int64_t space, const std::string& id) = 0;
  virtual Result<Page<Asset>> ListAssets(const AssetQuery& query) = 0;
  // Changes metadata only (tags, roles, strings, numbers, maxUnauthorised); no reingest.
  virtual Result<Asset> UpdateAssetMetadata(const Asset& asset) = 0;
  // Removes the asset and its queued work; a batch still waiting for it records an error.
  virtual Status DeleteAsset(int64_t customer, int64_t space, const std::string& id) = 0;

  // --- queue and batches
  // All-or-nothing: NotFound-free validation of spaces happens here too (Invalid with the
  // spec's message). Each member is upserted (ingesting, error "", batch = new), an older
  // batch still waiting for it records it as superseded, and one job per member is queued.
  virtual Result<Batch> CreateBatch(int64_t customer, const std::vector<Asset>& members,
                                    bool priority) = 0;
  virtual Result<Batch> GetBatch(int64_t customer, int64_t id) = 0;
  virtual Result<Page<Batch>> ListBatches(const BatchQuery& query) = 0;
  virtual Result<Page<Asset>> ListBatchAssets(int64_t customer, int64_t batch,
                                              BatchMemberFilter filter,
                                              const PageRequest& page) = 0;
  // DLCS "test" semantics (spec §7). Returns whether anything changed.
  virtual Result<bool> TestBatch(int64_t customer, int64_t batch) = 0;
  // Puts the batch's failed members (still pointing at it) back on the queue.
  virtual Result<Batch> RetryBatch(int64_t customer, int64_t batch) = 0;
  // `priority_only`: count only the priority queue's jobs and batches.
  virtual Result<QueueCounts> GetQueueCounts(int64_t customer, bool priority_only = false) = 0;
  virtual Result<GlobalQueueCounts> GetGlobalQueueCounts() = 0;
  // Assets waiting or in progress, in the order they will be processed.
  virtual Result<Page<Asset>> ListQueuedAssets(int64_t customer, const PageRequest& page) = 0;

  // --- uploads (spec/platform.md §2); an asset names one in Asset::upload
  // Conflict when the id exists.
  virtual Status CreateUpload(const Upload& upload) = 0;
  // `used_by` filled. NotFound when absent.
  virtual Result<Upload> GetUpload(int64_t customer, const std::string& id) = 0;
  virtual Result<Page<Upload>> ListUploads(int64_t customer, const PageRequest& page) = 0;
  // Removes the row (the caller removes the blobs after). NotFound when absent; Conflict while
  // an asset's origin names it — checked in the same transaction as the delete.
  virtual Status DeleteUpload(int64_t customer, const std::string& id) = 0;
  // Unused uploads whose expiry is before `now_ms`, oldest first, at most `limit`.
  virtual Result<std::vector<Upload>> ExpiredUploads(int64_t now_ms, int limit) = 0;

  // --- ingest jobs
  // Claims the next job: priority first, then round-robin across customers, skipping jobs
  // in backoff. Expired leases are claimable again. nullopt when nothing is ready.
  virtual Result<std::optional<Job>> ClaimJob(const std::string& owner, int64_t lease_ms) = 0;
  // Extends a held lease. NotFound when the job is gone or no longer held by `owner`.
  virtual Status ExtendLease(const Job& job, int64_t lease_ms) = 0;
  // ExtendLease, and the job is now being converted (its origin downloaded ahead of time
  // until now): estCompletion counts converting jobs as the customer's workers.
  virtual Status StartConverting(const Job& job, int64_t lease_ms) = 0;
  // Records the final outcome of a held job in one transaction (asset, batch_assets row,
  // batch counts, finished once, throughput sample). Conflict when the lease was lost — the
  // outcome is then ignored, so recording twice changes nothing.
  virtual Status RecordOutcome(const Job& job, const IngestOutcome& outcome) = 0;
  // A composite (a PDF sent as an image) split into `pages`, in one transaction: the pages
  // join the job's batch as new members (ids, spaces and metadata as given; superseding
  // waiting rows of the same images elsewhere, a job each, the storage policy judged), the
  // batch's count grows by their number, and the job's own outcome is recorded as by
  // RecordOutcome — so completed + errors == count holds at every commit. Conflict when the
  // lease was lost (nothing written, so a second call changes nothing); Invalid when a page
  // is already a member of the batch; InsufficientStorage as CreateBatch.
  virtual Status SplitComposite(const Job& job, const IngestOutcome& outcome,
                                const std::vector<Asset>& pages) = 0;
  // Transient failure: releases the job to be tried again `delay_ms` from now. Now is the
  // store's clock as the transaction reads it (not the caller's: the write may be retried for
  // a while), so a clock step that another node noticed while this job was being rescheduled
  // cannot leave it waiting for the old clock.
  virtual Status RescheduleJob(const Job& job, int64_t delay_ms,
                               const std::string& last_error) = 0;
  // Hands back every job leased by `owner` (graceful shutdown).
  virtual Status ReleaseJobs(const std::string& owner) = 0;
  // Owners currently holding leases.
  virtual Result<std::vector<std::string>> LeaseOwners() = 0;
  // Ends `owner`'s leases now (it is known to be dead): its jobs are claimable at once, and
  // the interrupted attempt still counts.
  virtual Status ExpireLeases(const std::string& owner) = 0;

  // --- events (live streams) and webhooks
  // Every image outcome recorded for a batch member (RecordOutcome, and a member abandoned by
  // DeleteAsset) appends an ImageEvent to its customer's log in the outcome's transaction.
  // Events of `customer` after position `after_seq`, oldest first, at most `limit`.
  virtual Result<std::vector<ImageEvent>> ListImageEvents(int64_t customer, int64_t after_seq,
                                                          int limit) = 0;
  // Where a stream that has seen nothing starts: for a batch, just before its first event
  // still kept (so the stream replays the batch); for a whole customer (`batch` unset), the
  // latest event (so the stream shows what happens from now on).
  virtual Result<int64_t> EventStart(int64_t customer, std::optional<int64_t> batch) = 0;
  // Removes events recorded before `before_ms`, and finished deliveries created before it.
  virtual Status TrimEvents(int64_t before_ms) = 0;

  virtual Result<Webhook> CreateWebhook(const Webhook& webhook) = 0;
  virtual Result<Webhook> GetWebhook(int64_t customer, int64_t id) = 0;
  virtual Result<Page<Webhook>> ListWebhooks(int64_t customer, const PageRequest& page) = 0;
  // Replaces url, events and secret.
  virtual Result<Webhook> UpdateWebhook(const Webhook& webhook) = 0;
  // Removes the webhook with its deliveries (pending ones are not sent).
  virtual Status DeleteWebhook(int64_t customer, int64_t id) = 0;
  // Deliveries of a webhook, newest first, each with its attempts.
  virtual Result<Page<WebhookDelivery>> ListDeliveries(int64_t customer, int64_t webhook,
                                                       const PageRequest& page) = 0;
  virtual Result<std::vector<DeliveryAttempt>> ListDeliveryAttempts(int64_t delivery) = 0;
  // Claims the next due pending delivery with a lease (only one node sends a row at a time; an
  // expired lease is claimable again). nullopt when none is due.
  virtual Result<std::optional<WebhookDelivery>> ClaimDelivery(const std::string& owner,
                                                               int64_t lease_ms) = 0;
  // Records one attempt of a claimed delivery and ends the lease: `delivered`, or pending
  // again at `next_attempt_ms`, or failed for good when that is unset. Conflict when the
  // lease was lost.
  virtual Status RecordDeliveryAttempt(const WebhookDelivery& delivery,
                                       const DeliveryAttempt& attempt, bool delivered,
                                       std::optional<int64_t> next_attempt_ms) = 0;
  // When the earliest pending delivery becomes due (its retry time, or its lease's end).
  virtual Result<std::optional<int64_t>> NextDeliveryDue() = 0;

  // --- storage policies and usage (DLCS StoragePolicy / CustomerStorage / ImageStorage)
  // Usage is exact at every commit: an outcome's bytes and a delete's go with the asset row
  // (database triggers keep each space's totals), image counts with the space's image_count.
  // CreateBatch refuses (kInsufficientStorage, nothing written) a batch that would take the
  // customer over its policy's image count, or a customer already at its byte maximum.
  virtual Result<Page<StoragePolicy>> ListStoragePolicies(const PageRequest& page) = 0;
  virtual Result<StoragePolicy> GetStoragePolicy(const std::string& id) = 0;
  // Creates or replaces. `*created` says which.
  virtual Result<StoragePolicy> PutStoragePolicy(const StoragePolicy& policy, bool* created) = 0;
  // Conflict for "default" and while a customer uses it.
  virtual Status DeleteStoragePolicy(const std::string& id) = 0;
  // Invalid when the policy does not exist.
  virtual Status SetCustomerStoragePolicy(int64_t customer, const std::string& policy) = 0;
  // The customer's usage (space unset) or one space's (NotFound when it does not exist).
  virtual Result<StorageUsage> GetStorageUsage(int64_t customer, std::optional<int64_t> space) = 0;
  virtual Result<ImageStorage> GetImageStorage(int64_t customer, int64_t space,
                                               const std::string& id) = 0;

  // --- origin strategies (DLCS CustomerOriginStrategy), listed in match order
  virtual Result<std::vector<OriginStrategy>> ListOriginStrategies(int64_t customer) = 0;
  virtual Result<OriginStrategy> GetOriginStrategy(int64_t customer, const std::string& id) = 0;
  virtual Status CreateOriginStrategy(const OriginStrategy& strategy) = 0;
  // Replaces every field but customer and id. NotFound when absent.
  virtual Status UpdateOriginStrategy(const OriginStrategy& strategy) = 0;
  virtual Status DeleteOriginStrategy(int64_t customer, const std::string& id) = 0;

  // --- bulk metadata (PATCH …/spaces/{s}/images): all of them or none. In one write
  // transaction each image `ids[i]` of the space is read, `edit(i, &asset)` changes its metadata
  // fields (those UpdateAssetMetadata writes) and returns what is wrong with the change, and the
  // edited fields are written back. Read and write in one transaction, so a PATCH never writes
  // back a value another PATCH changed in between. Nothing is written when an image does not
  // exist or an edit found a problem; the result says which. `edit` may run more than once (a
  // serialization retry), so it must depend only on its arguments.
  struct AssetEdits {
    std::vector<Asset> updated;         // as stored after the edit; empty unless all were written
    std::vector<std::string> missing;   // ids with no image
    std::vector<std::string> problems;  // what the edits returned, in member order
  };
  using AssetEdit = std::function<std::vector<std::string>(size_t index, Asset* asset)>;
  virtual Result<AssetEdits> EditAssetsMetadata(int64_t customer, int64_t space,
                                                const std::vector<std::string>& ids,
                                                const AssetEdit& edit) = 0;

  // --- a customer's delivery channel policies (the built-in ones are not stored)
  // `channel` empty: every channel's. Ordered by channel, then name.
  virtual Result<std::vector<DeliveryChannelPolicy>> ListChannelPolicies(
      int64_t customer, const std::string& channel) = 0;
  virtual Result<DeliveryChannelPolicy> GetChannelPolicy(int64_t customer,
                                                         const std::string& channel,
                                                         const std::string& name) = 0;
  // Creates (created_ms set now) or replaces display name and data. `*created` says which.
  virtual Result<DeliveryChannelPolicy> PutChannelPolicy(const DeliveryChannelPolicy& policy,
                                                         bool* created) = 0;
  virtual Status DeleteChannelPolicy(int64_t customer, const std::string& channel,
                                     const std::string& name) = 0;

  // --- default delivery channels; `space` unset: every rule of the customer
  virtual Result<std::vector<DefaultDeliveryChannel>> ListDefaultChannels(
      int64_t customer, std::optional<int64_t> space) = 0;
  virtual Result<DefaultDeliveryChannel> GetDefaultChannel(int64_t customer,
                                                           const std::string& id) = 0;
  // Inserts, or replaces media type, channel and policy of the rule with that id.
  virtual Status PutDefaultChannel(const DefaultDeliveryChannel& rule) = 0;
  virtual Status DeleteDefaultChannel(int64_t customer, const std::string& id) = 0;

  // --- custom delivery headers, ordered by space then id
  virtual Result<std::vector<CustomHeader>> ListCustomHeaders(int64_t customer) = 0;
  // Inserts, or replaces space, key and value of the header with that id.
  virtual Status PutCustomHeader(const CustomHeader& header) = 0;
  virtual Status DeleteCustomHeader(int64_t customer, const std::string& id) = 0;
  // --- named queries (spec/presentation-auth.md §3)
  // Assigns created. Conflict when the customer already has a query of that name.
  virtual Result<NamedQuery> CreateNamedQuery(const NamedQuery& query) = 0;
  // `customer`'s own query `id`, or a global one. NotFound otherwise.
  virtual Result<NamedQuery> GetNamedQuery(int64_t customer, const std::string& id) = 0;
  // By name: `customer`'s own, else a global one (the oldest). NotFound otherwise.
  virtual Result<NamedQuery> FindNamedQuery(int64_t customer, const std::string& name) = 0;
  // Own and global queries, by name.
  virtual Result<Page<NamedQuery>> ListNamedQueries(int64_t customer, const PageRequest& page) = 0;
  // Replaces the template of `customer`'s own query. NotFound otherwise.
  virtual Result<NamedQuery> UpdateNamedQueryTemplate(int64_t customer, const std::string& id,
                                                      const std::string& template_text) = 0;
  virtual Status DeleteNamedQuery(int64_t customer, const std::string& id) = 0;
  // The images a selection matches that have been ingested (width set) and are delivered on
  // iiif-img or thumbs, in its order then (space, id): at most `limit` items; `total` is the
  // number matched (counted only when more than `limit` match). Index-backed: the cost
  // follows the matches, not the size of the customer's collection.
  virtual Result<Page<Asset>> SelectAssets(const AssetSelection& selection, int limit) = 0;
  // The database's plan for SelectAssets (EXPLAIN QUERY PLAN / EXPLAIN), one line per row.
  virtual Result<std::string> ExplainSelectAssets(const AssetSelection& selection, int limit) = 0;

  // --- roles (spec/presentation-auth.md §5.2)
  // Creates or replaces (label, texts, provider, TTL); `*created` says which.
  virtual Result<Role> PutRole(const Role& role, bool* created) = 0;
  virtual Result<Role> GetRole(int64_t customer, const std::string& name) = 0;
  virtual Result<Page<Role>> ListRoles(int64_t customer, const PageRequest& page) = 0;
  // Also ends the role's grants and drops it from every session.
  virtual Status DeleteRole(int64_t customer, const std::string& name) = 0;

  // --- access grants and auth sessions (spec/presentation-auth.md §5.2, §5.3)
  // Inserts a grant of an existing role (NotFound when the role is not). Conflict on a
  // duplicate code hash.
  virtual Status CreateAuthGrant(const AuthGrant& grant) = 0;
  virtual Result<AuthGrant> GetAuthGrant(int64_t customer, const std::string& role,
                                         const std::string& id) = 0;
  // The grant whose code hashes to `code_hash`, spent or not. NotFound when there is none.
  virtual Result<AuthGrant> FindAuthGrantByCode(const std::string& code_hash) = 0;
  // A role's grants, newest first.
  virtual Result<Page<AuthGrant>> ListAuthGrants(int64_t customer, const std::string& role,
                                                 const PageRequest& page) = 0;
  // Revokes the grant and ends every session that holds a role through it.
  virtual Status DeleteAuthGrant(int64_t customer, const std::string& role,
                                 const std::string& id) = 0;
  // Spends one use of the grant whose code hashes to `code_hash` (of `customer` when
  // customer > 0) and adds its role to the session `session` (created when absent, with its
  // cookie hash, token hash and customer), expiring at now + the role's sessionTtl. One
  // transaction. NotFound: no such code, or it is expired or spent (nothing changes then).
  // Returns the grant as it is after the use.
  virtual Result<AuthGrant> RedeemAuthGrant(const std::string& code_hash, int64_t customer,
                                            const AuthSession& session, int64_t now_ms) = 0;
  // Adds `role` (which must exist: NotFound) to the session, created when absent; the role
  // expires at now + its sessionTtl (a clickthrough's consent).
  virtual Status GrantSessionRole(const AuthSession& session, const std::string& role,
                                  int64_t now_ms) = 0;
  // By cookie hash or by token hash (exactly one non-empty). NotFound when there is none.
  virtual Result<AuthSession> FindAuthSession(const std::string& cookie_hash,
                                              const std::string& token_hash) = 0;
  // Drops `role` from the session; the last role gone ends the session. Returns the roles
  // left (0: the session is gone).
  virtual Result<int64_t> DropSessionRole(const std::string& cookie_hash,
                                          const std::string& role) = 0;
};

struct StoreOptions {
  int pool_size = 0;                 // connections; 0 = the backend's default
  std::string node_id;               // names this process in logs and in the database's client list
  int64_t statement_timeout_ms = 0;  // PostgreSQL: a longer statement fails (503); 0 = 30 s
};

// Opens the store named by a --database URL: "sqlite:PATH" (the file is created if needed)
// or "postgresql://user:pw@host:port/db?…" (a libpq URL). Does not migrate.
Result<std::unique_ptr<Store>> OpenStore(const std::string& url, const StoreOptions& options = {});

}  // namespace quire
