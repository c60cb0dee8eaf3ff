#include "ingest/ingest_workers.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "blob/free_space.h"
#include "blob/scratch_space.h"
#include "core/secrets.h"
#include "core/time_util.h"

namespace quire {

namespace {

double MsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

IngestWorkers::IngestWorkers(Store& store, BlobStore& blobs, IngestSettings settings)
    : store_(store), blobs_(blobs), settings_(std::move(settings)) {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  owner_prefix_ = std::string(host) + ":" + std::to_string(getpid()) + ":" + RandomHex(4);
  if (!settings_.node_id.empty()) owner_prefix_ += "@" + settings_.node_id;
}

IngestWorkers::~IngestWorkers() { Stop(); }

// Leases held by processes of this host that no longer exist (a crash or SIGKILL) would
// otherwise block their images until the lease runs out; end them now. Owners are
// "host:pid:nonce/worker"; a live or unknown pid is left to the lease timeout.
void IngestWorkers::RecoverDeadLocalLeases() {
  auto owners = store_.LeaseOwners();
  if (!owners.ok()) {
    spdlog::warn("could not list lease owners: {}", owners.status().message());
    return;
  }
  std::string host = owner_prefix_.substr(0, owner_prefix_.find(':') + 1);
  for (const std::string& owner : *owners) {
    if (owner.rfind(host, 0) != 0) continue;
    size_t pid_end = owner.find(':', host.size());
    if (pid_end == std::string::npos) continue;
    pid_t pid =
        static_cast<pid_t>(std::atol(owner.substr(host.size(), pid_end - host.size()).c_str()));
    if (pid <= 0 || pid == getpid()) continue;
    if (kill(pid, 0) == 0 || errno != ESRCH) continue;
    Status st = store_.ExpireLeases(owner);
    if (st.ok())
      spdlog::info("took back the ingest jobs of {}, which is no longer running", owner);
    else
      spdlog::warn("could not take back the jobs of {}: {}", owner, st.message());
  }
}

void IngestWorkers::Start() {
  if (settings_.workers <= 0) return;
  RecoverDeadLocalLeases();
  const int fetchers = std::max(1, settings_.fetch_concurrency);
  for (int i = 0; i < fetchers; ++i) fetchers_.emplace_back([this, i] { FetchLoop(i); });
  for (int i = 0; i < settings_.workers; ++i) threads_.emplace_back([this, i] { ConvertLoop(i); });
  for (int i = 0; i < settings_.workers; ++i) storers_.emplace_back([this] { StoreLoop(); });
  heartbeat_ = std::thread([this] { Heartbeat(); });
}

void IngestWorkers::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++wake_generation_;
  }
  cv_.notify_all();
}

void IngestWorkers::Stop() {
  {
    // Under the lock: a thread between its predicate check and its wait would otherwise miss
    // the notification and sleep a whole poll or heartbeat period.
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_.exchange(true)) return;
  }
  cv_.notify_all();
  ready_cv_.notify_all();
  for (auto& t : fetchers_) t.join();
  for (auto& t : threads_) t.join();
  // The conversions that ran to their end are stored and recorded before the process goes:
  // the store threads drain to_store_, then end.
  {
    std::lock_guard<std::mutex> lock(mu_);
    conversions_done_ = true;
  }
  stored_cv_.notify_all();
  for (auto& t : storers_) t.join();
  if (heartbeat_.joinable()) heartbeat_.join();
  // Downloaded but not converted: the downloads go, the jobs go back to the queue below with
  // their attempt given back, and the next process fetches them again.
  for (Fetched& f : ready_) {
    std::error_code ec;
    std::filesystem::remove(f.scratch, ec);
  }
  if (!ready_.empty())
    spdlog::info("stopping: {} downloaded image{} handed back to the queue", ready_.size(),
                 ready_.size() == 1 ? "" : "s");
  ready_.clear();
  const int fetchers = static_cast<int>(fetchers_.size());
  for (int i = 0; i < fetchers; ++i) {
    Status st = store_.ReleaseJobs(FetcherOwner(i));
    if (!st.ok()) spdlog::warn("could not hand jobs back to the queue: {}", st.message());
  }
  fetchers_.clear();
  threads_.clear();
  storers_.clear();
}

std::string IngestWorkers::FetcherOwner(int index) const {
  return owner_prefix_ + "/" + std::to_string(index);
}

int64_t IngestWorkers::ScratchHeld() const {
  std::lock_guard<std::mutex> lock(mu_);
  return scratch_held_;
}

