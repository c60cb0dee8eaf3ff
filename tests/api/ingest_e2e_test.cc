// End-to-end ingest against a live `quire serve` and a loopback test origin: good images of
// every common kind come out with true dimensions and readable derivatives; every kind of
// failure ends as a per-image error naming its cause while the rest of the batch completes;
// /retry re-queues the failures; private origins are refused when not allowed.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr int64_t kCustomer = 1;

// One server and one origin for the whole file: starting them is the slow part.
class IngestE2ETest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    origin_ = new OriginServer();
    data_ = new TempDir();
    server_ = new QuireProcess(
        data_->path() + "/data",
        {"--workers", "2", "--allow-private-origins", "--ingest-attempts", "3",
         "--ingest-backoff-ms", "100", "--origin-timeout-ms", "1500", "--max-origin-bytes",
         "3000000", "--lease-ms", "5000", "--origin-low-speed-time-s", "1"});
    api_ = new Api{server_->url(), server_->admin()};
  }
  static void TearDownTestSuite() {
    if (::testing::Test::HasFailure()) std::cerr << "---- quire log ----\n" << server_->Log();
    delete api_;
    delete server_;
    delete data_;
    delete origin_;
  }

  static std::string Iiif(const std::string& root, int64_t space, const std::string& id,
                          const std::string& rest) {
    return server_->url() + "/" + root + "/" + std::to_string(kCustomer) + "/" +
           std::to_string(space) + "/" + id + rest;
  }

  static OriginServer* origin_;
  static TempDir* data_;
  static QuireProcess* server_;
  static Api* api_;
};

OriginServer* IngestE2ETest::origin_ = nullptr;
TempDir* IngestE2ETest::data_ = nullptr;
QuireProcess* IngestE2ETest::server_ = nullptr;
Api* IngestE2ETest::api_ = nullptr;

struct GoodImage {
  std::string id, media_type, bytes;
  int width, height;  // as reported: after EXIF orientation
  int bands = 3;      // of the delivered JPEGs
};

