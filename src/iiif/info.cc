#include "iiif/info.h"

namespace quire::iiif {
namespace {

constexpr const char* kContext3 = "http://iiif.io/api/image/3/context.json";
constexpr const char* kContext2 = "http://iiif.io/api/image/2/context.json";
constexpr const char* kProtocol = "http://iiif.io/api/image";

std::string StripSlash(std::string id) {
  while (!id.empty() && id.back() == '/') id.pop_back();
  return id;
}

nlohmann::json SizesArray(const std::vector<std::pair<int, int>>& sizes, const Limits& limits) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [w, h] : sizes) {
    if (w < 1 || h < 1) continue;
    if (limits.max_width > 0 && w > limits.max_width) continue;
    if (limits.EffectiveMaxHeight() > 0 && h > limits.EffectiveMaxHeight()) continue;
    if (limits.max_area > 0 && int64_t(w) * h > limits.max_area) continue;
    out.push_back({{"width", w}, {"height", h}});
  }
  return out;
}

nlohmann::json TilesArray(int tile_size, const std::vector<int>& scale_factors) {
  return nlohmann::json::array(
      {{{"width", tile_size}, {"height", tile_size}, {"scaleFactors", scale_factors}}});
}

void AddLimits(nlohmann::json& j, const Limits& limits) {
  if (limits.max_width > 0) j["maxWidth"] = limits.max_width;
  if (limits.max_height > 0) j["maxHeight"] = limits.max_height;
  if (limits.max_area > 0) j["maxArea"] = limits.max_area;
}

}  // namespace

std::string ProfileUri(ApiVersion version, bool level0) {
  const char* level = level0 ? "level0" : "level2";
  return std::string("http://iiif.io/api/image/") + (version == ApiVersion::kV3 ? "3/" : "2/") +
         level + ".json";
}

nlohmann::json InfoJson(ApiVersion version, const std::string& id_url, int width, int height,
                        const std::vector<std::pair<int, int>>& sizes, int tile_size,
                        const std::vector<int>& scale_factors, const Limits& limits) {
  nlohmann::json j;
  j["protocol"] = kProtocol;
  j["width"] = width;
  j["height"] = height;
  j["sizes"] = SizesArray(sizes, limits);
  j["tiles"] = TilesArray(tile_size, scale_factors);
  // Beyond what level 2 requires: the rendering in renderer.cc and the headers the delivery
  // layer sends (spec/iiif.md: Link rel="profile" and rel="canonical").
  if (version == ApiVersion::kV3) {
    j["@context"] = kContext3;
    j["id"] = StripSlash(id_url);
    j["type"] = "ImageService3";
    j["profile"] = "level2";
    AddLimits(j, limits);
    j["extraQualities"] = {"color", "gray", "bitonal"};
    j["extraFormats"] = {"webp", "tif", "gif"};
    nlohmann::json features = {"mirroring", "rotationArbitrary", "canonicalLinkHeader",
                               "profileLinkHeader"};
    // 3.0 §5.7: sizeUpscaling requires maxWidth or maxArea.
    if (limits.max_width > 0 || limits.max_area > 0) features.push_back("sizeUpscaling");
    j["extraFeatures"] = features;
  } else {
    j["@context"] = kContext2;
    j["@id"] = StripSlash(id_url);
    nlohmann::json description = {
        {"formats", {"jpg", "png", "webp", "tif", "gif"}},
        {"qualities", {"default", "color", "gray", "bitonal"}},
    };
    nlohmann::json supports = {"regionSquare", "mirroring", "rotationArbitrary",
                               "canonicalLinkHeader", "profileLinkHeader"};
    if (limits.Any()) supports.push_back("sizeAboveFull");
    description["supports"] = supports;
    // 2.1 §5.3: the limits live in the profile description.
    AddLimits(description, limits);
    j["profile"] = nlohmann::json::array({ProfileUri(ApiVersion::kV2), description});
  }
  return j;
}

nlohmann::json InfoJsonLevel0(ApiVersion version, const std::string& id_url, int width, int height,
                              const std::vector<std::pair<int, int>>& sizes) {
  nlohmann::json j;
  j["protocol"] = kProtocol;
  j["width"] = width;
  j["height"] = height;
  j["sizes"] = SizesArray(sizes, Limits{});
  if (version == ApiVersion::kV3) {
    j["@context"] = kContext3;
    j["id"] = StripSlash(id_url);
    j["type"] = "ImageService3";
    j["profile"] = "level0";
  } else {
    j["@context"] = kContext2;
    j["@id"] = StripSlash(id_url);
    j["profile"] = nlohmann::json::array({ProfileUri(ApiVersion::kV2, true)});
  }
  return j;
}

}  // namespace quire::iiif
