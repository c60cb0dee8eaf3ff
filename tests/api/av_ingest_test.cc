// Audio and video end to end (issue 14 §4): recordings made with Debian's ffmpeg at test
// time go through a live `quire serve` on the iiif-av channel; what comes back over HTTP is
// probed with ffprobe and decoded whole by ffmpeg (codecs, bit rate, the 720-line bound,
// duration), served with byte ranges, validators and CORS, and a video's poster-frame
// thumbnails decode. A "video" that is text and one longer than --av-max-duration fail with
// words saying why while the rest of the batch completes; non-image media on the `file`
// channel keep working; a restricted recording needs a session; a deleted one is gone.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "support/av_media.h"
#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr int64_t kCustomer = 1;
constexpr int kMaxDurationS = 15;  // the server's --av-max-duration

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

double Seconds(const json& v) { return v.is_string() ? std::stod(v.get<std::string>()) : -1; }

json Probe(const std::string& path) {
  json p = ProbeMedia(path);
  EXPECT_TRUE(p.is_object()) << "ffprobe cannot read " << path;
  return p.is_object() ? p : json::object();
}

// Decodes every frame of every stream: exit status 0 and nothing on the error output.
void ExpectPlayable(const std::string& path) { EXPECT_EQ(DecodeProblems(path), "") << path; }

class AvIngestTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    work_ = new TempDir();
    const std::string w = work_->path();
    // 4:3 at 960 lines: delivered at 720 lines (960x720), aspect kept.
    ASSERT_TRUE(MakeTestVideo(w + "/video.mp4", 1280, 960, 10));
    ASSERT_TRUE(MakeTestTone(w + "/tone.wav", 10));
    ASSERT_TRUE(MakeTestVideo(w + "/long.mp4", 160, 120, kMaxDurationS + 5, false));
    // Small, odd-sized and upright, 4:4:4, silent: never upscaled, dimensions made even.
    ASSERT_TRUE(
        Ffmpeg("-f lavfi -i testsrc=size=321x481:rate=25:duration=3 -c:v libx264 "
               "-preset ultrafast -pix_fmt yuv444p " +
               w + "/small.mkv"));
    origin_ = new OriginServer();
    origin_->Serve("/video.mp4", ReadFile(w + "/video.mp4"), "video/mp4");
    origin_->Serve("/tone.wav", ReadFile(w + "/tone.wav"), "audio/wav");
    origin_->Serve("/long.mp4", ReadFile(w + "/long.mp4"), "video/mp4");
    origin_->Serve("/small.mkv", ReadFile(w + "/small.mkv"), "video/x-matroska");
    std::string text;
    for (int i = 0; i < 200; ++i)
      text += "This is a text file, not a video. Line " + std::to_string(i) + "\n";
    origin_->Serve("/text.mp4", text, "video/mp4");
    data_ = new TempDir();
    server_ = new QuireProcess(data_->path() + "/data",
                               {"--workers", "2", "--allow-private-origins", "--av-max-duration",
                                std::to_string(kMaxDurationS)});
    api_ = new Api{server_->url(), server_->admin()};
  }
  static void TearDownTestSuite() {
    if (::testing::Test::HasFailure()) std::cerr << "---- quire log ----\n" << server_->Log();
    delete api_;
    delete server_;
    delete data_;
    delete origin_;
    delete work_;
  }

  static std::string Av(int64_t space, const std::string& id, const std::string& file) {
    return server_->url() + "/iiif-av/" + std::to_string(kCustomer) + "/" + std::to_string(space) +
           "/" + id + "/full/full/max/max/0/" + file;
  }
  static std::string Url(const std::string& root, int64_t space, const std::string& id,
                         const std::string& rest) {
    return server_->url() + "/" + root + "/" + std::to_string(kCustomer) + "/" +
           std::to_string(space) + "/" + id + rest;
  }

  // Fetches a delivered recording whole and keeps it as a file for ffprobe.
  static std::string Fetch(const std::string& url, const std::string& name, HttpResult* r) {
    *r = Http("GET", url);
    std::string path = work_->path() + "/" + name;
    WriteFile(path, r->body);
    return path;
  }

  static TempDir* work_;
  static TempDir* data_;
  static OriginServer* origin_;
  static QuireProcess* server_;
  static Api* api_;
};

TempDir* AvIngestTest::work_ = nullptr;
TempDir* AvIngestTest::data_ = nullptr;
OriginServer* AvIngestTest::origin_ = nullptr;
QuireProcess* AvIngestTest::server_ = nullptr;
Api* AvIngestTest::api_ = nullptr;

