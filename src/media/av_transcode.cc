#include "media/av_transcode.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "blob/scratch_space.h"
#include "core/child_process.h"

namespace quire::media {
namespace {

// Only local files: a playlist (HLS, say) inside an origin must not make ffmpeg fetch URLs.
// (The HLS demuxer also refuses segments whose extensions are not media ones, so a playlist
// naming /etc/passwd is refused too.)
const std::vector<std::string> kInputGuard = {"-protocol_whitelist", "file"};

// The last non-empty line of ffmpeg's error output, with the scratch path replaced by
// "source" (the path means nothing to whoever submitted the file).
std::string LastLine(const std::string& err, const std::string& path) {
  std::string text = err;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
    text.pop_back();
  size_t nl = text.find_last_of('\n');
  std::string line = nl == std::string::npos ? text : text.substr(nl + 1);
  for (size_t at; !path.empty() && (at = line.find(path)) != std::string::npos;)
    line.replace(at, path.size(), "source");
  if (line.size() > 300) line = line.substr(0, 300) + "...";
  return line.empty() ? "no message" : line;
}

Status ChildFailure(const ChildResult& r, const ChildLimits& limits, const std::string& what,
                    const std::string& path) {
  if (r.cancelled) return Status::Unavailable(what + " interrupted: the server is stopping");
  // RunChild's own words when execve failed (a missing program; not the dynamic loader
  // failing under RLIMIT_AS, which also exits 127).
  if (r.exit_code == 127 && r.signal == 0 &&
      r.err.find("cannot execute the program") != std::string::npos)
    return Status::Internal(what + " failed: cannot run it (is Debian's ffmpeg installed?)");
  std::string how = r.Describe(limits);
  if (r.timed_out || r.signal != 0) return Status::Invalid(what + " failed (" + how + ")");
  return Status::Invalid(what + " failed (" + how + "): " + LastLine(r.err, path));
}

int CpuSecondsFor(int64_t timeout_ms) {
  int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return static_cast<int>(std::min<int64_t>(timeout_ms / 1000 * cores + 10, 1 << 30));
}

int64_t ParseDurationMs(const nlohmann::json& v) {
  if (!v.is_string()) return 0;
  try {
    double s = std::stod(v.get<std::string>());
    if (!std::isfinite(s) || s <= 0) return 0;
    return static_cast<int64_t>(std::llround(s * 1000));
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace

std::string FormatDuration(int64_t ms) {
  char buf[48];
  int64_t s = ms / 1000;
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  std::string out = buf;
  if (ms % 1000) {
    std::snprintf(buf, sizeof buf, ".%03lld", static_cast<long long>(ms % 1000));
    out += buf;
  }
  return out;
}

Result<AvProbe> ProbeAv(const std::string& path, const AvLimits& limits,
                        const std::atomic<bool>* cancel) {
  std::vector<std::string> argv = {"ffprobe", "-v", "error", "-hide_banner"};
  argv.insert(argv.end(), kInputGuard.begin(), kInputGuard.end());
  for (const char* a : {"-print_format", "json", "-show_format", "-show_streams"})
    argv.push_back(a);
  argv.push_back(path);
  ChildOptions o;
  o.limits.memory_bytes = limits.probe_memory_bytes;
  o.limits.timeout_ms = limits.probe_timeout_ms;
  o.limits.cpu_seconds = static_cast<int>(limits.probe_timeout_ms / 1000) + 1;
  o.limits.file_bytes = 1;  // it writes nothing
  o.max_output_bytes = 4 << 20;
  o.cancel = cancel;
  auto run = RunChild(argv, o);
  if (!run.ok()) return run.status();
  if (!run->Succeeded()) {
    if (run->cancelled || (run->exit_code == 127 && run->signal == 0 &&
                           run->err.find("cannot execute the program") != std::string::npos))
      return ChildFailure(*run, o.limits, "ffprobe", path);
    std::string why =
        run->timed_out || run->signal ? run->Describe(o.limits) : LastLine(run->err, path);
    if (why.rfind("source: ", 0) == 0) why.erase(0, 8);  // ffprobe names the file first
    return Status::Invalid("not a readable audio or video file: " + why);
  }
  auto j = nlohmann::json::parse(run->out, nullptr, false);
  if (!j.is_object())
    return Status::Invalid("not a readable audio or video file: ffprobe said nothing usable");
  AvProbe p;
  if (j.contains("format") && j["format"].is_object()) {
    p.format = j["format"].value("format_name", "");
    p.duration_ms = ParseDurationMs(j["format"].value("duration", nlohmann::json()));
  }
  int64_t longest_stream = 0;
  if (j.contains("streams") && j["streams"].is_array()) {
    for (const auto& s : j["streams"]) {
      if (!s.is_object()) continue;
      std::string type = s.value("codec_type", "");
      longest_stream =
          std::max(longest_stream, ParseDurationMs(s.value("duration", nlohmann::json())));
      if (type == "audio") p.has_audio = true;
      if (type == "video") {
        // An album's cover picture is a "video" stream marked attached_pic: not a video.
        bool attached = s.contains("disposition") && s["disposition"].is_object() &&
                        s["disposition"].value("attached_pic", 0) == 1;
        if (attached || p.has_video) continue;
        p.has_video = true;
        p.width = s.value("width", 0);
        p.height = s.value("height", 0);
      }
    }
  }
  if (p.duration_ms == 0) p.duration_ms = longest_stream;
  if (!p.has_audio && !p.has_video)
    return Status::Invalid("no audio or video stream in the file" +
                           (p.format.empty() ? std::string() : " (read as '" + p.format + "')"));
  // Still images (a JPEG named video/mp4, say) come through the image2 demuxers with no
  // duration.
  if (p.duration_ms <= 0)
    return Status::Invalid("the recording has no duration (read as '" + p.format +
                           "'); is it a still image?");
  return p;
}

std::vector<std::string> TranscodeArgs(AvKind kind, const std::string& input,
                                       const std::string& output) {
  std::vector<std::string> a = {"ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y"};
  a.insert(a.end(), kInputGuard.begin(), kInputGuard.end());
  a.insert(a.end(), {"-i", input, "-map_metadata", "-1"});
  if (kind == AvKind::kAudio) {
    a.insert(a.end(), {"-map", "0:a:0", "-vn", "-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"});
  } else {
    // At most 720 lines, never more than the source has; the width follows the aspect, both
    // even (4:2:0 needs it).
    a.insert(a.end(), {"-map",       "0:v:0",   "-map",
                       "0:a:0?",     "-vf",     "scale=w=-2:h='2*trunc(min(720,ih)/2)'",
                       "-c:v",       "libx264", "-preset",
                       "medium",     "-crf",    "23",
                       "-pix_fmt",   "yuv420p", "-c:a",
                       "aac",        "-b:a",    "128k",
                       "-ac",        "2",       "-movflags",
                       "+faststart", "-f",      "mp4"});
  }
  a.push_back(output);
  return a;
}

Result<AvOutput> TranscodeAv(const std::string& source, AvKind kind, const std::string& scratch_dir,
                             const AvLimits& limits, const std::atomic<bool>* cancel) {
  auto probe = ProbeAv(source, limits, cancel);
  if (!probe.ok()) return probe.status();
  if (kind == AvKind::kVideo && !probe->has_video)
    return Status::Invalid(
        "policy default-video needs a video stream; the file has audio only "
        "(register it as audio/*, or with policy default-audio)");
  if (kind == AvKind::kAudio && !probe->has_audio)
    return Status::Invalid("policy default-audio needs an audio stream; the file has none");
  if (probe->duration_ms > limits.max_duration_ms)
    return Status::Invalid("the recording is " + FormatDuration(probe->duration_ms) +
                           " long, over the limit of " + FormatDuration(limits.max_duration_ms) +
                           " (--av-max-duration)");

  AvOutput out;
  out.kind = kind;
  Result<std::string> claimed =
      NewScratchFile(scratch_dir, "av", kind == AvKind::kAudio ? ".mp3" : ".mp4");
  if (!claimed.ok()) return claimed.status();
  out.path = *claimed;
  ChildOptions o;
  o.limits.memory_bytes = limits.memory_bytes;
  o.limits.timeout_ms = limits.timeout_base_ms +
                        static_cast<int64_t>(limits.time_factor * double(probe->duration_ms));
  o.limits.cpu_seconds = CpuSecondsFor(o.limits.timeout_ms);
  o.limits.file_bytes =
      limits.output_base_bytes + probe->duration_ms / 1000 * limits.output_bytes_per_second;
  o.cancel = cancel;
  auto argv = TranscodeArgs(kind, source, out.path);
  {
    std::string line;  // the command, to rerun by hand (bench/av.sh does)
    for (const std::string& a : argv) line += (line.empty() ? "" : " ") + a;
    spdlog::info("av transcode: {}", line);
  }
  auto began = std::chrono::steady_clock::now();
  auto run = RunChild(argv, o);
  auto drop = [&] {
    std::error_code ec;
    std::filesystem::remove(out.path, ec);
  };
  if (!run.ok()) {
    drop();
    return run.status();
  }
  if (!run->Succeeded()) {
    drop();
    return ChildFailure(*run, o.limits, "transcoding", source);
  }
  out.transcode_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - began).count();
  // What is recorded is what is delivered: the output's own size and length.
  auto made = ProbeAv(out.path, limits, cancel);
  if (!made.ok()) {
    drop();
    return Status::Invalid("transcoding produced an unreadable file: " + made.status().message());
  }
  out.duration_ms = made->duration_ms;
  out.width = made->width;
  out.height = made->height;
  spdlog::debug("transcoded {} ({} ms of media) in {:.0f} ms, {:.1f} s CPU", source,
                out.duration_ms, out.transcode_ms, run->cpu_seconds);
  return out;
}

Status ExtractPoster(const std::string& source, int64_t at_ms, const std::string& poster_path,
                     const AvLimits& limits, const std::atomic<bool>* cancel) {
  char at[32];
  std::snprintf(at, sizeof at, "%.3f", double(std::max<int64_t>(at_ms, 0)) / 1000);
  std::vector<std::string> argv = {"ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y"};
  argv.insert(argv.end(), kInputGuard.begin(), kInputGuard.end());
  argv.insert(argv.end(), {"-ss", at, "-i", source, "-map", "0:v:0", "-frames:v", "1", "-q:v", "2",
                           "-f", "image2", "-c:v", "mjpeg", "-pix_fmt", "yuvj420p", poster_path});
  ChildOptions o;
  o.limits.memory_bytes = limits.memory_bytes;
  o.limits.timeout_ms = limits.probe_timeout_ms;
  o.limits.cpu_seconds = CpuSecondsFor(o.limits.timeout_ms);
  o.limits.file_bytes = 64LL << 20;
  o.cancel = cancel;
  auto run = RunChild(argv, o);
  if (!run.ok()) return run.status();
  std::error_code ec;
  if (!run->Succeeded()) {
    std::filesystem::remove(poster_path, ec);
    return ChildFailure(*run, o.limits, "making the poster frame", source);
  }
  if (std::filesystem::file_size(poster_path, ec) == 0 || ec) {
    std::filesystem::remove(poster_path, ec);
    return Status::Invalid("making the poster frame failed: no frame at " + std::string(at) + " s");
  }
  return Status::Ok();
}

}  // namespace quire::media
