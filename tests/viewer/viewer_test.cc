// A real deep-zoom viewer against a live `quire serve`: OpenSeadragon (from the npm registry)
// in headless Debian Chromium, driven by viewer.mjs through playwright-core. A 4000×3000 card
// of coloured squares is ingested; the viewer opens its info.json (3.0, then 2.1), shows it
// whole, all the way in at a corner, and at an intermediate level. Every request the browser
// made must have succeeded, no tile may fail, and every screenshot must show the right colour
// at each sample point (so tiles are the right ones, at the right size, in the right place).
// Mirador (from the npm registry too) opens quire's Presentation manifests: a single-asset
// manifest and a 3-canvas named-query manifest; it must show every canvas (its tiles fetched
// from the image service the manifest names) and its thumbnail strip with no failed request.
// Screenshots stay in the build tree: <build>/tests/viewer/artefacts/.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vips/vips8>

#include "core/vips_init.h"
#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/quire_process.h"
#include "support/run_command.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using vips::VImage;
using namespace std::chrono_literals;

constexpr int kWidth = 4000, kHeight = 3000, kSquare = 250;

std::array<int, 3> SquareColour(int col, int row) {
  return {20 + 13 * col, 20 + 17 * row, 240 - 7 * (col + row)};
}

std::string CardPng() {
  EXPECT_TRUE(quire::InitVips());
  VImage card = VImage::black(kWidth, kHeight, VImage::option()->set("bands", 3))
                    .cast(VIPS_FORMAT_UCHAR)
                    .copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_sRGB))
                    .copy_memory();
  for (int row = 0; row * kSquare < kHeight; ++row)
    for (int col = 0; col * kSquare < kWidth; ++col) {
      auto c = SquareColour(col, row);
      card.draw_rect({double(c[0]), double(c[1]), double(c[2])}, col * kSquare, row * kSquare,
                     kSquare, kSquare, VImage::option()->set("fill", true));
    }
  void* buf = nullptr;
  size_t len = 0;
  card.write_to_buffer(".png", &buf, &len);
  std::string out(static_cast<const char*>(buf), len);
  g_free(buf);
  return out;
}

class ViewerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(quire::InitVips());
    dir_ = new TempDir();
    std::string origins = dir_->path() + "/origins";
    std::filesystem::create_directories(origins);
    std::ofstream(origins + "/card.png", std::ios::binary) << CardPng();
    server_ =
        new QuireProcess(dir_->path() + "/data", {"--workers", "1", "--origin-file-root", origins});
    Api api{server_->url(), server_->admin()};
    space_ = api.CreateSpace(1, "viewer");
    long status = 0;
    json batch = api.SubmitBatch(
        1, json::array({Member(space_, "card", "file://" + origins + "/card.png", "image/png")}),
        &status);
    ASSERT_EQ(status, 201) << batch.dump(2);
    json done = api.WaitForBatch(1, batch.at("id"), 90s);
    ASSERT_EQ(done.value("completed", 0), 1) << done.dump(2) << server_->Log();
    // Two more pages and the card, ordered by number1, for the named-query manifest.
    std::ofstream(origins + "/page2.jpg", std::ios::binary) << MakeJpeg(1600, 1200, 2);
    std::ofstream(origins + "/page3.jpg", std::ios::binary) << MakeJpeg(900, 1400, 3);
    json pages = json::array();
    int n = 0;
    for (const char* id : {"card", "page2", "page3"}) {
      json m = Member(
          space_, id,
          "file://" + origins + "/" + (n == 0 ? std::string("card.png") : std::string(id) + ".jpg"),
          n == 0 ? "image/png" : "image/jpeg");
      m["string1"] = "viewer-book";
      m["number1"] = ++n;
      pages.push_back(m);
    }
    batch = api.SubmitBatch(1, pages, &status);
    ASSERT_EQ(status, 201) << batch.dump(2);
    done = api.WaitForBatch(1, batch.at("id"), 90s);
    ASSERT_EQ(done.value("completed", 0), 3) << done.dump(2) << server_->Log();
    HttpResult q =
        Http("POST", server_->url() + "/customers/1/namedQueries",
             json{{"name", "viewer-book"}, {"template", "space=p1&s1=p2&assetOrder=n1"}}.dump(),
             server_->admin());
    ASSERT_EQ(q.status, 201) << q.body;
  }
  static void TearDownTestSuite() {
    if (::testing::Test::HasFailure() && server_) {
      std::string log = server_->Log();
      std::cerr << "---- quire log (tail) ----\n"
                << (log.size() > 8000 ? log.substr(log.size() - 8000) : log);
    }
    delete server_;
    delete dir_;
    server_ = nullptr;
  }

  // Opens `info` in the viewer and checks everything it saw; screenshots go to
  // artefacts/<name>-<view>.png.
  static void View(const std::string& info, const std::string& name) {
    ASSERT_TRUE(std::filesystem::exists(std::string(VIEWER_DIR) + "/node_modules/openseadragon"))
        << "run the viewer_npm_ci test first (ctest does: it is this test's fixture)";
    std::string artefacts = std::string(VIEWER_DIR) + "/artefacts";
    std::filesystem::create_directories(artefacts);
    int code = 0;
    std::string out =
        RunCommand("node " + ShellQuote(std::string(VIEWER_DIR) + "/viewer.mjs") + " " +
                       ShellQuote(info) + " " + ShellQuote(artefacts + "/" + name),
                   &code);
    json r = json::parse(LastLine(out), nullptr, false);
    ASSERT_TRUE(r.is_object()) << "viewer.mjs printed: " << out.substr(0, 4000);
    ASSERT_EQ(code, 0) << out.substr(0, 4000);
    CheckViews(r, name);
  }

  // What OpenSeadragon saw (a report of viewer.mjs or auth_viewer.mjs): opened the card, every
  // tile and request succeeded, and each view's screenshot shows the right colours.
  static void CheckViews(const json& r, const std::string& name) {
    json summary = r;  // for failure messages: without the sample points
    if (summary.contains("views"))
      for (auto& v : summary["views"]) v.erase("samples");
    ASSERT_FALSE(r.contains("error")) << summary.dump(2);

    const json& v = r["viewer"];
    EXPECT_TRUE(v["opened"].get<bool>()) << v.dump(2);
    EXPECT_TRUE(v["openFailed"].is_null()) << v.dump(2);
    EXPECT_EQ(v["imageSize"], json::array({kWidth, kHeight}));
    EXPECT_TRUE(v["tilesFailed"].empty()) << v["tilesFailed"].dump(2);
    EXPECT_TRUE(r["failedRequests"].empty()) << r["failedRequests"].dump(2);
    EXPECT_TRUE(r["badResponses"].empty()) << r["badResponses"].dump(2);
    EXPECT_TRUE(r["pageErrors"].empty()) << r["pageErrors"].dump(2);
    EXPECT_TRUE(r["consoleErrors"].empty()) << r["consoleErrors"].dump(2);
    EXPECT_GT(v["tilesLoaded"].get<int>(), 10);
    EXPECT_GT(r["requests"].get<int>(), v["tilesLoaded"].get<int>()) << "info.json + tiles";

    ASSERT_EQ(r["views"].size(), 3u) << summary.dump(2);
    for (const json& view : r["views"]) {
      std::string vname = view["name"];
      SCOPED_TRACE(name + " view " + vname);
      EXPECT_GT(view["newTiles"].get<int>(), 0) << "each view needs tiles of its own";
      std::cout << "[ viewer ] " << name << " " << vname << ": " << view["newTiles"] << " tiles in "
                << view["ms"] << " ms, " << view["screenshot"].get<std::string>() << "\n";
      VImage shot = VImage::new_from_file(view["screenshot"].get<std::string>().c_str());
      ASSERT_EQ(shot.width(), 800);
      ASSERT_EQ(shot.height(), 600);
      double zoom = view["imageZoom"];  // screen px per image px
      double margin = 3 / zoom + 2;     // image px kept clear of square edges (smoothing)
      int checked = 0, wrong = 0;
      std::string first_wrong;
      for (const json& s : view["samples"]) {
        int x = s[0], y = s[1];
        double ix = s[2], iy = s[3];
        if (ix < 0 || iy < 0 || ix >= kWidth || iy >= kHeight) continue;
        double fx = std::fmod(ix, kSquare), fy = std::fmod(iy, kSquare);
        if (fx < margin || fy < margin || fx > kSquare - margin || fy > kSquare - margin) continue;
        auto want = SquareColour(int(ix) / kSquare, int(iy) / kSquare);
        auto got = shot.getpoint(x, y);
        ++checked;
        bool ok = got.size() >= 3;
        for (int k = 0; ok && k < 3; ++k) ok = std::abs(got[k] - want[k]) <= 24;
        if (!ok && wrong++ == 0)
          first_wrong = "screen " + std::to_string(x) + "," + std::to_string(y) + " image " +
                        std::to_string(ix) + "," + std::to_string(iy) + ": got " +
                        std::to_string(got[0]) + "," + std::to_string(got[1]) + "," +
                        std::to_string(got[2]) + " want " + std::to_string(want[0]) + "," +
                        std::to_string(want[1]) + "," + std::to_string(want[2]);
      }
      EXPECT_GT(checked, 100) << "the view shows too little of the image to check";
      EXPECT_EQ(wrong, 0) << wrong << " of " << checked
                          << " sample points wrong; first: " << first_wrong;
    }
  }

  // Opens `manifest` in Mirador, selects each canvas in turn and checks what it fetched:
  // `images` are the image ids of the canvases, in order.
  static void Mirador(const std::string& manifest, const std::string& name,
                      const std::vector<std::string>& images) {
    ASSERT_TRUE(std::filesystem::exists(std::string(VIEWER_DIR) + "/node_modules/mirador/dist"))
        << "run the viewer_npm_ci test first (ctest does: it is this test's fixture)";
    std::string artefacts = std::string(VIEWER_DIR) + "/artefacts";
    std::filesystem::create_directories(artefacts);
    int code = 0;
    std::string out =
        RunCommand("node " + ShellQuote(std::string(VIEWER_DIR) + "/mirador.mjs") + " " +
                       ShellQuote(manifest) + " " + ShellQuote(artefacts + "/" + name),
                   &code);
    json r = json::parse(LastLine(out), nullptr, false);
    ASSERT_TRUE(r.is_object()) << "mirador.mjs printed: " << out.substr(0, 4000);
    json summary = r;
    summary.erase("requests");
    if (summary.contains("canvases"))
      for (auto& c : summary["canvases"]) c["requests"] = c["requests"].size();
    ASSERT_EQ(code, 0) << summary.dump(2);
    ASSERT_FALSE(r.contains("error")) << summary.dump(2);
    EXPECT_TRUE(r["failedRequests"].empty()) << r["failedRequests"].dump(2);
    EXPECT_TRUE(r["badResponses"].empty()) << r["badResponses"].dump(2);
    EXPECT_TRUE(r["pageErrors"].empty()) << r["pageErrors"].dump(2);
    // Mirador 4.0.0's bundle logs one React 19 deprecation notice of its own on start;
    // anything else is a failure.
    json errors = json::array();
    for (const json& e : r["consoleErrors"])
      if (e.get<std::string>().rfind("Accessing element.ref was removed in React 19", 0) != 0)
        errors.push_back(e);
    EXPECT_TRUE(errors.empty()) << errors.dump(2);
    ASSERT_EQ(r["manifestCanvases"].size(), images.size()) << summary.dump(2);
    ASSERT_EQ(r["canvases"].size(), images.size()) << summary.dump(2);
    // Mirador takes the first service the manifest lists (ImageService2): /v2/ URLs, or the
    // 3.0 ones, are both the canvas's own.
    std::string path = "/1/" + std::to_string(space_) + "/";
    auto under = [&](const std::string& url, const char* root, const std::string& id) {
      for (const char* v : {"", "/v2"})
        if (url.rfind(server_->url() + root + v + path + id + "/", 0) == 0) return true;
      return false;
    };
    for (size_t i = 0; i < images.size(); ++i) {
      const json& c = r["canvases"][i];
      SCOPED_TRACE(name + " canvas " + std::to_string(i + 1) + " (" + images[i] + ")");
      EXPECT_EQ(c["shown"], c["id"]) << "Mirador did not move to the canvas";
      // Its own image service: info.json and at least one tile, all 200.
      int info = 0, tiles = 0;
      for (const json& q : r["requests"]) {
        std::string url = q["url"];
        if (!under(url, "/iiif-img", images[i])) continue;
        EXPECT_EQ(q["status"], 200) << url;
        if (url.find("/info.json") != std::string::npos) ++info;
        if (url.find("/default.jpg") != std::string::npos) ++tiles;
      }
      EXPECT_GT(info, 0) << "no info.json fetched: " << r["requests"].dump();
      EXPECT_GT(tiles, 0) << "no tile fetched";
      int shown_tiles = 0;
      for (const json& q : c["requests"]) {
        std::string url = q["url"];
        if (under(url, "/iiif-img", images[i]) && url.find("/default.jpg") != std::string::npos)
          ++shown_tiles;
      }
      if (i > 0) {
        EXPECT_GT(shown_tiles, 0) << "selecting the canvas fetched none of its tiles";
      }
      // The thumbnail strip loads each canvas's thumbnail from /thumbs/.
      bool thumb = false;
      for (const json& q : r["requests"])
        thumb = thumb || (under(q["url"], "/thumbs", images[i]) && q["status"] == 200);
      EXPECT_TRUE(thumb) << "no thumbnail of " << images[i] << " fetched from /thumbs/";
      // Something is drawn: the screenshot is not one flat colour.
      VImage shot = VImage::new_from_file(c["screenshot"].get<std::string>().c_str());
      EXPECT_GT(shot.deviate(), 10.0) << c["screenshot"];
      std::cout << "[ mirador ] " << name << " canvas " << i + 1 << ": " << c["requests"].size()
                << " requests, " << c["screenshot"].get<std::string>() << "\n";
    }
  }

  static std::string Info(const std::string& version_root) {
    return server_->url() + "/" + version_root + "/1/" + std::to_string(space_) + "/card/info.json";
  }

  static TempDir* dir_;
  static QuireProcess* server_;
  static int64_t space_;
};

