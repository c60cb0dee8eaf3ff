#include "ops/metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

namespace quire::ops {

namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;
constexpr std::string_view kStageNames[] = {"fetch", "decode", "pyramid", "thumbs", "store"};

void Line(std::string* out, const std::string& name, const std::string& labels, uint64_t v) {
  *out += name;
  if (!labels.empty()) *out += "{" + labels + "}";
  *out += " " + std::to_string(v) + "\n";
}

void Header(std::string* out, const char* name, const char* type, const char* help) {
  *out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

std::string FormatDouble(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

int64_t ResidentBytes() {
  std::ifstream f("/proc/self/statm");
  int64_t size = 0, resident = 0;
  if (!(f >> size >> resident)) return -1;
  return resident * ::sysconf(_SC_PAGESIZE);
}

int64_t OpenFds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int64_t n = -1;  // the directory's own descriptor is listed too
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;
}

}  // namespace

std::string_view FamilyName(Family f) {
  static constexpr std::string_view kNames[] = {"api",    "iiif-tile", "iiif-render", "info",
                                                "thumbs", "file",      "other"};
  return kNames[static_cast<size_t>(f)];
}

void Histogram::Observe(double seconds) {
  size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  buckets_[i].fetch_add(1, kRelaxed);
  sum_micros_.fetch_add(static_cast<uint64_t>(seconds * 1e6 + 0.5), kRelaxed);
}

void Histogram::Write(std::string* out, const std::string& name,
                      const std::string& labels) const {
  std::string sep = labels.empty() ? "" : labels + ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= kBounds.size(); ++i) {
    cumulative += buckets_[i].load(kRelaxed);
    std::string le = i < kBounds.size() ? FormatDouble(kBounds[i]) : "+Inf";
    Line(out, name + "_bucket", sep + "le=\"" + le + "\"", cumulative);
  }
  *out += name + "_sum" + (labels.empty() ? "" : "{" + labels + "}") + " " +
          std::to_string(static_cast<double>(sum_micros_.load(kRelaxed)) / 1e6) + "\n";
  Line(out, name + "_count", labels, cumulative);
}

void Metrics::ObserveRequest(Family family, int status, double seconds) {
  size_t f = static_cast<size_t>(family);
  if (status >= 100 && status < 600) requests_[f][static_cast<size_t>(status - 100)].fetch_add(1, kRelaxed);
  request_seconds_[f].Observe(seconds);
}

void Metrics::CountIngest(bool completed) { ingest_images_[completed ? 1 : 0].fetch_add(1, kRelaxed); }

void Metrics::ObserveStage(Stage stage, double seconds) {
  stage_seconds_[static_cast<size_t>(stage)].Observe(seconds);
}

void Metrics::AddOriginBytes(int64_t bytes) {
  if (bytes > 0) origin_bytes_.fetch_add(static_cast<uint64_t>(bytes), kRelaxed);
}

void Metrics::CountCache(bool hit) { (hit ? cache_hits_ : cache_misses_).fetch_add(1, kRelaxed); }

std::string Metrics::Exposition(const Gauges& gauges) const {
  std::string out;
  out.reserve(16 << 10);
  Header(&out, "quire_http_requests_total", "counter", "HTTP requests answered, by route family and status.");
  for (size_t f = 0; f < kFamilies; ++f) {
    for (int s = 0; s < kStatuses; ++s) {
      uint64_t v = requests_[f][static_cast<size_t>(s)].load(kRelaxed);
      if (v == 0) continue;
      Line(&out, "quire_http_requests_total",
           "family=\"" + std::string(FamilyName(static_cast<Family>(f))) + "\",status=\"" +
               std::to_string(s + 100) + "\"",
           v);
    }
  }
  Header(&out, "quire_http_request_seconds", "histogram", "Time from a request's arrival to its answer being written.");
  for (size_t f = 0; f < kFamilies; ++f) {
    request_seconds_[f].Write(&out, "quire_http_request_seconds",
                              "family=\"" + std::string(FamilyName(static_cast<Family>(f))) + "\"");
  }
  Header(&out, "quire_ingest_images_total", "counter", "Images whose ingest ended, by outcome.");
  Line(&out, "quire_ingest_images_total", "outcome=\"completed\"", ingest_images_[1].load(kRelaxed));
  Line(&out, "quire_ingest_images_total", "outcome=\"error\"", ingest_images_[0].load(kRelaxed));
  Header(&out, "quire_ingest_stage_seconds", "histogram", "Time spent in each ingest stage per image.");
  for (size_t s = 0; s < stage_seconds_.size(); ++s) {
    stage_seconds_[s].Write(&out, "quire_ingest_stage_seconds",
                            "stage=\"" + std::string(kStageNames[s]) + "\"");
  }
  Header(&out, "quire_origin_bytes_total", "counter", "Bytes downloaded from origins.");
  Line(&out, "quire_origin_bytes_total", "", origin_bytes_.load(kRelaxed));
  Header(&out, "quire_delivery_cache_hits_total", "counter", "Delivery responses served from a cache.");
  Line(&out, "quire_delivery_cache_hits_total", "", cache_hits_.load(kRelaxed));
  Header(&out, "quire_delivery_cache_misses_total", "counter", "Delivery requests that missed the caches.");
  Line(&out, "quire_delivery_cache_misses_total", "", cache_misses_.load(kRelaxed));
  int64_t incoming = 0, priority = 0;
  if (gauges.queue_waiting && gauges.queue_waiting(&incoming, &priority)) {
    Header(&out, "quire_queue_waiting", "gauge", "Images waiting to be ingested, by queue.");
    Line(&out, "quire_queue_waiting", "queue=\"incoming\"", static_cast<uint64_t>(incoming));
    Line(&out, "quire_queue_waiting", "queue=\"priority\"", static_cast<uint64_t>(priority));
  }
  int64_t active = 0;
  if (gauges.batches_active && gauges.batches_active(&active)) {
    Header(&out, "quire_batches_active", "gauge", "Batches not yet finished (nor superseded).");
    Line(&out, "quire_batches_active", "", static_cast<uint64_t>(active));
  }
  if (int64_t rss = ResidentBytes(); rss >= 0) {
    Header(&out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    Line(&out, "process_resident_memory_bytes", "", static_cast<uint64_t>(rss));
  }
  if (int64_t fds = OpenFds(); fds >= 0) {
    Header(&out, "process_open_fds", "gauge", "Number of open file descriptors.");
    Line(&out, "process_open_fds", "", static_cast<uint64_t>(fds));
  }
  return out;
}

}  // namespace quire::ops
