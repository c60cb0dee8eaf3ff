#include "blob/s3/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <ctime>

namespace quire::s3 {
namespace {

std::string Hex(const unsigned char* p, size_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[p[i] >> 4]);
    out.push_back(kHex[p[i] & 0xf]);
  }
  return out;
}

std::string Hmac(const std::string& key, const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), int(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return std::string(reinterpret_cast<char*>(md), len);
}

}  // namespace

const char kEmptySha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string Sha256Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return Hex(md, len);
}

std::string UriEncode(const std::string& s, bool keep_slash) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.' || c == '~';
    if (unreserved || (keep_slash && c == '/')) {
      out.push_back(char(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

std::string CanonicalQuery(const std::map<std::string, std::string>& query) {
  // std::map orders by raw name; the encoded forms of our names (ASCII letters, '-') sort
  // the same way.
  std::string out;
  for (const auto& [k, v] : query) {
    if (!out.empty()) out += '&';
    out += UriEncode(k, false) + "=" + UriEncode(v, false);
  }
  return out;
}

std::string AmzDateNow() {
  std::time_t t = std::time(nullptr);
  std::tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::vector<std::pair<std::string, std::string>> SignedHeaders(const SigningInput& in) {
  std::map<std::string, std::string> headers = in.headers;
  headers["host"] = in.host;
  headers["x-amz-date"] = in.amz_date;
  headers["x-amz-content-sha256"] = in.payload_sha256;
  std::string canonical_headers, signed_names;
  for (const auto& [k, v] : headers) {
    canonical_headers += k + ":" + v + "\n";
    if (!signed_names.empty()) signed_names += ';';
    signed_names += k;
  }
  const std::string canonical_request = in.method + "\n" + in.canonical_path + "\n" +
                                        CanonicalQuery(in.query) + "\n" + canonical_headers +
                                        "\n" + signed_names + "\n" + in.payload_sha256;
  const std::string date = in.amz_date.substr(0, 8);
  const std::string scope = date + "/" + in.region + "/s3/aws4_request";
  const std::string to_sign =
      "AWS4-HMAC-SHA256\n" + in.amz_date + "\n" + scope + "\n" + Sha256Hex(canonical_request);
  std::string key = Hmac("AWS4" + in.secret_key, date);
  key = Hmac(key, in.region);
  key = Hmac(key, "s3");
  key = Hmac(key, "aws4_request");
  const std::string sig = Hmac(key, to_sign);
  std::vector<std::pair<std::string, std::string>> out(headers.begin(), headers.end());
  out.emplace_back("authorization",
                   "AWS4-HMAC-SHA256 Credential=" + in.access_key + "/" + scope +
                       ", SignedHeaders=" + signed_names + ", Signature=" +
                       Hex(reinterpret_cast<const unsigned char*>(sig.data()), sig.size()));
  return out;
}

}  // namespace quire::s3
