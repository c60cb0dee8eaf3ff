// The decode sandbox (media/decode_sandbox.h) with the real `quire decode` child: decoders
// gone wrong (a crash, a spin, a hang, an 8 GiB allocation — committed inside the child after
// its filter is on) each end as the image's error within their limit, and from inside the
// child the filter refuses /etc/passwd, sockets and exec. Real JPEG 2000 files decode to the
// pixels they hold; a damaged one and one over the pixel limit are refused with their cause.
#include "media/decode_sandbox.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>

#include "core/child_process.h"
#include "support/jp2_fixtures.h"
#include "support/quire_process.h"

namespace quire::test {
namespace {

using Clock = std::chrono::steady_clock;

class DecodeSandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    source_ = tmp_.path() + "/source.jp2";
    out_ = tmp_.path() + "/decoded.tif";
    Write(source_, MakeJp2(Rgb8Pixels(320, 240, 1), ""));
    Write(out_, "");
    options_.executable = QUIRE_BINARY;
    // Small limits keep the failures fast.
    options_.memory_bytes = 256LL << 20;
    options_.cpu_seconds = 1;
    options_.timeout_ms = 2000;
  }

  static void Write(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  }

  // Runs the sandbox with `fault`; returns its status and how long it took.
  Status Run(const std::string& fault, double* seconds, int64_t max_pixels = 1000000000) {
    options_.test_fault = fault;
    auto began = Clock::now();
    Status st = media::DecodeInSandbox(source_, out_, max_pixels, options_);
    *seconds = std::chrono::duration<double>(Clock::now() - began).count();
    return st;
  }

  // The child itself, as the server starts it, for what it prints.
  ChildResult RunChildDirectly(const std::string& fault) {
    ChildOptions child;
    child.limits.memory_bytes = options_.memory_bytes;
    child.limits.timeout_ms = 5000;
    Result<ChildResult> r = RunChild(
        {QUIRE_BINARY, "decode", "--in", source_, "--out", out_, "--test-fault", fault}, child);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : ChildResult{};
  }

  TempDir tmp_;
  std::string source_, out_;
  media::DecodeSandboxOptions options_;
};

TEST_F(DecodeSandboxTest, AJpeg2000DecodesToTheTiffItHolds) {
  double s = 0;
  Status st = Run("", &s);
  ASSERT_TRUE(st.ok()) << st.message();
  vips::VImage got = vips::VImage::new_from_file(out_.c_str());
  EXPECT_EQ(got.width(), 320);
  EXPECT_EQ(got.height(), 240);
  EXPECT_EQ(got.bands(), 3);
  EXPECT_EQ(got.format(), VIPS_FORMAT_UCHAR);
  PixelDiff d = Compare(got, Rgb8Pixels(320, 240, 1));
  EXPECT_EQ(d.max, 0) << "lossless: every pixel as encoded";
  std::printf("sandboxed decode of a 320x240 JP2: %.0f ms\n", s * 1000);
}

TEST_F(DecodeSandboxTest, SixteenBitSamplesStaySixteenBit) {
  Write(source_, MakeJp2(Rgb16Pixels(200, 100, 2), "-t 64,64"));
  double s = 0;
  ASSERT_TRUE(Run("", &s).ok());
  vips::VImage got = vips::VImage::new_from_file(out_.c_str());
  EXPECT_EQ(got.format(), VIPS_FORMAT_USHORT);
  EXPECT_EQ(Compare(got, Rgb16Pixels(200, 100, 2)).max, 0);
}

TEST_F(DecodeSandboxTest, ACrashIsTheImagesError) {
  double s = 0;
  Status st = Run("crash", &s);
  EXPECT_EQ(st.code(), Code::kInvalid);
  EXPECT_EQ(st.message(), "could not decode JPEG 2000: killed by SIGSEGV");
  EXPECT_LT(s, 2.0) << "before the wall clock";
}

TEST_F(DecodeSandboxTest, ASpinningDecoderStopsAtItsCpuLimit) {
  // A wall clock far off, so that on a loaded machine it is still the CPU limit that ends it.
  options_.timeout_ms = 10000;
  double s = 0;
  Status st = Run("loop", &s);
  EXPECT_EQ(st.code(), Code::kInvalid);
  EXPECT_EQ(st.message(), "could not decode JPEG 2000: CPU time limit of 1 s exceeded");
  EXPECT_GE(s, 0.8);
  EXPECT_LT(s, 10.0);
}

