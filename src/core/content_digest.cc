#include "core/content_digest.h"

#include <openssl/evp.h>

#include <array>
#include <cctype>

namespace quire {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::optional<std::string> HexDecode(std::string_view s) {
  if (s.size() % 2 != 0) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < s.size(); i += 2) {
    auto v = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    int hi = v(s[i]), lo = v(s[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

}  // namespace

std::string Base64Encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) |
                 static_cast<uint8_t>(in[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  size_t pad = 0;
  while (!text.empty() && text.back() == '=' && pad < 2) {
    text.remove_suffix(1);
    ++pad;
  }
  if (text.size() % 4 == 1) return std::nullopt;
  if (pad > 0 && (text.size() + pad) % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = Base64Value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero, so each byte string has exactly one encoding.
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

Result<ExpectedDigests> ParseDigestHeaders(std::string_view content_digest,
                                           std::string_view content_md5) {
  ExpectedDigests out;
  content_digest = Trim(content_digest);
  if (!content_digest.empty()) {
    bool any_known = false;
    while (true) {
      size_t comma = content_digest.find(',');
      std::string_view member = Trim(content_digest.substr(0, comma));
      size_t eq = member.find('=');
      if (member.empty() || eq == std::string_view::npos || eq == 0)
        return Status::Invalid("Content-Digest must be a list of ALGORITHM=:BASE64: entries");
      std::string_view key = member.substr(0, eq);
      for (char c : key)
        if (!(std::islower(static_cast<unsigned char>(c)) ||
              std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
              c == '*'))
          return Status::Invalid("Content-Digest has an invalid algorithm name");
      std::string_view value = member.substr(eq + 1);
      size_t semi = value.find(';');  // parameters carry nothing Quire needs
      value = Trim(value.substr(0, semi));
      if (value.size() < 2 || value.front() != ':' || value.back() != ':')
        return Status::Invalid("Content-Digest value for " + std::string(key) +
                               " must be a byte sequence :BASE64:");
      auto raw = Base64Decode(value.substr(1, value.size() - 2));
      if (!raw) return Status::Invalid("Content-Digest value for " + std::string(key) +
                                       " is not valid base64");
      if (key == "sha-256" || key == "sha-512") {
        size_t want = key == "sha-256" ? 32 : 64;
        if (raw->size() != want)
          return Status::Invalid("Content-Digest " + std::string(key) + " must be " +
                                 std::to_string(want) + " bytes, got " +
                                 std::to_string(raw->size()));
        auto& slot = key == "sha-256" ? out.sha256 : out.sha512;
        if (slot && *slot != *raw)
          return Status::Invalid("Content-Digest names " + std::string(key) + " twice");
        slot = std::move(*raw);
        any_known = true;
      }
      if (comma == std::string_view::npos) break;
      content_digest.remove_prefix(comma + 1);
    }
    if (!any_known)
      return Status::Invalid("Content-Digest names no algorithm Quire verifies (sha-256, "
                             "sha-512)");
  }
  content_md5 = Trim(content_md5);
  if (!content_md5.empty()) {
    std::optional<std::string> raw =
        content_md5.size() == 32 ? HexDecode(content_md5) : Base64Decode(content_md5);
    if (!raw || raw->size() != 16)
      return Status::Invalid("Content-MD5 must be the base64 of 16 bytes");
    out.md5 = std::move(*raw);
  }
  return out;
}

struct StreamHasher::Contexts {
  EVP_MD_CTX* sha256 = nullptr;
  EVP_MD_CTX* sha512 = nullptr;
  EVP_MD_CTX* md5 = nullptr;
  ~Contexts() {
    EVP_MD_CTX_free(sha256);
    EVP_MD_CTX_free(sha512);
    EVP_MD_CTX_free(md5);
  }
};

namespace {
EVP_MD_CTX* NewContext(const EVP_MD* md) {
  EVP_MD_CTX* c = EVP_MD_CTX_new();
  EVP_DigestInit_ex(c, md, nullptr);
  return c;
}
std::string Final(EVP_MD_CTX* c) {
  if (c == nullptr) return "";
  std::array<unsigned char, EVP_MAX_MD_SIZE> buf;
  unsigned int n = 0;
  EVP_DigestFinal_ex(c, buf.data(), &n);
  return std::string(reinterpret_cast<char*>(buf.data()), n);
}
}  // namespace

StreamHasher::StreamHasher(bool sha512, bool md5) : ctx_(std::make_unique<Contexts>()) {
  ctx_->sha256 = NewContext(EVP_sha256());
  if (sha512) ctx_->sha512 = NewContext(EVP_sha512());
  if (md5) ctx_->md5 = NewContext(EVP_md5());
}

StreamHasher::~StreamHasher() = default;

void StreamHasher::Update(std::string_view bytes) {
  for (EVP_MD_CTX* c : {ctx_->sha256, ctx_->sha512, ctx_->md5})
    if (c != nullptr) EVP_DigestUpdate(c, bytes.data(), bytes.size());
}

void StreamHasher::Finish() {
  sha256_ = Final(ctx_->sha256);
  sha512_ = Final(ctx_->sha512);
  md5_ = Final(ctx_->md5);
}

Status VerifyDigests(const ExpectedDigests& expected, const StreamHasher& hasher) {
  auto check = [](const char* header, const char* alg, const std::optional<std::string>& want,
                  const std::string& got) -> Status {
    if (!want || *want == got) return Status::Ok();
    return Status::Invalid(std::string(header) + (*alg ? " " : "") + alg +
                           " does not match the body (sent " + Base64Encode(*want) +
                           ", body has " + Base64Encode(got) + "); nothing was kept");
  };
  if (Status s = check("Content-Digest", "sha-256", expected.sha256, hasher.sha256()); !s.ok())
    return s;
  if (Status s = check("Content-Digest", "sha-512", expected.sha512, hasher.sha512()); !s.ok())
    return s;
  return check("Content-MD5", "", expected.md5, hasher.md5());
}

}  // namespace quire
