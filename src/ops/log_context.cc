#include "ops/log_context.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <random>

namespace quire::ops {

namespace {

thread_local std::string current_request_id;
thread_local const AccessFields* current_access = nullptr;
bool json_logs = false;

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          *out += buf;
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

class JsonFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string line = "{\"ts\":";
    auto t = std::chrono::system_clock::to_time_t(msg.time);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()) % 1000;
    std::tm tm;
    gmtime_r(&t, &tm);
    char ts[96];
    std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(ms.count()));
    AppendJsonString(&line, ts);
    line += ",\"level\":";
    auto level = spdlog::level::to_string_view(msg.level);
    AppendJsonString(&line, std::string_view(level.data(), level.size()));
    line += ",\"msg\":";
    AppendJsonString(&line, std::string_view(msg.payload.data(), msg.payload.size()));
    if (!current_request_id.empty()) {
      line += ",\"request_id\":";
      AppendJsonString(&line, current_request_id);
    }
    if (const AccessFields* a = current_access) {
      line += ",\"method\":";
      AppendJsonString(&line, a->method);
      line += ",\"route\":";
      AppendJsonString(&line, a->route);
      line += ",\"family\":";
      AppendJsonString(&line, a->family);
      line += ",\"status\":" + std::to_string(a->status) + ",\"bytes\":" +
              std::to_string(a->bytes) + ",\"micros\":" + std::to_string(a->micros);
    }
    line += "}\n";
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

const std::string& CurrentRequestId() { return current_request_id; }

ScopedRequestId::ScopedRequestId(const std::string& id) : previous_(current_request_id) {
  current_request_id = id;
}
ScopedRequestId::~ScopedRequestId() { current_request_id = previous_; }

std::string NewRequestId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char kHex[] = "0123456789abcdef";
  uint64_t v = rng();
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) out[static_cast<size_t>(i)] = kHex[v & 0xf];
  return out;
}

std::string AcceptRequestId(const std::string& id) {
  if (id.empty() || id.size() > 128) return "";
  for (unsigned char c : id)
    if (c <= 0x20 || c >= 0x7f) return "";
  return id;
}

void LogAccess(const AccessFields& a) {
  if (json_logs) {
    current_access = &a;
    spdlog::info("{} {} {}", a.method, a.route, a.status);
    current_access = nullptr;
  } else {
    spdlog::info("{} {} {} {} {}us rid={}", a.method, a.route, a.status, a.bytes, a.micros,
                 current_request_id);
  }
}

void UseJsonLogs() {
  json_logs = true;
  spdlog::set_formatter(std::make_unique<JsonFormatter>());
}

}  // namespace quire::ops