// Byte ranges of one delivered recording: single ranges answer 206 with exactly those bytes,
// a suffix range the last ones, an open range the rest, one past the end 416; HEAD tells the
// length; If-None-Match with the ETag 304.
void CheckRanges(const std::string& url, const std::string& full, const std::string& type) {
  const int64_t n = static_cast<int64_t>(full.size());
  ASSERT_GT(n, 3000);
  const std::string total = "/" + std::to_string(n);
  auto part = Http("GET", url, "", {}, {{"Range", "bytes=100-1099"}});
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.Header("content-range"), "bytes 100-1099" + total);
  EXPECT_EQ(part.Header("content-type"), type);
  EXPECT_EQ(part.body.size(), 1000u);
  EXPECT_TRUE(part.body == full.substr(100, 1000)) << "bytes 100-1099 differ";
  auto first = Http("GET", url, "", {}, {{"Range", "bytes=0-0"}});
  EXPECT_EQ(first.status, 206);
  EXPECT_EQ(first.body, full.substr(0, 1));
  auto suffix = Http("GET", url, "", {}, {{"Range", "bytes=-500"}});
  EXPECT_EQ(suffix.status, 206);
  EXPECT_EQ(suffix.Header("content-range"),
            "bytes " + std::to_string(n - 500) + "-" + std::to_string(n - 1) + total);
  EXPECT_TRUE(suffix.body == full.substr(n - 500)) << "the last 500 bytes differ";
  auto open = Http("GET", url, "", {}, {{"Range", "bytes=" + std::to_string(n - 10) + "-"}});
  EXPECT_EQ(open.status, 206);
  EXPECT_TRUE(open.body == full.substr(n - 10));
  auto beyond = Http("GET", url, "", {}, {{"Range", "bytes=" + std::to_string(n) + "-"}});
  EXPECT_EQ(beyond.status, 416);
  EXPECT_EQ(beyond.Header("content-range"), "bytes */" + std::to_string(n));
  auto past_end =
      Http("GET", url, "", {},
           {{"Range", "bytes=" + std::to_string(n - 5) + "-" + std::to_string(n + 1000)}});
  EXPECT_EQ(past_end.status, 206) << "a range running past the end is cut at the end";
  EXPECT_TRUE(past_end.body == full.substr(n - 5));

  auto head = Http("HEAD", url);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.Header("content-length"), std::to_string(n));
  EXPECT_EQ(head.Header("accept-ranges"), "bytes");
  EXPECT_EQ(head.body, "");
  auto head_range = Http("HEAD", url, "", {}, {{"Range", "bytes=10-19"}});
  EXPECT_EQ(head_range.status, 206);
  EXPECT_EQ(head_range.Header("content-length"), "10");

  auto whole = Http("GET", url);
  std::string etag = whole.Header("etag");
  ASSERT_FALSE(etag.empty());
  auto again = Http("GET", url, "", {}, {{"If-None-Match", etag}});
  EXPECT_EQ(again.status, 304);
  EXPECT_EQ(again.body, "");
  // If-Range with a stale validator: the whole recording, not a part of another version.
  auto stale = Http("GET", url, "", {}, {{"Range", "bytes=0-9"}, {"If-Range", "\"stale\""}});
  EXPECT_EQ(stale.status, 200);
  EXPECT_EQ(stale.body.size(), full.size());
  auto current = Http("GET", url, "", {}, {{"Range", "bytes=0-9"}, {"If-Range", etag}});
  EXPECT_EQ(current.status, 206);
  // CORS for players on other origins, with what they read of a range answer.
  EXPECT_EQ(part.Header("access-control-allow-origin"), "*");
  EXPECT_NE(part.Header("access-control-expose-headers").find("Content-Range"), std::string::npos);
}

