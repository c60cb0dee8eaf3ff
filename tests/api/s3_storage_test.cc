// Quire on S3 storage end to end, against the real radosgw of the `s3` fixture: a batch of
// 20 images lands in the bucket (pyramid, thumbnails, original; listed with awscli, the
// independent client), and delivery from S3 through the bounded disk cache answers byte for
// byte what a file-storage server answers for the same images, cold and warm; the cache
// stays under its small bound while random tiles are read; startup refuses a wrong secret
// and a missing bucket with a message.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <filesystem>
#include <fstream>
#include <thread>
#include <random>
#include <set>

#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"
#include "support/s3_server.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr int64_t kCustomer = 1;
constexpr int64_t kCacheBytes = 1 << 20;  // far smaller than the tiles read below
constexpr int kImages = 20;

class S3StorageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    UseS3Credentials();
    prefix_ = new std::string(UniqueS3Prefix("e2e"));
    origin_ = new OriginServer();
    data_ = new TempDir();
    std::vector<std::string> common = {"--workers", "2", "--allow-private-origins"};
    std::vector<std::string> on_s3 = common;
    on_s3.insert(on_s3.end(), {"--storage", S3StorageUrl(*prefix_), "--cache-dir",
                               data_->path() + "/cache", "--cache-bytes",
                               std::to_string(kCacheBytes), "--origin-s3-buckets",
                               S3Server().bucket});
    s3_ = new QuireProcess(data_->path() + "/s3", on_s3);
    file_ = new QuireProcess(data_->path() + "/file", common);
    s3_api_ = new Api{s3_->url(), s3_->admin()};
    file_api_ = new Api{file_->url(), file_->admin()};

    // The same 20 images ingested by both servers.
    json members = json::array();
    for (int i = 0; i < kImages; ++i) {
      const std::string id = "img-" + std::to_string(i);
      const int w = 700 + 61 * i, h = 500 + 37 * i;
      origin_->Serve("/" + id, MakeJpeg(w, h, i), "image/jpeg");
      json m = Member(1, id, origin_->Url("/" + id), "image/jpeg");
      m["deliveryChannels"] = json::array({"iiif-img", "thumbs", "file"});
      members.push_back(m);
      sizes_[id] = {w, h};
    }
    for (Api* api : {s3_api_, file_api_}) {
      int64_t space = api->CreateSpace(kCustomer, "s3");
      ASSERT_EQ(space, 1);
      long status = 0;
      json batch = api->SubmitBatch(kCustomer, members, &status);
      ASSERT_EQ(status, 201) << batch.dump();
      json done = api->WaitForBatch(kCustomer, batch.at("id"), 120s);
      ASSERT_TRUE(done.contains("finished")) << done.dump(2);
      ASSERT_EQ(done["completed"], kImages) << done.dump(2);
      ASSERT_EQ(done["errors"], 0);
    }
  }
  static void TearDownTestSuite() {
    if (::testing::Test::HasFailure()) std::cerr << "---- quire (s3) log ----\n" << s3_->Log();
    delete s3_api_;
    delete file_api_;
    delete s3_;
    delete file_;
    delete data_;
    delete origin_;
    delete prefix_;
  }

  static std::string Url(QuireProcess* p, const std::string& root, const std::string& id,
                         const std::string& rest) {
    return p->url() + "/" + root + "/1/1/" + id + rest;
  }

  static inline std::string* prefix_ = nullptr;
  static inline OriginServer* origin_ = nullptr;
  static inline TempDir* data_ = nullptr;
  static inline QuireProcess* s3_ = nullptr;
  static inline QuireProcess* file_ = nullptr;
  static inline Api* s3_api_ = nullptr;
  static inline Api* file_api_ = nullptr;
  static inline std::map<std::string, std::pair<int, int>> sizes_;
};

