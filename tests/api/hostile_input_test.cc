// Hostile inputs to ingest, end to end through a live server: a corpus of 39 image files built
// to hurt (dimension and decompression bombs, truncated and corrupted variants of every
// supported format, polyglots, empty files), and origins that misbehave at the HTTP level
// (garbage headers, a chunked body that never ends, a redirect to itself). Each becomes a
// per-image outcome with the expected message; the server survives with bounded memory.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <vips/vips8>

#include "core/vips_init.h"
#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr int64_t kMaxPixels = 100000000;

struct Expect {
  std::string error;  // a fragment the image's error must contain; "" = must complete
  int width = 0, height = 0;
};

std::string Encoded(const vips::VImage& img, const char* suffix, vips::VOption* options = nullptr) {
  void* buf = nullptr;
  size_t len = 0;
  img.write_to_buffer(suffix, &buf, &len, options);
  std::string out(static_cast<const char*>(buf), len);
  g_free(buf);
  return out;
}

std::string Solid(int w, int h, const char* suffix, vips::VOption* options = nullptr) {
  return Encoded(vips::VImage::black(w, h, vips::VImage::option()->set("bands", 3)), suffix,
                 options);
}

std::string MakeGif(int w, int h) {
  vips::VImage img = vips::VImage::black(w, h, vips::VImage::option()->set("bands", 3)) + 90;
  return Encoded(img.cast(VIPS_FORMAT_UCHAR), ".gif");
}

// A baseline JPEG whose SOF0 claims `w` x `h` (the scan data stays that of a small image).
std::string JpegClaiming(uint16_t w, uint16_t h) {
  std::string j = MakeJpeg(64, 64, 3);
  size_t sof = j.find("\xff\xc0");
  j[sof + 5] = static_cast<char>(h >> 8);
  j[sof + 6] = static_cast<char>(h & 0xff);
  j[sof + 7] = static_cast<char>(w >> 8);
  j[sof + 8] = static_cast<char>(w & 0xff);
  return j;
}

// A GIF whose logical screen and frame claim 65535 x 65535.
std::string GifClaimingHuge() {
  std::string g = MakeGif(32, 32);
  for (size_t at : {size_t{6}, size_t{8}}) g[at] = g[at + 1] = '\xff';
  size_t desc = g.find('\x2c', 13);  // image descriptor
  if (desc != std::string::npos)
    for (size_t at : {desc + 5, desc + 7}) g[at] = g[at + 1] = '\xff';
  return g;
}

class HostileInputTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(InitVips()); }

  // Serves each file, queues them all in one batch, waits, and checks every outcome.
  void RunCorpus(const std::map<std::string, std::pair<std::string, Expect>>& corpus,
                 const std::vector<std::string>& extra_flags, const std::string& media_type) {
    std::vector<std::string> flags = {"--workers", "2", "--allow-private-origins",
                                      "--max-pixels", std::to_string(kMaxPixels),
                                      "--ingest-attempts", "2", "--ingest-backoff-ms", "100"};
    flags.insert(flags.end(), extra_flags.begin(), extra_flags.end());
    QuireProcess server(tmp_.path() + "/data", flags);
    Api api{server.url(), server.admin()};
    int64_t space = api.CreateSpace(1, "hostile");
    json members = json::array();
    for (const auto& [name, file] : corpus) {
      if (!file.first.empty() || name.rfind("origin-", 0) != 0)
        origin_.Serve("/" + name, file.first, "application/octet-stream");
      members.push_back(Member(space, name, origin_.Url("/" + name), media_type));
    }
    long hwm_before = server.StatusKib("VmHWM");
    long status = 0;
    json batch = api.SubmitBatch(1, members, &status);
    ASSERT_EQ(status, 201) << batch.dump();
    json done = api.WaitForBatch(1, batch["id"], 180s);
    ASSERT_TRUE(done.contains("finished")) << done.dump() << server.Log();
    EXPECT_EQ(done["completed"].get<int>() + done["errors"].get<int>(),
              static_cast<int>(corpus.size()));
    for (const auto& [name, file] : corpus) {
      SCOPED_TRACE(name);
      json image = api.Image(1, space, name);
      const Expect& want = file.second;
      std::string error = image.value("error", "");
      std::printf("  %-24s %s\n", name.c_str(), error.empty() ? "completed" : error.c_str());
      // A blocked fallback loader's complaint would only confuse the submitter.
      EXPECT_EQ(error.find("blocked"), std::string::npos) << error;
      if (want.error.empty()) {
        EXPECT_EQ(error, "") << "expected to complete";
        EXPECT_EQ(image.value("width", 0), want.width);
        EXPECT_EQ(image.value("height", 0), want.height);
      } else {
        EXPECT_NE(error.find(want.error), std::string::npos)
            << "error was \"" << error << "\", expected it to say \"" << want.error << "\"";
      }
    }
    EXPECT_EQ(server.AnsweredWith(500), 0);
    EXPECT_EQ(Http("GET", server.url() + "/healthz").status, 200) << "the server died";
    long grew_mib = (server.StatusKib("VmHWM") - hwm_before) / 1024;
    EXPECT_LT(grew_mib, 400) << "peak memory grew by " << grew_mib << " MiB";
    std::printf("hostile corpus: %zu inputs, %d completed, %d errors, peak RSS +%ld MiB\n",
                corpus.size(), done["completed"].get<int>(), done["errors"].get<int>(), grew_mib);
  }

  TempDir tmp_;
  OriginServer origin_;
};

