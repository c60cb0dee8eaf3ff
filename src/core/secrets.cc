#include "core/secrets.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/random.h>

#include <stdexcept>

namespace quire {
namespace {

std::string ToHex(const unsigned char* data, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 15];
  }
  return out;
}

void FillRandom(unsigned char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(buf + got, n - got, 0);
    if (r < 0) throw std::runtime_error("getrandom failed");
    got += static_cast<size_t>(r);
  }
}

}  // namespace

std::string RandomHex(size_t n) {
  std::string raw(n, '\0');
  FillRandom(reinterpret_cast<unsigned char*>(raw.data()), n);
  return ToHex(reinterpret_cast<const unsigned char*>(raw.data()), n);
}

std::string NewUuid() {
  unsigned char b[16];
  FillRandom(b, sizeof b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  std::string h = ToHex(b, 16);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20, 12);
}

std::string HashSecret(const std::string& salt, const std::string& secret) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx, salt.data(), salt.size());
  EVP_DigestUpdate(ctx, secret.data(), secret.size());
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  return ToHex(md, len);
}

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  // Length is not secret (hashes have a fixed length); contents are.
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace quire
