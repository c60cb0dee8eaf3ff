#include "blob/asset_keys.h"

namespace quire {

std::string PyramidKey(const std::string& prefix) { return prefix + "/image.tif"; }
std::string ThumbnailKey(const std::string& prefix, int width, int height) {
  return prefix + "/thumb-" + std::to_string(width) + "x" + std::to_string(height) + ".jpg";
}
std::string OriginalKey(const std::string& prefix) { return prefix + "/original"; }
std::string AvKey(const std::string& prefix, const std::string& extension) {
  return prefix + "/av." + extension;
}
std::string PyramidIndexKey(const std::string& prefix) { return prefix + "/image.tif.index"; }

std::string UploadBlobPrefix(int64_t customer, const std::string& upload_id) {
  return "uploads/" + std::to_string(customer) + "/" + upload_id;
}

std::string UploadKey(int64_t customer, const std::string& upload_id) {
  return UploadBlobPrefix(customer, upload_id) + "/original";
}

}  // namespace quire
