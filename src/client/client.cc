// The submit pipeline: `jobs` threads hash, check and upload files while the main thread
// gathers the uploaded members into batches (at most the server's maximum, sent as soon as
// they fill or the uploads pause), polls every batch until it finishes, and the display shows
// it all. Uploads and ingest overlap: the first batch is ingesting while later files upload.
#include "client/client.h"

#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "client/display.h"
#include "client/inputs.h"
#include "core/content_digest.h"
#include "core/time_util.h"

namespace quire::client {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

std::atomic<bool> g_interrupted{false};

void OnSigint(int) { g_interrupted.store(true); }

void InstallSigint() {
  struct sigaction sa {};
  sa.sa_handler = OnSigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A failure of the command as a whole: said once, exit 2.
int UsageError(Display& d, const std::string& message) {
  d.EndFrame();
  if (d.json()) {
    d.Event(json{{"event", "error"}, {"error", message}}, "");
  } else {
    std::fprintf(stderr, "quire client: %s\n", message.c_str());
  }
  return 2;
}

// Calls until an answer that is not transient, or the tries run out.
Result<HttpReply> CallWithRetries(ApiClient& api, const std::string& method,
                                  const std::string& url, const std::string& body, int retries) {
  Result<HttpReply> r = Status::Unavailable("not tried");
  for (int attempt = 0; attempt <= retries; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(250 << attempt));
    r = api.Call(method, url, body);
    if (g_interrupted.load()) return r;
    if (r.ok() && !IsTransientStatus(r->status)) return r;
  }
  return r;
}

// What a batch looks like now, for display.
struct BatchView {
  int64_t id = 0;
  std::string url;
  int64_t count = 0, completed = 0, errors = 0;
  bool finished = false;
  std::optional<int64_t> est_ms;
  // Rate: (when, done) samples of the last seconds.
  std::deque<std::pair<Clock::time_point, int64_t>> samples;

  void Update(const json& b) {
    count = b.value("count", count);
    completed = b.value("completed", completed);
    errors = b.value("errors", errors);
    finished = b.contains("finished");
    est_ms.reset();
    if (b.contains("estCompletion") && b["estCompletion"].is_string())
      est_ms = ParseIso8601(b["estCompletion"].get<std::string>());
    samples.emplace_back(Clock::now(), completed + errors);
    while (samples.size() > 2 && SecondsSince(samples.front().first) > 10) samples.pop_front();
  }
  double Rate() const {
    if (samples.size() < 2) return 0;
    double dt = std::chrono::duration<double>(samples.back().first - samples.front().first).count();
    return dt <= 0 ? 0 : (samples.back().second - samples.front().second) / dt;
  }
  std::string Line(std::string label) const {
    if (label.size() < 9) label.resize(9, ' ');  // bars line up under each other
    std::string s = label + " " + Bar(completed + errors, count) + " " +
                    std::to_string(completed + errors) + "/" + std::to_string(count) + " done";
    s += " · " + std::to_string(errors) + (errors == 1 ? " error" : " errors");
    if (finished) return s + " · finished";
    double rate = Rate();
    if (rate > 0) {
      char buf[32];
      std::snprintf(buf, sizeof buf, " · %.1f img/s", rate);
      s += buf;
    }
    double left = -1;
    if (est_ms) left = (*est_ms - NowMs()) / 1000.0;
    else if (rate > 0) left = (count - completed - errors) / rate;
    if (left >= 0) s += " · " + FormatDuration(left) + " left";
    return s;
  }
  json Json() const {
    json j{{"event", "batch"}, {"id", id},         {"url", url},
           {"count", count},   {"completed", completed}, {"errors", errors},
           {"finished", finished}};
    if (est_ms) j["estCompletion"] = FormatIso8601(*est_ms);
    return j;
  }
};

// Reads every error image of a finished batch: id → error.
std::map<std::string, std::string> ErrorImages(ApiClient& api, const std::string& batch_url,
                                               int retries) {
  std::map<std::string, std::string> out;
  for (int page = 1; page < 1000; ++page) {
    auto r = CallWithRetries(api, "GET",
                             batch_url + "/errorImages?pageSize=500&page=" + std::to_string(page),
                             "", retries);
    if (!r.ok() || r->status != 200) break;
    json j = r->Json();
    if (!j.is_object() || !j.contains("member")) break;
    for (auto& m : j["member"]) out[m.value("id", "")] = m.value("error", "");
    if (!j.contains("view") || !j["view"].contains("next")) break;
  }
  return out;
}

// Who calls and for which customer: from --customer, or from GET / with the key (Quire).
Result<int64_t> ResolveCustomer(ApiClient& api, const ClientOptions& o) {
  auto root = api.Get("/");
  if (!root.ok()) return root.status();
  if (root->status != 200)
    return Status::Unavailable(o.endpoint.url + " does not look like a Quire or DLCS API (GET / "
                                                "answered " + std::to_string(root->status) + ")");
  if (!o.customer.empty()) {
    bool numeric = o.customer.find_first_not_of("0123456789") == std::string::npos;
    if (numeric) return std::stoll(o.customer);
    auto list = api.Get("/customers?pageSize=500");
    if (list.ok() && list->status == 200)
      for (auto& c : list->Json().value("member", json::array()))
        if (c.value("name", "") == o.customer) return c.value("id", int64_t{0});
    return Status::Invalid("no customer named '" + o.customer + "' (or this key cannot list "
                           "customers: give its id)");
  }
  json j = root->Json();
  if (j.is_object() && j.contains("customer") && j["customer"].is_string()) {
    std::string url = j["customer"];
    return std::stoll(url.substr(url.rfind('/') + 1));
  }
  if (o.endpoint.key.empty())
    return Status::Unauthorized("no credentials: give --key and --secret (or QUIRE_KEY, "
                                "QUIRE_SECRET)");
  return Status::Unauthorized("the server did not accept the key " + o.endpoint.key +
                              " (wrong key or secret?); against DLCS give --customer");
}

std::string MaskedHint(const ClientOptions& o) {
  return o.command_line.empty() ? "the same command" : o.command_line;
}

}  // namespace

