// What only the S3 store has to get right, against the real radosgw of the `s3` fixture:
// credentials and bucket checked at open, both addressing styles, what the independent
// client (awscli) sees, stale multipart uploads, retries when the service is gone.
#include "blob/s3/s3_blob_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "blob/s3/sigv4.h"
#include "support/s3_server.h"

namespace quire {
namespace {
namespace fs = std::filesystem;

class S3BlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::UseS3Credentials();
    scratch_ = (fs::temp_directory_path() / ("quire-s3-test-" + std::to_string(::getpid()))).string();
    prefix_ = test::UniqueS3Prefix("s3store");
  }
  void TearDown() override { fs::remove_all(scratch_); }

  Result<std::unique_ptr<BlobStore>> Open(const std::string& extra = "") {
    return OpenBlobStore(test::S3StorageUrl(prefix_, extra), scratch_);
  }

  std::string scratch_, prefix_;
};

TEST_F(S3BlobStoreTest, TheIndependentClientSeesWhatWasWritten) {
  auto store = Open();
  ASSERT_TRUE(store.ok()) << store.status().message();
  ASSERT_TRUE((*store)->PutBytes("1/2/x/thumb-1x1.jpg", "thumb bytes").ok());
  EXPECT_EQ(test::AwsListKeys(prefix_), std::vector<std::string>{"1/2/x/thumb-1x1.jpg"});
  int rc = 0;
  std::string out = test::AwsCli({"s3", "cp", "s3://" + test::S3Server().bucket + "/" + prefix_ +
                                                  "/1/2/x/thumb-1x1.jpg", "-"},
                                 &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(out, "thumb bytes");
  // And the other way round.
  std::string local = scratch_ + "/from-aws";
  std::ofstream(local) << "written by aws";
  test::AwsCli({"s3", "cp", local, "s3://" + test::S3Server().bucket + "/" + prefix_ + "/9/9/y/z"},
               &rc);
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(*(*store)->GetBytes("9/9/y/z"), "written by aws");
}

TEST_F(S3BlobStoreTest, VirtualHostedAddressingWorks) {
  // radosgw is configured with `rgw dns name = localhost`; curl resolves *.localhost itself.
  const auto& s = test::S3Server();
  auto store = OpenBlobStore("s3://" + s.bucket + "/" + prefix_ + "?endpoint=http://localhost:" +
                                 s.port + "&region=" + s.region,
                             scratch_);
  ASSERT_TRUE(store.ok()) << store.status().message();
  ASSERT_TRUE((*store)->PutBytes("1/1/v/blob", "virtual").ok());
  EXPECT_EQ(*(*store)->GetBytes("1/1/v/blob"), "virtual");
  EXPECT_EQ(test::AwsListKeys(prefix_), std::vector<std::string>{"1/1/v/blob"});
}

TEST_F(S3BlobStoreTest, AWrongSecretIsAClearErrorAtOpen) {
  setenv("QUIRE_S3_SECRET_KEY", "not-the-secret-at-all", 1);
  auto store = Open();
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Code::kForbidden);
  EXPECT_NE(store.status().message().find("refused the credentials"), std::string::npos)
      << store.status().message();
  EXPECT_EQ(store.status().message().find("not-the-secret-at-all"), std::string::npos);
}

TEST_F(S3BlobStoreTest, AMissingBucketIsNamedAtOpen) {
  const auto& s = test::S3Server();
  auto store = OpenBlobStore("s3://no-such-bucket-here/p?endpoint=" + s.endpoint +
                                 "&region=" + s.region + "&path_style=1",
                             scratch_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Code::kNotFound);
  EXPECT_NE(store.status().message().find("\"no-such-bucket-here\" does not exist"),
            std::string::npos)
      << store.status().message();
}

TEST_F(S3BlobStoreTest, CredentialsComeFromTheEnvironmentOnly) {
  const auto& s = test::S3Server();
  auto in_url = OpenBlobStore("s3://k:v@" + s.bucket + "/p?endpoint=" + s.endpoint, scratch_);
  EXPECT_EQ(in_url.status().code(), Code::kInvalid);
  unsetenv("QUIRE_S3_ACCESS_KEY");
  unsetenv("QUIRE_S3_SECRET_KEY");
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SECRET_ACCESS_KEY");
  auto none = Open();
  EXPECT_EQ(none.status().code(), Code::kInvalid);
  EXPECT_NE(none.status().message().find("QUIRE_S3_ACCESS_KEY"), std::string::npos);
  setenv("AWS_ACCESS_KEY_ID", s.access_key.c_str(), 1);
  setenv("AWS_SECRET_ACCESS_KEY", s.secret_key.c_str(), 1);
  auto aws = Open();
  EXPECT_TRUE(aws.ok()) << aws.status().message();
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SECRET_ACCESS_KEY");
  EXPECT_EQ(Open("&bogus=1").status().code(), Code::kInvalid);
}

