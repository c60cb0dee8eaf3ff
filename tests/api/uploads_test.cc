// Uploads (spec/platform.md §2) against a live `quire serve` over real HTTP: bytes POSTed to
// /customers/{c}/uploads become images with their true dimensions; a wrong digest, a body over
// --max-upload-bytes and a connection cut mid-body keep nothing (no blob, no row, no scratch
// file); DLCS's base64 `file`; one upload used by two images and refused deletion while used;
// unused uploads expire; a 300 MB upload does not grow the server's memory.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

#include "core/content_digest.h"
#include "support/http_client.h"
#include "support/live_server.h"
#include "support/ingest_fixtures.h"
#include "support/quire_process.h"
#include "support/raw_http.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr int64_t kCustomer = 1;
constexpr int64_t kMainMaxUpload = 400LL << 20;
constexpr int64_t kSmallMaxUpload = 1000000;

class UploadsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    // The main server ingests; the small one has a tiny limit and lifetime (413, expiry) and
    // no workers, so an image queued there keeps using its upload.
    main_ = new QuireProcess(dir_->path() + "/main",
                             {"--workers", "2", "--max-upload-bytes",
                              std::to_string(kMainMaxUpload), "--request-timeout", "10"});
    small_ = new QuireProcess(dir_->path() + "/small",
                              {"--workers", "0", "--max-upload-bytes",
                               std::to_string(kSmallMaxUpload), "--upload-ttl-hours", "0.0008"});
    api_ = new Api{main_->url(), main_->admin()};
    small_api_ = new Api{small_->url(), small_->admin()};
    space_ = api_->CreateSpace(kCustomer, "uploads");
    small_space_ = small_api_->CreateSpace(kCustomer, "uploads");
  }
  static void TearDownTestSuite() {
    if (::testing::Test::HasFailure()) {
      std::cerr << "---- main log ----\n" << main_->Log();
      std::cerr << "---- small log ----\n" << small_->Log();
    }
    delete api_;
    delete small_api_;
    delete main_;
    delete small_;
    delete dir_;
  }

  static HttpResult Upload(const QuireProcess& server, const std::string& bytes,
                           std::map<std::string, std::string> headers = {}) {
    if (!headers.count("Content-Type")) headers["Content-Type"] = "image/jpeg";
    return Http("POST", server.url() + "/customers/1/uploads", bytes, server.admin(), headers);
  }

  // Upload directories in the blob store of the server whose data directory is `data`.
  static int UploadBlobs(const std::string& data) {
    std::string root = data + "/blobs/uploads/1";
    if (!fs::exists(root)) return 0;
    int n = 0;
    for (auto& e : fs::directory_iterator(root)) n += e.is_directory() ? 1 : 0;
    return n;
  }
  // Scratch files an upload left behind anywhere under `data`.
  static int UploadScratchFiles(const std::string& data) {
    int n = 0;
    for (auto& e : fs::recursive_directory_iterator(data))
      if (e.is_regular_file() && e.path().filename().string().rfind("upload-", 0) == 0) ++n;
    return n;
  }
  static int64_t UploadRows(const Api& api) {
    return api.Get("/customers/1/uploads").Json().value("totalItems", int64_t{-1});
  }
  static std::string MainData() { return dir_->path() + "/main"; }
  static std::string SmallData() { return dir_->path() + "/small"; }

  static inline TempDir* dir_ = nullptr;
  static inline QuireProcess* main_ = nullptr;
  static inline QuireProcess* small_ = nullptr;
  static inline Api* api_ = nullptr;
  static inline Api* small_api_ = nullptr;
  static inline int64_t space_ = 0;
  static inline int64_t small_space_ = 0;
};

std::string Sha256Hex(const std::string& bytes) {
  StreamHasher h;
  h.Update(bytes);
  h.Finish();
  return HexEncode(h.sha256());
}

