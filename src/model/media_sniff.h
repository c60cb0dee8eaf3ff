// Telling a file's media type from its first bytes (magic numbers), not its name: uploads
// without a Content-Type, and `quire client` choosing which files in a folder are images.
#pragma once

#include <string>
#include <string_view>

namespace quire {

// How many leading bytes SniffMediaType looks at.
inline constexpr size_t kSniffBytes = 16;

// "image/jpeg", "image/png", "image/gif", "image/tiff", "image/webp", "image/jp2",
// "image/bmp", "image/heic", "application/pdf", or "" when unknown.
std::string SniffMediaType(std::string_view head);

}  // namespace quire
