// libFuzzer target for the JSON bodies of image PUT/PATCH and queue members
// (src/api/image_input.cc): any bytes are parsed as a body the way the API does, then read
// as an image in each mode. Beyond "no crash, ASan/UBSan clean" it checks the reader's
// contract: an input without problems yields an asset whose fields are within their limits.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "api/image_input.h"

namespace {
void Check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string body(reinterpret_cast<const char*>(data), size);
  // As ParseJsonObject: a NUL ends nlohmann's input early, so such bodies are refused first.
  if (body.find('\0') != std::string::npos) return 0;
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return 0;
  quire::Config config;
  config.allow_private_origins = (size & 1) != 0;
  for (auto mode : {quire::api::ImageInputMode::kQueueMember, quire::api::ImageInputMode::kPut,
                    quire::api::ImageInputMode::kPatch}) {
    quire::Asset asset;
    bool id_given = false;
    std::vector<std::string> problems = quire::api::ReadImageInput(j, mode, config, &asset, &id_given);
    if (problems.empty() && mode == quire::api::ImageInputMode::kQueueMember) {
      Check(!asset.origin.empty() && !asset.media_type.empty());
      Check(asset.string1.size() <= 4000 && asset.string2.size() <= 4000 &&
            asset.string3.size() <= 4000);
    }
    for (const std::string& p : problems) Check(!p.empty());
  }
  return 0;
}
