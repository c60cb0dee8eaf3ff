// AWS Signature Version 4 for S3 requests, written out so that the canonical form is ours to
// control: path segments encoded once, query parameters sorted and encoded (`uploads=`,
// `%2F` in values), the payload hash both signed and sent as x-amz-content-sha256.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace quire::s3 {

std::string Sha256Hex(const std::string& data);
// The SHA-256 of nothing, as S3 wants for GET/HEAD/DELETE.
extern const char kEmptySha256[];

// RFC 3986 unreserved characters pass; everything else is %XX. `keep_slash` for paths.
std::string UriEncode(const std::string& s, bool keep_slash);

struct SigningInput {
  std::string method;          // "GET"
  std::string host;            // Host header value, with ":port" when not default
  std::string canonical_path;  // already encoded: "/bucket/key%25x"
  std::map<std::string, std::string> query;   // raw (unencoded) names and values
  std::map<std::string, std::string> headers;  // lower-case names; host/x-amz-* added here
  std::string payload_sha256;  // hex, or "UNSIGNED-PAYLOAD"
  std::string region;
  std::string access_key, secret_key;
  std::string amz_date;  // YYYYMMDDTHHMMSSZ
};

// The canonical query string (sorted, encoded) for the URL and the signature alike.
std::string CanonicalQuery(const std::map<std::string, std::string>& query);
// Every header to send, Authorization included (names lower-case).
std::vector<std::pair<std::string, std::string>> SignedHeaders(const SigningInput& in);
// Current UTC time as YYYYMMDDTHHMMSSZ.
std::string AmzDateNow();

}  // namespace quire::s3