TEST_F(S3StorageTest, EveryDerivativeIsInTheBucket) {
  std::vector<std::string> keys = AwsListKeys(*prefix_);
  std::set<std::string> listed(keys.begin(), keys.end());
  for (int i = 0; i < kImages; ++i) {
    const std::string base = "1/1/img-" + std::to_string(i) + "/";
    EXPECT_TRUE(listed.count(base + "image.tif")) << base;
    EXPECT_TRUE(listed.count(base + "original")) << base;
    EXPECT_TRUE(listed.count(base + "image.tif.index")) << base;  // the TIFF structure
    int thumbs = 0;
    for (const std::string& k : listed)
      if (k.rfind(base + "thumb-", 0) == 0) ++thumbs;
    EXPECT_EQ(thumbs, 4) << base;
    EXPECT_EQ(std::count_if(listed.begin(), listed.end(),
                            [&](const std::string& k) { return k.rfind(base, 0) == 0; }),
              7)
        << base;  // policy boxes 1024, 400, 200, 100 (all images > 1024)
  }
  // Nothing went to local blob storage on the S3 server, and no upload is left open.
  EXPECT_FALSE(fs::exists(data_->path() + "/s3/blobs/1"));
  std::string uploads = AwsCli({"s3api", "list-multipart-uploads", "--bucket", S3Server().bucket,
                                "--prefix", *prefix_ + "/", "--output", "json"});
  EXPECT_TRUE(uploads.empty() || json::parse(uploads).value("Uploads", json::array()).empty());
}

TEST_F(S3StorageTest, DeliveryFromS3MatchesFileStorageColdAndWarm) {
  for (const std::string id : {"img-3", "img-17"}) {
    SCOPED_TRACE(id);
    std::vector<std::string> paths = {
        "/0,0,256,256/256,256/0/default.jpg",      // a stored tile
        "/512,256,256,256/256,256/0/default.jpg",  // another
        "/0,0,1024,1024/256,256/0/default.jpg",    // a tile of level 2
        "/full/max/0/default.jpg",                 // a render from the pyramid
        "/10,20,300,200/150,/0/default.jpg",       // a scaled region
    };
    for (const std::string& p : paths) {
      auto want = Http("GET", Url(file_, "iiif-img", id, p));
      ASSERT_EQ(want.status, 200) << p << ": " << want.body;
      auto cold = Http("GET", Url(s3_, "iiif-img", id, p));
      ASSERT_EQ(cold.status, 200) << p << ": " << cold.body;
      EXPECT_TRUE(cold.body == want.body) << p << " differs (cold)";
      auto warm = Http("GET", Url(s3_, "iiif-img", id, p));
      ASSERT_EQ(warm.status, 200) << p;
      EXPECT_TRUE(warm.body == want.body) << p << " differs (warm)";
    }
    auto info = Http("GET", Url(s3_, "iiif-img", id, "/info.json"));
    ASSERT_EQ(info.status, 200) << info.body;
    json ij = info.Json(), fj = Http("GET", Url(file_, "iiif-img", id, "/info.json")).Json();
    EXPECT_EQ(ij["width"], sizes_[id].first);
    EXPECT_EQ(ij["height"], sizes_[id].second);
    EXPECT_EQ(ij["tiles"], fj["tiles"]);
    EXPECT_EQ(ij["sizes"], fj["sizes"]);
    for (auto& s : ij["sizes"]) {
      std::string p = "/full/" + std::to_string(s["width"].get<int>()) + "," +
                      std::to_string(s["height"].get<int>()) + "/0/default.jpg";
      auto want = Http("GET", Url(file_, "thumbs", id, p));
      auto cold = Http("GET", Url(s3_, "thumbs", id, p));
      auto warm = Http("GET", Url(s3_, "thumbs", id, p));
      ASSERT_EQ(cold.status, 200) << p << ": " << cold.body;
      EXPECT_TRUE(cold.body == want.body && warm.body == want.body) << "thumb " << p;
    }
    auto want = Http("GET", file_->url() + "/file/1/1/" + id);
    auto got = Http("GET", s3_->url() + "/file/1/1/" + id);
    ASSERT_EQ(got.status, 200) << got.body;
    EXPECT_TRUE(got.body == want.body) << "/file differs";
    EXPECT_EQ(got.Header("content-type"), "image/jpeg");
  }
}

