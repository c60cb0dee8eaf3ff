// The ingest engine's scheduler. Prefetcher threads (fetch_concurrency) claim jobs from the
// Store with a lease and download their origins ahead of conversion, within a scratch budget;
// conversion threads (workers) take the downloads in claim order, convert them, and record the
// outcome through the batch accounting. So a CPU worker never waits on a slow origin while
// another image could be converted. Likewise a conversion thread hands the converted image
// (pyramid and thumbnails in scratch) to a store thread, which writes the blobs and records
// the outcome while the conversion thread starts on the next image: on remote storage (S3)
// the uploads overlap the conversions instead of following each one.
// A heartbeat keeps the leases of long jobs alive; a killed process's leases expire and
// other workers claim those jobs again. Transient failures are retried with exponential
// backoff up to `attempts` tries; permanent ones fail at once.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "blob/blob_store.h"
#include "core/secret_box.h"
#include "ingest/origin.h"
#include "ingest/processor.h"
#include "media/av_transcode.h"
#include "media/decode_sandbox.h"
#include "ops/metrics.h"
#include "store/store.h"

namespace quire {

struct IngestSettings {
  int workers = 2;  // conversion threads (--workers)
  // Jobs claimed ahead of the conversion threads — downloading, or downloaded and waiting —
  // at most this many, each with its own download (--fetch-concurrency).
  int fetch_concurrency = 8;
  // Bytes of downloaded origins held at once (in progress, waiting, being converted): a
  // download reserves the size its origin declares before writing (--scratch-bytes). Must be
  // at least origin.max_bytes, so that any one origin fits.
  int64_t scratch_bytes = 4LL << 30;
  int attempts = 5;       // tries per image for transient failures
  int backoff_ms = 2000;  // delay before the 2nd try; doubles each time, capped at 5 min
  int lease_ms = 60000;
  std::string node_id;     // --node-id; part of every lease owner's name when set
  int idle_poll_ms = 500;  // how often an idle worker looks for due retries
  OriginPolicy origin;
  ProcessOptions process;
  // Sources of untrusted formats (sniffed from their bytes) are decoded in a sandboxed child
  // first, and the pipeline reads its intermediate.
  media::DecodeSandboxOptions sandbox;
  media::AvLimits av;  // the iiif-av channel's transcodes (--av-max-duration, --av-time-factor)
  // A PDF image with more pages than this fails whole, before it is split (--pdf-max-pages).
  int pdf_max_pages = 2000;
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
  // Stops claiming, lets running conversions end, abandons downloads, and hands every job
  // not converted (prefetched ones included) back to the queue with its attempt given back.
  void Stop();
  // Scratch bytes reserved by downloads right now (never above settings.scratch_bytes).
  int64_t ScratchHeld() const;

 private:
  void RecoverDeadLocalLeases();
  // A claimed job with its origin downloaded, waiting for a conversion thread.
  struct Fetched {
    Job job;
    Asset asset;
    std::string scratch;  // the downloaded origin; removed once converted
    double fetch_ms = 0;
    int64_t granted = 0;  // scratch bytes reserved for it
    std::chrono::steady_clock::time_point claimed;
    std::chrono::steady_clock::time_point downloaded;
  };
  // A converted job on its way to a store thread: the conversion's result (or the error
  // that ends it), the image's derivatives in scratch, and the clocks its outcome reports.
  struct Converted {
    Fetched f;
    Status st;
    std::optional<ConvertedImage> image;  // image channels: stored by Finish
    int pdf_pages = 0;                    // a PDF image to split into this many pages (by Finish)
    IngestOutcome outcome;
    StageTimings timings;
    std::chrono::steady_clock::time_point began;    // this worker's time for it (worker_ms)
    std::chrono::steady_clock::time_point started;  // its conversion began
  };
  std::string FetcherOwner(int index) const;
  void FetchLoop(int index);
  void ConvertLoop(int index);
  void StoreLoop();
  void Heartbeat();
  // The asset's thumbs policy sizes and iiif-img use-original into `process`.
  Status ApplyChannelPolicies(const Asset& asset, ProcessOptions* process);
  std::optional<Fetched> Download(const Job& job, std::chrono::steady_clock::time_point claimed);
  // The CPU part of c.f: fills c.st, c.image, c.outcome, c.timings. False: the job ends
  // here without an outcome (a graceful stop interrupted it; Stop() hands it back).
  bool Convert(Converted& c);
  // The I/O part: stores what Convert made and the `file` channel's original, then concludes.
  void Finish(Converted& c);
  // The job is no longer held by this process: its download and scratch room go.
  void Release(const Fetched& f);
  // Audio and video: the iiif-av transcode and a video's poster-frame thumbnails.
  Status ConvertAv(const Fetched& f, const ProcessOptions& process, const std::string& prefix,
                   IngestOutcome* outcome, StageTimings* timings);
  // `pages`: a PDF image that succeeded is split into them (Store::SplitComposite) instead of
  // only recording its outcome.
  void Conclude(const Job& job, const Status& st, IngestOutcome* outcome, double fetch_ms,
                const StageTimings& timings, std::chrono::steady_clock::time_point began,
                double work_ms, const std::vector<Asset>* pages = nullptr);
  // The CPU part for a PDF image without a page: its page count, read in the sandbox.
  bool CountPdfPages(Converted& c);
  void InternalError(const Job& job, const std::exception& e);
  // The scratch budget: a download's reservation grows to `bytes` if there is room.
  bool TryReserve(int64_t bytes, int64_t* granted, int64_t* wanted, int64_t* pending,
                  Status* volume);
  void AdjustReservation(int64_t* granted, int64_t bytes);
  // Records the outcome through the store's accounting, then tells on_outcome.
  void Record(const Job& job, const IngestOutcome& outcome);
  // Puts the job back in the queue for delay_ms, remembering why.
  void Reschedule(const Job& job, int64_t delay_ms, const std::string& error);
  // Runs one store write for a held job until it is accepted, the lease is lost, or stop.
  Status PersistWrite(const Job& job, const char* what, const std::function<Status()>& write);

  Store& store_;
  BlobStore& blobs_;
  IngestSettings settings_;
  std::string owner_prefix_;
  std::vector<std::thread> fetchers_;
  std::vector<std::thread> threads_;  // conversion threads
  std::vector<std::thread> storers_;  // store threads, as many as conversion threads
  std::thread heartbeat_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;         // prefetchers: work queued, a slot or room freed; stop
  std::condition_variable ready_cv_;   // conversion threads: a download is ready; stop
  std::condition_variable stored_cv_;  // store threads: a conversion is ready; conversions done
  std::condition_variable room_cv_;    // conversion threads: room in to_store_
  uint64_t wake_generation_ = 0;       // bumped by Wake(): every idle prefetcher looks again
  std::deque<Fetched> ready_;
  // Converted, waiting for a store thread; at most `workers`, so conversions run at most one
  // image ahead of the stores per thread and scratch holds few pyramids.
  std::deque<Converted> to_store_;
  bool conversions_done_ = false;  // Stop(): the conversion threads have ended
  int ahead_ = 0;       // jobs claimed by prefetchers and not yet taken by a conversion thread
  int converting_ = 0;  // taken by a conversion thread and not yet released (stores included)
  int64_t scratch_held_ = 0;
  int64_t unwritten_ = 0;  // bytes that downloads in progress have reserved and not yet written
  std::map<int64_t, Job> active_;  // every held job (downloading, ready, converting): heartbeat
};

}  // namespace quire
