#include "core/secret_box.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace quire {

namespace {

constexpr size_t kNonce = 12, kTag = 16;

std::string Hex(const std::string& bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

bool Unhex(const std::string& hex, std::string* out) {
  if (hex.size() % 2) return false;
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = val(hex[i]), lo = val(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

struct CipherCtx {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  ~CipherCtx() { EVP_CIPHER_CTX_free(ctx); }
};

const unsigned char* U(const std::string& s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

Result<std::shared_ptr<const SecretBox>> SecretBox::FromKeyFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError("cannot read the secrets key file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string raw = ss.str();
  if (raw.size() == 32) return std::make_shared<const SecretBox>(raw);
  while (!raw.empty() && (raw.back() == '\n' || raw.back() == '\r')) raw.pop_back();
  std::string key;
  if (raw.size() == 64 && Unhex(raw, &key)) return std::make_shared<const SecretBox>(key);
  return Status::Invalid("the secrets key file " + path +
                         " must hold 32 bytes or 64 hex digits (e.g. `openssl rand -hex 32`)");
}

SecretBox::SecretBox(std::string key) : key_(std::move(key)) {
  if (key_.size() != 32) throw std::invalid_argument("SecretBox key must be 32 bytes");
}

std::string SecretBox::Seal(const std::string& plaintext) const {
  std::string nonce(kNonce, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(nonce.data()), kNonce) != 1)
    throw std::runtime_error("RAND_bytes failed");
  CipherCtx c;
  std::string out(plaintext.size() + kTag, '\0');
  int len = 0, fin = 0;
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (!c.ctx || EVP_EncryptInit_ex(c.ctx, EVP_aes_256_gcm(), nullptr, U(key_), U(nonce)) != 1 ||
      EVP_EncryptUpdate(c.ctx, o, &len, U(plaintext), static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(c.ctx, o + len, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_GET_TAG, kTag, o + len + fin) != 1)
    throw std::runtime_error("AES-GCM encryption failed");
  out.resize(static_cast<size_t>(len + fin) + kTag);
  return "v1:" + Hex(nonce + out);
}

Result<std::string> SecretBox::Open(const std::string& sealed) const {
  std::string bytes;
  if (sealed.rfind("v1:", 0) != 0 || !Unhex(sealed.substr(3), &bytes) ||
      bytes.size() < kNonce + kTag)
    return Status::Invalid("sealed secret is malformed");
  std::string nonce = bytes.substr(0, kNonce);
  std::string tag = bytes.substr(bytes.size() - kTag);
  std::string body = bytes.substr(kNonce, bytes.size() - kNonce - kTag);
  CipherCtx c;
  std::string out(body.size() + 16, '\0');
  int len = 0, fin = 0;
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (!c.ctx || EVP_DecryptInit_ex(c.ctx, EVP_aes_256_gcm(), nullptr, U(key_), U(nonce)) != 1 ||
      EVP_DecryptUpdate(c.ctx, o, &len, U(body), static_cast<int>(body.size())) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.ctx, EVP_CTRL_GCM_SET_TAG, kTag, const_cast<unsigned char*>(U(tag))) !=
          1 ||
      EVP_DecryptFinal_ex(c.ctx, o + len, &fin) != 1)
    return Status::Invalid("sealed secret does not open with this server's secrets key");
  out.resize(static_cast<size_t>(len + fin));
  return out;
}

}  // namespace quire
