// The ingest engine's scheduler: N threads that claim jobs from the Store with a lease,
// fetch the origin, convert it, and record the outcome through the batch accounting.
// A heartbeat keeps the leases of long jobs alive; a killed process's leases expire and
// other workers claim those jobs again. Transient failures are retried with exponential
// backoff up to `attempts` tries; permanent ones fail at once.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "blob/blob_store.h"
#include "core/secret_box.h"
#include "ingest/origin.h"
#include "ingest/processor.h"
#include "ops/metrics.h"
#include "store/store.h"

namespace quire {

struct IngestSettings {
  int workers = 2;
  int attempts = 5;          // tries per image for transient failures
  int backoff_ms = 2000;     // delay before the 2nd try; doubles each time, capped at 5 min
  int lease_ms = 60000;
  std::string node_id;       // --node-id; part of every lease owner's name when set
  int idle_poll_ms = 500;    // how often an idle worker looks for due retries
  OriginPolicy origin;
  ProcessOptions process;
  // Outcomes, stage timings and origin bytes are counted here when set.
  ops::Metrics* metrics = nullptr;
  // Opens the sealed credentials of basic-http-authentication origin strategies; null: such
  // strategies fail their images ("the server has no --secrets-key-file").
  std::shared_ptr<const SecretBox> secrets = nullptr;
  // Called after every recorded outcome (e.g. to drop delivery caches of that image).
  std::function<void(const Job&)> on_outcome;
};

class IngestWorkers {
 public:
  IngestWorkers(Store& store, BlobStore& blobs, IngestSettings settings);
  ~IngestWorkers();

  void Start();
  // Nudges idle workers: work was queued.
  void Wake();
  // Stops claiming, lets running jobs end, and hands any still-leased job back to the queue.
  void Stop();

 private:
  void RecoverDeadLocalLeases();
  void Run(int index);
  void Heartbeat();
  void Process(const Job& job);
  // The asset's thumbs policy sizes and iiif-img use-original into `process`.
  Status ApplyChannelPolicies(const Asset& asset, ProcessOptions* process);
  // Records the outcome through the store's accounting, then tells on_outcome.
  void Record(const Job& job, const IngestOutcome& outcome);
  // Puts the job back in the queue until at_ms, remembering why.
  void Reschedule(const Job& job, int64_t at_ms, const std::string& error);
  // Runs one store write for a held job until it is accepted, the lease is lost, or stop.
  Status PersistWrite(const Job& job, const char* what, const std::function<Status()>& write);

  Store& store_;
  BlobStore& blobs_;
  IngestSettings settings_;
  std::string owner_prefix_;
  std::vector<std::thread> threads_;
  std::thread heartbeat_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool woken_ = false;
  std::map<int64_t, Job> active_;  // jobs being processed, for the heartbeat
};

}  // namespace quire
