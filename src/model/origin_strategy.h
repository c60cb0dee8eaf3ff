// Origin strategies (DLCS CustomerOriginStrategy): how ingest fetches an origin whose URL
// matches a customer's regular expression. The first match in `order` wins; no match is the
// `default` strategy (a plain fetch).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace quire {

struct OriginStrategy {
  int64_t customer = 0;
  std::string id;        // a UUID
  std::string regex;     // ECMAScript, searched in the origin URL
  std::string strategy;  // default | basic-http-authentication | s3-ambient
  // Sealed with the server's secrets key (core/secret_box.h); never shown. Empty: none.
  std::string sealed_credentials;
  bool optimised = false;
  int64_t order = 0;
};

// The strategy names Quire implements.
bool IsOriginStrategyName(const std::string& name);

// Problem with `regex` (too long, or not a valid ECMAScript expression); "" when usable.
std::string OriginRegexProblem(const std::string& regex);

// The first strategy (in `order`, then id) whose regex is found in `origin`; nullopt: none.
std::optional<OriginStrategy> MatchOriginStrategy(const std::vector<OriginStrategy>& strategies,
                                                  const std::string& origin);

}  // namespace quire