// A prefetcher: while fewer than fetch_concurrency jobs wait ahead of the conversion threads
// and the scratch budget has room, it claims the next job and downloads it. Downloads are I/O
// and run many at once; conversions are CPU and run `workers` at once, each with a download
// ready. The job's lease is held (and heartbeaten) from the claim until its outcome.
void IngestWorkers::FetchLoop(int index) {
  const std::string owner = FetcherOwner(index);
  const int ahead_limit = std::max(1, settings_.fetch_concurrency);
  // While claims fail (the database unreachable or its disk full) a worker says so once,
  // then every half minute, and waits longer between tries (up to 5 s) instead of retrying
  // twice a second.
  int claim_failures = 0;
  auto last_warning = std::chrono::steady_clock::time_point{};
  while (true) {
    uint64_t seen;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        return stop_.load() || (ahead_ < ahead_limit && scratch_held_ < settings_.scratch_bytes);
      });
      if (stop_.load()) return;
      ++ahead_;
      seen = wake_generation_;
    }
    auto claim_began = std::chrono::steady_clock::now();
    auto claimed = store_.ClaimJob(owner, settings_.lease_ms);
    int wait_ms = settings_.idle_poll_ms;
    if (!claimed.ok()) {
      ++claim_failures;
      auto now = std::chrono::steady_clock::now();
      if (claim_failures == 1 || now - last_warning > std::chrono::seconds(30)) {
        last_warning = now;
        spdlog::warn("claiming a job failed ({} time{} in a row): {}", claim_failures,
                     claim_failures == 1 ? "" : "s", claimed.status().message());
      }
      wait_ms = std::min(5000, settings_.idle_poll_ms << std::min(claim_failures, 4));
    } else if (claim_failures > 0) {
      spdlog::info("claiming jobs works again after {} failures", claim_failures);
      claim_failures = 0;
    }
    if (!claimed.ok() || !claimed->has_value()) {
      std::unique_lock<std::mutex> lock(mu_);
      --ahead_;
      cv_.wait_for(lock, std::chrono::milliseconds(wait_ms),
                   [&] { return wake_generation_ != seen || stop_.load(); });
      continue;
    }
    const Job job = **claimed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      active_[job.id] = job;
    }
    std::optional<Fetched> fetched;
    try {
      fetched = Download(job, claim_began);
    } catch (const std::exception& e) {
      InternalError(job, e);
    }
    if (fetched) {
      fetched->downloaded = std::chrono::steady_clock::now();
      {
        std::lock_guard<std::mutex> lock(mu_);
        ready_.push_back(std::move(*fetched));
      }
      ready_cv_.notify_one();
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      --ahead_;
      active_.erase(job.id);
    }
    cv_.notify_all();
  }
}

// A conversion thread: takes the oldest download, converts it and hands the result to a store
// thread, which records the outcome.
void IngestWorkers::ConvertLoop(int /*index*/) {
  auto previous_end = std::chrono::steady_clock::now();
  while (true) {
    Converted c;
    {
      std::unique_lock<std::mutex> lock(mu_);
      ready_cv_.wait(lock, [&] { return stop_.load() || !ready_.empty(); });
      if (stop_.load()) return;  // what is still ready is handed back by Stop()
      c.f = std::move(ready_.front());
      ready_.pop_front();
      --ahead_;
      ++converting_;
    }
    cv_.notify_all();  // a prefetcher may claim the next job
    const Fetched& f = c.f;
    // This thread's time for the image starts when it was free for it: a wait for a download
    // under way then counts (origins slower than the conversions make it the pace). For an
    // image claimed while the thread was idle — the pipeline filling at a batch's start — half
    // of its download counts: counting none would treat the first round of downloads as free,
    // counting all of it would charge the fill to every later image once more, as it is also
    // in the estimate's anchor (the batch's first outcome). It ends when the outcome is
    // recorded, so the store that follows the conversion counts too.
    c.began = f.claimed > previous_end ? f.claimed + (f.downloaded - f.claimed) / 2 : previous_end;
    bool handed_on = false;
    Status st = store_.StartConverting(f.job, settings_.lease_ms);
    if (st.code() == Code::kNotFound) {
      // The lease ran out while the download waited (the process stalled): the job is
      // another worker's now.
      spdlog::warn("ingest {}/{}/{}: lease lost before conversion; leaving it to its new owner",
                   f.job.customer, f.job.space, f.job.asset_id);
    } else {
      if (!st.ok()) spdlog::warn("marking job {} as converting failed: {}", f.job.id, st.message());
      try {
        handed_on = Convert(c);
      } catch (const std::exception& e) {
        InternalError(f.job, e);
      }
    }
    previous_end = std::chrono::steady_clock::now();
    if (!handed_on) {
      Release(c.f);
      continue;
    }
    {
      // Waits for room even when stopping: the store threads drain to_store_ until the last
      // conversion thread has ended.
      std::unique_lock<std::mutex> lock(mu_);
      room_cv_.wait(lock, [&] {
        return to_store_.size() < static_cast<size_t>(std::max(1, settings_.workers));
      });
      to_store_.push_back(std::move(c));
    }
    stored_cv_.notify_one();
  }
}

// A store thread: writes a converted image's blobs and records its outcome.
void IngestWorkers::StoreLoop() {
  while (true) {
    Converted c;
    {
      std::unique_lock<std::mutex> lock(mu_);
      stored_cv_.wait(lock, [&] { return conversions_done_ || !to_store_.empty(); });
      if (to_store_.empty()) return;  // conversions done and everything stored
      c = std::move(to_store_.front());
      to_store_.pop_front();
    }
    room_cv_.notify_one();
    try {
      Finish(c);
    } catch (const std::exception& e) {
      InternalError(c.f.job, e);
    }
    Release(c.f);
  }
}

