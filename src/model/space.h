// A space groups a customer's images (DLCS "space"); ids are per customer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace quire {

struct Space {
  int64_t customer = 0;
  int64_t id = 0;
  std::string name;
  int64_t created_ms = 0;
  int64_t max_unauthorised = -1;
  std::vector<std::string> default_tags;
  std::vector<std::string> default_roles;
  int64_t approximate_images = 0;  // filled on read
};

}  // namespace quire
