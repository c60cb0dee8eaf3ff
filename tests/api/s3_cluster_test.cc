// Two nodes on one PostgreSQL database and one S3 bucket, each with its own disk cache
// (issue 10 §2: "invalidated when the image changes, across nodes"). Node B serves an image
// and caches its tiles, info.json and thumbnail; the image is re-ingested with other pixels
// through node A; node B answers with the new derivatives within a second, byte for byte what
// node A answers, never a tile of the old pyramid.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"
#include "support/s3_server.h"
#include "support/test_database.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

TEST(S3ClusterTest, AnImageChangedThroughOneNodeIsServedNewThroughTheOthersCache) {
  UseS3Credentials();
  TempDir tmp;
  OriginServer origin;
  auto db = FreshDatabaseUrl("postgresql", tmp.path());
  ASSERT_TRUE(db.ok()) << db.status().message();
  const std::string storage = S3StorageUrl(UniqueS3Prefix("cluster"));
  auto flags = [&](const std::string& node, const std::string& workers) {
    return std::vector<std::string>{"--database",  *db,         "--storage",
                                    storage,       "--cache-dir", tmp.path() + "/" + node + "-cache",
                                    "--node-id",   node,        "--workers",
                                    workers,       "--allow-private-origins"};
  };
  QuireProcess a(tmp.path() + "/a", flags("a", "2"));
  QuireProcess b(tmp.path() + "/b", flags("b", "0"), /*seed_admin=*/false);
  Api api_a{a.url(), a.admin()};
  int64_t space = api_a.CreateSpace(1, "s3-cluster");
  const std::string image_url =
      a.url() + "/customers/1/spaces/" + std::to_string(space) + "/images/page";
  auto ingest = [&](const std::string& path, int w, int h, int seed) {
    origin.Serve(path, MakeJpeg(w, h, seed), "image/jpeg");
    HttpResult put = Http("PUT", image_url,
                          json{{"origin", origin.Url(path)}, {"mediaType", "image/jpeg"}}.dump(),
                          api_a.auth);
    ASSERT_TRUE(put.status == 200 || put.status == 201) << put.body;
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < deadline) {
      json image = Http("GET", image_url, "", api_a.auth).Json();
      if (image.value("ingesting", true) == false && image.value("width", 0) == w) return;
      std::this_thread::sleep_for(50ms);
    }
    FAIL() << "the image did not finish ingesting: " << Http("GET", image_url, "", api_a.auth).body;
  };
  const std::string iiif = "/iiif-img/1/" + std::to_string(space) + "/page";
  const std::vector<std::string> paths = {iiif + "/info.json", iiif + "/0,0,256,256/256,/0/default.jpg",
                                          iiif + "/full/200,/0/default.jpg",
                                          "/thumbs/1/" + std::to_string(space) + "/page/full/100,/0/default.jpg"};

  ingest("/v1.jpg", 900, 700, 1);
  // Node B serves every derivative, twice, so that its caches hold them.
  std::vector<std::string> old_bodies;
  for (const std::string& p : paths) {
    HttpResult r = Http("GET", b.url() + p);
    ASSERT_EQ(r.status, 200) << p << ": " << r.body;
    ASSERT_EQ(Http("GET", b.url() + p).body, r.body);
    old_bodies.push_back(r.body);
  }
  EXPECT_EQ(Http("GET", b.url() + paths[0]).Json()["width"], 900);

  // Other pixels, another size, through node A.
  ingest("/v2.jpg", 1100, 800, 2);
  auto changed = std::chrono::steady_clock::now();
  bool seen = false;
  while (!seen && std::chrono::steady_clock::now() - changed < 3s) {
    seen = Http("GET", b.url() + paths[0]).Json().value("width", 0) == 1100;
    if (!seen) std::this_thread::sleep_for(10ms);
  }
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - changed);
  ASSERT_TRUE(seen) << "node B still describes the old image:\n" << b.Log();
  std::cout << "[ result ] change seen through node B's cache after " << took.count() << " ms\n";
  EXPECT_LT(took, 1000ms);
  for (size_t i = 0; i < paths.size(); ++i) {
    HttpResult from_b = Http("GET", b.url() + paths[i]);
    HttpResult from_a = Http("GET", a.url() + paths[i]);
    ASSERT_EQ(from_b.status, 200) << paths[i];
    EXPECT_NE(from_b.body, old_bodies[i]) << paths[i] << " is still the old derivative";
    if (i > 0) {
      EXPECT_EQ(from_b.body, from_a.body) << paths[i];
      Decoded d = Decode(from_b.body);
      EXPECT_TRUE(d.ok) << paths[i];
    }
  }
  EXPECT_EQ(a.AnsweredWith(500) + b.AnsweredWith(500), 0);
}

}  // namespace
}  // namespace quire::test
