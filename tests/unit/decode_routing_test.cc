// Which sources the decode sandbox takes: decided by the bytes (magic numbers), never by the
// declared media type; names used in its messages; the --decode-sandbox values.
#include <gtest/gtest.h>

#include <fstream>

#include "media/decode_sandbox.h"
#include "model/media_sniff.h"
#include "support/quire_process.h"

namespace quire::media {
namespace {

using namespace std::string_literals;

TEST(DecodeRoutingTest, JpegTwoThousandGoesToTheSandboxTrustedFormatsDoNot) {
  const std::string jp2 = "\0\0\0\x0CjP  \r\n\x87\n\0\0\0\x14"s;
  const std::string j2k = "\xFF\x4F\xFF\x51\0\x2F\0\0"s;
  EXPECT_EQ(SniffMediaType(jp2), "image/jp2");
  EXPECT_EQ(SniffMediaType(j2k), "image/jp2");
  EXPECT_TRUE(DecodesInSandbox(SniffMediaType(jp2), SandboxScope::kUntrusted));
  EXPECT_TRUE(DecodesInSandbox(SniffMediaType(j2k), SandboxScope::kUntrusted));
  for (const char* trusted :
       {"image/jpeg", "image/png", "image/tiff", "image/webp", "image/gif", ""}) {
    EXPECT_FALSE(DecodesInSandbox(trusted, SandboxScope::kUntrusted)) << trusted;
    EXPECT_TRUE(DecodesInSandbox(trusted, SandboxScope::kAll)) << trusted;
  }
  // libvips 8.14 lets poppler parse a PDF before refusing it: that parse happens there too.
  EXPECT_TRUE(DecodesInSandbox(SniffMediaType("%PDF-1.4\n"), SandboxScope::kUntrusted));
  EXPECT_EQ(FormatName("image/jp2"), "JPEG 2000");
  EXPECT_EQ(FormatName("image/x-unknown"), "the image");
}

TEST(DecodeRoutingTest, TheFileIsSniffedNotItsName) {
  test::TempDir dir;
  std::string path = dir.path() + "/looks-like.jpg";
  std::ofstream(path, std::ios::binary) << "\xFF\x4F\xFF\x51 and the rest of a codestream";
  EXPECT_EQ(SniffFile(path), "image/jp2");
  EXPECT_EQ(SniffFile(dir.path() + "/missing"), "");
}

TEST(DecodeRoutingTest, ScopeFlagValues) {
  SandboxScope scope = SandboxScope::kAll;
  EXPECT_TRUE(ParseSandboxScope("untrusted", &scope));
  EXPECT_EQ(scope, SandboxScope::kUntrusted);
  EXPECT_TRUE(ParseSandboxScope("all", &scope));
  EXPECT_EQ(scope, SandboxScope::kAll);
  EXPECT_FALSE(ParseSandboxScope("none", &scope));
}

}  // namespace
}  // namespace quire::media