TEST_F(S3StorageTest, TheCacheStaysUnderItsBoundOverRandomTiles) {
  std::mt19937 rng(42);
  const std::string cache = data_->path() + "/cache";
  int64_t largest = 0;
  for (int n = 0; n < 200; ++n) {
    const std::string id = "img-" + std::to_string(rng() % 10);
    const auto [w, h] = sizes_[id];
    const int col = int(rng() % unsigned(w / 256)), row = int(rng() % unsigned(h / 256));
    const std::string p = "/" + std::to_string(col * 256) + "," + std::to_string(row * 256) +
                          ",256,256/256,256/0/default.jpg";
    auto r = Http("GET", Url(s3_, "iiif-img", id, p));
    ASSERT_EQ(r.status, 200) << id << p << ": " << r.body;
    ASSERT_TRUE(Decode(r.body).ok);
    if (n % 10 == 9) {
      int64_t used = TreeBytes(cache);
      largest = std::max(largest, used);
      ASSERT_LE(used, kCacheBytes) << "after " << n + 1 << " tiles";
    }
  }
  EXPECT_GT(largest, kCacheBytes / 2) << "the cache was used";
}

TEST_F(S3StorageTest, S3OriginsAreReadWithTheServersCredentials) {
  const std::string key = *prefix_ + "-masters/master.jpg";
  const std::string local = data_->path() + "/master.jpg";
  const std::string jpeg = MakeJpeg(640, 480, 77);
  std::ofstream(local, std::ios::binary) << jpeg;
  int rc = 0;
  AwsCli({"s3", "cp", local, "s3://" + S3Server().bucket + "/" + key}, &rc);
  ASSERT_EQ(rc, 0);
  json members = json::array(
      {Member(1, "from-s3", "s3://" + S3Server().bucket + "/" + key, "image/jpeg"),
       Member(1, "not-allowed", "s3://some-other-bucket/" + key, "image/jpeg")});
  members[0]["deliveryChannels"] = json::array({"iiif-img", "file"});
  json batch = s3_api_->SubmitBatch(kCustomer, members);
  json done = s3_api_->WaitForBatch(kCustomer, batch.at("id"), 60s);
  ASSERT_TRUE(done.contains("finished")) << done.dump(2);
  EXPECT_EQ(done["completed"], 1);
  EXPECT_EQ(done["errors"], 1);
  json bad = s3_api_->Image(kCustomer, 1, "not-allowed");
  EXPECT_NE(bad["error"].get<std::string>().find("--origin-s3-buckets"), std::string::npos)
      << bad.dump(2);
  json good = s3_api_->Image(kCustomer, 1, "from-s3");
  EXPECT_EQ(good["width"], 640);
  auto file = Http("GET", s3_->url() + "/file/1/1/from-s3");
  ASSERT_EQ(file.status, 200);
  EXPECT_TRUE(file.body == jpeg);
}

// DLCS's `s3-ambient` origin strategy on a real S3 server: the matching s3:// origin ingests
// with the server's own credentials; an http origin the strategy matches is refused by name.
TEST_F(S3StorageTest, AnS3AmbientOriginStrategyReadsS3OriginsOnly) {
  const std::string key = *prefix_ + "-ambient/scan.jpg";
  const std::string local = data_->path() + "/ambient.jpg";
  std::ofstream(local, std::ios::binary) << MakeJpeg(300, 200, 31);
  int rc = 0;
  AwsCli({"s3", "cp", local, "s3://" + S3Server().bucket + "/" + key}, &rc);
  ASSERT_EQ(rc, 0);
  const std::string strategies = "/customers/" + std::to_string(kCustomer) + "/originStrategies";
  auto made = Http("POST", s3_->url() + strategies,
                   json{{"regex", "-ambient/"}, {"strategy", "s3-ambient"}, {"order", 1}}.dump(),
                   s3_->admin());
  ASSERT_EQ(made.status, 201) << made.body;
  std::string sid = made.Json()["id"];
  origin_->Serve("/http-ambient/scan.jpg", MakeJpeg(100, 100, 32), "image/jpeg");
  json batch = s3_api_->SubmitBatch(
      kCustomer,
      json::array({Member(1, "ambient", "s3://" + S3Server().bucket + "/" + key, "image/jpeg"),
                   Member(1, "ambient-http", origin_->Url("/http-ambient/scan.jpg"),
                          "image/jpeg")}));
  json done = s3_api_->WaitForBatch(kCustomer, batch.at("id"), 60s);
  EXPECT_EQ(Http("DELETE", s3_->url() + strategies + "/" + sid, "", s3_->admin()).status, 204);
  ASSERT_TRUE(done.contains("finished")) << done.dump(2);
  EXPECT_EQ(done["completed"], 1) << done.dump(2);
  EXPECT_EQ(s3_api_->Image(kCustomer, 1, "ambient")["width"], 300);
  std::string error = s3_api_->Image(kCustomer, 1, "ambient-http")["error"];
  EXPECT_NE(error.find("origin strategy " + sid + " is s3-ambient, which reads s3:// origins only"),
            std::string::npos)
      << error;
}

