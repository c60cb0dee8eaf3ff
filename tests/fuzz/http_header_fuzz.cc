// libFuzzer target for what Quire reads from request headers itself: the framing check that
// guards against smuggling (src/http/framing.cc) on whatever Beast parses from the input,
// X-Request-Id acceptance, If-Modified-Since dates, and the router's path splitting. Beyond
// "no crash, ASan/UBSan clean": an accepted request id is 1-128 visible characters, a parsed
// date formats back to a date that parses to the same instant.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/time_util.h"
#include "http/framing.h"
#include "http/router.h"
#include "ops/log_context.h"

namespace bhttp = boost::beast::http;

namespace {
void Check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(64 * 1024);
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(bytes), ec);
  if (parser.is_header_done()) {
    const auto& msg = parser.get();
    std::string problem = quire::http::FramingProblem(msg);
    // A sound request has exactly one Host in HTTP/1.1.
    if (problem.empty() && msg.version() >= 11) Check(msg.count(bhttp::field::host) == 1);
    std::string id = quire::ops::AcceptRequestId(std::string(msg["X-Request-Id"]));
    Check(id.size() <= 128);
    for (unsigned char c : id) Check(c > 0x20 && c < 0x7f);
    std::string ims(msg["If-Modified-Since"]);
    if (auto t = quire::ParseHttpDate(ims)) {
      auto back = quire::ParseHttpDate(quire::FormatHttpDate(*t));
      Check(back.has_value() && *back == *t);
    }
    std::string target(msg.target());
    for (const std::string& seg : quire::http::SplitPath(target.substr(0, target.find('?'))))
      Check(seg.size() <= target.size());
  }
  return 0;
}
