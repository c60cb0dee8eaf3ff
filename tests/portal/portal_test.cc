// The portal in a real browser (spec/platform.md §5): headless Debian Chromium, driven by
// portal.mjs through playwright-core, against a live `quire serve` and a loopback test origin.
// A customer signs in, creates a space, uploads 4 files (3 images and one that is not an
// image) and a CSV row whose origin answers 404, watches the batch page's bar reach 100 %
// without a reload, sees both failures with their errors, fixes the origin, presses Retry
// failed and sees the bar complete; opens an image in the deep-zoom viewer; every page is
// reloaded, scanned by axe-core and photographed at 1280 and 360 px; signing out kills the
// cookie and a cross-site POST without the CSRF token changes nothing.
// Artefacts (screenshots, the report) stay in <build>/tests/portal/artefacts/.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vips/vips8>

#include "core/vips_init.h"
#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"
#include "support/run_command.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A screenshot is not blank when its pixels vary: a page that failed to draw is one colour.
void ExpectNotBlank(const std::string& file, int width) {
  SCOPED_TRACE(file);
  ASSERT_TRUE(fs::exists(file));
  vips::VImage shot = vips::VImage::new_from_file(file.c_str());
  EXPECT_EQ(shot.width(), width);
  EXPECT_GT(shot.height(), 300);
  vips::VImage grey = shot.extract_band(0, vips::VImage::option()->set("n", 3))
                          .colourspace(VIPS_INTERPRETATION_B_W);
  EXPECT_GT(grey.deviate(), 10.0) << "the screenshot is (nearly) one colour";
  EXPECT_LT(grey.min(), 80.0) << "no dark text or header in the screenshot";
}