TEST_F(AvIngestTest, VideoAndAudioTranscodeAndBadRecordingsFailAlone) {
  int64_t space = api_->CreateSpace(kCustomer, "av");
  json members = json::array();
  // Defaults: iiif-av (default-video) + thumbs for video/*, iiif-av (default-audio) for audio/*.
  members.push_back(Member(space, "video", origin_->Url("/video.mp4"), "video/mp4"));
  members.push_back(Member(space, "tone", origin_->Url("/tone.wav"), "audio/wav"));
  json small = Member(space, "small", origin_->Url("/small.mkv"), "video/x-matroska");
  small["deliveryChannels"] = json::array({{{"channel", "iiif-av"}, {"policy", "default-video"}}});
  members.push_back(small);
  members.push_back(Member(space, "text", origin_->Url("/text.mp4"), "video/mp4"));
  members.push_back(Member(space, "long", origin_->Url("/long.mp4"), "video/mp4"));
  json as_file = Member(space, "as-file", origin_->Url("/video.mp4"), "video/mp4");
  as_file["deliveryChannels"] = json::array({{{"channel", "file"}}});
  members.push_back(as_file);
  // thumbs without iiif-av: the poster frame from the source itself, nothing transcoded.
  json poster_only = Member(space, "poster-only", origin_->Url("/video.mp4"), "video/mp4");
  poster_only["deliveryChannels"] = json::array({"thumbs", "file"});
  members.push_back(poster_only);
  json restricted = Member(space, "restricted", origin_->Url("/tone.wav"), "audio/wav");
  restricted["maxUnauthorised"] = 0;
  members.push_back(restricted);

  long status = 0;
  json batch = api_->SubmitBatch(kCustomer, members, &status);
  ASSERT_EQ(status, 201) << batch.dump();
  json done = api_->WaitForBatch(kCustomer, batch.at("id"), 240s);
  ASSERT_TRUE(done.contains("finished")) << done.dump(2);
  EXPECT_EQ(done["count"], 8);
  EXPECT_EQ(done["completed"], 6) << done.dump(2);
  EXPECT_EQ(done["errors"], 2);

  // ---- the video: MP4 H.264 + AAC, 720 lines, aspect kept, playable
  json v = api_->Image(kCustomer, space, "video");
  EXPECT_EQ(v["error"], "") << v.dump(2);
  EXPECT_EQ(v["family"], "T");
  EXPECT_EQ(v["width"], 960);
  EXPECT_EQ(v["height"], 720);
  ASSERT_TRUE(v.contains("duration")) << v.dump(2);
  EXPECT_NEAR(v["duration"].get<double>(), 10000, 100) << "duration in milliseconds";
  json channels = v["deliveryChannels"];
  EXPECT_EQ(channels, json::parse(R"([{"channel":"iiif-av","policy":"default-video"},
                                      {"channel":"thumbs","policy":"default"}])"));
  HttpResult got;
  std::string mp4 = Fetch(Av(space, "video", "default.mp4"), "out.mp4", &got);
  ASSERT_EQ(got.status, 200) << got.body.substr(0, 300);
  EXPECT_EQ(got.Header("content-type"), "video/mp4");
  EXPECT_EQ(got.Header("accept-ranges"), "bytes");
  EXPECT_EQ(got.Header("access-control-allow-origin"), "*");
  json p = Probe(mp4);
  const json* vs = StreamOf(p, "video");
  const json* as = StreamOf(p, "audio");
  ASSERT_TRUE(vs && as) << p.dump(2);
  EXPECT_EQ((*vs)["codec_name"], "h264");
  EXPECT_EQ((*vs)["width"], 960);
  EXPECT_EQ((*vs)["height"], 720);
  EXPECT_LE((*vs)["height"].get<int>(), 720);
  EXPECT_EQ((*vs)["pix_fmt"], "yuv420p");
  EXPECT_EQ((*as)["codec_name"], "aac");
  double abr = std::stod((*as)["bit_rate"].get<std::string>());
  EXPECT_NEAR(abr, 128000, 128000 * 0.1) << "AAC at 128 kbit/s";
  EXPECT_NE(p["format"]["format_name"].get<std::string>().find("mp4"), std::string::npos);
  EXPECT_NEAR(Seconds(p["format"]["duration"]), 10.0, 0.1);
  ExpectPlayable(mp4);
  // The moov atom comes first (+faststart): a player starts before the whole file arrived.
  EXPECT_NE(got.body.substr(0, 64).find("ftyp"), std::string::npos);
  EXPECT_LT(got.body.find("moov"), got.body.find("mdat")) << "moov before mdat";
  CheckRanges(Av(space, "video", "default.mp4"), got.body, "video/mp4");
  EXPECT_EQ(Http("GET", Av(space, "video", "default.mp3")).status, 404) << "wrong extension";
  EXPECT_EQ(Http("GET", Av(space, "video", "default.webm")).status, 404);
  EXPECT_EQ(Http("GET", server_->url() + "/iiif-av/1/" + std::to_string(space) +
                            "/video/full/full/max/max/90/default.mp4")
                .status,
            404);

  // ---- its thumbnails, from the poster frame
  auto tinfo = Http("GET", Url("thumbs", space, "video", "/info.json"));
  ASSERT_EQ(tinfo.status, 200) << tinfo.body;
  std::set<int> longest;
  const json tj = tinfo.Json();
  for (auto& s : tj["sizes"]) {
    int w = s["width"], h = s["height"];
    longest.insert(std::max(w, h));
    auto th =
        Http("GET", Url("thumbs", space, "video",
                        "/full/" + std::to_string(w) + "," + std::to_string(h) + "/0/default.jpg"));
    ASSERT_EQ(th.status, 200) << th.body;
    Decoded d = Decode(th.body);
    ASSERT_TRUE(d.ok) << d.error;
    EXPECT_EQ(d.width, w);
    EXPECT_EQ(d.height, h);
    EXPECT_EQ(w * 3, h * 4) << "4:3 like the video";
  }
  EXPECT_EQ(longest, (std::set<int>{960, 400, 200, 100})) << "boxes over 960 give 960 once";

  // ---- the tone: MP3 at 128 kbit/s
  json t = api_->Image(kCustomer, space, "tone");
  EXPECT_EQ(t["error"], "") << t.dump(2);
  EXPECT_EQ(t["family"], "T");
  EXPECT_NEAR(t["duration"].get<double>(), 10000, 100);
  EXPECT_EQ(t["width"], 0);
  EXPECT_EQ(t["deliveryChannels"],
            json::parse(R"([{"channel":"iiif-av","policy":"default-audio"}])"));
  std::string mp3 = Fetch(Av(space, "tone", "default.mp3"), "out.mp3", &got);
  ASSERT_EQ(got.status, 200) << got.body.substr(0, 300);
  EXPECT_EQ(got.Header("content-type"), "audio/mpeg");
  p = Probe(mp3);
  as = StreamOf(p, "audio");
  ASSERT_TRUE(as) << p.dump(2);
  EXPECT_EQ(StreamOf(p, "video"), nullptr);
  EXPECT_EQ((*as)["codec_name"], "mp3");
  EXPECT_EQ((*as)["bit_rate"], "128000");
  EXPECT_EQ(p["format"]["format_name"], "mp3");
  EXPECT_NEAR(Seconds(p["format"]["duration"]), 10.0, 0.1);
  ExpectPlayable(mp3);
  CheckRanges(Av(space, "tone", "default.mp3"), got.body, "audio/mpeg");
  EXPECT_EQ(Http("GET", Av(space, "tone", "default.mp4")).status, 404);
  EXPECT_EQ(Http("GET", Url("thumbs", space, "tone", "/info.json")).status, 404)
      << "audio has no thumbs channel";

  // ---- a small, odd-sized upright video: not upscaled, made even
  json s = api_->Image(kCustomer, space, "small");
  EXPECT_EQ(s["error"], "") << s.dump(2);
  EXPECT_EQ(s["width"], 320);
  EXPECT_EQ(s["height"], 480);
  EXPECT_NEAR(s["duration"].get<double>(), 3000, 100);
  std::string small_mp4 = Fetch(Av(space, "small", "default.mp4"), "small.mp4", &got);
  ASSERT_EQ(got.status, 200);
  p = Probe(small_mp4);
  ASSERT_TRUE(StreamOf(p, "video"));
  EXPECT_EQ((*StreamOf(p, "video"))["height"], 480);
  EXPECT_EQ(StreamOf(p, "audio"), nullptr) << "a silent video stays silent";
  ExpectPlayable(small_mp4);

  // ---- bad input: per-image errors in words
  json text = api_->Image(kCustomer, space, "text");
  EXPECT_EQ(text["ingesting"], false);
  EXPECT_NE(text["error"].get<std::string>().find("not a readable audio or video file"),
            std::string::npos)
      << text["error"];
  EXPECT_EQ(text["error"].get<std::string>().find(data_->path()), std::string::npos)
      << "no server paths in the message";
  EXPECT_EQ(Http("GET", Av(space, "text", "default.mp4")).status, 404);
  json lng = api_->Image(kCustomer, space, "long");
  EXPECT_EQ(lng["error"], "the recording is 0:00:" + std::to_string(kMaxDurationS + 5) +
                              " long, over the limit of 0:00:" + std::to_string(kMaxDurationS) +
                              " (--av-max-duration)");
  std::vector<json> errors = api_->All(done["errorImages"]);
  std::set<std::string> failed;
  for (auto& e : errors) failed.insert(e["id"]);
  EXPECT_EQ(failed, (std::set<std::string>{"text", "long"}));

  // ---- non-image media on the file channel: as they were, no /iiif-av
  json f = api_->Image(kCustomer, space, "as-file");
  EXPECT_EQ(f["error"], "");
  auto original = Http("GET", Url("file", space, "as-file", ""));
  ASSERT_EQ(original.status, 200);
  EXPECT_TRUE(original.body == ReadFile(work_->path() + "/video.mp4"));
  EXPECT_EQ(Http("GET", Av(space, "as-file", "default.mp4")).status, 404)
      << "not on the iiif-av channel";

  // ---- poster frame only: the source's size, its thumbnails, no recording
  json po = api_->Image(kCustomer, space, "poster-only");
  EXPECT_EQ(po["error"], "") << po.dump(2);
  EXPECT_EQ(po["width"], 1280);
  EXPECT_EQ(po["height"], 960);
  EXPECT_NEAR(po["duration"].get<double>(), 10000, 100);
  auto po_thumb = Http("GET", Url("thumbs", space, "poster-only", "/full/!400,400/0/default.jpg"));
  ASSERT_EQ(po_thumb.status, 200) << po_thumb.body;
  Decoded pd = Decode(po_thumb.body);
  EXPECT_TRUE(pd.ok) << pd.error;
  EXPECT_EQ(pd.width, 400);
  EXPECT_EQ(pd.height, 300);
  EXPECT_EQ(Http("GET", Av(space, "poster-only", "default.mp4")).status, 404);
  EXPECT_EQ(Http("GET", Url("file", space, "poster-only", "")).status, 200);

  // ---- restricted: no session, no recording (not even a range of it)
  auto denied = Http("GET", Av(space, "restricted", "default.mp3"));
  EXPECT_EQ(denied.status, 401);
  EXPECT_EQ(
      Http("GET", Av(space, "restricted", "default.mp3"), "", {}, {{"Range", "bytes=0-9"}}).status,
      401);

  // ---- delete: the recording goes with the image
  auto del = Http("DELETE",
                  server_->url() + "/customers/1/spaces/" + std::to_string(space) + "/images/tone",
                  "", server_->admin());
  EXPECT_EQ(del.status, 204) << del.body;
  EXPECT_EQ(Http("GET", Av(space, "tone", "default.mp3")).status, 404);
}

