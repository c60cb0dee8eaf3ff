// libFuzzer target for the upload integrity headers (src/core/content_digest.cc): the
// Content-Digest dictionary (RFC 9530) and Content-MD5 as a client may send them, and the
// base64 they and DLCS's `file` property are written in. The input is
// "CONTENT-DIGEST\nCONTENT-MD5\nBODY". Beyond "no crash, ASan/UBSan clean": an accepted header
// yields digests of exactly the algorithm's length; decoding is canonical (what decodes encodes
// back to the same text, padded); a header rebuilt from the parsed digests parses to the same
// digests; and the body's own digests always verify while a changed one never does.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/content_digest.h"

namespace {
void Check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  size_t a = in.find('\n');
  size_t b = a == std::string::npos ? std::string::npos : in.find('\n', a + 1);
  std::string digest = in.substr(0, a);
  std::string md5 = a == std::string::npos ? "" : in.substr(a + 1, b - a - 1);
  std::string body = b == std::string::npos ? "" : in.substr(b + 1);

  // Base64 round trips both ways.
  Check(quire::Base64Decode(quire::Base64Encode(body)) == body);
  if (auto decoded = quire::Base64Decode(digest)) {
    std::string padded = digest;
    while (padded.size() % 4 != 0) padded += '=';
    Check(quire::Base64Encode(*decoded) == padded);
  }

  auto parsed = quire::ParseDigestHeaders(digest, md5);
  if (parsed.ok()) {
    const quire::ExpectedDigests& e = *parsed;
    if (e.sha256) Check(e.sha256->size() == 32);
    if (e.sha512) Check(e.sha512->size() == 64);
    if (e.md5) Check(e.md5->size() == 16);
    std::string rebuilt;
    if (e.sha256) rebuilt += "sha-256=:" + quire::Base64Encode(*e.sha256) + ":";
    if (e.sha512)
      rebuilt += std::string(rebuilt.empty() ? "" : ", ") + "sha-512=:" +
                 quire::Base64Encode(*e.sha512) + ":";
    auto again = quire::ParseDigestHeaders(rebuilt, e.md5 ? quire::Base64Encode(*e.md5) : "");
    Check(again.ok());
    Check(again->sha256 == e.sha256 && again->sha512 == e.sha512 && again->md5 == e.md5);
  }

  // The body's true digests verify; flipping one bit of any of them does not.
  quire::StreamHasher hasher(true, true);
  hasher.Update(body.substr(0, body.size() / 2));
  hasher.Update(body.substr(body.size() / 2));
  hasher.Finish();
  quire::ExpectedDigests truth{hasher.sha256(), hasher.sha512(), hasher.md5()};
  Check(quire::VerifyDigests(truth, hasher).ok());
  quire::ExpectedDigests changed = truth;
  (*changed.sha512)[size % 64] ^= 1;
  Check(!quire::VerifyDigests(changed, hasher).ok());
  return 0;
}
