// SecretBox: seals small secrets (origin credentials) for storage at rest with AES-256-GCM
// under the server's key (--secrets-key-file: 32 raw bytes, or 64 hex digits). A sealed value
// is "v1:" + hex(12-byte random nonce || ciphertext || 16-byte tag); opening checks the tag,
// so a value sealed under another key, or altered, is refused. Thread-safe (immutable).
#pragma once

#include <memory>
#include <string>

#include "core/status.h"

namespace quire {

class SecretBox {
 public:
  // Reads the key file. Invalid when it is neither 32 bytes nor 64 hex digits (a trailing
  // newline is allowed); IOError when unreadable.
  static Result<std::shared_ptr<const SecretBox>> FromKeyFile(const std::string& path);
  explicit SecretBox(std::string key);  // REQUIRES: key.size() == 32

  std::string Seal(const std::string& plaintext) const;
  Result<std::string> Open(const std::string& sealed) const;

 private:
  std::string key_;
};

}  // namespace quire
