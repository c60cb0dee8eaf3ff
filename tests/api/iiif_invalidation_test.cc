// Delivery's caches (asset rows for a short TTL, pyramid tile indexes, info.json bodies, rendered
// responses) against changes to an image, over a live `quire serve`: a re-ingest with another
// image of another size, a roles PATCH and a DELETE are reflected by the very next request —
// never the 2 s of the asset TTL, never a 500 — and a pyramid replaced on disk under the server
// is served from the new file at once.
#include <gtest/gtest.h>
#include <tiffio.h>
#include <vips/vips8>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/vips_init.h"
#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/quire_process.h"

namespace quire::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using vips::VImage;
using namespace std::chrono_literals;

// Distinct content per `warm`: a warm (red-heavy) or a cool (blue-heavy) gradient with
// structure, so a tile of one can never pass for a tile of the other.
VImage Picture(int w, int h, bool warm) {
  VImage xyz = VImage::xyz(w, h);
  VImage x = xyz[0], y = xyz[1];
  VImage ramp = x * (120.0 / w) + y * (60.0 / h);
  VImage wave = ((x / 17.0).sin() * (y / 29.0).cos()) * 25.0;  // degrees; gentle structure
  VImage hi = ramp + wave + 100, lo = ramp * 0.3 + wave + 20;
  VImage img = warm ? VImage::bandjoin(std::vector<VImage>{hi, lo, lo * 0.5})
                    : VImage::bandjoin(std::vector<VImage>{lo * 0.5, lo, hi});
  return img.cast(VIPS_FORMAT_UCHAR)
      .copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_sRGB))
      .copy_memory();
}

std::string Png(const VImage& img) {
  void* buf = nullptr;
  size_t len = 0;
  img.write_to_buffer(".png", &buf, &len);
  std::string out(static_cast<const char*>(buf), len);
  g_free(buf);
  return out;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

// Mean |diff| over all bands between a decoded response and the source region it shows.
double MeanDiff(const std::string& body, const VImage& source, int x, int y, int w, int h) {
  VImage got = VImage::new_from_buffer(body.data(), body.size(), "");
  EXPECT_EQ(got.width(), w);
  EXPECT_EQ(got.height(), h);
  EXPECT_EQ(got.bands(), source.bands());
  if (got.width() != w || got.height() != h || got.bands() != source.bands()) return 1e9;
  return (got.cast(VIPS_FORMAT_FLOAT) - source.extract_area(x, y, w, h).cast(VIPS_FORMAT_FLOAT))
      .abs()
      .avg();
}

std::string Brief(const HttpResult& r) {
  const std::string type = r.Header("content-type");
  if (type.rfind("text/", 0) == 0 || type.find("json") != std::string::npos)
    return std::to_string(r.status) + " " + r.body.substr(0, 300);
  return std::to_string(r.status) + " <" + std::to_string(r.body.size()) + " bytes of " + type + ">";
}

// GETs `urls` round robin on a thread until stopped, counting statuses.
class Hammer {
 public:
  explicit Hammer(std::vector<std::string> urls) : urls_(std::move(urls)) {
    thread_ = std::thread([this] {
      for (size_t i = 0; !stop_; ++i) {
        HttpResult r = Http("GET", urls_[i % urls_.size()]);
        std::lock_guard<std::mutex> lock(mu_);
        ++statuses_[r.status];
        if (r.status >= 500 || r.status == 0) failures_.push_back(urls_[i % urls_.size()] + ": " + Brief(r));
      }
    });
  }
  ~Hammer() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::map<long, int> statuses() {
    std::lock_guard<std::mutex> lock(mu_);
    return statuses_;
  }
  std::vector<std::string> failures() {
    std::lock_guard<std::mutex> lock(mu_);
    return failures_;
  }

 private:
  std::vector<std::string> urls_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::map<long, int> statuses_;
  std::vector<std::string> failures_;
  std::thread thread_;
};

int Total(const std::map<long, int>& statuses) {
  int n = 0;
  for (auto [k, v] : statuses) n += v;
  return n;
}

std::string Describe(const std::map<long, int>& statuses) {
  std::string s;
  for (auto [k, v] : statuses) s += std::to_string(k) + "×" + std::to_string(v) + " ";
  return s;
}

class IiifInvalidationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(quire::InitVips());
    dir_ = new TempDir();
    origins_ = dir_->path() + "/origins";
    fs::create_directories(origins_);
    warm_ = new VImage(Picture(1000, 700, true));
    cool_ = new VImage(Picture(600, 900, false));
    WriteFile(origins_ + "/warm.png", Png(*warm_));
    WriteFile(origins_ + "/cool.png", Png(*cool_));
    server_ = new QuireProcess(dir_->path() + "/data",
                               {"--workers", "1", "--origin-file-root", origins_});
    api_ = new Api{server_->url(), server_->admin()};
    customer_ = api_->CreateCustomer("invalidation");
    space_ = api_->CreateSpace(customer_, "changes");
  }
  static void TearDownTestSuite() {
    if (::testing::Test::HasFailure() && server_) {
      std::string log = server_->Log();
      std::cerr << "---- quire log (tail) ----\n"
                << (log.size() > 6000 ? log.substr(log.size() - 6000) : log);
    }
    delete api_;
    delete server_;
    delete warm_;
    delete cool_;
    delete dir_;
  }

  static std::string ImageUrl(const std::string& id) {
    return "/customers/" + std::to_string(customer_) + "/spaces/" + std::to_string(space_) +
           "/images/" + id;
  }
  static std::string Iiif(const std::string& id, const std::string& rest) {
    return server_->url() + "/iiif-img/" + std::to_string(customer_) + "/" +
           std::to_string(space_) + "/" + id + rest;
  }
  static json Body(const std::string& origin_file) {
    return json{{"origin", "file://" + origins_ + "/" + origin_file}, {"mediaType", "image/png"}};
  }

  // PUTs the image (creating or re-ingesting it) and polls its row until the ingest is over.
  static json PutAndWait(const std::string& id, const std::string& origin_file) {
    HttpResult put =
        Http("PUT", api_->base + ImageUrl(id), Body(origin_file).dump(), api_->auth);
    EXPECT_TRUE(put.status == 200 || put.status == 201) << Brief(put);
    return WaitForIngest(id);
  }
  static json WaitForIngest(const std::string& id) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    json a;
    while (std::chrono::steady_clock::now() < deadline) {
      a = api_->Image(customer_, space_, id);
      if (a.value("ingesting", true) == false) return a;
      std::this_thread::sleep_for(25ms);
    }
    ADD_FAILURE() << "ingest of " << id << " did not finish: " << a.dump(2);
    return a;
  }

  // The pyramid file the server delivers `id` from.
  static std::string PyramidPath(const std::string& id) {
    for (const auto& e : fs::recursive_directory_iterator(dir_->path() + "/data/blobs")) {
      if (e.path().filename() == "image.tif" && e.path().parent_path().filename() == id)
        return e.path().string();
    }
    ADD_FAILURE() << "no pyramid for " << id;
    return "";
  }

  static inline TempDir* dir_ = nullptr;
  static inline std::string origins_;
  static inline VImage* warm_ = nullptr;
  static inline VImage* cool_ = nullptr;
  static inline QuireProcess* server_ = nullptr;
  static inline Api* api_ = nullptr;
  static inline int64_t customer_ = 0, space_ = 0;
};

