#include "blob/migrate.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <map>

namespace quire {
namespace {

// Hex MD5 of a local file, streamed.
Result<std::string> FileMd5(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError("cannot read " + path);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_md5(), nullptr);
  std::string buf(1 << 20, '\0');
  ssize_t n;
  while ((n = ::read(fd, buf.data(), buf.size())) > 0) EVP_DigestUpdate(ctx, buf.data(), size_t(n));
  ::close(fd);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  if (n < 0) return Status::IOError("cannot read " + path);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

// A plain S3 ETag is the object's MD5 (32 hex digits); multipart ones carry "-N".
bool IsMd5(const std::string& v) {
  if (v.size() != 32) return false;
  for (char c : v)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace

Result<MigrateReport> MigrateBlobs(const BlobStore& from, BlobStore& to,
                                   const std::function<void(const std::string&, bool)>& progress) {
  auto sources = from.List("");
  if (!sources.ok()) return sources.status();
  auto existing = to.List("");
  if (!existing.ok()) return existing.status();
  std::map<std::string, BlobListing> there;
  for (BlobListing& b : *existing) there[b.key] = std::move(b);

  MigrateReport report;
  const std::string tmp = to.ScratchDir() + "/migrate-" + std::to_string(::getpid());
  for (const BlobListing& src : *sources) {
    auto it = there.find(src.key);
    if (it != there.end() && it->second.size == src.size) {
      bool same = true;
      if (IsMd5(it->second.version)) {  // cheap to prove: hash the source
        QUIRE_RETURN_IF_ERROR(from.GetToFile(src.key, tmp));
        auto md5 = FileMd5(tmp);
        ::unlink(tmp.c_str());
        if (!md5.ok()) return md5.status();
        same = *md5 == it->second.version;
      }
      if (same) {
        ++report.skipped;
        if (progress) progress(src.key, false);
        continue;
      }
    }
    QUIRE_RETURN_IF_ERROR(from.GetToFile(src.key, tmp));
    auto md5 = FileMd5(tmp);
    if (!md5.ok()) return md5.status();
    Status put = to.PutFile(src.key, tmp);
    if (!put.ok()) {
      ::unlink(tmp.c_str());
      return Status(put.code(), "copying " + src.key + ": " + put.message());
    }
    auto st = to.Stat(src.key);
    if (!st.ok()) return st.status();
    if (st->size != src.size || (IsMd5(st->version) && st->version != *md5)) {
      return Status::IOError("copy of " + src.key + " does not verify (size " +
                             std::to_string(st->size) + " of " + std::to_string(src.size) + ")");
    }
    ++report.copied;
    report.bytes_copied += src.size;
    if (progress) progress(src.key, true);
  }
  return report;
}

}  // namespace quire