TEST_F(UploadsTest, UploadThenQueueCompletesWithTrueDimensionsAndKeepsTheOriginal) {
  std::string jpeg = MakeJpeg(640, 427, 11);
  auto up = Upload(*main_, jpeg);
  ASSERT_EQ(up.status, 201) << up.body;
  json u = up.Json();
  EXPECT_EQ(u["@type"], "vocab:Upload");
  EXPECT_EQ(u["size"], static_cast<int64_t>(jpeg.size()));
  EXPECT_EQ(u["sha256"], Sha256Hex(jpeg));
  EXPECT_EQ(u["mediaType"], "image/jpeg");
  EXPECT_EQ(up.Header("location"), u["@id"].get<std::string>());
  EXPECT_EQ(u["origin"], main_->url() + "/customers/1/uploads/" + u["id"].get<std::string>());
  ASSERT_TRUE(u.contains("expires"));
  EXPECT_EQ(Http("GET", u["@id"], "", main_->admin()).Json()["sha256"], u["sha256"]);

  json member = Member(space_, "from-disk", u["origin"], "image/jpeg");
  member["deliveryChannels"] = json::array({"iiif-img", "thumbs", "file"});
  json batch = api_->SubmitBatch(kCustomer, json::array({member}));
  ASSERT_TRUE(batch.contains("id")) << batch.dump();
  json done = api_->WaitForBatch(kCustomer, batch["id"], 60s);
  ASSERT_EQ(done["completed"], 1) << done.dump();
  json image = api_->Image(kCustomer, space_, "from-disk");
  EXPECT_EQ(image["width"], 640);
  EXPECT_EQ(image["height"], 427);
  EXPECT_EQ(image["error"], "");
  EXPECT_EQ(image["origin"], u["origin"]);
  // The upload is the image's stored original, byte for byte.
  auto file = Http("GET", main_->url() + "/file/1/" + std::to_string(space_) + "/from-disk");
  EXPECT_EQ(file.status, 200);
  EXPECT_TRUE(file.body == jpeg) << "the file channel serves other bytes";
  auto info = Http("GET", image["imageService"].get<std::string>() + "/info.json");
  EXPECT_EQ(info.Json()["width"], 640);
  // Used uploads do not expire.
  json again = Http("GET", u["@id"], "", main_->admin()).Json();
  EXPECT_EQ(again["usedBy"], 1);
  EXPECT_FALSE(again.contains("expires"));
}

TEST_F(UploadsTest, MediaTypeIsSniffedWhenNotDeclared) {
  std::string png = MakePng(50, 40, 3);
  auto up = Upload(*main_, png, {{"Content-Type", "application/octet-stream"}});
  ASSERT_EQ(up.status, 201) << up.body;
  EXPECT_EQ(up.Json()["mediaType"], "image/png");
}

TEST_F(UploadsTest, WrongDigestsAreRefusedAndKeepNothing) {
  std::string jpeg = MakeJpeg(120, 80, 2);
  StreamHasher h(true, true);
  h.Update(jpeg);
  h.Finish();
  std::string other(32, 'x');
  int64_t rows = UploadRows(*api_);
  int blobs = UploadBlobs(MainData());
  struct Case {
    const char* header;
    std::string value;
  };
  std::vector<Case> wrong = {
      {"Content-Digest", "sha-256=:" + Base64Encode(other) + ":"},
      {"Content-Digest", "sha-512=:" + Base64Encode(std::string(64, 'y')) + ":"},
      {"Content-Digest",
       "sha-256=:" + Base64Encode(h.sha256()) + ":, sha-512=:" +
           Base64Encode(std::string(64, 'y')) + ":"},
      {"Content-MD5", Base64Encode(std::string(16, 'z'))},
  };
  for (auto& c : wrong) {
    auto r = Upload(*main_, jpeg, {{c.header, c.value}});
    EXPECT_EQ(r.status, 400) << c.header << ": " << c.value;
    EXPECT_NE(r.Json().value("detail", "").find("does not match"), std::string::npos) << r.body;
  }
  // Malformed headers are refused before the body is read.
  for (std::string bad : std::vector<std::string>{"sha-256=abc", "sha-256=:!!:", "md5=:" + Base64Encode(other) + ":",
                          "sha-256=:" + Base64Encode("short") + ":"}) {
    auto r = Upload(*main_, jpeg, {{"Content-Digest", bad}});
    EXPECT_EQ(r.status, 400) << bad << ": " << r.body;
  }
  EXPECT_EQ(UploadRows(*api_), rows);
  EXPECT_EQ(UploadBlobs(MainData()), blobs);
  EXPECT_EQ(UploadScratchFiles(MainData()), 0);

  // The right digests are accepted, alone or together.
  auto ok = Upload(*main_, jpeg,
                   {{"Content-Digest", "sha-256=:" + Base64Encode(h.sha256()) +
                                           ":, sha-512=:" + Base64Encode(h.sha512()) + ":"},
                    {"Content-MD5", Base64Encode(h.md5())}});
  EXPECT_EQ(ok.status, 201) << ok.body;
  EXPECT_EQ(UploadRows(*api_), rows + 1);
}