// --------------------------------------------------------------------------- submit

namespace {

enum class Phase { kWaiting, kWorking, kUploading, kPending, kQueued, kCompleted, kFailed, kSkipped };

struct Tracked {
  Item item;
  Phase phase = Phase::kWaiting;
  std::string error;
  std::string origin;  // the upload's URL (files) or the CSV origin
  std::atomic<int64_t> sent{0};
  int64_t batch = 0;
  bool uploaded = false;  // bytes went over the wire in this run
};

class SubmitRun {
 public:
  SubmitRun(const ClientOptions& o, Display& d) : o_(o), d_(d), api_(o.endpoint) {}

  int Run();

 private:
  void Worker();
  void Prepare(ApiClient& api, Tracked& t);
  void Fail(Tracked& t, const std::string& error);
  void Skip(Tracked& t, const std::string& why);
  bool FlushBatch(bool force);
  void PollBatches();
  std::vector<std::string> FrameLines();
  int Summary(bool interrupted);
  std::string ImagePath(const Item& it) const {
    return "/customers/" + std::to_string(customer_) + "/spaces/" + std::to_string(it.space) +
           "/images/" + it.id;
  }

  const ClientOptions& o_;
  Display& d_;
  ApiClient api_;
  int64_t customer_ = 0;
  int64_t max_batch_ = 250;
  std::vector<std::unique_ptr<Tracked>> items_;
  std::map<std::string, std::string> upload_by_sha_;  // sha256 → origin (earlier runs)
  std::map<std::string, std::string> sha_by_origin_;
  std::set<std::string> uploading_;  // sha256 of uploads in flight
  std::condition_variable uploaded_cv_;

