#include "support/av_media.h"

#include "support/run_command.h"

namespace quire::test {

bool Ffmpeg(const std::string& args, std::string* error) {
  int code = -1;
  std::string out = RunCommand("ffmpeg -nostdin -hide_banner -v error -y " + args + " 2>&1", &code);
  if (code != 0 && error != nullptr) *error = "ffmpeg " + args + ": " + out;
  return code == 0;
}

bool MakeTestVideo(const std::string& path, int width, int height, int seconds, bool with_audio) {
  std::string size = std::to_string(width) + "x" + std::to_string(height);
  std::string d = std::to_string(seconds);
  std::string args = "-f lavfi -i testsrc=size=" + size + ":rate=25:duration=" + d;
  // Pink noise: a sine tone is too simple to make AAC use its 128 kbit/s.
  if (with_audio)
    args += " -f lavfi -i anoisesrc=color=pink:amplitude=0.2:sample_rate=48000:duration=" + d;
  args += " -c:v libx264 -preset ultrafast -pix_fmt yuv420p";
  if (with_audio) args += " -c:a aac -shortest";
  return Ffmpeg(args + " " + ShellQuote(path));
}

bool MakeTestTone(const std::string& path, int seconds, int frequency) {
  return Ffmpeg("-f lavfi -i sine=frequency=" + std::to_string(frequency) +
                ":sample_rate=44100:duration=" + std::to_string(seconds) + " -c:a pcm_s16le " +
                ShellQuote(path));
}

nlohmann::json ProbeMedia(const std::string& path) {
  int code = -1;
  std::string out = RunCommand(
      "ffprobe -v error -print_format json -show_format -show_streams " + ShellQuote(path), &code);
  if (code != 0) return nlohmann::json::value_t::discarded;
  return nlohmann::json::parse(out, nullptr, false);
}

const nlohmann::json* StreamOf(const nlohmann::json& probe, const std::string& type) {
  if (!probe.is_object() || !probe.contains("streams")) return nullptr;
  for (const nlohmann::json& s : probe["streams"])
    if (s.value("codec_type", "") == type) return &s;
  return nullptr;
}

std::string DecodeProblems(const std::string& path) {
  int code = -1;
  std::string err =
      RunCommand("ffmpeg -nostdin -v error -i " + ShellQuote(path) + " -f null - 2>&1", &code);
  if (code != 0) return "ffmpeg exited with " + std::to_string(code) + ": " + err;
  return err;
}

}  // namespace quire::test
