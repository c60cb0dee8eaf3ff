#include "model/media_sniff.h"

namespace quire {

std::string SniffMediaType(std::string_view h) {
  auto starts = [&](std::string_view magic, size_t at = 0) {
    return h.size() >= at + magic.size() && h.substr(at, magic.size()) == magic;
  };
  using namespace std::string_view_literals;
  if (starts("\xFF\xD8\xFF"sv)) return "image/jpeg";
  if (starts("\x89PNG\r\n\x1A\n"sv)) return "image/png";
  if (starts("GIF87a"sv) || starts("GIF89a"sv)) return "image/gif";
  if (starts("II*\0"sv) || starts("MM\0*"sv) || starts("II+\0"sv) || starts("MM\0+"sv))
    return "image/tiff";
  if (starts("RIFF"sv) && starts("WEBP"sv, 8)) return "image/webp";
  if (starts("\0\0\0\x0CjP  \r\n\x87\n"sv) || starts("\xFF\x4F\xFF\x51"sv)) return "image/jp2";
  if (starts("BM"sv) && h.size() >= 14) return "image/bmp";
  if (starts("ftypheic"sv, 4) || starts("ftypheix"sv, 4) || starts("ftypmif1"sv, 4))
    return "image/heic";
  if (starts("%PDF-"sv)) return "application/pdf";
  return "";
}

}  // namespace quire
