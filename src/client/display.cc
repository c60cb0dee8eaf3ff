#include "client/display.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>

namespace quire::client {

Display::Display(OutputMode mode) {
  json_ = mode == OutputMode::kJson;
  const char* term = std::getenv("TERM");
  tty_ = mode == OutputMode::kAuto && ::isatty(STDOUT_FILENO) == 1 &&
         !(term != nullptr && std::string(term) == "dumb");
  if (tty_) {
    struct winsize ws {};
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) width_ = ws.ws_col;
  }
}

Display::~Display() { EndFrame(); }

void Display::ClearFrameLocked() {
  if (drawn_ == 0) return;
  // Up to the first line of the block, then erase to the end of the screen.
  std::printf("\r\x1b[%dA\x1b[J", drawn_);
  drawn_ = 0;
}

void Display::DrawFrameLocked() {
  for (const std::string& line : frame_) {
    // Cut to the width counting UTF-8 characters, so the block never wraps (a wrapped line
    // would break the redraw).
    std::string out;
    int cols = 0;
    for (size_t i = 0; i < line.size() && cols < width_ - 1; ++i) {
      out += line[i];
      if ((static_cast<unsigned char>(line[i]) & 0xC0) != 0x80) ++cols;
      while (i + 1 < line.size() && (static_cast<unsigned char>(line[i + 1]) & 0xC0) == 0x80)
        out += line[++i];
    }
    std::printf("%s\x1b[K\n", out.c_str());
  }
  drawn_ = static_cast<int>(frame_.size());
  std::fflush(stdout);
}

void Display::Event(const nlohmann::json& event, const std::string& text) {
  std::lock_guard<std::mutex> lock(mu_);
  if (json_) {
    std::printf("%s\n", event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    std::fflush(stdout);
    return;
  }
  if (text.empty()) return;
  if (tty_) {
    ClearFrameLocked();
    std::printf("%s\n", text.c_str());
    DrawFrameLocked();
    return;
  }
  std::printf("%s\n", text.c_str());
  std::fflush(stdout);
}

void Display::Frame(const std::vector<std::string>& lines) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!tty_) return;
  ClearFrameLocked();
  frame_ = lines;
  DrawFrameLocked();
}

void Display::EndFrame() {
  std::lock_guard<std::mutex> lock(mu_);
  drawn_ = 0;
  frame_.clear();
  std::fflush(stdout);
}

void Display::Text(const std::string& text) {
  std::lock_guard<std::mutex> lock(mu_);
  if (json_) return;
  std::printf("%s", text.c_str());
  std::fflush(stdout);
}

std::string FormatBytes(int64_t b) {
  char buf[32];
  if (b < 1000) {
    std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(b));
  } else if (b < 1000 * 1000) {
    std::snprintf(buf, sizeof buf, "%.0f kB", b / 1e3);
  } else if (b < 1000LL * 1000 * 1000) {
    std::snprintf(buf, sizeof buf, "%.1f MB", b / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f GB", b / 1e9);
  }
  return buf;
}

std::string FormatDuration(double s) {
  char buf[48];
  if (s < 0) s = 0;
  if (s < 60) {
    std::snprintf(buf, sizeof buf, s < 10 ? "%.1f s" : "%.0f s", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%d min %d s", static_cast<int>(s) / 60,
                  static_cast<int>(s) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%d h %d min", static_cast<int>(s) / 3600,
                  static_cast<int>(s) % 3600 / 60);
  }
  return buf;
}

std::string Bar(int64_t done, int64_t total, int width) {
  int filled = total <= 0 ? 0
                          : static_cast<int>(std::lround(static_cast<double>(width) *
                                                         std::min(done, total) / total));
  std::string out = "[";
  for (int i = 0; i < width; ++i) out += i < filled ? "#" : "-";
  return out + "]";
}

}  // namespace quire::client