TEST_F(HostileInputTest, ThirtyNineHostileFilesEachGetTheirOutcome) {
  const std::string undecodable = "not a decodable image";
  const std::string over = "over the limit";
  std::map<std::string, std::string> sources = {
      {"jpeg", MakeJpeg(640, 480, 1)}, {"png", MakePng(640, 480, 2)},
      {"tiff", MakeTiff(640, 480, 3)}, {"webp", MakeWebp(640, 480, 4)},
      {"gif", MakeGif(640, 480)}};
  std::map<std::string, std::pair<std::string, Expect>> corpus;
  for (const auto& [format, bytes] : sources) {
    corpus["trunc25-" + format] = {bytes.substr(0, bytes.size() / 4), {undecodable}};
    corpus["trunc75-" + format] = {bytes.substr(0, bytes.size() * 3 / 4), {undecodable}};
    corpus["header-" + format] = {bytes.substr(0, 64), {undecodable}};
    std::string garbage = bytes.substr(0, 16) + std::string(bytes.size() - 16, '\x5a');
    corpus["garbage-" + format] = {garbage, {undecodable}};
    // A third of the data zeroed: the JPEG, GIF and WebP decoders conceal damaged
    // entropy-coded data (libvips' fail_on=truncated keeps such images, as it keeps camera
    // files with stray bytes), so those complete at their true size; PNG (checksums) and TIFF
    // (its directory is in the zeroed part) fail.
    std::string zeroed = bytes;
    std::fill(zeroed.begin() + static_cast<long>(zeroed.size() / 3),
              zeroed.begin() + static_cast<long>(zeroed.size() * 2 / 3), '\0');
    bool conceals = format == "jpeg" || format == "gif" || format == "webp";
    corpus["zeroed-" + format] = {zeroed, conceals ? Expect{"", 640, 480} : Expect{undecodable}};
  }
  // Dimension bombs: headers claiming far more pixels than the file holds.
  corpus["bomb-png-header"] = {MakePngHeaderOnly(100000, 100000), {over}};
  corpus["bomb-jpeg-sof"] = {JpegClaiming(65500, 65500), {over}};
  corpus["bomb-gif-screen"] = {GifClaimingHuge(), {over}};
  // Decompression bombs: small files of 110 megapixels.
  corpus["bomb-png-solid"] = {Solid(10500, 10500, ".png"), {over}};
  corpus["bomb-jpeg-solid"] = {Solid(10500, 10500, ".jpg"), {over}};
  corpus["bomb-tiff-deflate"] = {
      Solid(10500, 10500, ".tif", vips::VImage::option()->set("compression", VIPS_FOREIGN_TIFF_COMPRESSION_DEFLATE)),
      {over}};
  corpus["bomb-webp-solid"] = {Solid(10500, 10500, ".webp"), {over}};
  // Polyglots and impostors.
  corpus["poly-gif-html"] = {"GIF89a<html><script>alert(1)</script></html>", {undecodable}};
  corpus["poly-jpeg-zip"] = {MakeJpeg(300, 200, 9) + "PK\x03\x04" + std::string(200, 'z'),
                             {"", 300, 200}};
  corpus["poly-pdf"] = {"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", {undecodable}};
  corpus["poly-svg"] = {"<svg xmlns='http://www.w3.org/2000/svg' width='99999' height='99999'/>",
                        {undecodable}};
  corpus["poly-html"] = {"<!doctype html><title>not an image</title>", {undecodable}};
  corpus["empty"] = {"", {undecodable}};
  corpus["one-byte"] = {"\xff", {undecodable}};
  ASSERT_EQ(corpus.size(), 39u);
  RunCorpus(corpus, {}, "image/jpeg");
}

TEST_F(HostileInputTest, MisbehavingOriginsAreEachAPerImageError) {
  OriginRoute garbage;
  garbage.raw = "HTTP/1.1 200 OK\r\nContent-Length: banana\r\nContent-Type: image/jpeg\r\n\r\nxx";
  origin_.Route("/origin-garbage-length", garbage);
  OriginRoute status_line;
  status_line.raw = std::string("\x00\x01\x02 garbage \xff\xfe\r\n\r\n", 18);
  origin_.Route("/origin-garbage-status", status_line);
  OriginRoute header_flood;
  header_flood.raw = "HTTP/1.1 200 OK\r\n";
  for (int i = 0; i < 2000; ++i) header_flood.raw += "X-Junk-" + std::to_string(i) + ": " + std::string(100, 'j') + "\r\n";
  header_flood.raw += "\r\n";
  origin_.Route("/origin-header-flood", header_flood);
  OriginRoute endless;
  endless.endless_chunked = true;
  endless.content_type = "image/jpeg";
  origin_.Route("/origin-endless-chunked", endless);
  origin_.Redirect("/origin-self-redirect", origin_.Url("/origin-self-redirect"));
  OriginRoute no_body;
  no_body.raw = "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 50000\r\n\r\n";
  origin_.Route("/origin-promised-body", no_body);

  std::map<std::string, std::pair<std::string, Expect>> corpus = {
      {"origin-garbage-length", {"", {"Invalid Content-Length"}}},
      {"origin-garbage-status", {"", {"origin sent a malformed response"}}},
      // 200 KB of headers and no body: libcurl reads it all and the empty body is no image.
      {"origin-header-flood", {"", {"not a decodable image"}}},
      {"origin-endless-chunked", {"", {"origin larger than"}}},
      {"origin-self-redirect", {"", {"redirected more than"}}},
      {"origin-promised-body", {"", {"50000 bytes remaining"}}},
  };
  RunCorpus(corpus, {"--max-origin-bytes", "5000000"}, "image/jpeg");
}

}  // namespace
}  // namespace quire::test