TEST_F(UploadsTest, BadRequestsAreClear4xxAndKeepNothing) {
  int64_t rows = UploadRows(*api_);
  auto empty = Upload(*main_, "");
  EXPECT_EQ(empty.status, 400);
  ExpectHydraError(empty, 400);
  auto wrong_auth = Http("POST", main_->url() + "/customers/1/uploads", "abc", {"admin", "nope"});
  EXPECT_EQ(wrong_auth.status, 401);
  auto unknown = Http("POST", main_->url() + "/customers/999/uploads", "abc", main_->admin());
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(UploadRows(*api_), rows);
  // A queue member naming an upload that does not exist: 400, no batch.
  json missing = Member(space_, "ghost",
                        main_->url() + "/customers/1/uploads/0123456789abcdef0123456789abcdef",
                        "image/jpeg");
  long status = 0;
  json r = api_->SubmitBatch(kCustomer, json::array({missing}), &status);
  EXPECT_EQ(status, 400);
  EXPECT_NE(r.value("detail", "").find("upload(s) could not be found"), std::string::npos)
      << r.dump();
  EXPECT_EQ(api_->Get("/customers/1/spaces/" + std::to_string(space_) + "/images/ghost").status,
            404);
  EXPECT_EQ(api_->Get("/customers/1/uploads/not-an-id").status, 404);
}

TEST_F(UploadsTest, BodiesOverTheLimitAre413EarlyOrWhileReading) {
  int64_t rows = UploadRows(*small_api_);
  // Announced too large: refused from the header, before any byte of the body.
  int fd = Connect(Port(small_->url()));
  ASSERT_GE(fd, 0);
  SendAll(fd, "POST /customers/1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " +
                  Base64Encode("admin:admin-secret") +
                  "\r\nContent-Type: image/jpeg\r\nContent-Length: " +
                  std::to_string(kSmallMaxUpload + 1) + "\r\n\r\n");
  ReadResult early = ReadResponse(fd, 5s);
  ::close(fd);
  EXPECT_EQ(FirstStatus(early.bytes), 413) << early.bytes;
  EXPECT_NE(early.bytes.find("--max-upload-bytes"), std::string::npos);
  // Chunked, so the size shows only while reading.
  std::string big(kSmallMaxUpload + 100000, 'a');
  auto chunked = Upload(*small_, big, {{"Transfer-Encoding", "chunked"}});
  EXPECT_EQ(chunked.status, 413) << chunked.body;
  // At the limit exactly it fits.
  auto fits = Upload(*small_, std::string(kSmallMaxUpload, 'b'));
  EXPECT_EQ(fits.status, 201) << fits.body;
  EXPECT_EQ(UploadRows(*small_api_), rows + 1);
  EXPECT_EQ(UploadScratchFiles(SmallData()), 0);
}

