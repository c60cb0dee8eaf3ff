// A batch (vocab:Batch): one queue POST, tracked to its last image. Counts are derived from
// the batch_assets rows by the store; never incremented blindly.
#pragma once

#include <cstdint>
#include <optional>

namespace quire {

struct Batch {
  int64_t id = 0;
  int64_t customer = 0;
  int64_t submitted_ms = 0;
  int64_t count = 0;
  int64_t completed = 0;
  int64_t errors = 0;
  std::optional<int64_t> finished_ms;
  bool superseded = false;
  bool priority = false;
  std::optional<int64_t> est_completion_ms;  // computed on read while unfinished

  bool operator==(const Batch&) const = default;
};

// Which members of a batch to list.
enum class BatchMemberFilter { kAll, kCompleted, kError };

// Which batches to list.
enum class BatchListFilter { kAll, kActive, kRecent };

}  // namespace quire
