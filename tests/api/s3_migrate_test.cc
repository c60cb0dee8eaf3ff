// `quire storage migrate` from a populated embedded installation (file storage) to S3 on the
// fixture's radosgw: everything is copied and verified, a second run copies nothing, a run
// after damage (an object lost, one truncated) repairs exactly those, and the same database
// served from S3 answers with identical bytes.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <fstream>
#include <regex>

#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"
#include "support/s3_server.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

std::pair<int, std::string> RunQuire(const std::vector<std::string>& args) {
  TempDir dir;
  std::string out = dir.path() + "/out";
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<std::string> all = {QUIRE_BINARY};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  std::ifstream in(out);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128, text};
}

TEST(S3MigrateTest, AFileInstallationMovesToS3AndServesTheSameBytes) {
  UseS3Credentials();
  TempDir dir;
  const std::string data = dir.path() + "/data";
  const std::string prefix = UniqueS3Prefix("migrate");
  const std::string url = S3StorageUrl(prefix);
  OriginServer origin;
  std::vector<std::string> paths = {"/iiif-img/1/1/m-0/0,0,256,256/256,256/0/default.jpg",
                                    "/iiif-img/1/1/m-1/full/max/0/default.jpg",
                                    "/iiif-img/1/1/m-2/info.json",
                                    "/thumbs/1/1/m-0/full/200,150/0/default.jpg",
                                    "/file/1/1/m-1"};
  std::vector<std::string> before;
  {
    QuireProcess server(data, {"--workers", "2", "--allow-private-origins"});
    Api api{server.url(), server.admin()};
    api.CreateSpace(1, "m");
    json members = json::array();
    for (int i = 0; i < 3; ++i) {
      std::string id = "m-" + std::to_string(i);
      origin.Serve("/" + id, MakeJpeg(800, 600, 30 + i), "image/jpeg");
      json m = Member(1, id, origin.Url("/" + id), "image/jpeg");
      m["deliveryChannels"] = json::array({"iiif-img", "thumbs", "file"});
      members.push_back(m);
    }
    json done = api.WaitForBatch(1, api.SubmitBatch(1, members).at("id"), 60s);
    ASSERT_EQ(done["completed"], 3) << done.dump(2);
    for (auto& p : paths) {
      auto r = Http("GET", server.url() + p);
      ASSERT_EQ(r.status, 200) << p;
      before.push_back(p.find("info.json") != std::string::npos ? r.Json()["tiles"].dump()
                                                                : r.body);
    }
    server.Stop();
  }

  // 3 × (pyramid + 4 thumbnails of ≤ 800 px: 800, 400, 200, 100 + original) = 18 blobs.
  auto [rc, out] = RunQuire({"storage", "migrate", "--data", data, "--to", url});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("migrated: 18 copied"), std::string::npos) << out;
  EXPECT_EQ(AwsListKeys(prefix).size(), 18u);

  auto [rc2, out2] = RunQuire({"storage", "migrate", "--data", data, "--to", url});
  ASSERT_EQ(rc2, 0) << out2;
  EXPECT_NE(out2.find("migrated: 0 copied (0 bytes), 18 already there"), std::string::npos)
      << out2;

  // Damage: one object lost, one replaced by different bytes of the same length.
  const std::string bucket = S3Server().bucket;
  int aws_rc = 0;
  AwsCli({"s3", "rm", "s3://" + bucket + "/" + prefix + "/1/1/m-2/image.tif"}, &aws_rc);
  ASSERT_EQ(aws_rc, 0);
  std::ifstream orig(data + "/blobs/1/1/m-0/original", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(orig)), std::istreambuf_iterator<char>());
  bytes[bytes.size() / 2] ^= 0x55;
  std::ofstream(dir.path() + "/bad", std::ios::binary) << bytes;
  AwsCli({"s3", "cp", dir.path() + "/bad", "s3://" + bucket + "/" + prefix + "/1/1/m-0/original"},
         &aws_rc);
  ASSERT_EQ(aws_rc, 0);
  auto [rc3, out3] = RunQuire({"storage", "migrate", "--data", data, "--to", url});
  ASSERT_EQ(rc3, 0) << out3;
  EXPECT_NE(out3.find("migrated: 2 copied"), std::string::npos) << out3;
  EXPECT_NE(out3.find("16 already there"), std::string::npos) << out3;

  // The same database, served from S3 (and no longer from the local files).
  std::filesystem::rename(data + "/blobs", dir.path() + "/old-blobs");
  QuireProcess on_s3(data, {"--workers", "0", "--storage", url});
  for (size_t i = 0; i < paths.size(); ++i) {
    auto r = Http("GET", on_s3.url() + paths[i]);
    ASSERT_EQ(r.status, 200) << paths[i] << ": " << r.body;
    std::string got = paths[i].find("info.json") != std::string::npos ? r.Json()["tiles"].dump()
                                                                     : r.body;
    EXPECT_TRUE(got == before[i]) << paths[i] << " differs after migration";
  }
}

}  // namespace
}  // namespace quire::test