TEST_F(DecodeSandboxTest, AHungDecoderStopsAtTheWallClock) {
  double s = 0;
  Status st = Run("hang", &s);
  EXPECT_EQ(st.code(), Code::kInvalid);
  EXPECT_EQ(st.message(), "could not decode JPEG 2000: timed out after 2000 ms");
  EXPECT_GE(s, 2.0);
  EXPECT_LT(s, 5.0);
}

TEST_F(DecodeSandboxTest, AnEightGigabyteAllocationStopsAtTheMemoryLimit) {
  double s = 0;
  Status st = Run("allocate", &s);
  EXPECT_EQ(st.code(), Code::kInvalid);
  EXPECT_EQ(st.message(), "could not decode JPEG 2000: memory limit of 256 MiB exceeded");
  EXPECT_LT(s, 2.0);
}

TEST_F(DecodeSandboxTest, InsideTheChildFilesAndSocketsAreRefused) {
  // The fault "probe" runs after the filter is installed and reports what it could do.
  ChildResult r = RunChildDirectly("probe");
  EXPECT_EQ(r.exit_code, media::kDecodeOk) << r.out << r.err;
  EXPECT_EQ(r.out, "open /etc/passwd: Permission denied; socket: Permission denied\n");
  // Without the filter the same calls work (the refusal is the sandbox's, not the system's).
  EXPECT_TRUE(std::ifstream("/etc/passwd").good());
}

TEST_F(DecodeSandboxTest, InsideTheChildExecKillsIt) {
  ChildResult r = RunChildDirectly("exec");
  EXPECT_EQ(r.signal, SIGSYS) << r.out << r.err;
  EXPECT_EQ(r.Describe({}), "a forbidden system call (seccomp)");
}

TEST_F(DecodeSandboxTest, ADamagedCodestreamIsRefusedWithItsCause) {
  Write(source_, CorruptCodestream(MakeJp2(Rgb8Pixels(320, 240, 3), "")));
  double s = 0;
  Status st = Run("", &s);
  EXPECT_EQ(st.code(), Code::kInvalid);
  EXPECT_EQ(st.message().rfind("not a decodable image: jp2kload", 0), 0) << st.message();
}

TEST_F(DecodeSandboxTest, ThePixelLimitIsJudgedFromTheHeader) {
  // Claims 30000 x 30000 in a file of a few hundred KB: refused before the decoder allocates.
  Write(source_, ClaimSize(MakeJp2(Rgb8Pixels(320, 240, 4), ""), 30000, 30000));
  double s = 0;
  Status st = Run("", &s, 100000000);
  EXPECT_EQ(st.code(), Code::kInvalid);
  EXPECT_EQ(st.message(), "image is 30000x30000 pixels, over the limit of 100000000");
  EXPECT_LT(s, 2.0);
  struct stat out {};
  ASSERT_EQ(::stat(out_.c_str(), &out), 0);
  EXPECT_EQ(out.st_size, 0) << "nothing decoded";
}

TEST_F(DecodeSandboxTest, AFileThatMakesTheDecoderAllocateHitsTheSandboxNotTheCaller) {
  // Within the pixel limit, but one tile of 900 megapixels: OpenJPEG's buffers outgrow 256 MiB.
  Write(source_, ClaimSize(MakeJp2(Rgb8Pixels(320, 240, 5), ""), 30000, 30000));
  double s = 0;
  Status st = Run("", &s);
  EXPECT_EQ(st.code(), Code::kInvalid);
  // OpenJPEG's refusal, or glib's abort (or crash) when its own small allocations fail after.
  const std::string& m = st.message();
  EXPECT_TRUE(m.rfind("could not decode JPEG 2000: memory limit of 256 MiB exceeded", 0) == 0 ||
              m == "could not decode JPEG 2000: killed by SIGSEGV" ||
              m == "could not decode JPEG 2000: killed by SIGABRT")
      << m;
  EXPECT_LT(s, 3.0);
  std::printf("%s after %.2f s\n", st.message().c_str(), s);
}

}  // namespace
}  // namespace quire::test
