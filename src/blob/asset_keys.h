// Where an image's blobs live: the keys under its prefix (AssetBlobPrefix). Written by
// ingest, read by delivery.
#pragma once

#include <cstdint>
#include <string>

namespace quire {

std::string PyramidKey(const std::string& prefix);                           // prefix/image.tif
std::string ThumbnailKey(const std::string& prefix, int width, int height);  // prefix/thumb-WxH.jpg
std::string OriginalKey(const std::string& prefix);                          // prefix/original
// The iiif-av channel's transcoded recording; `extension` "mp4" or "mp3".
std::string AvKey(const std::string& prefix, const std::string& extension);  // prefix/av.EXT
// The pyramid's TIFF structure (blob/tiff_structure.h), kept on remote storage only.
std::string PyramidIndexKey(const std::string& prefix);  // prefix/image.tif.index

// An upload's blobs live under "uploads/<customer>/<upload id>" (no asset prefix starts with a
// letter); the bytes at UploadKey, removed with DeletePrefix(UploadBlobPrefix(...)).
std::string UploadBlobPrefix(int64_t customer, const std::string& upload_id);
std::string UploadKey(int64_t customer, const std::string& upload_id);  // prefix/original

}  // namespace quire