  std::mutex mu_;  // guards everything below and the phases
  size_t next_ = 0;
  std::vector<size_t> pending_;
  Clock::time_point first_pending_;
  std::map<int64_t, BatchView> batches_;
  std::map<int64_t, std::vector<size_t>> batch_members_;
  int workers_running_ = 0;
  int64_t upload_total_ = 0;  // bytes of files that need uploading
  int64_t uploaded_bytes_ = 0;
  int files_uploaded_ = 0;
  Clock::time_point started_ = Clock::now();
  std::optional<Clock::time_point> uploads_done_;
  std::map<int64_t, Clock::time_point> last_batch_line_;
};

void SubmitRun::Fail(Tracked& t, const std::string& error) {
  t.phase = Phase::kFailed;
  t.error = error;
  d_.Event(json{{"event", "failed"}, {"file", t.item.label}, {"id", t.item.id},
                {"error", error}},
           "✗ " + t.item.label + ": " + error);
}

void SubmitRun::Skip(Tracked& t, const std::string& why) {
  t.phase = Phase::kSkipped;
  d_.Event(json{{"event", "skipped"}, {"file", t.item.label}, {"id", t.item.id}, {"reason", why}},
           d_.tty() ? "" : "skipped " + t.item.label + ": " + why);
}

// Hashes, checks what the server already has, uploads when needed; ends kPending (a member
// waiting for a batch), kQueued (already in a batch of an earlier run), or terminal.
void SubmitRun::Prepare(ApiClient& api, Tracked& t) {
  const Item& it = t.item;
  std::string sha, sha_raw;
  if (!it.path.empty()) {
    StreamHasher hasher;
    std::ifstream in(it.path, std::ios::binary);
    std::string buf(1 << 20, '\0');
    while (in && !g_interrupted.load()) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      hasher.Update(std::string_view(buf.data(), static_cast<size_t>(in.gcount())));
    }
    if (g_interrupted.load()) return;
    hasher.Finish();
    sha_raw = hasher.sha256();
    sha = HexEncode(sha_raw);
  }
  // What the server has under this id: done with these bytes (or this origin) → skip; still
  // queued from an interrupted run → follow that batch instead of queueing it again.
  auto existing = CallWithRetries(api, "GET", ImagePath(it), "", o_.retries);
  if (g_interrupted.load()) return;
  if (existing.ok() && existing->status == 200) {
    json img = existing->Json();
    std::string origin = img.value("origin", "");
    std::lock_guard<std::mutex> lock(mu_);
    auto known = sha_by_origin_.find(origin);
    bool same = it.path.empty() ? origin == it.origin
                                : known != sha_by_origin_.end() && known->second == sha;
    if (same && !img.value("ingesting", false) && img.value("error", "x").empty())
      return Skip(t, "already completed with the same " +
                         std::string(it.path.empty() ? "origin" : "bytes (sha256)"));
    if (same && img.value("ingesting", false) && img.contains("batch")) {
      std::string batch_url = img["batch"];
      int64_t b = std::stoll(batch_url.substr(batch_url.rfind('/') + 1));
      t.origin = origin;
      t.phase = Phase::kQueued;
      t.batch = b;
      batches_[b].id = b;
      batches_[b].url = batch_url;
      if (!it.path.empty()) upload_total_ -= it.size;  // nothing to send
      return;
    }
  } else if (existing.ok() && existing->status == 401) {
    std::lock_guard<std::mutex> lock(mu_);
    return Fail(t, "the server refused the credentials (401)");
  }
  if (!it.path.empty()) {
    std::string origin;
    {
      // Identical bytes under two names go over the wire once: wait for the other upload.
      std::unique_lock<std::mutex> lock(mu_);
      uploaded_cv_.wait(lock, [&] { return !uploading_.count(sha) || g_interrupted.load(); });
      if (auto f = upload_by_sha_.find(sha); f != upload_by_sha_.end()) {
        origin = f->second;
      } else {
        uploading_.insert(sha);
        t.phase = Phase::kUploading;
      }
    }
    struct Done {  // however the upload ends, others with the same bytes stop waiting
      SubmitRun* run;
      const std::string& sha;
      bool active;
      ~Done() {
        if (!active) return;
        std::lock_guard<std::mutex> lock(run->mu_);
        run->uploading_.erase(sha);
        run->uploaded_cv_.notify_all();
      }
    } done{this, sha, origin.empty()};
    if (origin.empty()) {
      std::map<std::string, std::string> headers = {
          {"Content-Type", it.media_type},
          {"Content-Digest", "sha-256=:" + Base64Encode(sha_raw) + ":"}};
      Result<HttpReply> r = Status::Unavailable("not tried");
      for (int attempt = 0; attempt <= o_.retries && !g_interrupted.load(); ++attempt) {
        if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(250 << attempt));
        t.sent = 0;
        r = api.UploadFile("/customers/" + std::to_string(customer_) + "/uploads", it.path,
                           headers, [&t](int64_t sent) { t.sent = sent; }, &g_interrupted,
                           o_.limit_rate);
        if (r.ok() && !IsTransientStatus(r->status)) break;
      }
      if (g_interrupted.load()) return;
      std::lock_guard<std::mutex> lock(mu_);
      if (!r.ok()) return Fail(t, "upload failed: " + r.status().message());
      if (r->status != 201)
        return Fail(t, "upload refused (" + std::to_string(r->status) + "): " + r->Detail());
      json up = r->Json();
      origin = up.value("origin", up.value("@id", ""));
      upload_by_sha_[sha] = origin;
      sha_by_origin_[origin] = sha;
      t.uploaded = true;
      uploaded_bytes_ += it.size;
      ++files_uploaded_;
      d_.Event(json{{"event", "uploaded"}, {"file", it.label}, {"id", it.id},
                    {"bytes", it.size}, {"upload", origin}},
               d_.tty() ? "" : "uploaded " + it.label + " (" + FormatBytes(it.size) + ")");
    } else {
      std::lock_guard<std::mutex> lock(mu_);
      upload_total_ -= it.size;  // nothing to send
    }
    t.origin = origin;
  } else {
    t.origin = it.origin;
  }
  std::lock_guard<std::mutex> lock(mu_);
  t.phase = Phase::kPending;
}