TEST_F(S3StorageTest, AReingestedImageIsServedNewAtOnce) {
  // Warm the cache with the old version, then replace the image with a differently sized one.
  auto old_tile = Http("GET", Url(s3_, "iiif-img", "img-19", "/0,0,256,256/256,256/0/default.jpg"));
  ASSERT_EQ(old_tile.status, 200);
  ASSERT_EQ(Http("GET", Url(s3_, "iiif-img", "img-19", "/info.json")).Json()["width"],
            sizes_["img-19"].first);
  origin_->Serve("/img-19-new", MakeJpeg(900, 700, 1234), "image/jpeg");
  json m = Member(1, "img-19", origin_->Url("/img-19-new"), "image/jpeg");
  m["deliveryChannels"] = json::array({"iiif-img", "thumbs", "file"});
  json done = s3_api_->WaitForBatch(kCustomer, s3_api_->SubmitBatch(kCustomer, json::array({m})).at("id"), 60s);
  ASSERT_EQ(done["completed"], 1) << done.dump(2);
  auto info = Http("GET", Url(s3_, "iiif-img", "img-19", "/info.json"));
  ASSERT_EQ(info.status, 200);
  EXPECT_EQ(info.Json()["width"], 900);
  auto tile = Http("GET", Url(s3_, "iiif-img", "img-19", "/0,0,256,256/256,256/0/default.jpg"));
  ASSERT_EQ(tile.status, 200);
  EXPECT_FALSE(tile.body == old_tile.body) << "the old version's cached tile was served";
  sizes_["img-19"] = {900, 700};
}

// `quire serve` on S3 with a bad setup exits at once with a message (not a crash loop).
std::pair<int, std::string> ServeExit(const std::vector<std::string>& extra) {
  TempDir dir;
  std::string log = dir.path() + "/log";
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<std::string> args = {QUIRE_BINARY, "serve", "--listen", "127.0.0.1:0", "--data",
                                     dir.path() + "/data"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  for (int i = 0; i < 300 && waitpid(pid, &status, WNOHANG) == 0; ++i)
    std::this_thread::sleep_for(50ms);
  if (waitpid(pid, &status, WNOHANG) == 0 && kill(pid, 0) == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return {-1, "still running"};
  }
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128, text};
}

TEST(S3StartupTest, AWrongSecretStopsServeWithAMessage) {
  UseS3Credentials();
  setenv("QUIRE_S3_SECRET_KEY", "wrong-secret-value", 1);
  auto [rc, log] = ServeExit({"--storage", S3StorageUrl("startup")});
  UseS3Credentials();
  EXPECT_EQ(rc, 1) << log;
  EXPECT_NE(log.find("refused the credentials"), std::string::npos) << log;
  EXPECT_EQ(log.find("wrong-secret-value"), std::string::npos) << "the secret is never logged";
}

TEST(S3StartupTest, AMissingBucketStopsServeNamingIt) {
  UseS3Credentials();
  const auto& s = S3Server();
  auto [rc, log] = ServeExit({"--storage", "s3://quire-missing-bucket/p?endpoint=" + s.endpoint +
                                               "&region=" + s.region + "&path_style=1"});
  EXPECT_EQ(rc, 1) << log;
  EXPECT_NE(log.find("\"quire-missing-bucket\" does not exist"), std::string::npos) << log;
}

}  // namespace
}  // namespace quire::test