TEST_F(S3BlobStoreTest, StaleMultipartUploadsAreAbortedAtOpen) {
  // A writer that died mid-upload: its upload is started, never completed.
  const std::string bucket = test::S3Server().bucket;
  int rc = 0;
  test::AwsCli({"s3api", "create-multipart-upload", "--bucket", bucket, "--key",
                prefix_ + "/1/1/crashed/image.tif"},
               &rc);
  ASSERT_EQ(rc, 0);
  auto uploads = [&] {
    std::string out = test::AwsCli({"s3api", "list-multipart-uploads", "--bucket", bucket,
                                    "--prefix", prefix_ + "/", "--output", "json"});
    if (out.empty()) return size_t(0);
    return nlohmann::json::parse(out).value("Uploads", nlohmann::json::array()).size();
  };
  ASSERT_EQ(uploads(), 1u);
  {  // younger than the cleanup interval: kept (it may be a live writer's)
    auto store = Open("&upload_cleanup_s=3600");
    ASSERT_TRUE(store.ok());
  }
  EXPECT_EQ(uploads(), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  {
    auto store = Open("&upload_cleanup_s=1");
    ASSERT_TRUE(store.ok());
  }
  EXPECT_EQ(uploads(), 0u);
  EXPECT_TRUE(test::AwsListKeys(prefix_).empty());  // and never a visible object
}

TEST_F(S3BlobStoreTest, AFailedMultipartUploadLeavesNothing) {
  // Parts of 1 MiB: S3 accepts each, then refuses to complete (EntityTooSmall), so the store
  // must abort the upload.
  auto store = Open("&multipart_threshold=1048576&part_size=1048576");
  ASSERT_TRUE(store.ok());
  std::string src = (*store)->ScratchDir() + "/three-parts";
  std::ofstream(src, std::ios::binary) << std::string(3 << 20, 'x');
  Status st = (*store)->PutFile("1/1/partial/image.tif", src);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("EntityTooSmall"), std::string::npos) << st.message();
  EXPECT_FALSE((*store)->Exists("1/1/partial/image.tif"));
  EXPECT_TRUE(test::AwsListKeys(prefix_).empty());
  std::string out = test::AwsCli({"s3api", "list-multipart-uploads", "--bucket",
                                  test::S3Server().bucket, "--prefix", prefix_ + "/", "--output",
                                  "json"});
  EXPECT_TRUE(out.empty() ||
              nlohmann::json::parse(out).value("Uploads", nlohmann::json::array()).empty())
      << out;
  EXPECT_TRUE(fs::exists(src));  // not consumed on failure
}

TEST_F(S3BlobStoreTest, AnUnreachableServiceIsUnavailableAfterRetries) {
  // A port nothing listens on: every try is refused, the store says "try later".
  auto start = std::chrono::steady_clock::now();
  auto store = OpenBlobStore("s3://b/p?endpoint=http://127.0.0.1:9&path_style=1"
                             "&max_attempts=4&backoff_ms=20",
                             scratch_);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Code::kUnavailable);
  EXPECT_NE(store.status().message().find("unreachable"), std::string::npos);
  EXPECT_NE(store.status().message().find("4 tries"), std::string::npos)
      << store.status().message();
  EXPECT_GE(took, std::chrono::milliseconds(30));  // it did back off between tries
}

TEST(SigV4Test, CanonicalQueryIsSortedAndEncoded) {
  EXPECT_EQ(s3::CanonicalQuery({{"uploads", ""}}), "uploads=");
  EXPECT_EQ(s3::CanonicalQuery({{"prefix", "a/b c"}, {"list-type", "2"}}),
            "list-type=2&prefix=a%2Fb%20c");
  EXPECT_EQ(s3::UriEncode("1/2/a%2E~", true), "1/2/a%252E~");
  EXPECT_EQ(s3::Sha256Hex(""), s3::kEmptySha256);
}

}  // namespace
}  // namespace quire
