// JPEG 2000 origins end to end through a live `quire serve`: files made at test time by
// OpenJPEG's own encoder (opj_compress) — lossless and lossy, 8- and 16-bit, colour and grey,
// tiled and untiled, a raw codestream, a JPX-branded file, one declared as image/jpeg — are
// decoded in the sandbox and come out of the ordinary pyramid with the pixels they hold: a
// lossless one exactly as the same pixels sent as PNG (the trusted path), a lossy one within
// its encoder's error. A damaged codestream is that image's error while the rest of the batch
// completes. The sandbox's limits, hit by a file that makes the decoder allocate, cost that
// image only and leave the server's memory as it was; `--decode-sandbox all` sends trusted
// formats through the child with the same results as in-process.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <sstream>
#include <thread>

#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/jp2_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using vips::VImage;
using namespace std::chrono_literals;

constexpr int64_t kCustomer = 1;

std::string Png(const VImage& pixels) {
  void* buf = nullptr;
  size_t len = 0;
  pixels.write_to_buffer(
      ".png", &buf, &len,
      VImage::option()->set("bitdepth", pixels.format() == VIPS_FORMAT_USHORT ? 16 : 8));
  std::string out(static_cast<const char*>(buf), len);
  g_free(buf);
  return out;
}

// What the delivery should show for `pixels`: 8-bit (16-bit samples keep their high byte).
VImage Delivered(const VImage& pixels) {
  if (pixels.format() != VIPS_FORMAT_USHORT) return pixels;
  return (pixels / 256).cast(VIPS_FORMAT_UCHAR);
}

struct Case {
  Case(std::string id, std::string bytes, std::string media_type, VImage source,
       std::string twin = "", double max_mean = 0)
      : id(std::move(id)),
        bytes(std::move(bytes)),
        media_type(std::move(media_type)),
        source(std::move(source)),
        twin(std::move(twin)),
        max_mean(max_mean) {}
  std::string id;
  std::string bytes;
  std::string media_type;
  VImage source;     // the pixels encoded
  std::string twin;  // a trusted-format ingest of the same pixels: lossless must equal it
  // Lossy: how much the mean difference from the source may exceed that of the trusted
  // reference (the pyramid's own share).
  double max_mean = 0;
};

class Jp2IngestTest : public ::testing::Test {
 protected:
  void SetUp() override { data_ = std::make_unique<TempDir>(); }
  void TearDown() override {
    if (HasFailure() && server_) std::cerr << "---- quire log ----\n" << server_->Log();
  }

  void StartServer(std::vector<std::string> extra = {}) {
    std::vector<std::string> flags = {
        "--workers",           "2",  "--allow-private-origins", "--ingest-attempts", "2",
        "--ingest-backoff-ms", "100"};
    flags.insert(flags.end(), extra.begin(), extra.end());
    server_ = std::make_unique<QuireProcess>(data_->path() + "/data", flags);
    api_ = std::make_unique<Api>(Api{server_->url(), server_->admin()});
  }

  std::string Iiif(int64_t space, const std::string& id, const std::string& rest) const {
    return server_->url() + "/iiif-img/" + std::to_string(kCustomer) + "/" + std::to_string(space) +
           "/" + id + rest;
  }

  VImage Fetch(int64_t space, const std::string& id, const std::string& rest) const {
    HttpResult r = Http("GET", Iiif(space, id, rest));
    EXPECT_EQ(r.status, 200) << id << rest << ": " << r.body.substr(0, 200);
    if (r.status != 200) return VImage::black(1, 1);
    return DecodeToImage(r.body);
  }