TEST(PortalTest, ABookScanningProjectThroughTheBrowser) {
  ASSERT_TRUE(quire::InitVips());
  ASSERT_TRUE(fs::exists(std::string(PORTAL_TEST_DIR) + "/node_modules/playwright-core"))
      << "run the portal_npm_ci test first (ctest does: it is this test's fixture)";
  TempDir dir;
  std::string artefacts = std::string(PORTAL_TEST_DIR) + "/artefacts";
  fs::remove_all(artefacts);
  fs::create_directories(artefacts);
  std::string files = dir.path() + "/files";
  fs::create_directories(files);

  OriginServer origin;
  // The CSV's origin answers 404 after a moment, so the batch page is open while it works.
  OriginRoute missing;
  missing.status = 404;
  missing.body = "no such scan";
  missing.delay_ms = 2500;
  origin.Route("/scans/missing.jpg", missing);
  origin.Serve("/evil.html",
               "<!doctype html><title>elsewhere</title><link rel=\"icon\" "
               "href=\"data:,\"><p>another site</p>",
               "text/html");

  QuireProcess server(dir.path() + "/data", {"--workers", "2", "--allow-private-origins",
                                             "--stream-heartbeat-ms", "1000"});
  Api admin{server.url(), server.admin()};
  int64_t customer = admin.CreateCustomer("digitisation");
  HttpResult k = Http("POST", server.url() + "/customers/" + std::to_string(customer) + "/keys", "",
                      server.admin());
  ASSERT_EQ(k.status, 201) << k.body;

  Write(files + "/page-001.jpg", MakeJpeg(640, 480, 1));
  Write(files + "/page-002.png", MakePng(500, 700, 2));
  Write(files + "/plate-003.jpg", MakeJpeg(2400, 1800, 3));  // big enough for deep zoom
  Write(files + "/notes.jpg", "These are the scanning notes, not a picture.\n");
  Write(files + "/origins.csv",
        "id,origin,string1\nfrom-csv," + origin.Url("/scans/missing.jpg") + ",found in the CSV\n");

  json cfg = {{"url", server.url()},
              {"key", k.Json()["key"]},
              {"secret", k.Json()["secret"]},
              {"customer", customer},
              {"space", 1},
              {"files",
               {files + "/page-001.jpg", files + "/page-002.png", files + "/plate-003.jpg",
                files + "/notes.jpg"}},
              {"csv", files + "/origins.csv"},
              {"bigImage", "plate-003.jpg"},
              {"artefacts", artefacts},
              {"fixFlag", dir.path() + "/fix-origin"},
              {"fixedFlag", dir.path() + "/origin-fixed"},
              {"evilUrl", origin.Url("/evil.html")},
              {"adminKey", server.admin().key},
              {"adminSecret", server.admin().secret}};
  Write(dir.path() + "/config.json", cfg.dump());

  // The script asks (by a file) for the origin to be fixed before it presses Retry failed.
  std::atomic<bool> stop{false};
  std::thread fixer([&] {
    while (!stop && !fs::exists(cfg["fixFlag"].get<std::string>()))
      std::this_thread::sleep_for(20ms);
    if (stop) return;
    origin.Serve("/scans/missing.jpg", MakeJpeg(800, 600, 4), "image/jpeg");
    Write(cfg["fixedFlag"], "fixed");
  });
  int code = 0;
  std::string out = RunCommand("node " + ShellQuote(std::string(PORTAL_TEST_DIR) + "/portal.mjs") +
                                   " " + ShellQuote(dir.path() + "/config.json"),
                               &code);
  stop = true;
  fixer.join();
  Write(artefacts + "/report.json", out);
  json r = json::parse(LastLine(out), nullptr, false);
  ASSERT_TRUE(r.is_object()) << "portal.mjs printed: " << out.substr(0, 4000);
  ASSERT_FALSE(r.contains("error")) << r.dump(2).substr(0, 12000) << server.Log().substr(0, 4000);
  ASSERT_EQ(code, 0);

  std::map<std::string, json> steps;
  for (const json& s : r["steps"]) steps[s["name"]] = s;

  // Signed in: the cookie the browser holds is HttpOnly, SameSite=Strict and expires.
  const json& cookie = steps["signed in"]["cookie"];
  ASSERT_TRUE(cookie.is_object()) << steps["signed in"].dump();
  EXPECT_TRUE(cookie["httpOnly"].get<bool>());
  EXPECT_EQ(cookie["sameSite"], "Strict");
  EXPECT_GT(cookie["expires"].get<double>(), double(std::time(nullptr)) + 3600);
  EXPECT_NE(steps["space created"]["dashboardEmpty"].get<std::string>().find("Upload images"),
            std::string::npos)
      << "the empty dashboard says what to do next";

  // The batch: 5 members, the bar seen before the end and at 100 % in the same document.
  const json& fin = steps["batch finished"];
  int64_t batch = steps["uploaded"]["batch"];
  EXPECT_EQ(fin["firstBar"][1], 5) << fin.dump(2);
  EXPECT_LT(fin["firstBar"][0].get<int>(), 5) << "the page opened before the batch was done";
  EXPECT_EQ(fin["doneBar"], json::array({5, 5}));
  EXPECT_TRUE(fin["sameDocument"].get<bool>()) << "the bar moved without a reload";
  std::map<std::string, std::string> failed;
  for (const json& row : fin["failedRows"]) failed[row["id"]] = row["error"];
  ASSERT_EQ(failed.size(), 2u) << fin.dump(2);
  EXPECT_NE(failed["from-csv"].find("404"), std::string::npos) << failed["from-csv"];
  ASSERT_TRUE(failed.count("notes.jpg")) << fin.dump(2);
  EXPECT_FALSE(failed["notes.jpg"].empty());
  int completed_with_thumb = 0;
  for (const json& row : fin["rows"])
    if (row["state"] == "completed" && row["thumb"].get<bool>()) ++completed_with_thumb;
  EXPECT_EQ(completed_with_thumb, 3) << fin["rows"].dump(2);
  EXPECT_NE(fin["announced"].get<std::string>().find("finished"), std::string::npos)
      << fin["announced"];

  // Retry failed after the origin was fixed: the CSV row completes, the bar completes again;
  // the file that is not an image fails again, as it must.
  const json& re = steps["retried"];
  EXPECT_EQ(re["bar"], json::array({5, 5})) << re.dump(2);
  EXPECT_TRUE(re["sameDocument"].get<bool>());
  for (const json& row : re["rows"]) {
    std::string id = row["id"];
    EXPECT_EQ(row["state"], id == "notes.jpg" ? "error" : "completed") << id;
  }
  json stored = admin.Batch(customer, batch);
  EXPECT_EQ(stored["completed"], 4) << stored.dump(2);
  EXPECT_EQ(stored["errors"], 1) << stored.dump(2);
  EXPECT_EQ(origin.Requests("/scans/missing.jpg"), 2);
  EXPECT_EQ(steps["tested"]["error"], 0) << steps["tested"].dump();

  // The deep-zoom viewer: opened, tiles loaded, none failed (and no request failed at all).
  const json& v = steps["viewer"]["state"];
  EXPECT_TRUE(v["opened"].get<bool>()) << v.dump();
  EXPECT_GT(v["tilesLoaded"].get<int>(), 0);
  EXPECT_TRUE(v["tilesFailed"].empty()) << v.dump();
  bool has_info = false;
  for (const json& u : steps["viewer"]["urls"])
    has_info = has_info || u.get<std::string>().find("/iiif-img/") != std::string::npos;
  EXPECT_TRUE(has_info) << steps["viewer"]["urls"].dump();

  // Every page: axe finds nothing serious or critical, no console error, screenshots drawn,
  // no sideways scroll at 360 px.
  for (const char* name :
       {"sign-in", "dashboard", "batches", "batch", "upload", "image", "spaces", "keys"}) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(r["pages"].contains(name)) << r["pages"].dump(2).substr(0, 2000);
    const json& p = r["pages"][name];
    for (const json& viol : p["axe"])
      EXPECT_TRUE(viol["impact"] != "serious" && viol["impact"] != "critical") << viol.dump(2);
    EXPECT_TRUE(p["consoleErrors"].empty()) << p["consoleErrors"].dump(2);
    for (int width : {1280, 360}) {
      const json& shot = p["shots"][std::to_string(width)];
      ExpectNotBlank(shot["file"], width);
      EXPECT_LE(shot["scrollWidth"].get<int>(), width) << "page wider than the screen";
    }
  }
  EXPECT_TRUE(r["consoleErrors"].empty()) << r["consoleErrors"].dump(2);
  EXPECT_TRUE(r["pageErrors"].empty()) << r["pageErrors"].dump(2);
  EXPECT_TRUE(r["failedRequests"].empty()) << r["failedRequests"].dump(2);
  EXPECT_TRUE(r["badResponses"].empty()) << r["badResponses"].dump(2);

  // Keyboard: Tab lands on a link or button with a visible focus outline.
  const json& focus = steps["keyboard"]["focus"];
  EXPECT_TRUE(focus["tag"] == "A" || focus["tag"] == "BUTTON") << focus.dump();
  EXPECT_NE(focus["outline"], "none") << focus.dump();

  // An API error in words, next to what caused it.
  EXPECT_NE(steps["delete refused"]["refused"].get<std::string>().find("Delete failed: "),
            std::string::npos)
      << steps["delete refused"].dump();
  EXPECT_NE(steps["key created"]["notice"].get<std::string>().find("Secret"), std::string::npos);

  // Reingest queued the image again (it completes once more); Delete removed it.
  EXPECT_NE(steps["image actions"]["after"].get<std::string>().find("/portal/customers/"),
            std::string::npos)
      << steps["image actions"].dump();
  EXPECT_EQ(
      admin.Get("/customers/" + std::to_string(customer) + "/spaces/1/images/page-001.jpg").status,
      404);
  HttpResult all_batches = admin.Get("/customers/" + std::to_string(customer) + "/queue/batches");
  EXPECT_EQ(all_batches.Json()["totalItems"], 2) << "the reingest is a batch of its own";

  // Signed out: the old cookie is refused by the API and gone from the browser.
  EXPECT_EQ(steps["signed out"]["oldCookieStatus"], 401) << steps["signed out"].dump();
  EXPECT_FALSE(steps["signed out"]["cookieLeft"].get<bool>());
  EXPECT_NE(steps["signed out"]["url"].get<std::string>().find("/portal/sign-in"),
            std::string::npos);

  // Cross-site: without the CSRF token nothing is created, from a browser page elsewhere or
  // from a script that holds a live cookie.
  EXPECT_EQ(steps["cross-site"]["forgedStatus"], 403) << steps["cross-site"].dump();
  std::vector<json> spaces =
      admin.All(server.url() + "/customers/" + std::to_string(customer) + "/spaces");
  ASSERT_EQ(spaces.size(), 1u);
  EXPECT_EQ(spaces[0]["name"], "books");

  // The administrator lands on customer 1 and switches to the digitisation customer.
  EXPECT_NE(steps["admin switch"]["adminHome"].get<std::string>().find("/portal/customers/1/"),
            std::string::npos)
      << steps["admin switch"].dump();
  EXPECT_NE(steps["admin switch"]["switched"].get<std::string>().find(
                "/portal/customers/" + std::to_string(customer) + "/"),
            std::string::npos);

  const json& paint = steps["paint"]["ms"];
  std::vector<double> ms;
  for (const json& m : paint) ms.push_back(m.get<double>());
  std::sort(ms.begin(), ms.end());
  ASSERT_FALSE(ms.empty());
  std::cout << "[ portal ] batch URL to painted progress bar: median " << ms[ms.size() / 2]
            << " ms (of " << ms.size() << ": " << paint.dump() << ")\n";
  std::cout << "[ portal ] screenshots and report in " << artefacts << "\n";
}

}  // namespace
}  // namespace quire::test
