#include "model/custom_header.h"

#include <strings.h>

#include <algorithm>

namespace quire {

namespace {

// Caching, CORS, indexing and link headers: they change how a response is kept or shown,
// never how it is framed, routed or what it contains.
const char* const kSafe[] = {"Cache-Control",
                             "Expires",
                             "Surrogate-Control",
                             "CDN-Cache-Control",
                             "Access-Control-Allow-Origin",
                             "Access-Control-Expose-Headers",
                             "Access-Control-Max-Age",
                             "Timing-Allow-Origin",
                             "Cross-Origin-Resource-Policy",
                             "X-Robots-Tag",
                             "Content-Language",
                             "Link"};

}  // namespace

std::string CustomHeaderProblem(const std::string& key, const std::string& value) {
  bool safe = std::any_of(std::begin(kSafe), std::end(kSafe),
                          [&](const char* k) { return strcasecmp(k, key.c_str()) == 0; });
  if (!safe) {
    std::string list;
    for (const char* k : kSafe) list += (list.empty() ? "" : ", ") + std::string(k);
    return "header '" + key + "' may not be set (Set-Cookie, hop-by-hop and content headers " +
           "are refused); allowed: " + list;
  }
  if (value.empty() || value.size() > 1000) return "'value' must be 1-1000 characters";
  for (unsigned char ch : value)
    if (ch < 0x20 || ch == 0x7f) return "'value' must not contain control characters";
  return "";
}

std::vector<std::pair<std::string, std::string>> HeadersForSpace(
    const std::vector<CustomHeader>& headers, int64_t space) {
  std::vector<std::pair<std::string, std::string>> out;
  for (int64_t level : {int64_t{0}, space}) {
    if (level == 0 && space == 0) continue;
    for (const CustomHeader& h : headers) {
      if (h.space != level) continue;
      auto it = std::find_if(out.begin(), out.end(), [&](const auto& kv) {
        return strcasecmp(kv.first.c_str(), h.key.c_str()) == 0;
      });
      if (it == out.end())
        out.emplace_back(h.key, h.value);
      else
        it->second = h.value;  // the space's own wins (applied after the customer's)
    }
  }
  return out;
}

}  // namespace quire