  // Queues every case in one batch; waits until it finishes.
  json Ingest(int64_t space, const std::vector<Case>& cases) {
    json members = json::array();
    for (const Case& c : cases) {
      origin_.Serve("/" + std::to_string(space) + "/" + c.id, c.bytes, "application/octet-stream");
      members.push_back(
          Member(space, c.id, origin_.Url("/" + std::to_string(space) + "/" + c.id), c.media_type));
    }
    long status = 0;
    json batch = api_->SubmitBatch(kCustomer, members, &status);
    EXPECT_EQ(status, 201) << batch.dump();
    json done = api_->WaitForBatch(kCustomer, batch["id"], 180s);
    EXPECT_TRUE(done.contains("finished")) << done.dump(2);
    return done;
  }

  // The server's log line of image `id`'s outcome, "... batch B done in N ms (fetch ...)"
  // (log lines reach the file within a second of the outcome).
  std::string OutcomeLine(const std::string& id) const {
    for (int i = 0; i < 40; ++i) {
      std::istringstream log(server_->Log());
      for (std::string line; std::getline(log, line);)
        if (line.find("/" + id + " batch") != std::string::npos &&
            line.find("(fetch ") != std::string::npos)
          return line;
      std::this_thread::sleep_for(100ms);
    }
    return "";
  }

  // Intermediates of sandboxed decodes still on disk (each is removed once its image is done).
  int LeftoverIntermediates() const {
    int n = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(data_->path()))
      if (e.path().filename().string().rfind("decoded-", 0) == 0) ++n;
    return n;
  }

  OriginServer origin_;
  std::unique_ptr<TempDir> data_;
  std::unique_ptr<QuireProcess> server_;
  std::unique_ptr<Api> api_;
};

