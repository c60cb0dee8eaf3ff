// Uploads (spec/platform.md §2): /customers/{c}/uploads[/{u}], the streamed POST, and the
// helpers the image PUT uses for DLCS's base64 `file` property.
#pragma once

#include <memory>
#include <string>

#include "api/context.h"
#include "blob/spool_file.h"
#include "core/status.h"
#include "model/upload.h"

namespace quire::api {

// Places a complete spooled body in blob storage and records it: the blob first, then the row
// (a failure removes the blob again, so nothing is half-kept). `media_type` empty: sniffed
// from `head`, else application/octet-stream.
Result<Upload> KeepUpload(Context& ctx, int64_t customer, std::unique_ptr<SpoolFile> spool,
                          const std::string& sha256_hex, std::string media_type,
                          const std::string& head);

// The same for bytes already in memory (the `file` property, within the body limit).
Result<Upload> KeepUploadBytes(Context& ctx, int64_t customer, const std::string& bytes,
                               const std::string& media_type);

// Removes an upload nothing uses, row then blobs (used when the request that made it failed).
void DiscardUpload(Context& ctx, int64_t customer, const std::string& id);

}  // namespace quire::api
