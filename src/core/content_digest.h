// Integrity of uploaded bytes: the digests a client may announce (RFC 9530 `Content-Digest`
// with sha-256 / sha-512, RFC 1864 `Content-MD5`), a streaming hasher that computes what is
// needed while the body arrives, and the strict base64 both headers (and the DLCS `file`
// property) are written in. Pure functions and a single-threaded hasher.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace quire {

// Standard-alphabet base64. Decoding accepts missing padding and ignores nothing else:
// whitespace, URL-safe letters or stray characters are an error (nullopt).
std::string Base64Encode(std::string_view bytes);
std::optional<std::string> Base64Decode(std::string_view text);

std::string HexEncode(std::string_view bytes);

// Raw digest bytes the client announced; an absent header leaves its member empty.
struct ExpectedDigests {
  std::optional<std::string> sha256;  // 32 bytes
  std::optional<std::string> sha512;  // 64 bytes
  std::optional<std::string> md5;     // 16 bytes
  bool empty() const { return !sha256 && !sha512 && !md5; }
};

// Parses the two headers ("" = absent). Content-Digest is a structured-field dictionary
// (`sha-256=:BASE64:, sha-512=:BASE64:`, parameters ignored); algorithms other than sha-256 and
// sha-512 are skipped, but a header that names none of those is refused, as is a value of the
// wrong length or any syntax error. Content-MD5 is base64 of 16 bytes (32 hex digits are
// accepted too, as some clients send). kInvalid with a message naming the header otherwise.
Result<ExpectedDigests> ParseDigestHeaders(std::string_view content_digest,
                                           std::string_view content_md5);

// Hashes a stream with SHA-256 always and SHA-512 / MD5 when asked for.
class StreamHasher {
 public:
  explicit StreamHasher(bool sha512 = false, bool md5 = false);
  ~StreamHasher();
  StreamHasher(const StreamHasher&) = delete;
  StreamHasher& operator=(const StreamHasher&) = delete;
  void Update(std::string_view bytes);
  // REQUIRES: called once, after the last Update.
  void Finish();
  const std::string& sha256() const { return sha256_; }  // raw bytes, after Finish
  const std::string& sha512() const { return sha512_; }
  const std::string& md5() const { return md5_; }

 private:
  struct Contexts;
  std::unique_ptr<Contexts> ctx_;
  std::string sha256_, sha512_, md5_;
};

// Ok when every announced digest equals the computed one; otherwise kInvalid naming the
// algorithm and both values (base64), e.g. "Content-Digest sha-256 does not match the body
// (sent X, body has Y)".
Status VerifyDigests(const ExpectedDigests& expected, const StreamHasher& hasher);

}  // namespace quire