void IngestWorkers::Release(const Fetched& f) {
  std::error_code ec;
  std::filesystem::remove(f.scratch, ec);
  {
    std::lock_guard<std::mutex> lock(mu_);
    scratch_held_ -= f.granted;
    --converting_;
    active_.erase(f.job.id);
  }
  cv_.notify_all();
}

void IngestWorkers::InternalError(const Job& job, const std::exception& e) {
  // A defect, but one image must not take the worker (and the process) down with it.
  spdlog::error("ingest {}/{}/{}: unexpected exception: {}", job.customer, job.space, job.asset_id,
                e.what());
  IngestOutcome outcome;
  outcome.error = std::string("internal error while ingesting: ") + e.what();
  Record(job, outcome);
}

// Before a download writes: room for `bytes` in the scratch budget, on top of what this
// download holds, and on the data volume above --min-free-bytes once the bytes that other
// downloads in progress have yet to write are counted too (they all passed the same check,
// and several at once would otherwise eat the reserve between two free-space checks). No room
// on the volume sets `volume` (a transient failure: the job retries after a backoff).
bool IngestWorkers::TryReserve(int64_t bytes, int64_t* granted, int64_t* wanted, int64_t* pending,
                               Status* volume) {
  std::lock_guard<std::mutex> lock(mu_);
  *wanted = bytes;
  if (settings_.process.reserve_bytes > 0) {
    int64_t free = FreeBytes(blobs_.ScratchDir());
    if (free >= 0) {
      Status room = CheckFreeSpace(free - unwritten_ - bytes, settings_.process.reserve_bytes);
      if (!room.ok()) {
        *volume = room;
        return false;
      }
    }
  }
  if (bytes > *granted) {
    if (scratch_held_ + bytes - *granted > settings_.scratch_bytes) return false;
    scratch_held_ += bytes - *granted;
    *granted = bytes;
  }
  unwritten_ += bytes;
  *pending = bytes;
  return true;
}

void IngestWorkers::AdjustReservation(int64_t* granted, int64_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    scratch_held_ += bytes - *granted;
    *granted = bytes;
  }
  cv_.notify_all();
}

// Everything before the conversion: the image's row, the attempt count, and the download into
// a scratch file within the budget. nullopt: the job ended here (its outcome recorded, a
// retry scheduled, or — at a graceful stop — left leased for Stop() to hand back).
namespace {

// Bytes under an asset's blob prefix; thumbnails are the thumb-* blobs.
Result<ImageStorage> MeasureStoredBytes(const BlobStore& blobs, const std::string& prefix) {
  auto listed = blobs.List(prefix + "/");
  if (!listed.ok()) return listed.status();
  ImageStorage out;
  for (const BlobListing& b : *listed) {
    out.bytes += b.size;
    if (b.key.rfind(prefix + "/thumb-", 0) == 0) out.thumbnail_bytes += b.size;
  }
  return out;
}

// Sets up `policy` for the matched origin strategy. A strategy that cannot be applied fails
// the image with a message naming it (permanent: kForbidden / kInvalid).
Status ApplyOriginStrategy(const OriginStrategy& s, const std::string& origin,
                           const SecretBox* secrets, OriginPolicy* policy) {
  const std::string name = "origin strategy " + s.id;
  if (s.strategy == "basic-http-authentication") {
    if (secrets == nullptr)
      return Status::Forbidden(name +
                               " holds credentials, but the server has no "
                               "--secrets-key-file to open them");
    auto opened = secrets->Open(s.sealed_credentials);
    if (!opened.ok())
      return Status::Forbidden("the credentials of " + name +
                               " cannot be opened: " + opened.status().message());
    auto creds = nlohmann::json::parse(*opened, nullptr, false);
    if (!creds.is_object() || !creds.value("user", nlohmann::json()).is_string() ||
        !creds.value("password", nlohmann::json()).is_string())
      return Status::Forbidden("the credentials of " + name + " are not {user, password}");
    policy->basic_user = creds["user"].get<std::string>();
    policy->basic_password = creds["password"].get<std::string>();
    policy->credentials_from = name;
  } else if (s.strategy == "s3-ambient") {
    if (origin.rfind("s3://", 0) != 0)
      return Status::Invalid(name + " is s3-ambient, which reads s3:// origins only");
  }
  return Status::Ok();
}

}  // namespace

Status IngestWorkers::ApplyChannelPolicies(const Asset& asset, ProcessOptions* process) {
  for (const DeliveryChannel& ch : asset.delivery_channels) {
    if (ch.channel == "iiif-img") process->use_original = ch.policy == "use-original";
    if (ch.channel != "thumbs" || ch.policy.empty() || IsBuiltInChannelPolicy("thumbs", ch.policy))
      continue;
    auto policy = store_.GetChannelPolicy(asset.customer, "thumbs", ch.policy);
    if (!policy.ok())
      return policy.status().code() == Code::kNotFound
                 ? Status::Invalid("thumbs policy '" + ch.policy + "' no longer exists")
                 : Status::Unavailable("cannot read thumbs policy '" + ch.policy +
                                       "': " + policy.status().message());
    std::vector<int> boxes;
    if (std::string problem = ParseThumbSizes(policy->policy_data, &boxes); !problem.empty())
      return Status::Invalid("thumbs policy '" + ch.policy + "': " + problem);
    process->thumbnail_sizes = boxes;
  }
  return Status::Ok();
}