TEST_F(Jp2IngestTest, EveryKindOfJpeg2000BecomesThePyramidOfItsPixels) {
  StartServer();
  const VImage rgb8 = Rgb8Pixels(700, 500, 1);
  const VImage rgb16 = Rgb16Pixels(600, 400, 2);
  const VImage grey8 = Grey8Pixels(500, 350, 3);
  const VImage grey16 = Grey16Pixels(450, 300, 4);
  const std::string lossless = MakeJp2(rgb8, "");
  std::vector<Case> cases = {
      // The same pixels through the trusted path (PNG, in-process).
      {"ref-rgb8", Png(rgb8), "image/png", rgb8},
      {"ref-rgb16", Png(rgb16), "image/png", rgb16},
      {"ref-grey8", Png(grey8), "image/png", grey8},
      {"ref-grey16", Png(grey16), "image/png", grey16},
      {"lossless-rgb8", lossless, "image/jp2", rgb8, "ref-rgb8"},
      {"lossless-tiled-rgb8", MakeJp2(rgb8, "-t 256,256"), "image/jp2", rgb8, "ref-rgb8"},
      {"lossy-rgb8", MakeJp2(rgb8, "-r 20"), "image/jp2", rgb8, "", 1.5},
      {"lossy-tiled-rgb8", MakeJp2(rgb8, "-t 128,128 -r 40"), "image/jp2", rgb8, "", 1.5},
      {"lossless-rgb16", MakeJp2(rgb16, ""), "image/jp2", rgb16, "ref-rgb16"},
      {"lossy-tiled-rgb16", MakeJp2(rgb16, "-t 256,256 -r 20"), "image/jp2", rgb16, "", 1.5},
      {"lossless-tiled-grey8", MakeJp2(grey8, "-t 200,200"), "image/jp2", grey8, "ref-grey8"},
      {"lossy-grey8", MakeJp2(grey8, "-r 15"), "image/jp2", grey8, "", 1.5},
      {"lossless-grey16", MakeJp2(grey16, ""), "image/jp2", grey16, "ref-grey16"},
      {"lossy-tiled-grey16", MakeJp2(grey16, "-t 128,128 -r 10"), "image/jp2", grey16, "", 1.5},
      {"codestream-j2k", MakeJp2(rgb8, "-t 256,256", ".j2k"), "image/jp2", rgb8, "ref-rgb8"},
      {"jpx-brand", AsJpx(lossless), "image/jpx", rgb8, "ref-rgb8"},
      // The bytes decide: declared a JPEG, decoded as what it is (in the sandbox).
      {"declared-jpeg", lossless, "image/jpeg", rgb8, "ref-rgb8"},
  };
  const std::string damaged = CorruptCodestream(lossless);
  std::vector<Case> batch = cases;
  batch.push_back({"damaged", damaged, "image/jp2", rgb8});

  int64_t space = api_->CreateSpace(kCustomer, "jp2");
  long hwm_before = server_->StatusKib("VmHWM");
  json done = Ingest(space, batch);
  EXPECT_EQ(done["count"], batch.size());
  EXPECT_EQ(done["completed"], cases.size()) << done.dump(2);
  EXPECT_EQ(done["errors"], 1);

  json bad = api_->Image(kCustomer, space, "damaged");
  std::string error = bad.value("error", "");
  EXPECT_EQ(error.rfind("not a decodable image: jp2kload", 0), 0) << error;
  std::printf("  %-22s %s\n", "damaged", error.c_str());

  std::map<std::string, VImage> full;
  std::map<std::string, PixelDiff> error_of;  // delivered vs source, per image
  for (const Case& c : cases) {
    SCOPED_TRACE(c.id);
    json image = api_->Image(kCustomer, space, c.id);
    ASSERT_EQ(image.value("error", ""), "");
    EXPECT_EQ(image["width"], c.source.width());
    EXPECT_EQ(image["height"], c.source.height());
    full[c.id] = Fetch(space, c.id, "/full/max/0/default.png");
    VImage region = Fetch(space, c.id, "/100,50,256,192/max/0/default.png");
    VImage want = Delivered(c.source);
    ASSERT_EQ(full[c.id].bands(), want.bands());
    PixelDiff d = Compare(full[c.id], want);
    PixelDiff rd = Compare(region, want.extract_area(100, 50, 256, 192));
    std::printf("  %-22s %dx%d vs source: mean %.2f, max %.0f; region mean %.2f\n", c.id.c_str(),
                c.source.width(), c.source.height(), d.mean, d.max, rd.mean);
    error_of[c.id] = d;
    // The pyramid's JPEG tiles (Q 85) cost every image the same: the trusted references show
    // how much. A lossy encoding adds its own error on top, up to max_mean.
    if (c.id.rfind("ref-", 0) == 0) {
      EXPECT_LT(d.mean, 3.0) << "the pyramid alone";
    } else {
      std::string ref = c.source.bands() == 1
                            ? (c.source.format() == VIPS_FORMAT_USHORT ? "ref-grey16" : "ref-grey8")
                            : (c.source.format() == VIPS_FORMAT_USHORT ? "ref-rgb16" : "ref-rgb8");
      EXPECT_LE(d.mean, error_of.at(ref).mean + c.max_mean) << "compared with " << ref;
    }
    EXPECT_LT(rd.mean, 3.0 + c.max_mean);
    if (!c.twin.empty()) {
      // Lossless: the very pixels of the trusted-path twin, so the same pyramid bytes.
      EXPECT_EQ(Compare(full[c.id], full.at(c.twin)).max, 0) << "differs from " << c.twin;
      VImage twin_region = Fetch(space, c.twin, "/100,50,256,192/max/0/default.png");
      EXPECT_EQ(Compare(region, twin_region).max, 0);
    }
    // Thumbnails too, from the pyramid.
    HttpResult thumb = Http("GET", server_->url() + "/thumbs/1/" + std::to_string(space) + "/" +
                                       c.id + "/full/!200,200/0/default.jpg");
    ASSERT_EQ(thumb.status, 200);
    EXPECT_EQ(std::max(DecodeToImage(thumb.body).width(), DecodeToImage(thumb.body).height()), 200);
  }
  // Sandboxed decodes are named in the log line of their outcome; trusted ones are not.
  for (const char* id : {"lossless-rgb8", "codestream-j2k", "declared-jpeg"})
    EXPECT_NE(OutcomeLine(id).find(", sandbox "), std::string::npos)
        << id << ": " << OutcomeLine(id);
  EXPECT_EQ(OutcomeLine("ref-rgb8").find("sandbox"), std::string::npos) << OutcomeLine("ref-rgb8");
  EXPECT_EQ(LeftoverIntermediates(), 0);
  long grew_mib = (server_->StatusKib("VmHWM") - hwm_before) / 1024;
  std::printf("jp2 batch: %zu images, %d completed, %d errors, server peak RSS +%ld MiB\n",
              batch.size(), done["completed"].get<int>(), done["errors"].get<int>(), grew_mib);
}

