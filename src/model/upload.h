// An upload (vocab:Upload, spec/platform.md §2): bytes a client sent directly, kept in blob
// storage under UploadBlobPrefix until an image uses them or they expire unused.
#pragma once

#include <cstdint>
#include <string>

namespace quire {

struct Upload {
  int64_t customer = 0;
  std::string id;  // server-minted, [0-9a-f]{32}
  std::string media_type;
  int64_t size = 0;
  std::string sha256;  // lower-case hex
  int64_t created_ms = 0;
  int64_t expires_ms = 0;  // an unused upload is removed after this
  int64_t used_by = 0;     // images whose origin is this upload (filled on read)
};

// True for ids the server mints (so a URL segment can be checked before any lookup).
bool IsUploadId(const std::string& id);

}  // namespace quire