std::optional<IngestWorkers::Fetched> IngestWorkers::Download(
    const Job& job, std::chrono::steady_clock::time_point claimed) {
  IngestOutcome outcome;
  auto record = [&] {
    outcome.worker_ms = static_cast<int64_t>(MsSince(claimed));
    Record(job, outcome);
  };
  auto asset = store_.GetAsset(job.customer, job.space, job.asset_id);
  if (!asset.ok()) {
    if (asset.status().code() != Code::kNotFound) {
      // The database hiccuped: try again shortly rather than fail the image.
      spdlog::warn("ingest {}/{}/{}: cannot read the image ({}); retrying", job.customer, job.space,
                   job.asset_id, asset.status().message());
      Reschedule(job, settings_.backoff_ms, asset.status().message());
      return std::nullopt;
    }
    outcome.error = "image was deleted before it was processed";
    record();
    return std::nullopt;
  }
  // Every claim counts an attempt and a graceful stop gives its attempt back, so a job claimed
  // more often than allowed was interrupted by crashes or lost leases each time. An image that
  // kills the process must not crash-loop every server that picks it up.
  if (job.attempts > settings_.attempts) {
    outcome.error = "ingest was interrupted " + std::to_string(job.attempts - 1) +
                    " times (the server crashed or lost the job while processing this image); "
                    "gave up";
    record();
    spdlog::warn("ingest {}/{}/{} batch {} failed: {}", job.customer, job.space, job.asset_id,
                 job.batch, outcome.error);
    return std::nullopt;
  }
  Fetched f;
  f.job = job;
  f.asset = std::move(*asset);
  f.claimed = claimed;
  f.scratch = blobs_.ScratchDir() + "/fetch-" + std::to_string(job.id) + "-" + RandomHex(6);
  struct Guard {  // the download and its room go however this ends, unless handed on
    IngestWorkers* self;
    Fetched* f;
    bool keep = false;
    ~Guard() {
      if (keep) return;
      std::error_code ec;
      std::filesystem::remove(f->scratch, ec);
      if (f->granted != 0) self->AdjustReservation(&f->granted, 0);
    }
  } guard{this, &f};

  auto t0 = std::chrono::steady_clock::now();
  OriginPolicy policy = settings_.origin;
  policy.cancel = &stop_;  // a graceful stop abandons slow downloads
  int64_t wanted = 0;
  int64_t pending = 0;  // this download's bytes not yet written, counted in unwritten_
  Status volume = Status::Ok();
  policy.reserve = [&](int64_t bytes) {
    return TryReserve(bytes, &f.granted, &wanted, &pending, &volume);
  };
  auto settle = [&] {  // the download ended: its bytes are on disk (or gone)
    std::lock_guard<std::mutex> lock(mu_);
    unwritten_ -= pending;
    pending = 0;
  };
  // The customer's first origin strategy whose regex matches says how to fetch.
  Status st;
  if (f.asset.upload.empty()) {
    auto strategies = store_.ListOriginStrategies(job.customer);
    if (!strategies.ok()) {
      spdlog::warn("ingest {}/{}/{}: cannot read origin strategies ({}); retrying", job.customer,
                   job.space, job.asset_id, strategies.status().message());
      Reschedule(job, settings_.backoff_ms, strategies.status().message());
      return std::nullopt;
    }
    if (auto match = MatchOriginStrategy(*strategies, f.asset.origin))
      st = ApplyOriginStrategy(*match, f.asset.origin, settings_.secrets.get(), &policy);
  }
  // A page of a PDF image that was split reads the PDF its image stored (OriginalKey), not
  // the origin again: one download for the whole document. If that is gone (the PDF image was
  // deleted), the page fetches the origin, fragment removed, and renders its page from it.
  std::string pdf_source;
  const bool pdf_page = f.asset.IsPdfImage() && PdfPageOfOrigin(f.asset.origin) > 0;
  if (st.ok() && pdf_page)
    if (std::string parent = PdfParentId(job.asset_id); !parent.empty()) {
      auto p = store_.GetAsset(job.customer, job.space, parent);
      if (p.ok() && p->IsPdfImage() &&
          OriginWithoutFragment(p->origin) == OriginWithoutFragment(f.asset.origin))
        pdf_source = OriginalKey(AssetBlobPrefix(job.customer, job.space, parent));
    }
  auto fetch = [&]() -> Status {
    if (!pdf_source.empty()) {
      Status got = FetchStoredBlob(blobs_, pdf_source, f.scratch, policy.reserve);
      if (got.code() != Code::kNotFound) return got;
      pdf_source.clear();
    }
    if (!f.asset.upload.empty())
      return FetchUploadOrigin(blobs_, job.customer, f.asset.upload, f.scratch, policy.reserve);
    return FetchOrigin(pdf_page ? OriginWithoutFragment(f.asset.origin) : f.asset.origin, policy,
                       f.scratch);
  };
  // A full volume is a transient failure like any other storage error: the job waits in
  // backoff without downloading anything, and the room left stays the database's.
  if (st.ok()) st = CheckFreeSpace(FreeBytes(blobs_.ScratchDir()), settings_.process.reserve_bytes);
  while (st.ok()) {
    wanted = 0;
    st = fetch();
    settle();
    if (!volume.ok()) {
      st = volume;  // the data volume has no room for it above the reserve: retry later
      break;
    }
    if (st.ok() || wanted <= f.granted) break;
    // No room in the scratch budget yet (nothing was written): wait, holding the lease, until
    // the conversions have freed enough for the size the origin declared, then fetch again.
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] {
      return stop_.load() || scratch_held_ + wanted - f.granted <= settings_.scratch_bytes;
    });
    if (stop_.load()) {
      st = Status::Unavailable("stopping while waiting for room in the scratch budget");
      break;
    }
    scratch_held_ += wanted - f.granted;
    f.granted = wanted;
    st = Status::Ok();  // and fetch again, now with the room reserved
  }
  f.fetch_ms = MsSince(t0);
  if (st.ok()) {
    std::error_code ec;
    auto bytes = static_cast<int64_t>(std::filesystem::file_size(f.scratch, ec));
    if (!ec) {
      AdjustReservation(&f.granted, bytes);  // the declared size may have been a bound
      if (settings_.metrics != nullptr) settings_.metrics->AddOriginBytes(bytes);
    }
    guard.keep = true;
    return f;
  }
  if (stop_.load()) {
    // Not the origin's fault: leave the job leased; Stop() hands it back to the queue without
    // spending the attempt, and the next process fetches it again.
    spdlog::info(
        "ingest {}/{}/{} batch {} interrupted by shutdown after {:.0f} ms ({}); "
        "handed back to the queue",
        job.customer, job.space, job.asset_id, job.batch, f.fetch_ms, st.message());
    return std::nullopt;
  }
  Conclude(job, st, &outcome, f.fetch_ms, StageTimings{}, claimed, f.fetch_ms);
  return std::nullopt;
}