TEST_F(Jp2IngestTest, TheSandboxsLimitsAreOneImagesErrorAndLeaveTheServerAsItWas) {
  StartServer({"--decode-memory-bytes", std::to_string(256 << 20), "--decode-cpu-seconds", "2",
               "--decode-timeout-ms", "10000"});
  const VImage rgb8 = Rgb8Pixels(640, 480, 5);
  // A file of a few hundred KB whose one tile claims 30000 x 30000 (under --max-pixels):
  // OpenJPEG allocates for all of it.
  std::vector<Case> batch = {
      {"claims-900-megapixels", ClaimSize(MakeJp2(rgb8, ""), 30000, 30000), "image/jp2", rgb8},
      {"fine-jp2", MakeJp2(rgb8, "-r 10"), "image/jp2", rgb8},
      {"fine-jpeg", MakeJpeg(640, 480, 6), "image/jpeg", rgb8},
  };
  int64_t space = api_->CreateSpace(kCustomer, "limits");
  long hwm_before = server_->StatusKib("VmHWM");
  auto began = std::chrono::steady_clock::now();
  json done = Ingest(space, batch);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  EXPECT_EQ(done["completed"], 2) << done.dump(2);
  EXPECT_EQ(done["errors"], 1);
  std::string error = api_->Image(kCustomer, space, "claims-900-megapixels").value("error", "");
  // When the address space runs out inside glib (whose allocations abort or recurse on
  // failure), the child dies of it instead of saying so.
  EXPECT_TRUE(error.rfind("could not decode JPEG 2000: memory limit of 256 MiB exceeded", 0) == 0 ||
              error == "could not decode JPEG 2000: killed by SIGSEGV" ||
              error == "could not decode JPEG 2000: killed by SIGABRT")
      << error;
  EXPECT_LT(s, 10.0) << "within the limits (2 s of CPU, 10 s of wall clock)";
  EXPECT_EQ(api_->Image(kCustomer, space, "fine-jp2")["width"], 640);
  EXPECT_EQ(Http("GET", server_->url() + "/healthz").status, 200);
  EXPECT_EQ(LeftoverIntermediates(), 0) << "a failed decode's intermediate is removed too";
  long grew_mib = (server_->StatusKib("VmHWM") - hwm_before) / 1024;
  EXPECT_LT(grew_mib, 64) << "the decoder's memory is the child's, not the server's";
  std::printf("  %s (batch in %.1f s, server peak RSS +%ld MiB)\n", error.c_str(), s, grew_mib);
}

