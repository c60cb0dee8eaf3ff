#include "iiif/custom_headers.h"

namespace quire::iiif {

void CustomHeaderCache::Apply(int64_t customer, int64_t space, http::Response* res) {
  auto now = std::chrono::steady_clock::now();
  std::vector<CustomHeader> headers;
  bool fresh = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(customer);
    if (it != entries_.end() && now - it->second.read < ttl_) {
      headers = it->second.headers;
      fresh = true;
    }
  }
  if (!fresh) {
    auto listed = store_.ListCustomHeaders(customer);
    if (!listed.ok()) return;
    headers = *listed;
    std::lock_guard<std::mutex> lock(mu_);
    if (entries_.size() > 10000) entries_.clear();
    entries_[customer] = Entry{headers, now};
  }
  for (auto& [key, value] : HeadersForSpace(headers, space)) res->Set(key, value);
}

}  // namespace quire::iiif
