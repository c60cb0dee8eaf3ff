#include "http/framing.h"

namespace quire::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

std::string FramingProblem(const Fields& msg) {
  // RFC 9112 §3.2: exactly one Host in HTTP/1.1 (a proxy and we could disagree on the target).
  size_t hosts = msg.count(bhttp::field::host);
  if (hosts > 1) return "more than one Host header";
  if (hosts == 0 && msg.version() >= 11) return "no Host header";
  size_t codings = msg.count(bhttp::field::transfer_encoding);
  if (codings == 0) return "";
  if (codings > 1) return "more than one Transfer-Encoding header";
  if (msg.count(bhttp::field::content_length) > 0)
    return "both Transfer-Encoding and Content-Length";
  if (msg.version() < 11) return "Transfer-Encoding in an HTTP/1.0 request";
  std::string_view v = msg[bhttp::field::transfer_encoding];
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (!beast::iequals(v, "chunked"))
    return "unsupported Transfer-Encoding \"" + std::string(v) + "\" (only chunked)";
  return "";
}

}  // namespace quire::http
