// How `quire client` shows what happens: on a terminal a block of bars redrawn in place
// (with a scrolling log of failures above it), otherwise plain lines, or JSON lines for
// scripts. Thread-safe: every call takes the output lock.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "client/client.h"

namespace quire::client {

class Display {
 public:
  explicit Display(OutputMode mode);
  ~Display();

  bool tty() const { return tty_; }
  bool json() const { return json_; }

  // An event: printed as a JSON line in JSON mode, as `text` on its own line otherwise (above
  // the live block on a terminal). `text` empty: JSON mode only.
  void Event(const nlohmann::json& event, const std::string& text);
  // Terminal mode: replaces the live block with `lines` (cut to the terminal's width).
  void Frame(const std::vector<std::string>& lines);
  // Ends the live block: the last frame stays, and what follows is printed below it.
  void EndFrame();
  // Plain text in text modes (the summary); nothing in JSON mode.
  void Text(const std::string& text);

 private:
  void ClearFrameLocked();
  void DrawFrameLocked();
  std::mutex mu_;
  bool tty_ = false;
  bool json_ = false;
  int width_ = 100;
  std::vector<std::string> frame_;
  int drawn_ = 0;  // lines of the frame on screen now
};

// "52.1 MB", "812 kB", "17 B" (decimal units, as people read disk sizes).
std::string FormatBytes(int64_t bytes);
// "4.2 s", "3 min 10 s", "1 h 5 min".
std::string FormatDuration(double seconds);
// "[#########-----------]" of `width` cells for done/total.
std::string Bar(int64_t done, int64_t total, int width = 24);

}  // namespace quire::client
