// IIIF Image API image information documents (info.json) for 3.0 and 2.1, with exactly the
// fields spec/iiif.md lists. Pure functions, thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "iiif/request.h"

namespace quire::iiif {

// The level-2 service for an image. `id_url` is the base URI without a trailing slash (one is
// stripped if present). `sizes` are (width, height) pairs (those beyond `limits` are left out,
// as the spec requires); `tile_size` square tiles at `scale_factors`. Limits with value 0 are
// omitted; upscaling (`sizeUpscaling` / `sizeAboveFull`) is advertised only when a limit is
// declared, matching ResolveImageRequest.
nlohmann::json InfoJson(ApiVersion version, const std::string& id_url, int width, int height,
                        const std::vector<std::pair<int, int>>& sizes, int tile_size,
                        const std::vector<int>& scale_factors, const Limits& limits);

// A level-0 service listing only fixed `sizes` (the stored thumbnails): no tiles, no limits.
nlohmann::json InfoJsonLevel0(ApiVersion version, const std::string& id_url, int width, int height,
                              const std::vector<std::pair<int, int>>& sizes);

// The profile URI for the `Link: <…>;rel="profile"` header.
std::string ProfileUri(ApiVersion version, bool level0 = false);

}  // namespace quire::iiif
