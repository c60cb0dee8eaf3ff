// An asset (vocab:Image): one registered image or file, its metadata and ingest outcome.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace quire {

struct DeliveryChannel {
  std::string channel;  // iiif-img, iiif-av, thumbs, file
  std::string policy;   // may be empty
  bool operator==(const DeliveryChannel&) const = default;
};

struct ThumbnailSize {
  int width = 0;
  int height = 0;
  bool operator==(const ThumbnailSize&) const = default;
};

struct Asset {
  int64_t customer = 0;
  int64_t space = 0;
  std::string id;
  std::string origin;
  // The upload (model/upload.h) that `origin` names, when it names one: ingest reads the bytes
  // from blob storage, and the upload cannot be deleted while an asset holds it.
  std::string upload;
  std::string media_type;
  std::string family = "I";  // I image, T timebased, F file
  std::vector<DeliveryChannel> delivery_channels;
  std::vector<std::string> tags;
  std::vector<std::string> roles;
  std::string string1, string2, string3;
  int64_t number1 = 0, number2 = 0, number3 = 0;
  int64_t max_unauthorised = -1;
  int64_t created_ms = 0;
  std::optional<int64_t> finished_ms;
  bool ingesting = false;
  std::string error;
  int width = 0;
  int height = 0;
  std::optional<int64_t> batch;
  std::vector<ThumbnailSize> thumbnails;  // stored thumbnail sizes, largest first
  int64_t duration_ms = 0;  // audio/video (family T) once transcoded: DLCS `duration`, in ms

  bool HasChannel(const std::string& name) const;
  // Restricted: roles, or maxUnauthorised >= 0 (spec/presentation-auth.md §5.1).
  bool Restricted() const { return !roles.empty() || max_unauthorised >= 0; }
  // The thumbnail sizes anyone may see (`OPEN`): all of them when unrestricted, else those
  // whose longest side is at most maxUnauthorised (none when it is 0 or less). Largest first.
  std::vector<ThumbnailSize> OpenThumbnails() const;
  // Images are made into pyramids: image/* media, and PDFs sent as images (IsPdfImage).
  bool IsImage() const { return media_type.rfind("image/", 0) == 0 || IsPdfImage(); }
  // A PDF with family "I": ingest splits it into its pages, each an image of the same batch
  // (`{id}-p0001` ...), and each page renders the one its origin's `#page=N` names.
  bool IsPdfImage() const { return media_type == "application/pdf" && family == "I"; }
  bool IsAudio() const { return media_type.rfind("audio/", 0) == 0; }
  bool IsVideo() const { return media_type.rfind("video/", 0) == 0; }
};

// Image ids: 1–255 bytes of valid UTF-8, no '/', '\\', whitespace or control characters.
// Returns an empty string when valid, else the reason.
std::string ImageIdProblem(const std::string& id);

// Default channels for a media type: images get iiif-img + thumbs, audio iiif-av
// (default-audio), video iiif-av (default-video) + thumbs, everything else file.
std::vector<DeliveryChannel> DefaultDeliveryChannels(const std::string& media_type);

// The iiif-av policy of an asset with that channel: its own, else the default of its media
// type ("default-audio" for audio/*, "default-video" otherwise).
std::string AvPolicyFor(const Asset& asset);

// Checks channels against the media type. Empty string when valid, else the message.
std::string DeliveryChannelsProblem(const std::vector<DeliveryChannel>& channels,
                                    const std::string& media_type);

std::string FamilyForMediaType(const std::string& media_type);

// The media type delivery channels are checked and defaulted by: a PDF sent as an image is
// delivered as images (its pages), so it takes the channels of image/* ("image/pdf").
std::string ChannelMediaType(const Asset& asset);

// PDF pages (RFC 8118 fragments): the N of an origin ending "#page=N" (N >= 1), else 0.
int PdfPageOfOrigin(const std::string& origin);
// The origin without its fragment.
std::string OriginWithoutFragment(const std::string& origin);
// Page N of the PDF image `id`: "{id}-p0001" (at least four digits).
std::string PdfPageId(const std::string& id, int page);
// The PDF image a page id of PdfPageId names, or "" when `id` is not of that form.
std::string PdfParentId(const std::string& id);

}  // namespace quire
