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
      // DLCS's names and presets: MP3 at 128 kbit/s; MP4 (H.264 + AAC) at most 720 lines.
      {0, "iiif-av", "default-audio", "A default audio policy", "[\"audio-mp3-128\"]", 0, 0},
      {0, "iiif-av", "default-video", "A default video policy", "[\"video-mp4-720p\"]", 0, 0},
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

bool IsMediaTypePattern(const std::string& p) {
  size_t slash = p.find('/');
  if (p.empty() || p.size() > 200 || slash == 0 || slash == std::string::npos ||
      slash + 1 == p.size() || p.find('/', slash + 1) != std::string::npos)
    return false;
  for (unsigned char ch : p)
    if (!std::isalnum(ch) && std::string("/*.+-_").find(static_cast<char>(ch)) == std::string::npos)
      return false;
  std::string type = p.substr(0, slash), sub = p.substr(slash + 1);
  if (type == "*") return sub == "*";
  return sub == "*" || sub.find('*') == std::string::npos;
}

namespace {
// 2 exact, 1 type/*, 0 */*, -1 no match.
int Specificity(const std::string& pattern, const std::string& media_type) {
  if (pattern == "*/*") return 0;
  size_t slash = pattern.find('/');
  if (pattern.substr(slash + 1) == "*")
    return media_type.rfind(pattern.substr(0, slash + 1), 0) == 0 ? 1 : -1;
  return pattern == media_type ? 2 : -1;
}
}  // namespace

std::vector<DeliveryChannel> ResolveDefaultChannels(
    const std::vector<DefaultDeliveryChannel>& rules, int64_t space,
    const std::string& media_type) {
  for (int64_t level : {space, int64_t{0}}) {
    std::vector<DeliveryChannel> out;
    std::vector<int> best;
    for (const auto& r : rules) {
      if (r.space != level) continue;
      int spec = Specificity(r.media_type, media_type);
      if (spec < 0) continue;
      size_t i = 0;
      while (i < out.size() && out[i].channel != r.channel) ++i;
      if (i == out.size()) {
        out.push_back({r.channel, r.policy});
        best.push_back(spec);
      } else if (spec > best[i]) {
        out[i].policy = r.policy;
        best[i] = spec;
      }
    }
    if (!out.empty()) return out;
    if (level == 0) break;
  }
  return {};
}

}  // namespace quire
