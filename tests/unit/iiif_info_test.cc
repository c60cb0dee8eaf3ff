#include <gtest/gtest.h>

#include "iiif/info.h"

namespace quire::iiif {
namespace {

using nlohmann::json;

const std::vector<std::pair<int, int>> kSizes = {{100, 75}, {400, 300}, {1024, 768}};
const std::vector<int> kScales = {1, 2, 4, 8, 16};

TEST(IiifInfo, Version3) {
  json j = InfoJson(ApiVersion::kV3, "https://h/iiif-img/1/2/abc/", 4000, 3000, kSizes, 256,
                    kScales, Limits{5000, 0, 20000000});
  EXPECT_EQ(j.begin().key(), "@context");  // first key
  EXPECT_EQ(j["@context"], "http://iiif.io/api/image/3/context.json");
  EXPECT_EQ(j["id"], "https://h/iiif-img/1/2/abc");
  EXPECT_EQ(j["type"], "ImageService3");
  EXPECT_EQ(j["protocol"], "http://iiif.io/api/image");
  EXPECT_EQ(j["profile"], "level2");
  EXPECT_EQ(j["width"], 4000);
  EXPECT_EQ(j["height"], 3000);
  EXPECT_EQ(j["maxWidth"], 5000);
  EXPECT_FALSE(j.contains("maxHeight"));
  EXPECT_EQ(j["maxArea"], 20000000);
  EXPECT_EQ(j["sizes"], json::parse(R"([{"width":100,"height":75},{"width":400,"height":300},
                                        {"width":1024,"height":768}])"));
  EXPECT_EQ(j["tiles"], json::parse(R"([{"width":256,"height":256,"scaleFactors":[1,2,4,8,16]}])"));
  EXPECT_EQ(j["extraQualities"], json::parse(R"(["color","gray","bitonal"])"));
  EXPECT_EQ(j["extraFormats"], json::parse(R"(["webp","tif","gif"])"));
  for (const char* f : {"mirroring", "rotationArbitrary", "sizeUpscaling", "canonicalLinkHeader",
                        "profileLinkHeader"}) {
    EXPECT_NE(std::find(j["extraFeatures"].begin(), j["extraFeatures"].end(), f),
              j["extraFeatures"].end())
        << f;
  }
  EXPECT_FALSE(j.contains("@id"));
  EXPECT_EQ(ProfileUri(ApiVersion::kV3), "http://iiif.io/api/image/3/level2.json");
}

TEST(IiifInfo, Version3WithoutLimitsDoesNotOfferUpscaling) {
  json j = InfoJson(ApiVersion::kV3, "http://h/x", 500, 400, {}, 256, {1, 2}, Limits{});
  EXPECT_FALSE(j.contains("maxWidth"));
  EXPECT_FALSE(j.contains("maxArea"));
  EXPECT_EQ(j["sizes"], json::array());
  EXPECT_EQ(std::find(j["extraFeatures"].begin(), j["extraFeatures"].end(), "sizeUpscaling"),
            j["extraFeatures"].end());
}

TEST(IiifInfo, SizesBeyondLimitsAreLeftOut) {
  json j =
      InfoJson(ApiVersion::kV3, "http://h/x", 4000, 3000, kSizes, 256, kScales, Limits{500, 0, 0});
  EXPECT_EQ(j["sizes"].size(), 2u);
}

TEST(IiifInfo, Version2) {
  json j = InfoJson(ApiVersion::kV2, "https://h/iiif-img/v2/1/2/abc", 4000, 3000, kSizes, 256,
                    kScales, Limits{5000, 0, 20000000});
  EXPECT_EQ(j.begin().key(), "@context");
  EXPECT_EQ(j["@context"], "http://iiif.io/api/image/2/context.json");
  EXPECT_EQ(j["@id"], "https://h/iiif-img/v2/1/2/abc");
  EXPECT_EQ(j["protocol"], "http://iiif.io/api/image");
  EXPECT_EQ(j["width"], 4000);
  EXPECT_EQ(j["height"], 3000);
  EXPECT_EQ(j["sizes"].size(), 3u);
  EXPECT_EQ(j["tiles"][0]["scaleFactors"], json(kScales));
  ASSERT_TRUE(j["profile"].is_array());
  ASSERT_EQ(j["profile"].size(), 2u);
  EXPECT_EQ(j["profile"][0], "http://iiif.io/api/image/2/level2.json");
  const json& p = j["profile"][1];
  EXPECT_EQ(p["formats"], json::parse(R"(["jpg","png","webp","tif","gif"])"));
  EXPECT_EQ(p["qualities"], json::parse(R"(["default","color","gray","bitonal"])"));
  EXPECT_TRUE(p["supports"].is_array());
  EXPECT_NE(std::find(p["supports"].begin(), p["supports"].end(), "mirroring"),
            p["supports"].end());
  EXPECT_NE(std::find(p["supports"].begin(), p["supports"].end(), "sizeAboveFull"),
            p["supports"].end());
  EXPECT_EQ(p["maxWidth"], 5000);
  EXPECT_EQ(p["maxArea"], 20000000);
  for (const char* absent : {"id", "type", "maxWidth", "maxArea", "extraFeatures"}) {
    EXPECT_FALSE(j.contains(absent)) << absent;
  }
  EXPECT_EQ(ProfileUri(ApiVersion::kV2), "http://iiif.io/api/image/2/level2.json");
}

TEST(IiifInfo, Level0) {
  json j = InfoJsonLevel0(ApiVersion::kV3, "https://h/thumbs/1/2/abc", 1024, 768, kSizes);
  EXPECT_EQ(j["@context"], "http://iiif.io/api/image/3/context.json");
  EXPECT_EQ(j["id"], "https://h/thumbs/1/2/abc");
  EXPECT_EQ(j["type"], "ImageService3");
  EXPECT_EQ(j["protocol"], "http://iiif.io/api/image");
  EXPECT_EQ(j["profile"], "level0");
  EXPECT_EQ(j["sizes"].size(), 3u);
  EXPECT_FALSE(j.contains("tiles"));
  EXPECT_FALSE(j.contains("extraFeatures"));

  json j2 = InfoJsonLevel0(ApiVersion::kV2, "https://h/thumbs/1/2/abc", 1024, 768, kSizes);
  EXPECT_EQ(j2["@id"], "https://h/thumbs/1/2/abc");
  EXPECT_EQ(j2["profile"], json::array({"http://iiif.io/api/image/2/level0.json"}));
  EXPECT_FALSE(j2.contains("tiles"));
  EXPECT_EQ(ProfileUri(ApiVersion::kV3, true), "http://iiif.io/api/image/3/level0.json");
}

}  // namespace
}  // namespace quire::iiif
