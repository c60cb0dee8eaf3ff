// Default delivery channels for images registered without `deliveryChannels` (DLCS
// DefaultDeliveryChannel): the rules of the image's space, else the customer's, else the
// system default (model/asset.h DefaultDeliveryChannels).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "api/context.h"
#include "model/asset.h"

namespace quire::api {

class DefaultChannels {
 public:
  DefaultChannels(Context& ctx, int64_t customer) : ctx_(ctx), customer_(customer) {}
  // When `input` names no deliveryChannels, replaces the asset's channels by the rules' (if
  // any rule matches) and returns the problem with them ("" when fine). The customer's rules
  // are read once per object; a store error goes to *store_error.
  std::string Apply(const nlohmann::json& input, Asset* asset, Status* store_error);

 private:
  Context& ctx_;
  int64_t customer_;
  std::optional<std::vector<DefaultDeliveryChannel>> rules_;
};

}  // namespace quire::api