void SubmitRun::Worker() {
  ApiClient api(o_.endpoint);
  while (!g_interrupted.load()) {
    size_t index;
    {
      std::lock_guard<std::mutex> lock(mu_);
      while (next_ < items_.size() && items_[next_]->phase != Phase::kWaiting) ++next_;
      if (next_ >= items_.size()) break;
      index = next_++;
      items_[index]->phase = Phase::kWorking;
    }
    Tracked& t = *items_[index];
    Prepare(api, t);
    std::lock_guard<std::mutex> lock(mu_);
    if (t.phase == Phase::kPending) {
      if (pending_.empty()) first_pending_ = Clock::now();
      pending_.push_back(index);
    } else if (t.phase == Phase::kQueued) {
      batch_members_[t.batch].push_back(index);  // queued by an earlier run
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (--workers_running_ == 0) uploads_done_ = Clock::now();
}

// Sends pending members as a batch when there are enough of them (the server's maximum), when
// the uploads are done, or when the oldest has waited a moment (so ingest starts early).
// REQUIRES: mu_ not held. Returns whether a batch was sent.
bool SubmitRun::FlushBatch(bool force) {
  std::vector<size_t> take;
  json members = json::array();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_.empty()) return false;
    bool full = static_cast<int64_t>(pending_.size()) >= max_batch_;
    bool waited = SecondsSince(first_pending_) > 1.5;
    if (!full && !waited && !force && workers_running_ > 0) return false;
    size_t n = std::min<size_t>(pending_.size(), static_cast<size_t>(max_batch_));
    take.assign(pending_.begin(), pending_.begin() + static_cast<long>(n));
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<long>(n));
    if (!pending_.empty()) first_pending_ = Clock::now();
    for (size_t i : take) {
      const Tracked& t = *items_[i];
      json m = t.item.extra;
      m["id"] = t.item.id;
      m["space"] = t.item.space;
      m["origin"] = t.origin;
      m["mediaType"] = t.item.media_type;
      members.push_back(m);
    }
  }
  std::string queue = "/customers/" + std::to_string(customer_) + "/queue" +
                      (o_.priority ? "/priority" : "");
  auto r = CallWithRetries(api_, "POST", queue,
                           json{{"@type", "Collection"}, {"member", members}}.dump(), o_.retries);
  std::lock_guard<std::mutex> lock(mu_);
  if (!r.ok() || r->status != 201) {
    std::string why = !r.ok() ? r.status().message()
                              : "batch refused (" + std::to_string(r->status) + "): " + r->Detail();
    for (size_t i : take) Fail(*items_[i], why);
    return true;
  }
  json b = r->Json();
  BatchView view;
  view.id = b.value("id", int64_t{0});
  view.url = b.value("@id", "");
  view.Update(b);
  for (size_t i : take) {
    items_[i]->phase = Phase::kQueued;
    items_[i]->batch = view.id;
  }
  batch_members_[view.id] = take;
  d_.Event(view.Json(), d_.tty() ? "" : "batch " + std::to_string(view.id) + " submitted: " +
                                            std::to_string(take.size()) + " images (" + view.url +
                                            ")");
  batches_[view.id] = std::move(view);
  return true;
}