// The CPU part: pyramid and thumbnails (image channels) into scratch; audio and video are
// transcoded and stored here (their store is one file after minutes of transcoding).
bool IngestWorkers::Convert(Converted& c) {
  const Fetched& f = c.f;
  const Job& job = f.job;
  c.started = std::chrono::steady_clock::now();
  std::string prefix = AssetBlobPrefix(job.customer, job.space, job.asset_id);
  IngestOutcome& outcome = c.outcome;
  StageTimings& timings = c.timings;
  Status& st = c.st;
  bool image_channels = f.asset.HasChannel("iiif-img") || f.asset.HasChannel("thumbs");
  ProcessOptions process = settings_.process;
  if (image_channels && f.asset.IsImage()) st = ApplyChannelPolicies(f.asset, &process);
  if (st.ok() && image_channels && f.asset.IsImage()) {
    // The bytes decide, not the declared mediaType: a JPEG 2000 sent as image/jpeg still goes
    // to the sandbox, and the pipeline then reads the child's intermediate instead.
    std::string decoded;  // the intermediate, removed however this ends
    struct RemoveDecoded {
      std::string* path;
      ~RemoveDecoded() {
        if (!path->empty()) ::unlink(path->c_str());
      }
    } remove_decoded{&decoded};
    double sandbox_ms = 0;
    const std::string sniffed = media::SniffFile(f.scratch);
    // A PDF image: without a page in its origin it is split into pages (counted here, split by
    // the store thread); with one, that page is the image.
    const bool pdf = f.asset.IsPdfImage() && sniffed == "application/pdf";
    const int pdf_page = pdf ? PdfPageOfOrigin(f.asset.origin) : 0;
    if (pdf && pdf_page == 0) return CountPdfPages(c);
    if (media::DecodesInSandbox(sniffed, settings_.sandbox.scope)) {
      auto sandbox_began = std::chrono::steady_clock::now();
      Result<std::string> path = NewScratchFile(blobs_.ScratchDir(), "decoded", ".tif");
      if (!path.ok()) {
        st = path.status();
      } else {
        decoded = *path;
        media::SandboxRun run;
        st = media::DecodeInSandbox(f.scratch, decoded, process.max_pixels, settings_.sandbox,
                                    &stop_, &run, pdf_page);
        spdlog::info(
            "ingest {}/{}/{} batch {}: sandboxed decode {} in {:.0f} ms ({:.2f} s CPU, "
            "peak RSS {} MiB){}{}",
            job.customer, job.space, job.asset_id, job.batch, st.ok() ? "done" : "failed",
            MsSince(sandbox_began), run.cpu_seconds, run.peak_rss_bytes >> 20, st.ok() ? ": " : "",
            st.ok() ? run.report : "");
        // Its output may have filled the volume: that is the disk's fault, not the image's.
        if (!st.ok() && st.code() != Code::kUnavailable)
          if (Status room = CheckFreeSpace(FreeBytes(blobs_.ScratchDir()), process.reserve_bytes);
              !room.ok())
            st = room;
      }
      sandbox_ms = MsSince(sandbox_began);
      if (st.code() == Code::kUnavailable && stop_.load()) {
        // Stopping: the job stays leased, and Stop() hands it back with its attempt.
        spdlog::info("ingest {}/{}/{} batch {}: sandboxed decode interrupted by shutdown",
                     job.customer, job.space, job.asset_id, job.batch);
        return false;
      }
    }
    if (st.ok()) {
      auto converted = ConvertImage(decoded.empty() ? f.scratch : decoded, process, blobs_);
      if (converted.ok()) {
        converted->timings.sandbox_ms = sandbox_ms;
        timings = converted->timings;
        c.image = std::move(*converted);
      } else {
        st = converted.status();
      }
    }
  }
  const bool av =
      f.asset.HasChannel("iiif-av") || (f.asset.IsVideo() && f.asset.HasChannel("thumbs"));
  if (av) {
    st = ApplyChannelPolicies(f.asset, &process);
    if (st.ok()) st = ConvertAv(f, process, prefix, &outcome, &timings);
  }
  return true;
}

