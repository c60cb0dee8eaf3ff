// Audio and video for the iiif-av channel: Debian's ffprobe and ffmpeg run as child processes
// under limits (core/child_process.h), never in the server, since demuxers and decoders of
// arbitrary recordings are where media servers get exploited or run out of memory.
//
// Pipeline: ProbeAv (streams, duration; refuses what is not audio/video, or too long) ->
// TranscodeAv (DLCS's presets: default-audio = MP3 128 kbit/s, default-video = MP4 H.264 +
// AAC 128 kbit/s at most 720 lines, aspect kept, never upscaled, even dimensions, moov atom
// first) -> the output probed again for what is recorded (width, height, duration) ->
// ExtractPoster for a video's thumbnails. Everything is written to local files; the caller
// stores them (ingest -> blob).
// Thread-safe: every call is its own child process.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace quire::media {

enum class AvKind { kAudio, kVideo };

struct AvLimits {
  // Longest recording accepted (--av-max-duration); judged from the probe, before any
  // transcoding.
  int64_t max_duration_ms = 4LL * 3600 * 1000;
  // The transcode's wall clock: base + factor x the recording's duration (--av-time-factor).
  int64_t timeout_base_ms = 120000;
  double time_factor = 4.0;
  int64_t memory_bytes = 4LL << 30;        // RLIMIT_AS of ffmpeg (x264 threads map a lot)
  int64_t probe_memory_bytes = 1LL << 30;  // RLIMIT_AS of ffprobe
  int64_t probe_timeout_ms = 60000;
  // RLIMIT_FSIZE of the transcode: base + bytes per second of the recording (a 720p H.264
  // stream at CRF 23 takes well under 1 MB/s; 4 leaves room for noise).
  int64_t output_base_bytes = 64LL << 20;
  int64_t output_bytes_per_second = 4LL << 20;
};

struct AvProbe {
  std::string format;  // ffprobe's format_name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
  bool has_audio = false;
  bool has_video = false;  // a real picture stream (cover art of an audio file does not count)
  int width = 0;
  int height = 0;
  int64_t duration_ms = 0;
};

// Streams and duration of `path`. Errors (kInvalid, the image's error text): "not a readable
// audio or video file: <ffprobe's reason>", "no audio or video stream in the file",
// "the recording has no duration". kUnavailable when cancelled.
Result<AvProbe> ProbeAv(const std::string& path, const AvLimits& limits,
                        const std::atomic<bool>* cancel = nullptr);

// The ffmpeg arguments of a preset, from `input` to `output` (for logging and the benchmark:
// bench/av.sh runs the same command).
std::vector<std::string> TranscodeArgs(AvKind kind, const std::string& input,
                                       const std::string& output);

struct AvOutput {
  AvKind kind = AvKind::kVideo;
  std::string path;  // the transcoded file (in the scratch directory given)
  int width = 0;     // video: of the output
  int height = 0;
  int64_t duration_ms = 0;  // of the output
  double transcode_ms = 0;
};

// Probes `source`, checks it against `kind` and the limits, and transcodes it to a file in
// `scratch_dir` (removed again on failure). Errors are the image's error text:
// kInvalid for the file (see ProbeAv; "the recording is H:MM:SS long, over the limit of
// H:MM:SS (--av-max-duration)"; "policy default-video needs a video stream; the file has
// audio only"; "transcoding failed (ffmpeg timed out after N ms): ..."), kUnavailable when
// cancelled (a graceful stop), kInternal when ffmpeg cannot be run at all.
Result<AvOutput> TranscodeAv(const std::string& source, AvKind kind, const std::string& scratch_dir,
                             const AvLimits& limits, const std::atomic<bool>* cancel = nullptr);

// One frame of the video `source` at `at_ms` (the first frame when the recording is shorter),
// as a JPEG file at `poster_path`, at the video's own size.
Status ExtractPoster(const std::string& source, int64_t at_ms, const std::string& poster_path,
                     const AvLimits& limits, const std::atomic<bool>* cancel = nullptr);

// "1:02:03.450" for a duration.
std::string FormatDuration(int64_t ms);

}  // namespace quire::media
