// media/av_transcode: ffprobe and ffmpeg (Debian's) as children under limits. A recording is
// probed truly; a transcode that runs out of its wall clock or its memory, or is cancelled,
// ends as a precise error and leaves no output behind; a poster frame is a real JPEG.
#include "media/av_transcode.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "support/av_media.h"
#include "support/ingest_fixtures.h"
#include "support/quire_process.h"

namespace quire::media {
namespace {

namespace fs = std::filesystem;
using quire::test::TempDir;

int Leftovers(const std::string& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("av-", 0) == 0) ++n;
  return n;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(AvTranscode, FormatDuration) {
  EXPECT_EQ(FormatDuration(0), "0:00:00");
  EXPECT_EQ(FormatDuration(15000), "0:00:15");
  EXPECT_EQ(FormatDuration(3723450), "1:02:03.450");
  EXPECT_EQ(FormatDuration(36000000), "10:00:00");
}

TEST(AvTranscode, ProbeReadsStreamsAndDuration) {
  TempDir dir;
  ASSERT_TRUE(test::MakeTestVideo(dir.path() + "/v.mp4", 320, 240, 2));
  ASSERT_TRUE(test::MakeTestTone(dir.path() + "/t.wav", 3));
  auto v = ProbeAv(dir.path() + "/v.mp4", AvLimits{});
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_TRUE(v->has_video);
  EXPECT_TRUE(v->has_audio);
  EXPECT_EQ(v->width, 320);
  EXPECT_EQ(v->height, 240);
  EXPECT_NEAR(static_cast<double>(v->duration_ms), 2000, 100);
  auto t = ProbeAv(dir.path() + "/t.wav", AvLimits{});
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_FALSE(t->has_video);
  EXPECT_TRUE(t->has_audio);
  EXPECT_EQ(t->duration_ms, 3000);
  // A still image is no recording.
  std::ofstream(dir.path() + "/still", std::ios::binary) << test::MakeJpeg(64, 48);
  auto still = ProbeAv(dir.path() + "/still", AvLimits{});
  EXPECT_EQ(still.status().code(), Code::kInvalid);
  EXPECT_NE(still.status().message().find("is it a still image?"), std::string::npos)
      << still.status().message();
}

TEST(AvTranscode, TooLongIsRefusedBeforeTranscoding) {
  TempDir dir;
  ASSERT_TRUE(test::MakeTestTone(dir.path() + "/t.wav", 3));
  AvLimits limits;
  limits.max_duration_ms = 2000;
  auto began = std::chrono::steady_clock::now();
  auto r = TranscodeAv(dir.path() + "/t.wav", AvKind::kAudio, dir.path(), limits);
  EXPECT_EQ(r.status().message(),
            "the recording is 0:00:03 long, over the limit of 0:00:02 (--av-max-duration)");
  EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(5));
  EXPECT_EQ(Leftovers(dir.path()), 0);
}

TEST(AvTranscode, WallClockMemoryAndCancelEndTheChildWithAnError) {
  TempDir dir;
  ASSERT_TRUE(test::MakeTestVideo(dir.path() + "/v.mp4", 1280, 960, 6));
  const std::string in = dir.path() + "/v.mp4";

  AvLimits slow;
  slow.timeout_base_ms = 300;
  slow.time_factor = 0;
  auto began = std::chrono::steady_clock::now();
  auto timed = TranscodeAv(in, AvKind::kVideo, dir.path(), slow);
  EXPECT_EQ(timed.status().code(), Code::kInvalid);
  EXPECT_EQ(timed.status().message(), "transcoding failed (timed out after 300 ms)");
  EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(10));
  EXPECT_EQ(Leftovers(dir.path()), 0) << "a partial output is removed";

  AvLimits tight;
  tight.memory_bytes = 400LL << 20;  // x264 at 720p needs about 1 GiB of address space
  auto starved = TranscodeAv(in, AvKind::kVideo, dir.path(), tight);
  EXPECT_EQ(starved.status().code(), Code::kInvalid);
  EXPECT_EQ(starved.status().message().rfind("transcoding failed (exit status 1): ", 0), 0)
      << starved.status().message();
  EXPECT_EQ(Leftovers(dir.path()), 0);

  std::atomic<bool> cancel{true};
  auto cancelled = TranscodeAv(in, AvKind::kVideo, dir.path(), AvLimits{}, &cancel);
  EXPECT_EQ(cancelled.status().code(), Code::kUnavailable) << cancelled.status().message();
  EXPECT_EQ(Leftovers(dir.path()), 0);
}

TEST(AvTranscode, VideoTranscodeAndPosterFrame) {
  TempDir dir;
  ASSERT_TRUE(test::MakeTestVideo(dir.path() + "/v.mp4", 640, 480, 2));
  auto made = TranscodeAv(dir.path() + "/v.mp4", AvKind::kVideo, dir.path(), AvLimits{});
  ASSERT_TRUE(made.ok()) << made.status().message();
  EXPECT_EQ(made->width, 640) << "under 720 lines: not scaled";
  EXPECT_EQ(made->height, 480);
  EXPECT_NEAR(static_cast<double>(made->duration_ms), 2000, 100);
  EXPECT_EQ(test::DecodeProblems(made->path), "");
  const std::string poster = dir.path() + "/poster.jpg";
  ASSERT_TRUE(ExtractPoster(made->path, 1000, poster, AvLimits{}).ok());
  test::Decoded d = test::Decode(Slurp(poster));
  ASSERT_TRUE(d.ok) << d.error;
  EXPECT_EQ(d.width, 640);
  EXPECT_EQ(d.height, 480);
  // No audio stream for default-audio: said so.
  ASSERT_TRUE(test::MakeTestVideo(dir.path() + "/silent.mp4", 160, 120, 1, false));
  auto none = TranscodeAv(dir.path() + "/silent.mp4", AvKind::kAudio, dir.path(), AvLimits{});
  EXPECT_EQ(none.status().message(),
            "policy default-audio needs an audio stream; the file has none");
}

}  // namespace
}  // namespace quire::media