const char* kTile = "/256,256,256,256/256,256/0/default.jpg";     // stored tile, both images
const char* kEdge = "/768,512,232,188/232,188/0/default.jpg";     // cropped edge tile of warm
const char* kRender = "/full/!200,200/0/default.jpg";             // a render

TEST_F(IiifInvalidationTest, ReingestWithAnotherImageIsServedAtOnce) {
  json a = PutAndWait("swap", "warm.png");
  ASSERT_EQ(a["width"], 1000) << a.dump(2);
  ASSERT_EQ(a["height"], 700);

  // Warm every cache: the asset row, the tile index, info.json, cropped and rendered responses.
  for (int i = 0; i < 2; ++i) {
    HttpResult info = Http("GET", Iiif("swap", "/info.json"));
    ASSERT_EQ(info.status, 200) << Brief(info);
    EXPECT_EQ(info.Json()["width"], 1000);
    EXPECT_EQ(info.Json()["height"], 700);
    HttpResult tile = Http("GET", Iiif("swap", kTile));
    ASSERT_EQ(tile.status, 200) << Brief(tile);
    EXPECT_LT(MeanDiff(tile.body, *warm_, 256, 256, 256, 256), 4);
    HttpResult edge = Http("GET", Iiif("swap", kEdge));
    ASSERT_EQ(edge.status, 200) << Brief(edge);
    EXPECT_LT(MeanDiff(edge.body, *warm_, 768, 512, 232, 188), 4);
    HttpResult render = Http("GET", Iiif("swap", kRender));
    ASSERT_EQ(render.status, 200) << Brief(render);
  }
  const std::string old_etag = Http("GET", Iiif("swap", kTile)).Header("etag");

  // Re-ingest another image of another size; tiles and info.json are requested all along.
  {
    Hammer hammer({Iiif("swap", "/info.json"), Iiif("swap", kTile), Iiif("swap", kEdge),
                   Iiif("swap", kRender)});
    json b = PutAndWait("swap", "cool.png");
    ASSERT_EQ(b["width"], 600) << b.dump(2);
    ASSERT_EQ(b["height"], 900);
    EXPECT_EQ(b["error"], "");

    // At once: the new size and the new pixels.
    HttpResult info = Http("GET", Iiif("swap", "/info.json"));
    ASSERT_EQ(info.status, 200) << Brief(info);
    EXPECT_EQ(info.Json()["width"], 600) << info.body;
    EXPECT_EQ(info.Json()["height"], 900) << info.body;
    HttpResult tile = Http("GET", Iiif("swap", kTile));
    ASSERT_EQ(tile.status, 200) << Brief(tile);
    EXPECT_LT(MeanDiff(tile.body, *cool_, 256, 256, 256, 256), 4) << "a stale tile";
    EXPECT_NE(tile.Header("etag"), old_etag);
    // The old edge tile is now an interior region of the taller, narrower image... or outside
    // it: whatever it is, it is cut from the new image.
    HttpResult edge = Http("GET", Iiif("swap", "/344,644,256,256/256,256/0/default.jpg"));
    ASSERT_EQ(edge.status, 200) << Brief(edge);
    EXPECT_LT(MeanDiff(edge.body, *cool_, 344, 644, 256, 256), 4);
    HttpResult new_edge = Http("GET", Iiif("swap", "/512,768,88,132/88,132/0/default.jpg"));
    ASSERT_EQ(new_edge.status, 200) << Brief(new_edge);
    EXPECT_LT(MeanDiff(new_edge.body, *cool_, 512, 768, 88, 132), 4);
    HttpResult render = Http("GET", Iiif("swap", kRender));
    ASSERT_EQ(render.status, 200) << Brief(render);
    VImage r = VImage::new_from_buffer(render.body.data(), render.body.size(), "");
    EXPECT_EQ(r.width(), 133);
    EXPECT_EQ(r.height(), 200);
    EXPECT_LT(MeanDiff(render.body, cool_->resize(133.0 / 600, VImage::option()->set(
                                                                   "vscale", 200.0 / 900)),
                       0, 0, 133, 200),
              4);
    // A request only the old size allowed.
    HttpResult outside = Http("GET", Iiif("swap", "/900,0,100,100/max/0/default.jpg"));
    EXPECT_EQ(outside.status, 400) << Brief(outside);

    hammer.Stop();
    EXPECT_GT(Total(hammer.statuses()), 4) << "the requests alongside the re-ingest";
    EXPECT_TRUE(hammer.failures().empty())
        << hammer.failures().size() << " failures during the re-ingest, first: "
        << hammer.failures().front() << "\nstatuses: " << Describe(hammer.statuses());
  }
}