TEST_F(IngestE2ETest, GoodImagesOfEveryKindIngestWithTrueSizesAndReadableDerivatives) {
  std::vector<GoodImage> images = {
      {"photo-jpeg", "image/jpeg", MakeJpeg(640, 480, 1), 640, 480},
      {"large-jpeg", "image/jpeg", MakeJpeg(1500, 1100, 2), 1500, 1100},
      {"alpha-png", "image/png", MakePng(500, 375, 3, true), 500, 375},
      {"lzw-tiff", "image/tiff", MakeTiff(400, 300, 4), 400, 300},
      {"lossy-webp", "image/webp", MakeWebp(480, 320, 5), 480, 320},
      {"exif-rotated", "image/jpeg", MakeOrientedJpeg(300, 200, 6, 6), 200, 300},
      {"deep-png16", "image/png", MakePng16(320, 240, 7), 320, 240},
      {"cmyk-jpeg", "image/jpeg", MakeCmykJpeg(360, 270, 8), 360, 270},
      {"grey-jpeg", "image/jpeg", MakeGreyJpeg(450, 300, 9), 450, 300, 1},
  };
  ASSERT_EQ(OrientationOf(images[5].bytes), 6) << "the test JPEG must carry EXIF orientation 6";
  ASSERT_EQ(Decode(images[7].bytes).bands, 4) << "the test JPEG must be CMYK";

  int64_t space = api_->CreateSpace(kCustomer, "good");
  json members = json::array();
  for (auto& img : images) {
    origin_->Serve("/good/" + img.id, img.bytes, img.media_type);
    members.push_back(Member(space, img.id, origin_->Url("/good/" + img.id), img.media_type));
  }
  long status = 0;
  json batch = api_->SubmitBatch(kCustomer, members, &status);
  ASSERT_EQ(status, 201) << batch.dump();
  int64_t batch_id = batch.at("id");
  EXPECT_EQ(batch["count"], images.size());

  json done = api_->WaitForBatch(kCustomer, batch_id, 40s);
  ASSERT_TRUE(done.contains("finished")) << done.dump(2);
  EXPECT_EQ(done["count"], images.size());
  EXPECT_EQ(done["completed"], images.size()) << done.dump(2);
  EXPECT_EQ(done["errors"], 0);
  EXPECT_EQ(done.value("estCompletion", ""), done["finished"].get<std::string>())
      << "estCompletion equals finished once finished";
  EXPECT_FALSE(done["superseded"].get<bool>());
  EXPECT_EQ(api_->All(done["completedImages"]).size(), images.size());
  EXPECT_TRUE(api_->All(done["errorImages"]).empty());

  for (auto& img : images) {
    SCOPED_TRACE(img.id);
    EXPECT_EQ(origin_->Requests("/good/" + img.id), 1);
    json a = api_->Image(kCustomer, space, img.id);
    EXPECT_EQ(a["width"], img.width) << a.dump(2);
    EXPECT_EQ(a["height"], img.height);
    EXPECT_EQ(a["ingesting"], false);
    EXPECT_EQ(a["error"], "");
    EXPECT_TRUE(a.contains("finished"));

    // Image service: info.json and a full-size render.
    auto info = Http("GET", Iiif("iiif-img", space, img.id, "/info.json"));
    ASSERT_EQ(info.status, 200) << info.body;
    json ij = info.Json();
    EXPECT_EQ(ij["width"], img.width);
    EXPECT_EQ(ij["height"], img.height);
    auto full = Http("GET", Iiif("iiif-img", space, img.id, "/full/max/0/default.jpg"));
    ASSERT_EQ(full.status, 200) << full.body;
    EXPECT_EQ(full.Header("content-type"), "image/jpeg");
    Decoded d = Decode(full.body);
    ASSERT_TRUE(d.ok) << d.error;
    EXPECT_EQ(d.width, img.width);
    EXPECT_EQ(d.height, img.height);
    EXPECT_EQ(d.bands, img.bands) << "delivered as sRGB (3 bands) or greyscale (1 band)";
    // A scaled region, rendered from the pyramid.
    auto part = Http("GET", Iiif("iiif-img", space, img.id, "/0,0,100,100/50,/0/default.jpg"));
    ASSERT_EQ(part.status, 200) << part.body;
    Decoded pd = Decode(part.body);
    EXPECT_TRUE(pd.ok);
    EXPECT_EQ(pd.width, 50);
    EXPECT_EQ(pd.height, 50);

    // Thumbnail service: every listed size is stored and decodes at that size.
    auto tinfo = Http("GET", Iiif("thumbs", space, img.id, "/info.json"));
    ASSERT_EQ(tinfo.status, 200) << tinfo.body;
    json tj = tinfo.Json();
    ASSERT_TRUE(tj.contains("sizes")) << tj.dump(2);
    std::set<std::pair<int, int>> listed;
    int longest = std::max(img.width, img.height);
    for (auto& s : tj["sizes"]) {
      int w = s["width"], h = s["height"];
      listed.insert({w, h});
      EXPECT_LE(std::max(w, h), longest) << "never upscaled";
      auto th = Http(
          "GET", Iiif("thumbs", space, img.id,
                      "/full/" + std::to_string(w) + "," + std::to_string(h) + "/0/default.jpg"));
      ASSERT_EQ(th.status, 200) << w << "x" << h << ": " << th.body;
      Decoded td = Decode(th.body);
      ASSERT_TRUE(td.ok) << td.error;
      EXPECT_EQ(td.width, w);
      EXPECT_EQ(td.height, h);
    }
    // Policy boxes 1024, 400, 200, 100 (boxes over the image give the full size once).
    std::set<int> expected_longest;
    for (int box : {1024, 400, 200, 100}) expected_longest.insert(std::min(box, longest));
    std::set<int> got_longest;
    for (auto& [w, h] : listed) got_longest.insert(std::max(w, h));
    EXPECT_EQ(got_longest, expected_longest);
    // The confined form names the 200 box.
    auto th200 = Http("GET", Iiif("thumbs", space, img.id, "/full/!200,200/0/default.jpg"));
    ASSERT_EQ(th200.status, 200) << th200.body;
    Decoded t200 = Decode(th200.body);
    ASSERT_TRUE(t200.ok);
    EXPECT_EQ(std::max(t200.width, t200.height), 200);
    EXPECT_TRUE(listed.count({t200.width, t200.height}));
    // Aspect ratio survives (within rounding).
    EXPECT_NEAR(double(t200.width) / t200.height, double(img.width) / img.height, 0.02);
  }

  json queue = api_->Get("/customers/1/queue").Json();
  EXPECT_EQ(queue["size"], 0);
  auto durations = IngestDurationsMs(server_->Log());
  if (!durations.empty()) {
    int64_t sum = 0;
    for (int d : durations) sum += d;
    std::cout << "[ ingest ] " << durations.size() << " images, mean " << sum / durations.size()
              << " ms per image\n";
    std::istringstream lines(server_->Log());
    for (std::string line; std::getline(lines, line);)
      if (line.find(" done in ") != std::string::npos)
        std::cout << "[ ingest ] " << line.substr(line.find("ingest ")) << "\n";
  }
}