// In process, a JPEG's full-resolution tiles are cut from its coefficients where the DCT path
// can (ingest/jpeg_dct.h) and through pixels where it can not; the stage log says which, and
// why. Under --decode-sandbox all no JPEG is parsed in the server, so none is cut.
TEST_F(Jp2IngestTest, JpegsAreCutFromTheirCoefficientsAndTheLogSaysHow) {
  std::vector<Case> batch = {
      {"plain", MakeJpeg(640, 480, 7), "image/jpeg", VImage()},
      {"turned", MakeOrientedJpeg(300, 200, 6, 8), "image/jpeg", VImage()},
      {"cmyk", MakeCmykJpeg(360, 270, 9), "image/jpeg", VImage()},
  };
  StartServer();
  int64_t space = api_->CreateSpace(kCustomer, "routes");
  json done = Ingest(space, batch);
  ASSERT_EQ(done["completed"], batch.size()) << done.dump(2);
  EXPECT_NE(OutcomeLine("plain").find("[dct]"), std::string::npos) << OutcomeLine("plain");
  EXPECT_NE(OutcomeLine("turned").find("[pixels: orientation 6 would move the partial MCU"),
            std::string::npos)
      << OutcomeLine("turned");
  EXPECT_NE(OutcomeLine("cmyk").find("[pixels: its colours need converting"), std::string::npos)
      << OutcomeLine("cmyk");
  // The cut image is the source: libvips decodes both alike but for the chroma interpolated
  // across tile edges.
  VImage source = VImage::new_from_buffer(batch[0].bytes, "");
  VImage got = Fetch(space, "plain", "/full/max/0/default.png");
  ASSERT_EQ(got.width(), 640);
  EXPECT_LT((got.cast(VIPS_FORMAT_FLOAT) - source.cast(VIPS_FORMAT_FLOAT)).abs().avg(), 0.5);
  server_.reset();

  data_ = std::make_unique<TempDir>();
  StartServer({"--decode-sandbox", "all"});
  space = api_->CreateSpace(kCustomer, "sandboxed");
  done = Ingest(space, {batch[0]});
  ASSERT_EQ(done["completed"], 1) << done.dump(2);
  EXPECT_EQ(OutcomeLine("plain").find("[dct]"), std::string::npos) << OutcomeLine("plain");
}

TEST_F(Jp2IngestTest, WithDecodeSandboxAllTrustedFormatsComeOutAsInProcess) {
  // References first, in-process; then the same files on a server that sandboxes every format.
  std::vector<Case> batch = {
      {"jpeg", MakeJpeg(640, 480, 7), "image/jpeg", VImage()},
      {"exif-rotated", MakeOrientedJpeg(300, 200, 6, 8), "image/jpeg", VImage()},
      {"cmyk", MakeCmykJpeg(360, 270, 9), "image/jpeg", VImage()},
      {"alpha-png", MakePng(500, 375, 10, true), "image/png", VImage()},
      {"png16", MakePng16(320, 240, 11), "image/png", VImage()},
      {"tiff", MakeTiff(400, 300, 12), "image/tiff", VImage()},
      {"webp", MakeWebp(480, 320, 13), "image/webp", VImage()},
  };
  std::map<std::string, VImage> in_process;
  {
    // The sandbox hands the pipeline pixels, so the reference is the in-process pixel path
    // (the DCT path reads a JPEG's coefficients itself: JpegsAreCutFromTheirCoefficients).
    StartServer({"--jpeg-dct-memory", "0"});
    int64_t space = api_->CreateSpace(kCustomer, "in-process");
    json done = Ingest(space, batch);
    ASSERT_EQ(done["completed"], batch.size()) << done.dump(2);
    for (const Case& c : batch) in_process[c.id] = Fetch(space, c.id, "/full/max/0/default.png");
    server_.reset();
  }
  data_ = std::make_unique<TempDir>();
  StartServer({"--decode-sandbox", "all"});
  int64_t space = api_->CreateSpace(kCustomer, "sandboxed");
  json done = Ingest(space, batch);
  ASSERT_EQ(done["completed"], batch.size()) << done.dump(2);
  for (const Case& c : batch) {
    SCOPED_TRACE(c.id);
    VImage got = Fetch(space, c.id, "/full/max/0/default.png");
    ASSERT_EQ(got.width(), in_process[c.id].width()) << "EXIF orientation kept";
    EXPECT_EQ(Compare(got, in_process[c.id]).max, 0);
    EXPECT_NE(OutcomeLine(c.id).find(", sandbox "), std::string::npos) << OutcomeLine(c.id);
  }
}

}  // namespace
}  // namespace quire::test
