#include <algorithm>
#include <charconv>
#include <cstdio>

#include "model/asset.h"
#include "model/channel_policy.h"
#include "model/customer.h"
#include "model/paging.h"
#include "model/upload.h"
#include "model/webhook.h"

namespace quire {

bool IsValidCustomerName(const std::string& name) {
  if (name.empty() || name.size() > 100) return false;
  return std::all_of(name.begin(), name.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
  });
}

bool IsUploadId(const std::string& id) {
  if (id.size() != 32) return false;
  return std::all_of(id.begin(), id.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool Asset::HasChannel(const std::string& name) const {
  return std::any_of(delivery_channels.begin(), delivery_channels.end(),
                     [&](const DeliveryChannel& c) { return c.channel == name; });
}

std::vector<ThumbnailSize> Asset::OpenThumbnails() const {
  if (!Restricted()) return thumbnails;
  std::vector<ThumbnailSize> open;
  for (const ThumbnailSize& t : thumbnails)
    if (max_unauthorised > 0 && std::max(t.width, t.height) <= max_unauthorised) open.push_back(t);
  return open;
}

static bool IsValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
    for (int k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc >> 6) != 2) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    if (cp == 0x85 || cp == 0xa0 || cp == 0x2028 || cp == 0x2029 || cp == 0x3000 ||
        (cp >= 0x80 && cp < 0xa0))
      return false;  // Unicode whitespace and C1 controls
    i += len;
  }
  return true;
}

std::string ImageIdProblem(const std::string& id) {
  if (id.empty()) return "id must not be empty";
  if (id.size() > 255) return "id must be at most 255 characters";
  for (char ch : id) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (ch == '/' || ch == '\\') return "id must not contain '/' or '\\'";
    if (c < 0x20 || c == 0x7f) return "id must not contain control characters";
    if (ch == ' ') return "id must not contain whitespace";
  }
  if (!IsValidUtf8(id)) return "id must be valid UTF-8 without whitespace or control characters";
  if (id == "." || id == "..") return "id must not be '.' or '..'";
  return "";
}

std::string FamilyForMediaType(const std::string& media_type) {
  if (media_type.rfind("image/", 0) == 0) return "I";
  if (media_type.rfind("audio/", 0) == 0 || media_type.rfind("video/", 0) == 0) return "T";
  return "F";
}

std::string ChannelMediaType(const Asset& asset) {
  return asset.IsPdfImage() ? "image/pdf" : asset.media_type;
}

int PdfPageOfOrigin(const std::string& origin) {
  size_t hash = origin.find('#');
  if (hash == std::string::npos) return 0;
  std::string_view fragment = std::string_view(origin).substr(hash + 1);
  if (fragment.rfind("page=", 0) != 0) return 0;
  fragment.remove_prefix(5);
  if (fragment.empty() || fragment.size() > 6) return 0;
  int page = 0;
  for (char c : fragment) {
    if (c < '0' || c > '9') return 0;
    page = page * 10 + (c - '0');
  }
  return page;
}

std::string OriginWithoutFragment(const std::string& origin) {
  return origin.substr(0, origin.find('#'));
}

std::string PdfPageId(const std::string& id, int page) {
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "-p%04d", page);
  return id + suffix;
}

std::string PdfParentId(const std::string& id) {
  size_t dash = id.rfind("-p");
  if (dash == std::string::npos || dash == 0 || id.size() - dash - 2 < 4) return "";
  for (size_t i = dash + 2; i < id.size(); ++i)
    if (id[i] < '0' || id[i] > '9') return "";
  return id.substr(0, dash);
}

std::vector<DeliveryChannel> DefaultDeliveryChannels(const std::string& media_type) {
  if (media_type.rfind("image/", 0) == 0) return {{"iiif-img", "default"}, {"thumbs", "default"}};
  // As DLCS's system defaults: transcoded for the browser, a video with its poster frame.
  if (media_type.rfind("audio/", 0) == 0) return {{"iiif-av", "default-audio"}};
  if (media_type.rfind("video/", 0) == 0)
    return {{"iiif-av", "default-video"}, {"thumbs", "default"}};
  return {{"file", "none"}};
}

std::string AvPolicyFor(const Asset& asset) {
  for (const DeliveryChannel& c : asset.delivery_channels)
    if (c.channel == "iiif-av" && !c.policy.empty()) return c.policy;
  return asset.IsAudio() ? "default-audio" : "default-video";
}

std::string DeliveryChannelsProblem(const std::vector<DeliveryChannel>& channels,
                                    const std::string& media_type) {
  bool image = media_type.rfind("image/", 0) == 0;
  bool audio = media_type.rfind("audio/", 0) == 0;
  bool video = media_type.rfind("video/", 0) == 0;
  for (const auto& c : channels) {
    if (c.channel == "iiif-av") {
      if (!audio && !video) return "channel 'iiif-av' needs an audio/* or video/* media type";
      if (!c.policy.empty() && c.policy != "default-audio" && c.policy != "default-video")
        return "unknown policy '" + c.policy +
               "' for channel 'iiif-av' (policies: default-audio, default-video)";
      if (audio && c.policy == "default-video")
        return "policy 'default-video' needs a video/* media type";
      continue;
    }
    if (c.channel == "iiif-img" || c.channel == "thumbs") {
      // thumbs of a video: made from its poster frame (the iiif-av channel).
      if (!image && !(video && c.channel == "thumbs"))
        return "channel '" + c.channel + "' needs an image media type; use the 'file' channel";
      // thumbs: a customer's own policies too (the store checks they exist).
      if (c.channel == "thumbs"
              ? !c.policy.empty() && !IsChannelPolicyName(c.policy)
              : !c.policy.empty() && c.policy != "default" && c.policy != "use-original")
        return "unknown policy '" + c.policy + "' for channel '" + c.channel + "'";
    } else if (c.channel == "file") {
      // any policy accepted
    } else if (c.channel == "none") {
      if (channels.size() > 1) return "channel 'none' cannot be combined with other channels";
    } else {
      return "unknown delivery channel '" + c.channel + "'";
    }
  }
  for (size_t i = 0; i < channels.size(); ++i)
    for (size_t j = i + 1; j < channels.size(); ++j)
      if (channels[i].channel == channels[j].channel)
        return "delivery channel '" + channels[i].channel + "' listed twice";
  return "";
}

static int64_t ParsePositive(const std::string& s, int64_t fallback) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v <= 0) return fallback;
  return v;
}

PageRequest ParsePageRequest(const std::string& page, const std::string& page_size) {
  PageRequest r;
  r.page = ParsePositive(page, 1);
  r.page_size = std::min(ParsePositive(page_size, kDefaultPageSize), kMaxPageSize);
  // Guard Offset() against overflow on absurd page numbers.
  r.page = std::min<int64_t>(r.page, INT64_MAX / kMaxPageSize - 1);
  return r;
}

int64_t TotalPages(int64_t total, int64_t page_size) {
  if (total <= 0) return 1;
  return (total + page_size - 1) / page_size;
}

bool IsWebhookEventName(const std::string& name) {
  return name == kEventBatchFinished || name == kEventImageFailed || name == kEventImageCompleted;
}

}  // namespace quire
