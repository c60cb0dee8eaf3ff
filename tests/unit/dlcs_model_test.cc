// Unit tests for the pure pieces behind the DLCS resources of issue 15: the credential seal,
// origin-strategy matching, thumbs policy sizes, default delivery channel resolution and the
// custom header safe list.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/secret_box.h"
#include "model/asset.h"
#include "model/channel_policy.h"
#include "model/custom_header.h"
#include "model/origin_strategy.h"

namespace quire {
namespace {

TEST(PdfImageTest, PagesAreNamedAndFoundByTheirOriginFragment) {
  EXPECT_EQ(PdfPageOfOrigin("https://x.org/b.pdf#page=7"), 7);
  EXPECT_EQ(PdfPageOfOrigin("https://x.org/b.pdf"), 0);
  EXPECT_EQ(PdfPageOfOrigin("https://x.org/b.pdf#page=0"), 0);
  EXPECT_EQ(PdfPageOfOrigin("https://x.org/b.pdf#page="), 0);
  EXPECT_EQ(PdfPageOfOrigin("https://x.org/b.pdf#page=3x"), 0);
  EXPECT_EQ(PdfPageOfOrigin("https://x.org/b.pdf#zoom=50"), 0);
  EXPECT_EQ(OriginWithoutFragment("https://x.org/b.pdf#page=7"), "https://x.org/b.pdf");
  EXPECT_EQ(PdfPageId("book", 7), "book-p0007");
  EXPECT_EQ(PdfPageId("book", 12345), "book-p12345");
  EXPECT_EQ(PdfParentId("book-p0007"), "book");
  EXPECT_EQ(PdfParentId("my-pretty-book-p12345"), "my-pretty-book");
  EXPECT_EQ(PdfParentId("book-p07"), "");  // fewer than four digits: not a page id
  EXPECT_EQ(PdfParentId("book-pages"), "");
  EXPECT_EQ(PdfParentId("-p0001"), "");

  Asset pdf;
  pdf.media_type = "application/pdf";
  pdf.family = "F";
  EXPECT_FALSE(pdf.IsImage());
  EXPECT_EQ(ChannelMediaType(pdf), "application/pdf");
  pdf.family = "I";
  EXPECT_TRUE(pdf.IsPdfImage());
  EXPECT_TRUE(pdf.IsImage());
  EXPECT_EQ(DeliveryChannelsProblem({{"iiif-img", "default"}}, ChannelMediaType(pdf)), "");
  EXPECT_EQ(DefaultDeliveryChannels(ChannelMediaType(pdf)).size(), 2u);  // iiif-img, thumbs
}

TEST(SecretBoxTest, SealsOpensAndRefusesAnotherKeyOrATamperedValue) {
  SecretBox box(std::string(32, 'k'));
  std::string sealed = box.Seal("{\"user\":\"u\",\"password\":\"p4ss\"}");
  EXPECT_EQ(sealed.rfind("v1:", 0), 0u);
  EXPECT_EQ(sealed.find("p4ss"), std::string::npos);
  EXPECT_NE(sealed, box.Seal("{\"user\":\"u\",\"password\":\"p4ss\"}"));  // a fresh nonce
  auto opened = box.Open(sealed);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  EXPECT_EQ(*opened, "{\"user\":\"u\",\"password\":\"p4ss\"}");
  EXPECT_FALSE(SecretBox(std::string(32, 'x')).Open(sealed).ok());
  std::string tampered = sealed;
  tampered[10] = tampered[10] == '0' ? '1' : '0';
  EXPECT_FALSE(box.Open(tampered).ok());
  EXPECT_FALSE(box.Open("v1:zz").ok());
}

TEST(SecretBoxTest, KeyFileIsRawOrHex) {
  std::string dir = std::filesystem::temp_directory_path() / "quire-secretbox-test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/hex") << std::string(64, 'a') << "\n";
  std::ofstream(dir + "/raw") << std::string(32, '\x01');
  std::ofstream(dir + "/short") << "abc";
  EXPECT_TRUE(SecretBox::FromKeyFile(dir + "/hex").ok());
  EXPECT_TRUE(SecretBox::FromKeyFile(dir + "/raw").ok());
  EXPECT_EQ(SecretBox::FromKeyFile(dir + "/short").status().code(), Code::kInvalid);
  EXPECT_EQ(SecretBox::FromKeyFile(dir + "/missing").status().code(), Code::kIOError);
  std::filesystem::remove_all(dir);
}

TEST(OriginStrategyTest, FirstMatchByOrderThenId) {
  std::vector<OriginStrategy> s = {
      {1, "b", "example\\.org", "default", "", false, 2},
      {1, "a", "^https://example\\.org/private/", "s3-ambient", "", false, 1},
      {1, "c", "example", "default", "", false, 2}};
  EXPECT_EQ(MatchOriginStrategy(s, "https://example.org/private/x.jpg")->id, "a");
  EXPECT_EQ(MatchOriginStrategy(s, "https://example.org/public/x.jpg")->id, "b");
  EXPECT_FALSE(MatchOriginStrategy(s, "https://other.net/x.jpg").has_value());
  EXPECT_NE(OriginRegexProblem("("), "");
  EXPECT_NE(OriginRegexProblem(""), "");
  EXPECT_EQ(OriginRegexProblem("^s3://bucket/"), "");
}

TEST(ChannelPolicyTest, ThumbSizesAreSquareBoundingBoxes) {
  std::vector<int> boxes;
  EXPECT_EQ(ParseThumbSizes("[\"!800,800\",\"!200,200\"]", &boxes), "");
  EXPECT_EQ(boxes, (std::vector<int>{800, 200}));
  EXPECT_EQ(ParseThumbSizes("\"[\\\"!50,50\\\"]\"", &boxes), "");  // DLCS: a JSON string
  EXPECT_EQ(boxes, (std::vector<int>{50}));
  for (const char* bad :
       {"[]", "[\"800,\"]", "[\"!800,600\"]", "[\"!0,0\"]", "[\"!5000,5000\"]", "not json", "[1]"})
    EXPECT_NE(ParseThumbSizes(bad, &boxes), "") << bad;
}

TEST(ChannelPolicyTest, DefaultChannelsSpaceThenCustomerMostSpecificPatternWins) {
  std::vector<DefaultDeliveryChannel> rules = {
      {1, 0, "1", "image/*", "iiif-img", "default"},
      {1, 0, "2", "image/*", "thumbs", "default"},
      {1, 0, "3", "image/tiff", "thumbs", "big"},
      {1, 7, "4", "*/*", "file", "none"},
  };
  auto jpeg = ResolveDefaultChannels(rules, 3, "image/jpeg");
  ASSERT_EQ(jpeg.size(), 2u);
  EXPECT_EQ(jpeg[1].policy, "default");
  auto tiff = ResolveDefaultChannels(rules, 3, "image/tiff");
  ASSERT_EQ(tiff.size(), 2u);
  EXPECT_EQ(tiff[1].policy, "big");
  auto in7 = ResolveDefaultChannels(rules, 7, "image/jpeg");
  ASSERT_EQ(in7.size(), 1u);
  EXPECT_EQ(in7[0].channel, "file");
  EXPECT_TRUE(ResolveDefaultChannels(rules, 3, "application/pdf").empty());
  EXPECT_TRUE(IsMediaTypePattern("image/*"));
  EXPECT_TRUE(IsMediaTypePattern("*/*"));
  EXPECT_FALSE(IsMediaTypePattern("*/jpeg"));
  EXPECT_FALSE(IsMediaTypePattern("image"));
  EXPECT_FALSE(IsMediaTypePattern("image/j*g"));
}

TEST(CustomHeaderTest, SafeListAndSpaceOverride) {
  EXPECT_EQ(CustomHeaderProblem("cache-control", "max-age=60"), "");
  for (const char* bad : {"Set-Cookie", "Connection", "Transfer-Encoding", "Content-Length",
                          "Content-Type", "Location", "Proxy-Authenticate", "TE", "Trailer"})
    EXPECT_NE(CustomHeaderProblem(bad, "x"), "") << bad;
  EXPECT_NE(CustomHeaderProblem("Cache-Control", "a\nb"), "");
  EXPECT_NE(CustomHeaderProblem("Cache-Control", ""), "");
  std::vector<CustomHeader> h = {{1, "a", 0, "Cache-Control", "max-age=60"},
                                 {1, "b", 2, "cache-control", "max-age=999"},
                                 {1, "c", 0, "X-Robots-Tag", "noindex"}};
  auto s2 = HeadersForSpace(h, 2);
  ASSERT_EQ(s2.size(), 2u);
  EXPECT_EQ(s2[0].second, "max-age=999");
  auto s3 = HeadersForSpace(h, 3);
  ASSERT_EQ(s3.size(), 2u);
  EXPECT_EQ(s3[0].second, "max-age=60");
}

}  // namespace
}  // namespace quire