// Reingest: the same id queued again with a different recording gets the new one (new
// length, new ETag), and the old validator no longer matches.
TEST_F(AvIngestTest, ReingestReplacesTheRecording) {
  int64_t space = api_->CreateSpace(kCustomer, "again");
  long status = 0;
  json b1 = api_->SubmitBatch(
      kCustomer, json::array({Member(space, "r", origin_->Url("/tone.wav"), "audio/wav")}),
      &status);
  ASSERT_EQ(status, 201);
  ASSERT_EQ(api_->WaitForBatch(kCustomer, b1.at("id"), 120s)["completed"], 1);
  auto first = Http("GET", Av(space, "r", "default.mp3"));
  ASSERT_EQ(first.status, 200);

  const std::string w = work_->path();
  ASSERT_TRUE(MakeTestTone(w + "/short.wav", 4, 300));
  origin_->Serve("/short.wav", ReadFile(w + "/short.wav"), "audio/wav");
  json b2 = api_->SubmitBatch(
      kCustomer, json::array({Member(space, "r", origin_->Url("/short.wav"), "audio/wav")}),
      &status);
  ASSERT_EQ(status, 201);
  ASSERT_EQ(api_->WaitForBatch(kCustomer, b2.at("id"), 120s)["completed"], 1);
  json r = api_->Image(kCustomer, space, "r");
  EXPECT_NEAR(r["duration"].get<double>(), 4000, 100);
  auto second = Http("GET", Av(space, "r", "default.mp3"));
  ASSERT_EQ(second.status, 200);
  EXPECT_LT(second.body.size(), first.body.size());
  EXPECT_NE(second.Header("etag"), first.Header("etag"));
  EXPECT_EQ(
      Http("GET", Av(space, "r", "default.mp3"), "", {}, {{"If-None-Match", first.Header("etag")}})
          .status,
      200)
      << "the old validator no longer matches";
}

}  // namespace
}  // namespace quire::test