TEST_F(IngestE2ETest, EachFailureIsAPerImageErrorWhileTheRestOfTheBatchCompletes) {
  int64_t space = api_->CreateSpace(kCustomer, "failures");
  std::string jpeg = MakeJpeg(400, 300, 11);
  std::string png = MakePng(300, 200, 12);

  origin_->Serve("/f/ok.jpg", jpeg, "image/jpeg");
  origin_->Serve("/f/ok.png", png, "image/png");
  origin_->Redirect("/f/moved.jpg", origin_->Url("/f/ok.jpg"));
  origin_->FailThenServe("/f/flaky.jpg", 2, jpeg, "image/jpeg", 500);  // 3rd try succeeds
  origin_->Status("/f/missing.jpg", 404);
  origin_->Status("/f/forbidden.jpg", 403);
  origin_->Status("/f/down.jpg", 500);                               // never recovers
  origin_->Stall("/f/stall.jpg");                                    // accepts, never answers
  origin_->Trickle("/f/trickle.jpg", jpeg, "image/jpeg", 16, 1000);  // 16 bytes/s
  origin_->Serve("/f/truncated.jpg", jpeg.substr(0, jpeg.size() / 2), "image/jpeg");
  origin_->Serve("/f/page.jpg",
                 "<!DOCTYPE html><html><head><title>Not here</title></head><body><p>This is a "
                 "web page, not an image.</p></body></html>\n",
                 "text/html");
  origin_->Serve("/f/huge.png", MakePngHeaderOnly(100000, 100000), "image/png");
  std::string big(3500000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 2654435761u) >> 13);
  origin_->Serve("/f/oversize.jpg", big, "image/jpeg");
  OriginRoute unsized;
  unsized.body = big;
  unsized.content_type = "image/jpeg";
  unsized.send_length = false;  // the limit must hold while streaming too
  origin_->Route("/f/oversize-stream.jpg", unsized);
  OriginRoute cut;  // claims the whole JPEG, sends half, closes
  cut.body = jpeg.substr(0, jpeg.size() / 2);
  cut.content_type = "image/jpeg";
  cut.declared_length = static_cast<long>(jpeg.size());
  origin_->Route("/f/cut-short.jpg", cut);
  origin_->Redirect("/f/loop.jpg", origin_->Url("/f/loop.jpg"));

  struct Case {
    std::string id, path, media_type;
    std::vector<std::string> keywords;  // empty: must succeed; else any one in the error
  };
  std::vector<Case> cases = {
      {"ok-jpeg", "/f/ok.jpg", "image/jpeg", {}},
      {"ok-png", "/f/ok.png", "image/png", {}},
      {"redirected", "/f/moved.jpg", "image/jpeg", {}},
      {"flaky", "/f/flaky.jpg", "image/jpeg", {}},
      {"missing", "/f/missing.jpg", "image/jpeg", {"404"}},
      {"forbidden", "/f/forbidden.jpg", "image/jpeg", {"403"}},
      {"down", "/f/down.jpg", "image/jpeg", {"500"}},
      {"stalled", "/f/stall.jpg", "image/jpeg", {"timed out"}},
      {"trickle", "/f/trickle.jpg", "image/jpeg", {"stalled"}},
      {"truncated", "/f/truncated.jpg", "image/jpeg", {"decod"}},
      {"html", "/f/page.jpg", "image/jpeg", {"decod"}},
      {"huge", "/f/huge.png", "image/png", {"pixels"}},
      {"oversize", "/f/oversize.jpg", "image/jpeg", {"larger"}},
      {"oversize-stream", "/f/oversize-stream.jpg", "image/jpeg", {"larger"}},
      {"cut-short", "/f/cut-short.jpg", "image/jpeg", {"transfer", "closed"}},
      {"redirect-loop", "/f/loop.jpg", "image/jpeg", {"redirect"}},
  };
  json members = json::array();
  std::set<std::string> failing;
  for (auto& c : cases) {
    members.push_back(Member(space, c.id, origin_->Url(c.path), c.media_type));
    if (!c.keywords.empty()) failing.insert(c.id);
  }
  long status = 0;
  json batch = api_->SubmitBatch(kCustomer, members, &status);
  ASSERT_EQ(status, 201) << batch.dump();
  int64_t batch_id = batch.at("id");

  json done = api_->WaitForBatch(kCustomer, batch_id, 45s);
  ASSERT_TRUE(done.contains("finished")) << done.dump(2);
  EXPECT_EQ(done["count"], cases.size());
  EXPECT_EQ(done["errors"], failing.size()) << done.dump(2);
  EXPECT_EQ(done["completed"], cases.size() - failing.size());
  EXPECT_EQ(done.value("estCompletion", ""), done["finished"].get<std::string>());

  std::map<std::string, std::string> listed_errors;
  for (auto& m : api_->All(done["errorImages"])) listed_errors[m["id"]] = m["error"];
  std::set<std::string> completed;
  for (auto& m : api_->All(done["completedImages"])) completed.insert(m["id"]);

  for (auto& c : cases) {
    SCOPED_TRACE(c.id);
    json a = api_->Image(kCustomer, space, c.id);
    EXPECT_EQ(a["ingesting"], false);
    EXPECT_TRUE(a.contains("finished"));
    std::string error = a["error"];
    std::cout << "[ result ] " << c.id << ": " << (error.empty() ? "ok" : error) << "\n";
    if (c.keywords.empty()) {
      EXPECT_EQ(error, "");
      EXPECT_GT(a["width"].get<int>(), 0);
      EXPECT_TRUE(completed.count(c.id));
      EXPECT_FALSE(listed_errors.count(c.id));
      auto full = Http("GET", Iiif("iiif-img", space, c.id, "/full/max/0/default.jpg"));
      EXPECT_EQ(full.status, 200);
      EXPECT_TRUE(Decode(full.body).ok);
    } else {
      bool named = false;
      for (auto& k : c.keywords) named = named || error.find(k) != std::string::npos;
      EXPECT_TRUE(named) << "error \"" << error << "\" should name the cause";
      EXPECT_EQ(error.find("/tmp"), std::string::npos) << "no server paths in messages";
      ASSERT_TRUE(listed_errors.count(c.id)) << "listed in errorImages";
      EXPECT_EQ(listed_errors[c.id], error);
      EXPECT_FALSE(completed.count(c.id));
      EXPECT_EQ(a["width"], 0);
      // Delivery says why there is nothing to deliver.
      auto info = Http("GET", Iiif("iiif-img", space, c.id, "/info.json"));
      EXPECT_EQ(info.status, 404);
    }
  }
  EXPECT_EQ(listed_errors.size(), failing.size());
  EXPECT_EQ(completed.size(), cases.size() - failing.size());

  // Retries: transient failures were retried up to --ingest-attempts, permanent ones were not.
  EXPECT_EQ(origin_->Requests("/f/flaky.jpg"), 3);
  EXPECT_EQ(origin_->Requests("/f/down.jpg"), 3);
  EXPECT_GE(origin_->Requests("/f/stall.jpg"), 3);
  EXPECT_EQ(origin_->Requests("/f/missing.jpg"), 1);
  EXPECT_EQ(origin_->Requests("/f/forbidden.jpg"), 1);
  EXPECT_EQ(origin_->Requests("/f/truncated.jpg"), 1);
  EXPECT_EQ(origin_->Requests("/f/huge.png"), 1);
  EXPECT_EQ(origin_->Requests("/f/moved.jpg"), 1);
  EXPECT_EQ(origin_->Requests("/f/cut-short.jpg"), 3) << "a cut-short transfer is transient";
  EXPECT_NE(api_->Image(kCustomer, space, "down")["error"].get<std::string>().find("3 attempts"),
            std::string::npos);

  // /retry: the origins of four failures are fixed; the batch re-queues all its errors, the
  // fixed ones complete and the rest fail again with the same causes.
  for (auto path : {"/f/missing.jpg", "/f/down.jpg", "/f/stall.jpg", "/f/trickle.jpg"})
    origin_->Serve(path, jpeg, "image/jpeg");
  std::set<std::string> fixed = {"missing", "down", "stalled", "trickle"};
  auto retry = api_->Post(std::string(done["retry"]), json());
  ASSERT_EQ(retry.status, 200) << retry.body;
  json retried = retry.Json();
  EXPECT_EQ(retried["id"], batch_id);
  EXPECT_EQ(retried["count"], cases.size());
  EXPECT_EQ(retried["completed"], cases.size() - failing.size());
  EXPECT_FALSE(retried.contains("finished")) << "the batch is open again";
  for (auto& id : failing) {
    json a = api_->Image(kCustomer, space, id);
    if (a["ingesting"] == false) continue;  // already re-processed
    EXPECT_EQ(a["error"], "");
  }

  json again = api_->WaitForBatch(kCustomer, batch_id, 30s);
  ASSERT_TRUE(again.contains("finished")) << again.dump(2);
  EXPECT_EQ(again["errors"], failing.size() - fixed.size()) << again.dump(2);
  EXPECT_EQ(again["completed"], cases.size() - failing.size() + fixed.size());
  EXPECT_EQ(again.value("estCompletion", ""), again["finished"].get<std::string>());
  std::set<std::string> still_failing;
  for (auto& m : api_->All(again["errorImages"])) still_failing.insert(m["id"]);
  std::set<std::string> expect_failing;
  for (auto& id : failing)
    if (!fixed.count(id)) expect_failing.insert(id);
  EXPECT_EQ(still_failing, expect_failing);
  for (auto& id : fixed) {
    json a = api_->Image(kCustomer, space, id);
    EXPECT_EQ(a["error"], "") << id;
    EXPECT_EQ(a["width"], 400) << id;
  }
  EXPECT_EQ(origin_->Requests("/f/missing.jpg"), 2);
  EXPECT_EQ(origin_->Requests("/f/forbidden.jpg"), 2) << "every error is re-queued";
  EXPECT_EQ(api_->Get("/customers/1/queue").Json()["size"], 0);
}

