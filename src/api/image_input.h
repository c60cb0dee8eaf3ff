// Reading an Image (spec §5) from JSON input: types, read-only properties, ids, origins,
// media types, delivery channels, and the old generated clients' spellings (`modelId`,
// numeric `family`). Used by the queue POST and the image PUT/PATCH.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "model/asset.h"

namespace quire::api {

enum class ImageInputMode {
  kQueueMember,  // space, origin and mediaType required
  kPut,          // origin and mediaType required; space and id come from the URL
  kPatch,        // everything optional; applied over the existing asset
};

// Applies `j` onto `*asset` and returns every problem found (empty when valid).
// `*id_given` tells whether a non-empty id was supplied.
std::vector<std::string> ReadImageInput(const nlohmann::json& j, ImageInputMode mode,
                                        const Config& config, Asset* asset, bool* id_given);

// When `origin` is an upload's URL on this server (API/customers/{c}/uploads/{u}, the Upload's
// `origin`), the upload id, with its customer in *customer; nullopt for any other origin.
// ReadImageInput sets Asset::upload from it.
std::optional<std::string> UploadOfOrigin(const std::string& origin, const Config& config,
                                          int64_t* customer);

// Checks an origin URL against the schemes and roots Quire fetches from.
std::string OriginProblem(const std::string& origin, const Config& config);

}  // namespace quire::api
