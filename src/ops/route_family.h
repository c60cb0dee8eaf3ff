// Route families: how metrics and logs group requests (spec/platform.md §4).
#pragma once

#include <string_view>

namespace quire::ops {

enum class Family { kApi, kIiifTile, kIiifRender, kInfo, kThumbs, kFile, kOther, kCount };
std::string_view FamilyName(Family f);

}  // namespace quire::ops