TEST_F(UploadsTest, ACutConnectionKeepsNoBlobNoRowNoScratch) {
  int64_t rows = UploadRows(*api_);
  int blobs = UploadBlobs(MainData());
  int fd = Connect(Port(main_->url()));
  ASSERT_GE(fd, 0);
  SendAll(fd, "POST /customers/1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " +
                  Base64Encode("admin:admin-secret") +
                  "\r\nContent-Type: image/jpeg\r\nContent-Length: 20000000\r\n\r\n");
  std::string piece(1 << 20, 'c');
  for (int i = 0; i < 6; ++i) SendAll(fd, piece);
  std::this_thread::sleep_for(300ms);  // the server has started spooling
  ::close(fd);
  // Give the server a moment to notice, then nothing may remain.
  for (int i = 0; i < 50 && UploadScratchFiles(MainData()) > 0; ++i)
    std::this_thread::sleep_for(100ms);
  EXPECT_EQ(UploadScratchFiles(MainData()), 0);
  EXPECT_EQ(UploadRows(*api_), rows);
  EXPECT_EQ(UploadBlobs(MainData()), blobs);
  // And the server still works.
  EXPECT_EQ(Upload(*main_, MakeJpeg(20, 20, 1)).status, 201);
}

TEST_F(UploadsTest, AnUploadKeepsTheConnectionForTheNextRequest) {
  // The body is read exactly to its Content-Length: a request sent right behind it on the same
  // connection is answered too.
  std::string body = MakeJpeg(64, 64, 4);
  std::string auth = "Authorization: Basic " + Base64Encode("admin:admin-secret") + "\r\n";
  int fd = Connect(Port(main_->url()));
  ASSERT_GE(fd, 0);
  SendAll(fd, "POST /customers/1/uploads HTTP/1.1\r\nHost: x\r\n" + auth +
                  "Content-Type: image/jpeg\r\nContent-Length: " + std::to_string(body.size()) +
                  "\r\n\r\n" + body + "GET /customers/1/uploads HTTP/1.1\r\nHost: x\r\n" +
                  auth + "\r\n");
  ReadResult r = ReadFor(fd, 5s, "\"totalItems\"");
  ::close(fd);
  EXPECT_EQ(FirstStatus(r.bytes), 201) << r.bytes;
  EXPECT_NE(r.bytes.find("HTTP/1.1 200"), std::string::npos) << r.bytes;
}

TEST_F(UploadsTest, ExpectContinueIsAnsweredBeforeTheBody) {
  // curl sends `Expect: 100-continue` for bodies over 1 MiB and waits a second for the 100
  // before sending the body; a server that never says it costs every large upload a second.
  std::string body = MakeJpeg(64, 64, 5);
  std::string auth = "Authorization: Basic " + Base64Encode("admin:admin-secret") + "\r\n";
  int fd = Connect(Port(main_->url()));
  ASSERT_GE(fd, 0);
  SendAll(fd, "POST /customers/1/uploads HTTP/1.1\r\nHost: x\r\n" + auth +
                  "Content-Type: image/jpeg\r\nExpect: 100-continue\r\nContent-Length: " +
                  std::to_string(body.size()) + "\r\n\r\n");
  auto asked = std::chrono::steady_clock::now();
  ReadResult interim = ReadFor(fd, 3s, "\r\n\r\n");
  auto waited = std::chrono::steady_clock::now() - asked;
  EXPECT_EQ(interim.bytes.rfind("HTTP/1.1 100 Continue\r\n", 0), 0u) << interim.bytes;
  EXPECT_LT(waited, 500ms);
  SendAll(fd, body);
  ReadResult r = ReadResponse(fd, 5s);
  ::close(fd);
  EXPECT_EQ(FirstStatus(r.bytes), 201) << r.bytes;
}

