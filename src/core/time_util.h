// Wall-clock helpers. Times are kept as milliseconds since the Unix epoch (UTC) everywhere.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace quire {

int64_t NowMs();
// Milliseconds of a clock that never steps (CLOCK_MONOTONIC), for lifetimes inside one
// process: a wall clock set back would otherwise keep a cache entry alive that much longer.
int64_t SteadyMs();
// "2026-11-28T19:00:00.123Z"
std::string FormatIso8601(int64_t epoch_ms);
// Parses the format above (fraction optional, 'Z' or "+00:00"); nullopt when malformed.
std::optional<int64_t> ParseIso8601(const std::string& text);
// "Sat, 28 Nov 2026 19:00:00 GMT" for Last-Modified.
std::string FormatHttpDate(int64_t epoch_ms);
std::optional<int64_t> ParseHttpDate(const std::string& text);

}  // namespace quire