TempDir* ViewerTest::dir_ = nullptr;
QuireProcess* ViewerTest::server_ = nullptr;
int64_t ViewerTest::space_ = 0;

TEST_F(ViewerTest, OpenSeadragonOnImageApi3) { View(Info("iiif-img"), "osd-v3"); }

// IIIF Authorization Flow 2.0 in the browser (spec/presentation-auth.md §5.4): the card,
// restricted to a grant role, is probed (401), unlocked through the access window with a grant
// code, its token taken from the token iframe (probe 200), then shown whole and zoomed in by
// OpenSeadragon with tiles the session cookie opens; after logout the probe fails and a tile
// is refused while the open rendition still loads.
TEST_F(ViewerTest, AuthFlowOpensARestrictedImage) {
  ASSERT_TRUE(std::filesystem::exists(std::string(VIEWER_DIR) + "/node_modules/playwright-core"));
  Api api{server_->url(), server_->admin()};
  long status = 0;
  json batch = api.SubmitBatch(
      1,
      json::array(
          {Member(space_, "secret", "file://" + dir_->path() + "/origins/card.png", "image/png")}),
      &status);
  ASSERT_EQ(status, 201) << batch.dump(2);
  json done = api.WaitForBatch(1, batch.at("id"), 90s);
  ASSERT_EQ(done.value("completed", 0), 1) << done.dump(2);
  std::string role = server_->url() + "/customers/1/roles/readers";
  HttpResult put =
      Http("PUT", role,
           json{{"label", "Readers"}, {"provider", "grant"}, {"heading", "Readers only"}}.dump(),
           server_->admin());
  ASSERT_EQ(put.status, 201) << put.body;
  HttpResult patched = Http(
      "PATCH", server_->url() + "/customers/1/spaces/" + std::to_string(space_) + "/images/secret",
      json{{"roles", {role}}, {"maxUnauthorised", 400}}.dump(), server_->admin());
  ASSERT_EQ(patched.status, 200) << patched.body;
  HttpResult grant = Http("POST", role + "/grants", "{}", server_->admin());
  ASSERT_EQ(grant.status, 201) << grant.body;

  std::string info = server_->url() + "/iiif-img/1/" + std::to_string(space_) + "/secret/info.json";
  std::string artefacts = std::string(VIEWER_DIR) + "/artefacts";
  std::filesystem::create_directories(artefacts);
  int code = 0;
  std::string out =
      RunCommand("node " + ShellQuote(std::string(VIEWER_DIR) + "/auth_viewer.mjs") + " " +
                     ShellQuote(info) + " " + ShellQuote(grant.Json()["code"].get<std::string>()) +
                     " " + ShellQuote(artefacts + "/auth"),
                 &code);
  json r = json::parse(LastLine(out), nullptr, false);
  ASSERT_TRUE(r.is_object()) << "auth_viewer.mjs printed: " << out.substr(0, 4000);
  json a = r["auth"];
  ASSERT_EQ(code, 0) << r.dump(2).substr(0, 6000);
  EXPECT_EQ(a["context"][0], "http://iiif.io/api/auth/2/context.json");
  EXPECT_EQ(a["probe1"]["http"], 200);
  EXPECT_EQ(a["probe1"]["body"]["status"], 401) << a.dump(2);
  EXPECT_EQ(a["accessUrl"].get<std::string>().rfind(
                server_->url() + "/auth/v2/access/1/readers?origin=", 0),
            0u)
      << a.dump(2);
  EXPECT_NE(a["accessCsp"].get<std::string>().find("frame-ancestors 'none'"), std::string::npos);
  ASSERT_EQ(a["cookies"].size(), 1u) << a.dump(2);
  EXPECT_EQ(a["cookies"][0]["name"], "quire-auth-1");
  EXPECT_TRUE(a["cookies"][0]["httpOnly"].get<bool>());
  EXPECT_EQ(a["token"]["type"], "AuthAccessToken2") << a.dump(2);
  EXPECT_EQ(a["token"]["origin"], server_->url()) << "posted by quire's token page";
  EXPECT_TRUE(a["token"]["hasToken"].get<bool>());
  EXPECT_GT(a["token"]["expiresIn"].get<int>(), 3000);
  EXPECT_EQ(a["probe2"]["body"]["status"], 200) << a.dump(2);
  CheckViews(r, "auth");  // whole, zoomed in to full resolution, in between: every tile 200
  EXPECT_EQ(a["logoutStatus"], 200);
  EXPECT_TRUE(a["cookiesAfterLogout"].empty()) << a.dump(2);
  EXPECT_FALSE(a["tileAfterLogout"]["loaded"].get<bool>()) << a.dump(2);
  bool refused = false;
  for (const json& b : r["badResponsesAfterLogout"])
    refused = refused || (b["status"] == 401 && b["url"].get<std::string>().find(
                                                    "/512,512,512,512/") != std::string::npos);
  EXPECT_TRUE(refused) << "the tile was refused by quire: " << r["badResponsesAfterLogout"].dump();
  EXPECT_TRUE(a["openAfterLogout"]["loaded"].get<bool>()) << a.dump(2);
  EXPECT_EQ(a["probe3"]["body"]["status"], 401) << a.dump(2);
}

TEST_F(ViewerTest, OpenSeadragonOnImageApi21) { View(Info("iiif-img/v2"), "osd-v2"); }

TEST_F(ViewerTest, MiradorOnSingleAssetManifest) {
  Mirador(server_->url() + "/iiif-manifest/1/" + std::to_string(space_) + "/card", "mirador-single",
          {"card"});
}

TEST_F(ViewerTest, MiradorOnNamedQueryManifest) {
  Mirador(
      server_->url() + "/iiif-resource/1/viewer-book/" + std::to_string(space_) + "/viewer-book",
      "mirador-nq", {"card", "page2", "page3"});
}

}  // namespace
}  // namespace quire::test
