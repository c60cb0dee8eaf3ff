// Recordings for the audio/video tests, made at run time with Debian's ffmpeg (lavfi test
// sources), and the independent checks of what Quire delivers: ffprobe's view of a file and a
// full decode by ffmpeg.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace quire::test {

// Runs `ffmpeg -nostdin -v error -y ARGS`; false (with ffmpeg's message on *error) when it
// fails.
bool Ffmpeg(const std::string& args, std::string* error = nullptr);
// A `seconds` long W x H testsrc video at 25 fps with a pink-noise sound track (H.264
// ultrafast + AAC) at `path` (its container from the extension).
bool MakeTestVideo(const std::string& path, int width, int height, int seconds,
                   bool with_audio = true);
// A `seconds` long sine tone, 16-bit PCM WAV, at `path`.
bool MakeTestTone(const std::string& path, int seconds, int frequency = 1000);

// ffprobe -show_format -show_streams of `path` as JSON (a discarded value when it fails).
nlohmann::json ProbeMedia(const std::string& path);
// The first stream of `type` ("audio", "video") in a ProbeMedia result, or nullptr.
const nlohmann::json* StreamOf(const nlohmann::json& probe, const std::string& type);
// Decodes every frame of every stream (`ffmpeg -v error -i PATH -f null -`): "" when it
// exits 0 with nothing on its error output, else what went wrong.
std::string DecodeProblems(const std::string& path);

}  // namespace quire::test