void SubmitRun::PollBatches() {
  std::vector<std::pair<int64_t, std::string>> open;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, b] : batches_)
      if (!b.finished) open.emplace_back(id, b.url);
  }
  for (auto& [id, url] : open) {
    auto r = api_.Get(url);
    if (!r.ok() || r->status != 200) continue;  // polled again shortly
    json b = r->Json();
    bool finished = b.contains("finished");
    std::map<std::string, std::string> errors;
    if (finished) errors = ErrorImages(api_, url, o_.retries);
    std::lock_guard<std::mutex> lock(mu_);
    BatchView& view = batches_[id];
    int64_t before = view.completed + view.errors;
    view.Update(b);
    bool changed = view.completed + view.errors != before || finished;
    auto last = last_batch_line_.find(id);
    if (changed && (finished || last == last_batch_line_.end() || SecondsSince(last->second) >= 1)) {
      last_batch_line_[id] = Clock::now();
      d_.Event(view.Json(), d_.tty() ? "" : "batch " + std::to_string(id) + ": " +
                                                std::to_string(view.completed) + "/" +
                                                std::to_string(view.count) + " completed, " +
                                                std::to_string(view.errors) + " errors" +
                                                (finished ? " (finished)" : ""));
    }
    if (!finished) continue;
    for (size_t i : batch_members_[id]) {
      Tracked& t = *items_[i];
      if (t.phase != Phase::kQueued || t.batch != id) continue;
      if (auto e = errors.find(t.item.id); e != errors.end()) {
        Fail(t, e->second.empty() ? "ingest failed" : e->second);
      } else {
        t.phase = Phase::kCompleted;
        d_.Event(json{{"event", "completed"}, {"file", t.item.label}, {"id", t.item.id}}, "");
      }
    }
  }
}

std::vector<std::string> SubmitRun::FrameLines() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> lines;
  int64_t total = 0, completed = 0, failed = 0, skipped = 0, done_uploads = 0;
  int64_t sent = uploaded_bytes_;
  std::vector<const Tracked*> active;
  for (auto& t : items_) {
    ++total;
    if (t->phase == Phase::kCompleted) ++completed;
    if (t->phase == Phase::kFailed) ++failed;
    if (t->phase == Phase::kSkipped) ++skipped;
    if (t->uploaded) ++done_uploads;
    if (t->phase == Phase::kUploading) {
      active.push_back(t.get());
      sent += t->sent.load();
    }
  }
  if (o_.csv.empty()) {
    double secs = uploads_done_ ? std::chrono::duration<double>(*uploads_done_ - started_).count()
                                : SecondsSince(started_);
    char rate[48] = "";
    if (secs > 0.2) std::snprintf(rate, sizeof rate, " · %s/s", FormatBytes(
                                      static_cast<int64_t>(sent / secs)).c_str());
    lines.push_back(std::string(uploads_done_ ? "Uploaded " : "Uploading") + " " +
                    Bar(sent, std::max<int64_t>(upload_total_, 1)) + " " +
                    std::to_string(done_uploads) + " files · " + FormatBytes(sent) + "/" +
                    FormatBytes(upload_total_) + rate);
    for (const Tracked* t : active)
      lines.push_back("  ↑ " + t->item.label + "  " + Bar(t->sent.load(), t->item.size, 10) + " " +
                      FormatBytes(t->sent.load()) + "/" + FormatBytes(t->item.size));
  }
  // The last few batches, oldest first.
  int hidden = std::max(0, static_cast<int>(batches_.size()) - 4);
  if (hidden > 0) lines.push_back("  (" + std::to_string(hidden) + " earlier batches)");
  int index = 0;
  for (auto& [id, b] : batches_)
    if (index++ >= hidden) lines.push_back(b.Line("Batch " + std::to_string(id)));
  std::string tail = std::to_string(completed) + "/" + std::to_string(total - skipped) +
                     " completed · " + std::to_string(failed) + " failed";
  if (skipped > 0) tail += " · " + std::to_string(skipped) + " already done";
  lines.push_back("Total     " + Bar(completed + failed, total - skipped) + " " + tail);
  return lines;
}