// Submitting an image again with a different origin replaces its derivatives: delivery serves
// the new size at once (no stale info.json, pyramid or thumbnail from a cache), and the first
// batch becomes superseded.
TEST_F(IngestE2ETest, ReingestReplacesTheDerivatives) {
  int64_t space = api_->CreateSpace(kCustomer, "reingest");
  origin_->Serve("/r/v1.jpg", MakeJpeg(600, 400, 41), "image/jpeg");
  origin_->Serve("/r/v2.png", MakePng(300, 500, 42), "image/png");
  long status = 0;
  json b1 = api_->SubmitBatch(
      kCustomer, json::array({Member(space, "pic", origin_->Url("/r/v1.jpg"), "image/jpeg")}),
      &status);
  ASSERT_EQ(status, 201);
  ASSERT_TRUE(api_->WaitForBatch(kCustomer, b1["id"], 20s).contains("finished"));
  // Warm every cache with the first version.
  EXPECT_EQ(Http("GET", Iiif("iiif-img", space, "pic", "/info.json")).Json()["width"], 600);
  EXPECT_EQ(
      Decode(Http("GET", Iiif("iiif-img", space, "pic", "/full/max/0/default.jpg")).body).width,
      600);
  EXPECT_EQ(
      Decode(Http("GET", Iiif("thumbs", space, "pic", "/full/!200,200/0/default.jpg")).body).width,
      200);

  json b2 = api_->SubmitBatch(
      kCustomer, json::array({Member(space, "pic", origin_->Url("/r/v2.png"), "image/png")}),
      &status);
  ASSERT_EQ(status, 201);
  json done = api_->WaitForBatch(kCustomer, b2["id"], 20s);
  ASSERT_TRUE(done.contains("finished"));
  EXPECT_EQ(done["completed"], 1);
  json a = api_->Image(kCustomer, space, "pic");
  EXPECT_EQ(a["width"], 300);
  EXPECT_EQ(a["height"], 500);
  EXPECT_EQ(a["batch"], done["@id"]);
  json info = Http("GET", Iiif("iiif-img", space, "pic", "/info.json")).Json();
  EXPECT_EQ(info["width"], 300);
  EXPECT_EQ(info["height"], 500);
  Decoded full =
      Decode(Http("GET", Iiif("iiif-img", space, "pic", "/full/max/0/default.jpg")).body);
  EXPECT_EQ(full.width, 300);
  EXPECT_EQ(full.height, 500);
  Decoded th =
      Decode(Http("GET", Iiif("thumbs", space, "pic", "/full/!200,200/0/default.jpg")).body);
  EXPECT_EQ(th.width, 120);
  EXPECT_EQ(th.height, 200);
  json old = api_->Batch(kCustomer, b1["id"]);
  EXPECT_EQ(old["superseded"], true) << old.dump(2);
  EXPECT_EQ(old["completed"], 1) << "the old batch keeps its own history";
}

