// Custom headers (DLCS CustomHeader): a header a customer adds to the delivery responses of
// its images — of one space, or of all its spaces (space 0) — e.g. a longer Cache-Control.
// Only headers on a safe list may be set: nothing that changes framing, connection handling,
// content, cookies or redirects.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace quire {

struct CustomHeader {
  int64_t customer = 0;
  std::string id;     // a UUID
  int64_t space = 0;  // 0: every space of the customer
  std::string key;    // header name, as given
  std::string value;
};

// "" when `key: value` may be added to delivery responses, else why not.
std::string CustomHeaderProblem(const std::string& key, const std::string& value);

// The headers for an image of `space`: a space's own header overrides a customer-wide one of
// the same name.
std::vector<std::pair<std::string, std::string>> HeadersForSpace(
    const std::vector<CustomHeader>& headers, int64_t space);

}  // namespace quire
