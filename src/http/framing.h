// Request framing a proxy in front of Quire could read differently than Beast does: the one
// check that stands between a parsed request header and request smuggling.
#pragma once

#include <boost/beast/http.hpp>
#include <string>

namespace quire::http {

using Fields = boost::beast::http::request_header<>;

// The framing of a request is ambiguous when a proxy in front of Quire could read it otherwise
// (RFC 9112 §3.2, §6.1, §6.3): no Host or several in HTTP/1.1, a transfer coding other than
// one final "chunked", Transfer-Encoding next to Content-Length, or Transfer-Encoding in
// HTTP/1.0. Beast would read such a request as bodiless and parse the body's bytes as the next
// request on the connection, so the server refuses it and closes the connection. Returns the
// reason, or "" when the framing is sound.
std::string FramingProblem(const Fields& msg);

}  // namespace quire::http