// Claims are round-robin across customers: a small batch submitted after a big one of another
// customer does not wait behind it.
TEST_F(IngestE2ETest, SmallBatchOfAnotherCustomerIsNotStuckBehindABigOne) {
  int64_t a = api_->CreateCustomer("fair-a");
  int64_t b = api_->CreateCustomer("fair-b");
  int64_t space_a = api_->CreateSpace(a, "big");
  int64_t space_b = api_->CreateSpace(b, "small");
  std::vector<std::string> variants = {MakeJpeg(200, 150, 31), MakeJpeg(180, 160, 32),
                                       MakeJpeg(240, 120, 33)};
  json big = json::array(), small = json::array();
  for (int i = 0; i < 200; ++i) {
    std::string path = "/fair/a/" + std::to_string(i) + ".jpg";
    origin_->Serve(path, variants[i % variants.size()], "image/jpeg");
    big.push_back(Member(space_a, "a" + std::to_string(i), origin_->Url(path), "image/jpeg"));
  }
  for (int i = 0; i < 5; ++i) {
    std::string path = "/fair/b/" + std::to_string(i) + ".jpg";
    origin_->Serve(path, variants[i % variants.size()], "image/jpeg");
    small.push_back(Member(space_b, "b" + std::to_string(i), origin_->Url(path), "image/jpeg"));
  }
  long status = 0;
  json batch_a = api_->SubmitBatch(a, big, &status);
  ASSERT_EQ(status, 201) << batch_a.dump();
  json batch_b = api_->SubmitBatch(b, small, &status);
  ASSERT_EQ(status, 201) << batch_b.dump();

  json done_b = api_->WaitForBatch(b, batch_b["id"], 30s);
  json a_then = api_->Batch(a, batch_a["id"]);
  ASSERT_TRUE(done_b.contains("finished")) << done_b.dump(2);
  EXPECT_EQ(done_b["completed"], 5);
  int a_left =
      a_then["count"].get<int>() - a_then["completed"].get<int>() - a_then["errors"].get<int>();
  std::cout << "[ fair   ] B's 5 images finished with " << a_left << " of A's 200 left\n";
  EXPECT_GT(a_left, 100) << "B waited behind A: " << a_then.dump(2);
  // While A is still running its estimate lies in the future, after B's finish.
  if (!a_then.contains("finished")) {
    EXPECT_TRUE(a_then.contains("estCompletion")) << a_then.dump(2);
    EXPECT_GT(a_then.value("estCompletion", ""), done_b["finished"].get<std::string>());
  }

  json done_a = api_->WaitForBatch(a, batch_a["id"], 45s);
  ASSERT_TRUE(done_a.contains("finished")) << done_a.dump(2);
  EXPECT_EQ(done_a["completed"], 200);
  EXPECT_EQ(done_a["errors"], 0);
  EXPECT_LT(done_b["finished"].get<std::string>(), done_a["finished"].get<std::string>());
}