bool IngestWorkers::CountPdfPages(Converted& c) {
  const Job& job = c.f.job;
  auto began = std::chrono::steady_clock::now();
  media::SandboxRun run;
  auto pages = media::PdfPageCount(c.f.scratch, settings_.sandbox, &stop_, &run);
  c.timings.sandbox_ms = MsSince(began);
  if (!pages.ok() && pages.status().code() == Code::kUnavailable && stop_.load()) {
    spdlog::info("ingest {}/{}/{} batch {}: reading the PDF interrupted by shutdown", job.customer,
                 job.space, job.asset_id, job.batch);
    return false;  // Stop() hands it back
  }
  if (!pages.ok()) {
    c.st = pages.status();
  } else if (*pages > settings_.pdf_max_pages) {
    c.st = Status::Invalid("the PDF has " + std::to_string(*pages) + " pages, over the limit of " +
                           std::to_string(settings_.pdf_max_pages) + " (--pdf-max-pages)");
  } else {
    c.pdf_pages = *pages;
  }
  spdlog::info("ingest {}/{}/{} batch {}: PDF read in the sandbox in {:.0f} ms: {}", job.customer,
               job.space, job.asset_id, job.batch, c.timings.sandbox_ms,
               pages.ok() ? std::to_string(*pages) + " pages" : pages.status().message());
  return true;
}

namespace {

// The pages of a split PDF image: new images of its batch, ids PdfPageId, origins with
// `#page=N`, its space, metadata and channels (but not `file`: the document is the PDF
// image's own).
Status PdfPageAssets(const Asset& pdf, int count, std::vector<Asset>* pages) {
  const std::string origin = OriginWithoutFragment(pdf.origin);
  for (int n = 1; n <= count; ++n) {
    Asset p = pdf;
    p.id = PdfPageId(pdf.id, n);
    if (std::string why = ImageIdProblem(p.id); !why.empty())
      return Status::Invalid("cannot name the PDF's pages: page id '" + p.id.substr(0, 80) +
                             "…': " + why);
    p.origin = origin + "#page=" + std::to_string(n);
    std::erase_if(p.delivery_channels,
                  [](const DeliveryChannel& ch) { return ch.channel == "file"; });
    p.width = p.height = 0;
    p.thumbnails.clear();
    p.error.clear();
    pages->push_back(std::move(p));
  }
  return Status::Ok();
}

}  // namespace

void IngestWorkers::Finish(Converted& c) {
  const Fetched& f = c.f;
  const Job& job = f.job;
  std::string prefix = AssetBlobPrefix(job.customer, job.space, job.asset_id);
  Status st = c.st;
  if (st.ok() && c.pdf_pages > 0) {
    // The document is kept once, as the PDF image's original: every page reads it from there.
    auto began = std::chrono::steady_clock::now();
    st = StoreOriginal(f.scratch, blobs_, prefix);
    c.timings.store_ms = MsSince(began);
    std::vector<Asset> pages;
    if (st.ok()) st = PdfPageAssets(f.asset, c.pdf_pages, &pages);
    Conclude(job, st, &c.outcome, f.fetch_ms, c.timings, c.began, f.fetch_ms + MsSince(c.started),
             st.ok() ? &pages : nullptr);
    return;
  }
  if (st.ok() && c.image) {
    auto stored = StoreConvertedImage(std::move(*c.image), blobs_, prefix);
    if (stored.ok()) {
      c.outcome.width = stored->width;
      c.outcome.height = stored->height;
      c.timings = stored->timings;
      for (auto& t : stored->thumbnails) c.outcome.thumbnails.push_back({t.width, t.height});
    } else {
      st = stored.status();
    }
  }
  if (st.ok() && f.asset.HasChannel("file")) st = StoreOriginal(f.scratch, blobs_, prefix);
  Conclude(job, st, &c.outcome, f.fetch_ms, c.timings, c.began, f.fetch_ms + MsSince(c.started));
}