int SubmitRun::Summary(bool interrupted) {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t completed = 0, failed = 0, skipped = 0, other = 0;
  json failures = json::array();
  for (auto& t : items_) {
    switch (t->phase) {
      case Phase::kCompleted: ++completed; break;
      case Phase::kSkipped: ++skipped; break;
      case Phase::kFailed:
        ++failed;
        failures.push_back({{"file", t->item.label}, {"id", t->item.id}, {"error", t->error}});
        break;
      default: ++other;
    }
  }
  double secs = SecondsSince(started_);
  if (d_.json()) {
    json s{{"event", "summary"},  {"images", items_.size()}, {"completed", completed},
           {"failed", failed},    {"skipped", skipped},      {"unfinished", other},
           {"uploadedFiles", files_uploaded_}, {"uploadedBytes", uploaded_bytes_},
           {"seconds", secs},     {"failures", failures},    {"interrupted", interrupted}};
    json urls = json::array();
    for (auto& [id, b] : batches_) urls.push_back(b.url);
    s["batches"] = urls;
    if (interrupted) s["resume"] = MaskedHint(o_);
    d_.Event(s, "");
  } else {
    std::string out = "\nSummary\n";
    char buf[256];
    std::snprintf(buf, sizeof buf, "  %-12s %6zu\n  %-12s %6lld\n  %-12s %6lld\n", "images",
                  items_.size(), "completed", static_cast<long long>(completed), "failed",
                  static_cast<long long>(failed));
    out += buf;
    if (skipped > 0) {
      std::snprintf(buf, sizeof buf, "  %-12s %6lld  (already completed with the same bytes)\n",
                    "skipped", static_cast<long long>(skipped));
      out += buf;
    }
    if (other > 0) {
      std::snprintf(buf, sizeof buf, "  %-12s %6lld\n", "unfinished", static_cast<long long>(other));
      out += buf;
    }
    if (o_.csv.empty()) {
      double up_s = uploads_done_ ? std::chrono::duration<double>(*uploads_done_ - started_).count()
                                  : secs;
      std::string rate = up_s > 0.05 && uploaded_bytes_ > 0
                             ? " in " + FormatDuration(up_s) + " (" +
                                   FormatBytes(static_cast<int64_t>(uploaded_bytes_ / up_s)) +
                                   "/s)"
                             : "";
      std::snprintf(buf, sizeof buf, "  %-12s %6d  files, %s%s\n", "uploaded", files_uploaded_,
                    FormatBytes(uploaded_bytes_).c_str(), rate.c_str());
      out += buf;
    }
    std::snprintf(buf, sizeof buf, "  %-12s %6zu\n  %-12s %s\n", "batches", batches_.size(),
                  "time", FormatDuration(secs).c_str());
    out += buf;
    for (auto& [id, b] : batches_) out += "    " + b.url + "\n";
    if (!failures.empty()) {
      size_t width = 4;
      for (auto& f : failures) width = std::max(width, f["file"].get<std::string>().size());
      width = std::min<size_t>(width, 60);
      out += "\nFailures\n";
      std::snprintf(buf, sizeof buf, "  %-*s  %s\n", static_cast<int>(width), "FILE", "ERROR");
      out += buf;
      for (auto& f : failures) {
        std::string line = "  " + f["file"].get<std::string>();
        line += std::string(width + 4 > line.size() ? width + 4 - line.size() : 1, ' ');
        out += line + f["error"].get<std::string>() + "\n";
      }
    }
    if (interrupted) {
      out += "\nInterrupted. Batches already submitted go on ingesting on the server.\n"
             "Run the same command again to resume (finished images are skipped, uploads are "
             "not repeated):\n  " + MaskedHint(o_) + "\n";
    }
    d_.Text(out);
  }
  if (interrupted) return 130;
  return failed == 0 && other == 0 ? 0 : 1;
}

