#include "model/channel_policy.h"

#include <charconv>
#include <nlohmann/json.hpp>

namespace quire {

const std::vector<DeliveryChannelPolicy>& BuiltInChannelPolicies() {
  static const std::vector<DeliveryChannelPolicy> kBuiltIn = {
      {0, "iiif-img", "default", "Tiled pyramid of the image", "[\"default\"]", 0, 0},
      {0, "iiif-img", "use-original",
       "The origin, already a tiled pyramidal TIFF, is served as it is", "[\"use-original\"]", 0,
       0},
      {0, "thumbs", "default", "Default thumbnails",
       "[\"!1024,1024\",\"!400,400\",\"!200,200\",\"!100,100\"]", 0, 0},
      {0, "file", "none", "The original file, no transformation", "[\"none\"]", 0, 0},
  };
  return kBuiltIn;
}

bool IsBuiltInChannelPolicy(const std::string& channel, const std::string& name) {
  for (const auto& p : BuiltInChannelPolicies())
    if (p.channel == channel && p.name == name) return true;
  return false;
}

bool IsChannelPolicyName(const std::string& name) {
  if (name.empty() || name.size() > 100) return false;
  for (unsigned char ch : name)
    if (!std::isalnum(ch) && ch != '.' && ch != '_' && ch != '-') return false;
  return true;
}

std::string ParseThumbSizes(const std::string& policy_data, std::vector<int>* boxes) {
  const std::string shape =
      "'policyData' must be a JSON list of 1-20 IIIF sizes \"!n,n\" (n from 1 to 4096), e.g. "
      "[\"!800,800\",\"!200,200\"]";
  auto j = nlohmann::json::parse(policy_data, nullptr, false);
  if (j.is_string()) j = nlohmann::json::parse(j.get<std::string>(), nullptr, false);
  if (!j.is_array() || j.empty() || j.size() > 20) return shape;
  boxes->clear();
  for (const auto& e : j) {
    if (!e.is_string()) return shape;
    std::string s = e.get<std::string>();
    size_t comma = s.find(',');
    if (s.size() < 4 || s[0] != '!' || comma == std::string::npos) return shape;
    int w = 0, h = 0;
    auto r1 = std::from_chars(s.data() + 1, s.data() + comma, w);
    auto r2 = std::from_chars(s.data() + comma + 1, s.data() + s.size(), h);
    if (r1.ec != std::errc() || r1.ptr != s.data() + comma || r2.ec != std::errc() ||
        r2.ptr != s.data() + s.size() || w < 1 || w > 4096 || w != h)
      return shape + "; '" + s + "' is not one";
    boxes->push_back(w);
  }
  return "";
}

}  // namespace quire