Status IngestWorkers::ConvertAv(const Fetched& f, const ProcessOptions& process,
                                const std::string& prefix, IngestOutcome* outcome,
                                StageTimings* timings) {
  const Job& job = f.job;
  const bool transcode = f.asset.HasChannel("iiif-av");
  const bool video = !transcode || AvPolicyFor(f.asset) == "default-video";
  const bool thumbs = video && f.asset.HasChannel("thumbs");
  auto remove = [](const std::string& path) {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  };
  auto clock = std::chrono::steady_clock::now();
  std::string poster_source = f.scratch;  // thumbs without iiif-av: from the source itself
  std::string output;                     // the transcode, until stored
  struct Cleanup {
    std::function<void()> run;
    ~Cleanup() { run(); }
  } cleanup{[&] {
    if (!output.empty()) remove(output);
  }};
  if (transcode) {
    auto made = media::TranscodeAv(f.scratch, video ? media::AvKind::kVideo : media::AvKind::kAudio,
                                   blobs_.ScratchDir(), settings_.av, &stop_);
    if (!made.ok()) return made.status();
    output = made->path;
    poster_source = output;  // already at the delivered size
    outcome->media_duration_ms = made->duration_ms;
    outcome->width = made->width;
    outcome->height = made->height;
    timings->pyramid_ms = made->transcode_ms;
  } else {
    auto probe = media::ProbeAv(f.scratch, settings_.av, &stop_);
    if (!probe.ok()) return probe.status();
    if (!probe->has_video)
      return Status::Invalid("channel 'thumbs' needs a video stream; the file has audio only");
    outcome->media_duration_ms = probe->duration_ms;
    outcome->width = probe->width;
    outcome->height = probe->height;
  }
  timings->probe_ms = MsSince(clock) - timings->pyramid_ms;
  if (thumbs) {
    auto thumbs_began = std::chrono::steady_clock::now();
    // A frame a second in (the first is often black), or from the middle of a shorter one.
    int64_t at = std::min<int64_t>(1000, outcome->media_duration_ms / 2);
    Result<std::string> claimed = NewScratchFile(blobs_.ScratchDir(), "poster", ".jpg");
    if (!claimed.ok()) return claimed.status();
    const std::string& poster = *claimed;
    Status st = media::ExtractPoster(poster_source, at, poster, settings_.av, &stop_);
    if (st.ok()) {
      auto stored = StoreFrameThumbnails(poster, process, blobs_, prefix);
      if (stored.ok())
        outcome->thumbnails = std::move(*stored);
      else
        st = stored.status();
    }
    remove(poster);
    if (!st.ok()) return st;
    timings->thumbnails_ms = MsSince(thumbs_began);
  }
  if (transcode) {
    auto store_began = std::chrono::steady_clock::now();
    Status st = blobs_.PutFile(AvKey(prefix, video ? "mp4" : "mp3"), output);
    if (!st.ok()) return st;
    output.clear();  // consumed by the store
    timings->store_ms = MsSince(store_began);
  }
  spdlog::info("ingest {}/{}/{}: {} of {} ({}x{}) in {:.0f} ms", job.customer, job.space,
               job.asset_id, transcode ? (video ? "MP4" : "MP3") : "poster frame",
               media::FormatDuration(outcome->media_duration_ms), outcome->width, outcome->height,
               MsSince(clock));
  return Status::Ok();
}