TEST_F(IiifInvalidationTest, RolesPatchIsReflectedAtOnce) {
  json a = PutAndWait("guarded", "warm.png");
  ASSERT_EQ(a["width"], 1000) << a.dump(2);
  for (const char* rest : {"/info.json", kTile, kEdge, kRender}) {
    HttpResult r = Http("GET", Iiif("guarded", rest));
    ASSERT_EQ(r.status, 200) << rest << ": " << Brief(r);
  }
  HttpResult patched = Http("PATCH", api_->base + ImageUrl("guarded"),
                            json{{"roles", {"https://example.org/roles/staff"}}}.dump(), api_->auth);
  ASSERT_EQ(patched.status, 200) << Brief(patched);
  EXPECT_EQ(patched.Json()["roles"].size(), 1u) << patched.body;
  // Pixels need a session now; the 3.0 info.json still answers, offering no tiles
  // (spec/presentation-auth.md §5.5).
  for (const char* rest : {kTile, kEdge, kRender}) {
    HttpResult r = Http("GET", Iiif("guarded", rest));
    EXPECT_EQ(r.status, 401) << rest << ": " << Brief(r);
  }
  HttpResult info = Http("GET", Iiif("guarded", "/info.json"));
  EXPECT_EQ(info.status, 200) << Brief(info);
  EXPECT_FALSE(info.Json().contains("tiles")) << Brief(info);
  HttpResult cleared = Http("PATCH", api_->base + ImageUrl("guarded"),
                            json{{"roles", json::array()}}.dump(), api_->auth);
  ASSERT_EQ(cleared.status, 200) << Brief(cleared);
  for (const char* rest : {"/info.json", kTile, kEdge, kRender}) {
    HttpResult r = Http("GET", Iiif("guarded", rest));
    EXPECT_EQ(r.status, 200) << rest << ": " << Brief(r);
  }
  HttpResult tile = Http("GET", Iiif("guarded", kTile));
  EXPECT_LT(MeanDiff(tile.body, *warm_, 256, 256, 256, 256), 4);
}

