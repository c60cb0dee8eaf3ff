// Where an image's blobs live: the keys under its prefix (AssetBlobPrefix). Written by
// ingest, read by delivery.
#pragma once

#include <string>

namespace quire {

std::string PyramidKey(const std::string& prefix);                           // prefix/image.tif
std::string ThumbnailKey(const std::string& prefix, int width, int height);  // prefix/thumb-WxH.jpg
std::string OriginalKey(const std::string& prefix);                          // prefix/original
// The pyramid's TIFF structure (blob/tiff_structure.h), kept on remote storage only.
std::string PyramidIndexKey(const std::string& prefix);  // prefix/image.tif.index

}  // namespace quire
