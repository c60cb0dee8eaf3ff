// Audio/video on S3 storage, against the real radosgw of the `s3` fixture: the transcoded
// recordings land in the bucket (listed with awscli, the independent client) and /iiif-av
// serves them through the bounded delivery disk cache — whole and in byte ranges, equal to the
// bytes in the bucket — still decodable by ffmpeg.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/av_media.h"
#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"
#include "support/s3_server.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(S3AvTest, RecordingsAreStoredInTheBucketAndServedInRanges) {
  UseS3Credentials();
  const std::string prefix = UniqueS3Prefix("av");
  TempDir work;
  const std::string w = work.path();
  ASSERT_TRUE(MakeTestVideo(w + "/video.mp4", 640, 480, 8));
  ASSERT_TRUE(MakeTestTone(w + "/tone.wav", 4));
  OriginServer origin;
  origin.Serve("/video.mp4", ReadFile(w + "/video.mp4"), "video/mp4");
  origin.Serve("/tone.wav", ReadFile(w + "/tone.wav"), "audio/wav");
  // The smallest cache: the video is over half of it, so whole reads are not kept in it.
  QuireProcess server(
      w + "/data", {"--workers", "2", "--allow-private-origins", "--storage", S3StorageUrl(prefix),
                    "--cache-dir", w + "/cache", "--cache-bytes", std::to_string(1 << 20)});
  Api api{server.url(), server.admin()};
  int64_t space = api.CreateSpace(1, "av");
  long status = 0;
  json batch =
      api.SubmitBatch(1,
                      json::array({Member(space, "video", origin.Url("/video.mp4"), "video/mp4"),
                                   Member(space, "tone", origin.Url("/tone.wav"), "audio/wav")}),
                      &status);
  ASSERT_EQ(status, 201) << batch.dump();
  json done = api.WaitForBatch(1, batch.at("id"), 180s);
  ASSERT_EQ(done["completed"], 2) << done.dump(2) << server.Log();

  std::vector<std::string> keys = AwsListKeys(prefix);
  auto has = [&](const std::string& k) {
    return std::find_if(keys.begin(), keys.end(), [&](const std::string& key) {
             return key.find(k) != std::string::npos;
           }) != keys.end();
  };
  EXPECT_TRUE(has("video/av.mp4"));
  EXPECT_TRUE(has("tone/av.mp3"));
  EXPECT_TRUE(has("video/thumb-640x480.jpg"));

  for (auto [id, file] : {std::pair{"video", "default.mp4"}, std::pair{"tone", "default.mp3"}}) {
    SCOPED_TRACE(id);
    const std::string url = server.url() + "/iiif-av/1/" + std::to_string(space) + "/" + id +
                            "/full/full/max/max/0/" + file;
    HttpResult whole = Http("GET", url);
    ASSERT_EQ(whole.status, 200) << whole.body.substr(0, 200);
    // The bytes the independent client reads from the bucket.
    std::string key;
    for (const std::string& k : keys)
      if (k.find(std::string(id) + "/av.") != std::string::npos) key = k;
    ASSERT_FALSE(key.empty());
    int rc = -1;
    AwsCli({"s3", "cp", "s3://" + S3Server().bucket + "/" + prefix + "/" + key, w + "/got"}, &rc);
    ASSERT_EQ(rc, 0);
    EXPECT_TRUE(whole.body == ReadFile(w + "/got")) << "delivered bytes differ from the bucket's";
    const int64_t n = static_cast<int64_t>(whole.body.size());
    for (auto [a, b] :
         {std::pair<int64_t, int64_t>{0, 99}, {n / 2, n / 2 + 70000}, {n - 1000, n - 1}}) {
      HttpResult part = Http("GET", url, "", {},
                             {{"Range", "bytes=" + std::to_string(a) + "-" + std::to_string(b)}});
      ASSERT_EQ(part.status, 206);
      EXPECT_EQ(part.Header("content-range"), "bytes " + std::to_string(a) + "-" +
                                                  std::to_string(std::min(b, n - 1)) + "/" +
                                                  std::to_string(n));
      EXPECT_TRUE(part.body == whole.body.substr(a, b - a + 1)) << a << "-" << b;
    }
    std::ofstream(w + "/out", std::ios::binary) << whole.body;
    EXPECT_EQ(DecodeProblems(w + "/out"), "");
  }
}

}  // namespace
}  // namespace quire::test
