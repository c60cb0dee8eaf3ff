// PDF images on S3 storage, against the real radosgw of the `s3` fixture: the PDF image keeps
// the document in the bucket (listed with awscli, the independent client), every page job
// reads it from there rather than from the origin, and the pages' pyramids land in the bucket
// and are served through the delivery cache with the page's own pixels.
#include <gtest/gtest.h>

#include <algorithm>

#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/jp2_fixtures.h"
#include "support/origin_server.h"
#include "support/pdf_fixtures.h"
#include "support/quire_process.h"
#include "support/s3_server.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

TEST(S3PdfTest, PagesReadTheDocumentFromTheBucketAndLandThere) {
  UseS3Credentials();
  const std::string prefix = UniqueS3Prefix("pdf");
  TempDir work;
  OriginServer origin;
  origin.Serve("/book.pdf", MakePdf({BookPage(0), BookPage(1), BookPage(2), BookPage(3)}),
               "application/pdf");
  QuireProcess server(work.path() + "/data", {"--workers", "2", "--allow-private-origins",
                                              "--storage", S3StorageUrl(prefix), "--cache-dir",
                                              work.path() + "/cache", "--pdf-dpi", "100"});
  Api api{server.url(), server.admin()};
  int64_t space = api.CreateSpace(1, "pdf");
  json member = Member(space, "book", origin.Url("/book.pdf"), "application/pdf");
  member["family"] = "I";
  long status = 0;
  json batch = api.SubmitBatch(1, json::array({member}), &status);
  ASSERT_EQ(status, 201) << batch.dump();
  json done = api.WaitForBatch(1, batch.at("id"), 180s);
  ASSERT_EQ(done["count"], 5) << done.dump(2) << server.Log();
  ASSERT_EQ(done["completed"], 5) << done.dump(2) << server.Log();
  // One download: the four pages read the document the PDF image stored.
  EXPECT_EQ(origin.Requests("/book.pdf"), 1);

  std::vector<std::string> keys = AwsListKeys(prefix);
  auto has = [&](const std::string& k) {
    return std::any_of(keys.begin(), keys.end(),
                       [&](const std::string& key) { return key.find(k) != std::string::npos; });
  };
  EXPECT_TRUE(has("/book/original"));
  for (const char* page : {"book-p0001", "book-p0002", "book-p0003", "book-p0004"}) {
    EXPECT_TRUE(has(std::string("/") + page + "/image.tif")) << page;
    EXPECT_FALSE(has(std::string("/") + page + "/original")) << page;  // not kept per page
  }

  HttpResult r = Http("GET", server.url() + "/iiif-img/1/" + std::to_string(space) +
                                 "/book-p0002/full/max/0/default.png");
  ASSERT_EQ(r.status, 200) << r.body.substr(0, 200);
  vips::VImage two = DecodeToImage(r.body);
  ASSERT_EQ(two.width(), 400);
  std::vector<double> px = two.getpoint(200, 100);
  const PdfPage p2 = BookPage(1);
  EXPECT_NEAR(px[0], p2.r * 255, 8);
  EXPECT_NEAR(px[1], p2.g * 255, 8);
  EXPECT_NEAR(px[2], p2.b * 255, 8);
}

}  // namespace
}  // namespace quire::test