TEST_F(UploadsTest, Base64FileOnImagePutAndPostIngests) {
  std::string png = MakePng(300, 200, 9);
  json body = {{"mediaType", "image/png"}, {"file", Base64Encode(png)}};
  std::string url = main_->url() + "/customers/1/spaces/" + std::to_string(space_) + "/images/";
  auto put = Http("PUT", url + "b64-put", body.dump(), main_->admin());
  ASSERT_EQ(put.status, 201) << put.body;
  auto post = Http("POST", url + "b64-post", body.dump(), main_->admin());
  ASSERT_EQ(post.status, 201) << post.body;
  for (const char* id : {"b64-put", "b64-post"}) {
    json image = api_->Image(kCustomer, space_, id);
    json done = api_->WaitForBatch(kCustomer, std::stoll(image["batch"].get<std::string>().substr(
                                                  image["batch"].get<std::string>().rfind('/') + 1)),
                                   60s);
    EXPECT_EQ(done["completed"], 1) << done.dump();
    image = api_->Image(kCustomer, space_, id);
    EXPECT_EQ(image["width"], 300);
    EXPECT_EQ(image["height"], 200);
    std::string origin = image["origin"];
    json upload = Http("GET", origin, "", main_->admin()).Json();
    EXPECT_EQ(upload["sha256"], Sha256Hex(png));
    EXPECT_EQ(upload["usedBy"], 1);
  }
  int64_t rows = UploadRows(*api_);
  EXPECT_EQ(Http("PUT", url + "b64-bad", json{{"mediaType", "image/png"}, {"file", "@@@"}}.dump(),
                 main_->admin())
                .status,
            400);
  EXPECT_EQ(Http("PUT", url + "b64-both",
                 json{{"mediaType", "image/png"}, {"file", Base64Encode(png)},
                      {"origin", "https://example.org/x.png"}}
                     .dump(),
                 main_->admin())
                .status,
            400);
  // Valid bytes but an invalid image description: the upload made for it is not kept.
  EXPECT_EQ(Http("PUT", url + "b64-ro",
                 json{{"mediaType", "image/png"}, {"file", Base64Encode(png)}, {"width", 3}}
                     .dump(),
                 main_->admin())
                .status,
            400);
  EXPECT_EQ(UploadRows(*api_), rows);
}

TEST_F(UploadsTest, OneUploadServesTwoImagesAndCannotBeDeletedWhileUsed) {
  std::string jpeg = MakeJpeg(333, 222, 5);
  json u = Upload(*main_, jpeg).Json();
  ASSERT_TRUE(u.contains("origin")) << u.dump();
  json batch = api_->SubmitBatch(
      kCustomer, json::array({Member(space_, "twin-1", u["origin"], "image/jpeg"),
                              Member(space_, "twin-2", u["origin"], "image/jpeg")}));
  json done = api_->WaitForBatch(kCustomer, batch["id"], 60s);
  ASSERT_EQ(done["completed"], 2) << done.dump();
  for (const char* id : {"twin-1", "twin-2"}) {
    json image = api_->Image(kCustomer, space_, id);
    EXPECT_EQ(image["width"], 333);
    EXPECT_EQ(image["height"], 222);
  }
  std::string upload_url = u["@id"];
  auto refused = Http("DELETE", upload_url, "", main_->admin());
  EXPECT_EQ(refused.status, 409) << refused.body;
  EXPECT_NE(refused.Json().value("detail", "").find("2 image(s)"), std::string::npos);
  std::string images = "/customers/1/spaces/" + std::to_string(space_) + "/images/";
  EXPECT_EQ(Http("DELETE", main_->url() + images + "twin-1", "", main_->admin()).status, 204);
  EXPECT_EQ(Http("DELETE", upload_url, "", main_->admin()).status, 409);
  EXPECT_EQ(Http("DELETE", main_->url() + images + "twin-2", "", main_->admin()).status, 204);
  int blobs = UploadBlobs(MainData());
  EXPECT_EQ(Http("DELETE", upload_url, "", main_->admin()).status, 204);
  EXPECT_EQ(Http("GET", upload_url, "", main_->admin()).status, 404);
  EXPECT_EQ(UploadBlobs(MainData()), blobs - 1);
  EXPECT_EQ(Http("DELETE", upload_url, "", main_->admin()).status, 404);
}

