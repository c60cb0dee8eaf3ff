// The process's counters and histograms, exposed at GET /metrics in the Prometheus text
// format (spec/platform.md §4). Recording is lock-free (relaxed atomics on fixed arrays): the
// request path pays a few increments. Thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "ops/route_family.h"

namespace quire::ops {

// Ingest stages timed per image.
enum class Stage { kFetch, kDecode, kPyramid, kThumbs, kStore, kCount };

// A histogram with fixed upper bounds (seconds).
class Histogram {
 public:
  static constexpr std::array<double, 14> kBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                     0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                                     5,      10};
  void Observe(double seconds);
  // Appends the _bucket/_sum/_count lines of `name` with `labels` ("" or `k="v"`).
  void Write(std::string* out, const std::string& name, const std::string& labels) const;

 private:
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets_{};  // last: +Inf
  std::atomic<uint64_t> sum_micros_{0};
};

class Metrics {
 public:
  void ObserveRequest(Family family, int status, double seconds);
  void CountIngest(bool completed);
  void ObserveStage(Stage stage, double seconds);
  void AddOriginBytes(int64_t bytes);
  void CountCache(bool hit);

  // Values read at scrape time (queue depths from the store); a gauge that fails is left out.
  struct Gauges {
    std::function<bool(int64_t* incoming, int64_t* priority)> queue_waiting;
    std::function<bool(int64_t* active)> batches_active;
  };
  // The whole exposition: the families above, then process RSS and open fds.
  std::string Exposition(const Gauges& gauges) const;

 private:
  static constexpr int kStatuses = 500;  // 100..599
  static constexpr size_t kFamilies = static_cast<size_t>(Family::kCount);
  std::array<std::array<std::atomic<uint64_t>, kStatuses>, kFamilies> requests_{};
  std::array<Histogram, kFamilies> request_seconds_;
  std::array<std::atomic<uint64_t>, 2> ingest_images_{};  // error, completed
  std::array<Histogram, static_cast<size_t>(Stage::kCount)> stage_seconds_;
  std::atomic<uint64_t> origin_bytes_{0};
  std::atomic<uint64_t> cache_hits_{0}, cache_misses_{0};
};

}  // namespace quire::ops
