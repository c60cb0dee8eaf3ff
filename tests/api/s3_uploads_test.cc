// Uploads on S3 storage (the shared radosgw of the `s3` fixture): a body large enough for a
// multipart PUT is stored under uploads/, becomes an image's original, and is removed by
// DELETE; a wrong digest or a cut connection leaves no object at all.
#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>

#include "core/content_digest.h"
#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/quire_process.h"
#include "support/raw_http.h"
#include "support/s3_server.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

class S3UploadsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    UseS3Credentials();
    prefix_ = new std::string(UniqueS3Prefix("uploads"));
    data_ = new TempDir();
    server_ = new QuireProcess(data_->path() + "/data",
                               {"--workers", "2", "--storage", S3StorageUrl(*prefix_),
                                "--cache-dir", data_->path() + "/cache"});
    api_ = new Api{server_->url(), server_->admin()};
    space_ = api_->CreateSpace(1, "s3-uploads");
  }
  static void TearDownTestSuite() {
    if (::testing::Test::HasFailure()) std::cerr << "---- quire log ----\n" << server_->Log();
    delete api_;
    delete server_;
    delete data_;
    delete prefix_;
  }
  static int UploadObjects() {
    int n = 0;
    for (auto& k : AwsListKeys(*prefix_)) n += k.rfind("uploads/", 0) == 0 ? 1 : 0;
    return n;
  }
  static inline std::string* prefix_ = nullptr;
  static inline TempDir* data_ = nullptr;
  static inline QuireProcess* server_ = nullptr;
  static inline Api* api_ = nullptr;
  static inline int64_t space_ = 0;
};

TEST_F(S3UploadsTest, ALargeUploadIsStoredOnS3AndBecomesTheImagesOriginal) {
  // Over the 16 MiB multipart threshold: a JPEG followed by padding libjpeg ignores.
  std::string jpeg = MakeJpeg(800, 600, 3);
  std::string bytes = jpeg + std::string(18 << 20, '\0');
  StreamHasher h;
  h.Update(bytes);
  h.Finish();
  auto up = Http("POST", server_->url() + "/customers/1/uploads", bytes, server_->admin(),
                 {{"Content-Type", "image/jpeg"},
                  {"Content-Digest", "sha-256=:" + Base64Encode(h.sha256()) + ":"}});
  ASSERT_EQ(up.status, 201) << up.body;
  json u = up.Json();
  EXPECT_EQ(u["sha256"], HexEncode(h.sha256()));
  std::string key = "uploads/1/" + u["id"].get<std::string>() + "/original";
  auto keys = AwsListKeys(*prefix_);
  EXPECT_NE(std::find(keys.begin(), keys.end(), key), keys.end());

  json member = Member(space_, "on-s3", u["origin"], "image/jpeg");
  member["deliveryChannels"] = json::array({"iiif-img", "file"});
  json batch = api_->SubmitBatch(1, json::array({member}));
  json done = api_->WaitForBatch(1, batch["id"], 120s);
  ASSERT_EQ(done["completed"], 1) << done.dump();
  json image = api_->Image(1, space_, "on-s3");
  EXPECT_EQ(image["width"], 800);
  EXPECT_EQ(image["height"], 600);
  auto file = Http("GET", server_->url() + "/file/1/" + std::to_string(space_) + "/on-s3");
  EXPECT_EQ(file.status, 200);
  EXPECT_EQ(file.body.size(), bytes.size());
  EXPECT_TRUE(file.body == bytes);

  EXPECT_EQ(Http("DELETE", u["@id"], "", server_->admin()).status, 409);
  EXPECT_EQ(Http("DELETE", image["@id"], "", server_->admin()).status, 204);
  EXPECT_EQ(Http("DELETE", u["@id"], "", server_->admin()).status, 204);
  keys = AwsListKeys(*prefix_);
  EXPECT_EQ(std::find(keys.begin(), keys.end(), key), keys.end());
}

TEST_F(S3UploadsTest, AWrongDigestOrACutConnectionLeavesNoObject) {
  int before = UploadObjects();
  std::string bytes = MakeJpeg(100, 80, 1);
  auto wrong = Http("POST", server_->url() + "/customers/1/uploads", bytes, server_->admin(),
                    {{"Content-Digest", "sha-256=:" + Base64Encode(std::string(32, 'q')) + ":"}});
  EXPECT_EQ(wrong.status, 400);
  int fd = Connect(Port(server_->url()));
  ASSERT_GE(fd, 0);
  SendAll(fd, "POST /customers/1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " +
                  Base64Encode("admin:admin-secret") + "\r\nContent-Length: 30000000\r\n\r\n");
  SendAll(fd, std::string(4 << 20, 'x'));
  std::this_thread::sleep_for(200ms);
  ::close(fd);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(UploadObjects(), before);
  EXPECT_EQ(api_->Get("/customers/1/uploads").Json()["totalItems"], 0);
}

}  // namespace
}  // namespace quire::test
