// Numeric ids in URLs and bodies (customers, spaces, batches, sizes): shared by api/ and iiif/.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>

namespace quire {

// A non-negative decimal integer of at most 18 digits, nothing else; nullopt otherwise.
inline std::optional<int64_t> ParseId(const std::string& text) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v < 0) return std::nullopt;
  return v;
}

}  // namespace quire