int SubmitRun::Run() {
  InstallSigint();
  auto customer = ResolveCustomer(api_, o_);
  if (!customer.ok()) return UsageError(d_, customer.status().message());
  customer_ = *customer;
  if (auto root = api_.Get("/"); root.ok())
    max_batch_ = std::max<int64_t>(1, root->Json().value("maxBatchSize", int64_t{250}));
  std::string customer_path = "/customers/" + std::to_string(customer_);
  if (o_.space > 0) {
    auto sp = api_.Get(customer_path + "/spaces/" + std::to_string(o_.space));
    if (!sp.ok()) return UsageError(d_, sp.status().message());
    if (sp->status == 401) return UsageError(d_, "the server refused the credentials (401)");
    if (sp->status == 404)
      return UsageError(d_, "space " + std::to_string(o_.space) + " not found for customer " +
                                std::to_string(customer_));
    if (sp->status != 200)
      return UsageError(d_, "cannot read space " + std::to_string(o_.space) + ": " + sp->Detail());
  }
  auto items = o_.csv.empty() ? ScanFiles(o_.paths, o_.space) : ReadCsv(o_.csv, o_.space);
  if (!items.ok()) return UsageError(d_, items.status().message());
  if (items->empty()) return UsageError(d_, "nothing to submit: no files found");
  if (o_.csv.empty()) {
    // Uploads of earlier runs, by their bytes: a re-run sends nothing twice.
    for (int page = 1; page < 10000; ++page) {
      auto r = api_.Get(customer_path + "/uploads?pageSize=500&page=" + std::to_string(page));
      if (!r.ok()) return UsageError(d_, r.status().message());
      if (r->status == 401) return UsageError(d_, "the server refused the credentials (401)");
      if (r->status != 200) break;  // a DLCS has no uploads
      json j = r->Json();
      for (auto& u : j.value("member", json::array())) {
        std::string origin = u.value("origin", "");
        upload_by_sha_.emplace(u.value("sha256", ""), origin);
        sha_by_origin_[origin] = u.value("sha256", "");
      }
      if (!j.contains("view") || !j["view"].contains("next")) break;
    }
  }
  for (Item& it : *items) {
    auto t = std::make_unique<Tracked>();
    t->item = std::move(it);
    if (!t->item.path.empty() && t->item.error.empty()) upload_total_ += t->item.size;
    items_.push_back(std::move(t));
  }
  d_.Event(json{{"event", "start"}, {"url", o_.endpoint.url}, {"customer", customer_},
                {"images", items_.size()}, {"maxBatchSize", max_batch_}},
           d_.tty() ? "" : "submitting " + std::to_string(items_.size()) + " images to " +
                               o_.endpoint.url + " (customer " + std::to_string(customer_) + ")");
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& t : items_)
      if (!t->item.error.empty()) Fail(*t, t->item.error);
  }
  int jobs = std::max(1, o_.jobs);
  workers_running_ = jobs;
  std::vector<std::thread> workers;
  for (int i = 0; i < jobs; ++i) workers.emplace_back([this] { Worker(); });

  auto last_frame = Clock::now() - std::chrono::seconds(1);
  auto last_poll = Clock::now();
  while (!g_interrupted.load()) {
    bool uploads_running;
    {
      std::lock_guard<std::mutex> lock(mu_);
      uploads_running = workers_running_ > 0;
    }
    while (FlushBatch(!uploads_running) && !g_interrupted.load()) {
    }
    if (SecondsSince(last_poll) >= 0.4) {
      PollBatches();
      last_poll = Clock::now();
    }
    if (d_.tty() && SecondsSince(last_frame) >= 0.15) {
      d_.Frame(FrameLines());
      last_frame = Clock::now();
    }
    bool done = true;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& t : items_)
        if (t->phase != Phase::kCompleted && t->phase != Phase::kFailed &&
            t->phase != Phase::kSkipped)
          done = false;
    }
    if (done && !uploads_running) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  bool interrupted = g_interrupted.load();
  for (auto& w : workers) w.join();
  if (d_.tty()) d_.Frame(FrameLines());
  d_.EndFrame();
  return Summary(interrupted);
}

}  // namespace