// How a job ends once it was worked on: a transient failure with attempts left is retried
// after a backoff; anything else is recorded as the image's outcome.
void IngestWorkers::Conclude(const Job& job, const Status& st, IngestOutcome* outcome,
                             double fetch_ms, const StageTimings& timings,
                             std::chrono::steady_clock::time_point began, double work_ms,
                             const std::vector<Asset>* pages) {
  if (!st.ok()) {
    bool transient = st.code() == Code::kUnavailable || st.code() == Code::kIOError;
    if (transient && job.attempts < settings_.attempts) {
      int64_t delay = static_cast<int64_t>(settings_.backoff_ms) << std::min(job.attempts - 1, 16);
      delay = std::min<int64_t>(delay, 5 * 60 * 1000);
      spdlog::info("ingest {}/{}/{} attempt {} failed ({}); retrying in {} ms", job.customer,
                   job.space, job.asset_id, job.attempts, st.message(), delay);
      Reschedule(job, delay, st.message());
      return;
    }
    outcome->success = false;
    outcome->error = st.message();
    if (transient)
      outcome->error += " (gave up after " + std::to_string(job.attempts) + " attempts)";
  } else {
    outcome->success = true;
  }
  outcome->duration_ms = static_cast<int64_t>(work_ms);
  outcome->worker_ms = static_cast<int64_t>(MsSince(began));
  // What the image's blobs take now (a failed reingest may have left or replaced some).
  std::string prefix = AssetBlobPrefix(job.customer, job.space, job.asset_id);
  if (auto measured = MeasureStoredBytes(blobs_, prefix); measured.ok())
    outcome->storage = *measured;
  else
    spdlog::warn("ingest {}/{}/{}: cannot measure its stored bytes: {}", job.customer, job.space,
                 job.asset_id, measured.status().message());
  if (pages != nullptr && outcome->success) {
    Status split = PersistWrite(job, "splitting the PDF of",
                                [&] { return store_.SplitComposite(job, *outcome, *pages); });
    if (split.ok()) {
      spdlog::info("ingest {}/{}/{} batch {}: split into {} pages ({} ... {})", job.customer,
                   job.space, job.asset_id, job.batch, pages->size(), pages->front().id,
                   pages->back().id);
      if (settings_.on_outcome) settings_.on_outcome(job);
    } else if (split.code() == Code::kInvalid || split.code() == Code::kInsufficientStorage) {
      // The pages cannot join the batch (one is a member already, or the quota): the PDF
      // image fails with the reason instead, and nothing of the split was written.
      outcome->success = false;
      outcome->error = split.message();
      Record(job, *outcome);
    }
  } else {
    Record(job, *outcome);
  }
  if (ops::Metrics* m = settings_.metrics) {
    m->CountIngest(outcome->success);
    m->ObserveStage(ops::Stage::kFetch, fetch_ms / 1000);
    if (outcome->success) {
      m->ObserveStage(ops::Stage::kDecode, (timings.sandbox_ms + timings.probe_ms) / 1000);
      m->ObserveStage(ops::Stage::kPyramid, timings.pyramid_ms / 1000);
      m->ObserveStage(ops::Stage::kThumbs, timings.thumbnails_ms / 1000);
      m->ObserveStage(ops::Stage::kStore, timings.store_ms / 1000);
    }
  }
  spdlog::info(
      "ingest {}/{}/{} batch {} {} in {} ms (fetch {:.0f}, {}probe {:.0f}, pyramid {:.0f}{}, "
      "thumbnails {:.0f}, store {:.0f}){}{}",
      job.customer, job.space, job.asset_id, job.batch, outcome->success ? "done" : "failed",
      outcome->duration_ms, fetch_ms,
      timings.sandbox_ms > 0 ? fmt::format("sandbox {:.0f}, ", timings.sandbox_ms) : "",
      timings.probe_ms, timings.pyramid_ms,
      timings.pyramid_route.empty() ? "" : " [" + timings.pyramid_route + "]",
      timings.thumbnails_ms, timings.store_ms, outcome->success ? "" : ": ", outcome->error);
}

void IngestWorkers::Heartbeat() {
  const auto period = std::chrono::milliseconds(std::max(100, settings_.lease_ms / 3));
  while (!stop_.load()) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, period, [&] { return stop_.load(); });
    }
    std::vector<Job> jobs;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [id, job] : active_) jobs.push_back(job);
    }
    for (auto& job : jobs) {
      Status st = store_.ExtendLease(job, settings_.lease_ms);
      if (!st.ok() && st.code() != Code::kNotFound)
        spdlog::warn("lease heartbeat for job {} failed: {}", job.id, st.message());
    }
  }
}

// A job's result is known only to this process until the store accepts it. When the store
// refuses for a passing reason (its disk full, the server unreachable), dropping the write
// would let the lease run out and spend an attempt on an image that was processed fine — a
// full disk would end as "interrupted 3 times". So the write is retried with backoff while
// the heartbeat keeps the lease (the job stays in active_). It ends when the store accepts it,
// when the lease is gone (Conflict / NotFound: another worker holds the job now), or at stop.
Status IngestWorkers::PersistWrite(const Job& job, const char* what,
                                   const std::function<Status()>& write) {
  int delay_ms = 50;
  auto first = std::chrono::steady_clock::now();
  auto last_warning = std::chrono::steady_clock::time_point{};
  for (int tries = 1;; ++tries) {
    Status st = write();
    if (st.ok()) {
      if (tries > 1)
        spdlog::info("{} job {} succeeded after {} tries ({:.0f} ms)", what, job.id, tries,
                     MsSince(first));
      return st;
    }
    if (st.code() == Code::kConflict || st.code() == Code::kNotFound || stop_.load()) {
      spdlog::warn("{} job {} failed: {}", what, job.id, st.message());
      return st;
    }
    auto now = std::chrono::steady_clock::now();
    if (tries == 1 || now - last_warning > std::chrono::seconds(30)) {
      last_warning = now;
      spdlog::warn("{} job {} failed ({}); keeping the lease and trying again", what, job.id,
                   st.message());
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(delay_ms), [&] { return stop_.load(); });
    delay_ms = std::min(5000, delay_ms * 2);
  }
}

void IngestWorkers::Record(const Job& job, const IngestOutcome& outcome) {
  PersistWrite(job, "recording the outcome of", [&] { return store_.RecordOutcome(job, outcome); });
  if (settings_.on_outcome) settings_.on_outcome(job);
}

void IngestWorkers::Reschedule(const Job& job, int64_t delay_ms, const std::string& error) {
  PersistWrite(job, "rescheduling", [&] { return store_.RescheduleJob(job, delay_ms, error); });
}

}  // namespace quire