// Without --allow-private-origins the loopback origin itself is refused before any packet is
// sent, whether named directly or reached by a redirect; file:// under the root still works.
TEST_F(IngestE2ETest, PrivateOriginsAreRefusedUnlessAllowed) {
  TempDir dir;
  std::string root = dir.path() + "/origins";
  std::filesystem::create_directories(root);
  {
    std::ofstream f(root + "/local.jpg", std::ios::binary);
    f << MakeJpeg(320, 200, 21);
  }
  QuireProcess strict(dir.path() + "/data",
                      {"--workers", "2", "--origin-file-root", root, "--ingest-attempts", "3",
                       "--ingest-backoff-ms", "100", "--origin-timeout-ms", "2000"});
  Api api{strict.url(), strict.admin()};
  int64_t space = api.CreateSpace(kCustomer, "strict");
  origin_->Serve("/p/direct.jpg", MakeJpeg(100, 100, 22), "image/jpeg");
  origin_->Redirect("/p/hop.jpg",
                    "http://127.0.0.1:" + std::to_string(origin_->port()) + "/p/direct.jpg");
  json members = json::array({
      Member(space, "local-file", "file://" + root + "/local.jpg", "image/jpeg"),
      Member(space, "loopback", origin_->Url("/p/direct.jpg"), "image/jpeg"),
      Member(space, "redirect-to-loopback", origin_->Url("/p/hop.jpg"), "image/jpeg"),
      Member(space, "localhost",
             "http://localhost:" + std::to_string(origin_->port()) + "/p/direct.jpg", "image/jpeg"),
      Member(space, "metadata", "http://169.254.169.254/latest/meta-data/", "image/jpeg"),
  });
  long status = 0;
  json batch = api.SubmitBatch(kCustomer, members, &status);
  ASSERT_EQ(status, 201) << batch.dump();
  json done = api.WaitForBatch(kCustomer, batch.at("id"), 30s);
  ASSERT_TRUE(done.contains("finished")) << done.dump(2) << strict.Log();
  EXPECT_EQ(done["completed"], 1);
  EXPECT_EQ(done["errors"], 4);
  json ok = api.Image(kCustomer, space, "local-file");
  EXPECT_EQ(ok["error"], "");
  EXPECT_EQ(ok["width"], 320);
  for (auto id : {"loopback", "redirect-to-loopback", "localhost", "metadata"}) {
    json a = api.Image(kCustomer, space, id);
    std::string error = a["error"];
    std::cout << "[ result ] " << id << ": " << error << "\n";
    EXPECT_NE(error.find("private"), std::string::npos) << id << ": " << error;
    EXPECT_NE(error.find("not allowed"), std::string::npos) << id << ": " << error;
  }
  EXPECT_EQ(origin_->Requests("/p/direct.jpg"), 0) << "no request reached the private origin";
  EXPECT_EQ(origin_->Requests("/p/hop.jpg"), 0);
  std::map<std::string, std::string> errors;
  for (auto& m : api.All(done["errorImages"])) errors[m["id"]] = m["error"];
  EXPECT_EQ(errors.size(), 4u);
  EXPECT_EQ(errors.count("local-file"), 0u);
}

}  // namespace
}  // namespace quire::test