TEST_F(UploadsTest, UnusedUploadsExpireAndUsedOnesStay) {
  // --upload-ttl-hours 0.0008 on the small server: about 3 s.
  json unused = Upload(*small_, MakeJpeg(30, 30, 1)).Json();
  json used = Upload(*small_, MakeJpeg(31, 31, 2)).Json();
  ASSERT_TRUE(unused.contains("@id") && used.contains("@id"));
  long status = 0;
  small_api_->SubmitBatch(kCustomer,
                          json::array({Member(small_space_, "keeps", used["origin"],
                                              "image/jpeg")}),
                          &status);
  ASSERT_EQ(status, 201);
  int gone = 0;
  for (int i = 0; i < 100 && gone != 404; ++i) {
    std::this_thread::sleep_for(100ms);
    gone = static_cast<int>(Http("GET", unused["@id"], "", small_->admin()).status);
  }
  EXPECT_EQ(gone, 404) << "the unused upload did not expire";
  EXPECT_FALSE(fs::exists(SmallData() + "/blobs/uploads/1/" + unused["id"].get<std::string>()));
  auto kept = Http("GET", used["@id"], "", small_->admin());
  EXPECT_EQ(kept.status, 200);
  EXPECT_TRUE(fs::exists(SmallData() + "/blobs/uploads/1/" + used["id"].get<std::string>()));
}

TEST_F(UploadsTest, A300MegabyteUploadDoesNotGrowServerMemory) {
  constexpr int64_t kBytes = 300LL * 1000 * 1000;
  int64_t hwm_before = main_->StatusKib("VmHWM");
  ASSERT_GT(hwm_before, 0);
  int fd = Connect(Port(main_->url()));
  ASSERT_GE(fd, 0);
  SendAll(fd, "POST /customers/1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " +
                  Base64Encode("admin:admin-secret") +
                  "\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                  std::to_string(kBytes) + "\r\n\r\n");
  std::mt19937_64 rng(7);
  std::string piece(1 << 20, '\0');
  StreamHasher hasher;
  int64_t sent = 0, hwm_peak = hwm_before;
  while (sent < kBytes) {
    size_t n = static_cast<size_t>(std::min<int64_t>(piece.size(), kBytes - sent));
    for (size_t i = 0; i + 8 <= n; i += 8) {
      uint64_t v = rng();
      std::memcpy(&piece[i], &v, 8);
    }
    hasher.Update(std::string_view(piece.data(), n));
    SendAll(fd, piece.substr(0, n));
    sent += static_cast<int64_t>(n);
    if ((sent >> 20) % 16 == 0) hwm_peak = std::max(hwm_peak, main_->StatusKib("VmHWM"));
  }
  hasher.Finish();
  ReadResult r = ReadResponse(fd, 120s);
  ::close(fd);
  ASSERT_EQ(FirstStatus(r.bytes), 201) << r.bytes.substr(0, 500);
  hwm_peak = std::max(hwm_peak, main_->StatusKib("VmHWM"));
  int64_t growth_kib = hwm_peak - hwm_before;
  std::cout << "VmHWM before " << hwm_before << " KiB, after a 300 MB upload " << hwm_peak
            << " KiB (growth " << growth_kib << " KiB)\n";
  EXPECT_LT(growth_kib, 64 * 1024);
  std::string body = r.bytes.substr(r.bytes.find("\r\n\r\n") + 4);
  json u = json::parse(body, nullptr, false);
  ASSERT_TRUE(u.is_object()) << body.substr(0, 300);
  EXPECT_EQ(u["size"], kBytes);
  EXPECT_EQ(u["sha256"], HexEncode(hasher.sha256()));
  EXPECT_EQ(Http("DELETE", u["@id"], "", main_->admin()).status, 204);
}

}  // namespace
}  // namespace quire::test