TEST_F(IiifInvalidationTest, DeleteAnswers404AtOnceAndNever500) {
  json a = PutAndWait("doomed", "warm.png");
  ASSERT_EQ(a["width"], 1000) << a.dump(2);
  const std::vector<std::string> rests = {"/info.json", kTile, kEdge, kRender,
                                          "/0,0,512,512/256,256/0/default.jpg"};
  for (const std::string& rest : rests) {
    HttpResult r = Http("GET", Iiif("doomed", rest));
    ASSERT_EQ(r.status, 200) << rest << ": " << Brief(r);
  }
  std::vector<std::string> urls;
  for (const std::string& rest : rests) urls.push_back(Iiif("doomed", rest));
  Hammer hammer(urls);
  std::this_thread::sleep_for(100ms);
  HttpResult del = Http("DELETE", api_->base + ImageUrl("doomed"), "", api_->auth);
  ASSERT_EQ(del.status, 204) << Brief(del);
  for (const std::string& rest : rests) {
    HttpResult r = Http("GET", Iiif("doomed", rest));
    EXPECT_EQ(r.status, 404) << rest << ": " << Brief(r);
  }
  std::this_thread::sleep_for(100ms);
  hammer.Stop();
  EXPECT_GT(hammer.statuses()[404], 0) << Describe(hammer.statuses());
  EXPECT_TRUE(hammer.failures().empty())
      << hammer.failures().size() << " failures around the delete, first: "
      << hammer.failures().front() << "\nstatuses: " << Describe(hammer.statuses());
  // After the TTL too.
  std::this_thread::sleep_for(2100ms);
  for (const std::string& rest : rests) {
    HttpResult r = Http("GET", Iiif("doomed", rest));
    EXPECT_EQ(r.status, 404) << rest << ": " << Brief(r);
  }
}

// The tile index and the response cache are keyed by the asset's version and checked against
// the pyramid file's identity: a pyramid replaced under the server (rename over it, as the blob
// store writes) is what the next request reads, stored tiles and cropped edge tiles alike.
TEST_F(IiifInvalidationTest, PyramidReplacedOnDiskIsServedAtOnce) {
  json a = PutAndWait("ondisk", "warm.png");
  ASSERT_EQ(a["width"], 1000) << a.dump(2);
  for (const char* rest : {kTile, kEdge}) {
    HttpResult r = Http("GET", Iiif("ondisk", rest));
    ASSERT_EQ(r.status, 200) << rest << ": " << Brief(r);
    EXPECT_LT(MeanDiff(r.body, *warm_, rest == kTile ? 256 : 768, rest == kTile ? 256 : 512,
                       rest == kTile ? 256 : 232, rest == kTile ? 256 : 188),
              4);
  }
  // Same size, other content: nothing in the row changes.
  const std::string path = PyramidPath("ondisk");
  ASSERT_FALSE(path.empty());
  VImage cool_same_size = Picture(1000, 700, false);
  const std::string tmp = dir_->path() + "/replacement.tif";
  cool_same_size.tiffsave(tmp.c_str(), VImage::option()
                                           ->set("tile", true)
                                           ->set("tile_width", 256)
                                           ->set("tile_height", 256)
                                           ->set("pyramid", true)
                                           ->set("compression", VIPS_FOREIGN_TIFF_COMPRESSION_JPEG)
                                           ->set("Q", 85));
  fs::copy_file(tmp, path + ".new");
  ASSERT_EQ(::rename((path + ".new").c_str(), path.c_str()), 0);

  HttpResult tile = Http("GET", Iiif("ondisk", kTile));
  ASSERT_EQ(tile.status, 200) << Brief(tile);
  EXPECT_LT(MeanDiff(tile.body, cool_same_size, 256, 256, 256, 256), 4) << "stale stored tile";
  HttpResult edge = Http("GET", Iiif("ondisk", kEdge));
  ASSERT_EQ(edge.status, 200) << Brief(edge);
  EXPECT_LT(MeanDiff(edge.body, cool_same_size, 768, 512, 232, 188), 4) << "stale edge tile";
  HttpResult render = Http("GET", Iiif("ondisk", "/100,100,700,500/350,/0/default.jpg"));
  ASSERT_EQ(render.status, 200) << Brief(render);
}

}  // namespace
}  // namespace quire::test