int RunSubmit(const ClientOptions& o) {
  Display d(o.output);
  if (o.paths.empty() == o.csv.empty())
    return UsageError(d, "give files or folders to upload, or --csv FILE (not both)");
  if (o.space <= 0 && o.csv.empty()) return UsageError(d, "--space is required");
  SubmitRun run(o, d);
  return run.Run();
}

// --------------------------------------------------------------------------- watch, retry

namespace {

int Watch(ApiClient& api, Display& d, const ClientOptions& o, const std::string& url) {
  BatchView view;
  view.url = url;
  auto last_line = Clock::now() - std::chrono::seconds(10);
  int64_t last_done = -1;
  while (!g_interrupted.load()) {
    auto r = api.Get(url);
    if (!r.ok()) return UsageError(d, r.status().message());
    if (r->status == 401) return UsageError(d, "the server refused the credentials (401)");
    if (r->status == 404) return UsageError(d, "no batch at " + url);
    if (r->status != 200) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      continue;
    }
    json b = r->Json();
    view.id = b.value("id", int64_t{0});
    view.Update(b);
    int64_t done = view.completed + view.errors;
    if (d.tty()) {
      d.Frame({view.Line("Batch " + std::to_string(view.id))});
    } else if (done != last_done &&
               (view.finished || SecondsSince(last_line) >= 1 || last_done < 0)) {
      d.Event(view.Json(), "batch " + std::to_string(view.id) + ": " +
                               std::to_string(view.completed) + "/" +
                               std::to_string(view.count) + " completed, " +
                               std::to_string(view.errors) + " errors" +
                               (view.finished ? " (finished)" : ""));
      last_done = done;
      last_line = Clock::now();
    }
    if (view.finished) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
  }
  d.EndFrame();
  if (g_interrupted.load()) {
    d.Text("\nStopped watching; the batch goes on on the server. Watch it again with:\n  quire "
           "client watch " + url + "\n");
    d.Event(json{{"event", "interrupted"}, {"url", url}}, "");
    return 130;
  }
  auto errors = ErrorImages(api, url, o.retries);
  json failures = json::array();
  std::string text = "\nBatch " + std::to_string(view.id) + ": " +
                     std::to_string(view.completed) + " completed, " +
                     std::to_string(view.errors) + " failed of " + std::to_string(view.count) +
                     "\n";
  if (!errors.empty()) text += "\nFailures\n";
  for (auto& [id, e] : errors) {
    failures.push_back({{"id", id}, {"error", e}});
    text += "  " + id + "  " + e + "\n";
  }
  d.Text(text);
  d.Event(json{{"event", "summary"}, {"url", url}, {"count", view.count},
               {"completed", view.completed}, {"errors", view.errors}, {"failures", failures}},
          "");
  return view.errors == 0 ? 0 : 1;
}

}  // namespace

int RunWatch(const ClientOptions& o, const std::string& batch_url) {
  InstallSigint();
  Display d(o.output);
  ApiClient api(o.endpoint);
  return Watch(api, d, o, api.Absolute(batch_url));
}

int RunRetry(const ClientOptions& o, const std::string& batch_url) {
  InstallSigint();
  Display d(o.output);
  ApiClient api(o.endpoint);
  std::string url = api.Absolute(batch_url);
  while (!url.empty() && url.back() == '/') url.pop_back();
  auto r = CallWithRetries(api, "POST", url + "/retry", "", o.retries);
  if (!r.ok()) return UsageError(d, r.status().message());
  if (r->status == 401) return UsageError(d, "the server refused the credentials (401)");
  if (r->status == 404) return UsageError(d, "no batch at " + url);
  if (r->status != 200) return UsageError(d, "retry refused: " + r->Detail());
  d.Event(json{{"event", "retried"}, {"url", url}}, "retrying the failed images of " + url);
  return Watch(api, d, o, url);
}

}  // namespace quire::client
