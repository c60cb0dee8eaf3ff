#include "model/origin_strategy.h"

#include <algorithm>
#include <regex>

namespace quire {

namespace {
constexpr size_t kMaxRegex = 1000;
}

bool IsOriginStrategyName(const std::string& name) {
  return name == "default" || name == "basic-http-authentication" || name == "s3-ambient";
}

std::string OriginRegexProblem(const std::string& regex) {
  if (regex.empty() || regex.size() > kMaxRegex)
    return "'regex' must be a regular expression of 1-" + std::to_string(kMaxRegex) + " characters";
  try {
    std::regex re(regex, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return std::string("'regex' is not a valid regular expression: ") + e.what();
  }
  return "";
}

std::optional<OriginStrategy> MatchOriginStrategy(const std::vector<OriginStrategy>& strategies,
                                                  const std::string& origin) {
  std::vector<const OriginStrategy*> ordered;
  for (const auto& s : strategies) ordered.push_back(&s);
  std::stable_sort(ordered.begin(), ordered.end(), [](const auto* a, const auto* b) {
    return a->order != b->order ? a->order < b->order : a->id < b->id;
  });
  for (const OriginStrategy* s : ordered) {
    try {
      if (std::regex_search(origin, std::regex(s->regex, std::regex::ECMAScript))) return *s;
    } catch (const std::regex_error&) {
      // Stored expressions were validated; one that a newer library rejects matches nothing.
    }
  }
  return std::nullopt;
}

}  // namespace quire
