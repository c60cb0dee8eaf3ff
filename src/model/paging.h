// Paging arithmetic shared by every collection (spec §3).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace quire {

struct PageRequest {
  int64_t page = 1;        // 1-based
  int64_t page_size = 100;
  int64_t Offset() const { return (page - 1) * page_size; }
};

constexpr int64_t kDefaultPageSize = 100;
constexpr int64_t kMaxPageSize = 500;

// ?page=N: <=0 or junk → 1. ?pageSize=N: <=0 or junk → default, capped at max.
PageRequest ParsePageRequest(const std::string& page, const std::string& page_size);

// Pages needed for `total` items (at least 1).
int64_t TotalPages(int64_t total, int64_t page_size);

template <typename T>
struct Page {
  std::vector<T> items;
  int64_t total = 0;
};

}  // namespace quire
