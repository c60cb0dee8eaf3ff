// Delivery channel policies (DLCS DeliveryChannelPolicy): named settings of a delivery channel
// for a customer. Quire's customers define `thumbs` policies (policyData: a JSON list of IIIF
// sizes, "!n,n" bounding boxes); the built-in ones are iiif-img `default` and `use-original`,
// thumbs `default` (1024, 400, 200, 100), file `none`, and iiif-av `default-audio` (MP3 128
// kbit/s) and `default-video` (MP4 H.264/AAC, at most 720 lines).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/asset.h"

namespace quire {

struct DeliveryChannelPolicy {
  int64_t customer = 0;  // 0: built in
  std::string channel;
  std::string name;  // [A-Za-z0-9._-]{1,100}
  std::string display_name;
  std::string policy_data;  // JSON text, as DLCS carries it
  int64_t created_ms = 0;
  int64_t modified_ms = 0;
};

// A default delivery channel (DLCS DefaultDeliveryChannel): images of `media_type` (exact,
// "image/*" or "*/*") registered without deliveryChannels get `channel` with `policy`. Rules
// of the image's space win over the customer's (space 0), which win over the system default.
struct DefaultDeliveryChannel {
  int64_t customer = 0;
  int64_t space = 0;  // 0: every space of the customer
  std::string id;     // a UUID
  std::string media_type;
  std::string channel;
  std::string policy;
};

bool IsMediaTypePattern(const std::string& pattern);
// The channels the rules give an image of `media_type` in `space`: from the space's matching
// rules if any, else the customer's; per channel the most specific pattern wins. Empty: no
// rule matches (the system default applies).
std::vector<DeliveryChannel> ResolveDefaultChannels(
    const std::vector<DefaultDeliveryChannel>& rules, int64_t space, const std::string& media_type);

// The built-in policies of every customer.
const std::vector<DeliveryChannelPolicy>& BuiltInChannelPolicies();
bool IsBuiltInChannelPolicy(const std::string& channel, const std::string& name);
bool IsChannelPolicyName(const std::string& name);

// Reads a thumbs policyData: a JSON array (or a JSON string holding one) of 1-20 sizes
// "!n,n" (n in 1..4096), into bounding boxes. Returns the problem, or "".
std::string ParseThumbSizes(const std::string& policy_data, std::vector<int>* boxes);

}  // namespace quire
