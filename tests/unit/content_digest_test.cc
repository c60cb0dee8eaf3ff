// The upload integrity headers: RFC 9530's own example, the forms clients send, and the
// malformed ones that must be refused before a body is read.
#include <gtest/gtest.h>

#include "core/content_digest.h"

namespace quire {
namespace {

const std::string kBody = "{\"hello\": \"world\"}";  // RFC 9530 §2's example content

TEST(ContentDigestTest, TheRfcExampleVerifiesAndAChangedBodyDoesNot) {
  auto e = ParseDigestHeaders("sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:", "");
  ASSERT_TRUE(e.ok()) << e.status().message();
  ASSERT_TRUE(e->sha256.has_value());
  StreamHasher h;
  h.Update(kBody.substr(0, 5));
  h.Update(kBody.substr(5));
  h.Finish();
  EXPECT_TRUE(VerifyDigests(*e, h).ok());
  StreamHasher other;
  other.Update(kBody + " ");
  other.Finish();
  Status st = VerifyDigests(*e, other);
  EXPECT_EQ(st.code(), Code::kInvalid);
  EXPECT_NE(st.message().find("sha-256 does not match"), std::string::npos) << st.message();
}

TEST(ContentDigestTest, ClientFormsAreAccepted) {
  // Several algorithms, parameters, unknown algorithms beside a known one, spaces.
  auto e = ParseDigestHeaders(
      " unixsum=:AAAA:, sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:;q=1 ", "");
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_TRUE(e->sha256.has_value());
  // Content-MD5 in base64 and in hex.
  auto b64 = ParseDigestHeaders("", "Sd/dVLAcvNLSq16eXua5uQ==");
  auto hex = ParseDigestHeaders("", HexEncode(*Base64Decode("Sd/dVLAcvNLSq16eXua5uQ==")));
  ASSERT_TRUE(b64.ok() && hex.ok());
  EXPECT_EQ(b64->md5, hex->md5);
  StreamHasher h(false, true);
  h.Update(kBody);
  h.Finish();
  EXPECT_TRUE(VerifyDigests(*b64, h).ok());
  EXPECT_TRUE(ParseDigestHeaders("", "")->empty());
}

TEST(ContentDigestTest, MalformedHeadersAreRefused) {
  for (const char* bad : {"sha-256", "sha-256=", "sha-256=abc", "sha-256=:not base64!:",
                          "sha-256=:AAAA:", "md5=:Sd/dVLAcvNLSq16eXua5uQ==:", ",",
                          "SHA-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"}) {
    auto e = ParseDigestHeaders(bad, "");
    EXPECT_FALSE(e.ok()) << bad;
    if (!e.ok()) {
      EXPECT_EQ(e.status().code(), Code::kInvalid);
      EXPECT_NE(e.status().message().find("Content-Digest"), std::string::npos);
    }
  }
  EXPECT_FALSE(ParseDigestHeaders("", "abc").ok());
  EXPECT_FALSE(ParseDigestHeaders("", "AAAA").ok());  // 3 bytes, not 16
}

TEST(ContentDigestTest, Base64IsStrictAndRoundTrips) {
  for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba",
                                                      "foobar", std::string("\0\xff", 2)})
    EXPECT_EQ(Base64Decode(Base64Encode(s)), s);
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Decode("Zm8"), "fo");     // padding may be left out
  EXPECT_FALSE(Base64Decode("Zm9=").has_value());  // non-zero leftover bits
  EXPECT_FALSE(Base64Decode("Zm 9v").has_value());
  EXPECT_FALSE(Base64Decode("Zm9v-_").has_value());  // URL-safe letters
}

}  // namespace
}  // namespace quire
