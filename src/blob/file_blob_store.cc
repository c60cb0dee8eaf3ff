#include "blob/file_blob_store.h"

#include "blob/s3/s3_blob_store.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace quire {
namespace fs = std::filesystem;

namespace {

constexpr char kScratchName[] = ".tmp";
constexpr size_t kMaxEscapedIdLength = 200;

std::string ErrnoText(int err) { return std::strerror(err); }

bool IsKeyChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.' || c == '%';
}

// Keys are relative paths of safe characters; no component may be empty or start with '.',
// which rules out "..", absolute paths and the scratch directory.
Status ValidateKey(const std::string& key) {
  if (key.empty()) return Status::Invalid("blob key is empty");
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string::npos) end = key.size();
    if (end == start) return Status::Invalid("blob key \"" + key + "\" has an empty component");
    if (key[start] == '.') {
      return Status::Invalid("blob key \"" + key + "\" has a component starting with '.'");
    }
    for (size_t i = start; i < end; ++i) {
      if (!IsKeyChar(key[i])) {
        return Status::Invalid("blob key \"" + key + "\" has an unsafe character");
      }
    }
    start = end + 1;
  }
  return Status::Ok();
}

Status FsyncPath(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Status::IOError("cannot open " + path + ": " + ErrnoText(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Status::IOError("cannot fsync " + path + ": " + ErrnoText(err));
  return Status::Ok();
}

// A new empty file in `dir` with a unique name; returns its path.
Result<std::string> MakeTempFile(const std::string& dir, int* fd_out) {
  std::string tmpl = dir + "/put-XXXXXX";
  int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) return Status::IOError("cannot create temp file in " + dir + ": " + ErrnoText(errno));
  *fd_out = fd;
  return tmpl;
}

Status WriteAll(int fd, const char* data, size_t size, const std::string& path) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IOError("cannot write " + path + ": " + ErrnoText(errno));
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

std::string Sha256Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<FileBlobStore>> FileBlobStore::Open(const std::string& root) {
  if (root.empty()) return Status::Invalid("blob store root is empty");
  std::error_code ec;
  fs::path abs = fs::absolute(root, ec);
  if (ec) return Status::IOError("cannot resolve blob store root " + root + ": " + ec.message());
  abs = abs.lexically_normal();
  std::string root_str = abs.string();
  while (root_str.size() > 1 && root_str.back() == '/') root_str.pop_back();
  fs::create_directories(abs, ec);
  if (ec) {
    return Status::IOError("cannot create blob store directory " + root_str + ": " + ec.message());
  }
  Result<std::unique_ptr<ScratchSpace>> scratch = ScratchSpace::Open(root_str + "/" + kScratchName);
  if (!scratch.ok()) return scratch.status();
  return std::unique_ptr<FileBlobStore>(new FileBlobStore(root_str, std::move(*scratch)));
}

std::string FileBlobStore::ScratchDir() const { return scratch_->dir(); }

Status FileBlobStore::Publish(const std::string& key, const std::string& tmp) {
  std::string dest = root_ + "/" + key;
  std::string parent = fs::path(dest).parent_path().string();
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) {
    ::unlink(tmp.c_str());
    return Status::IOError("cannot create directory " + parent + ": " + ec.message());
  }
  if (::rename(tmp.c_str(), dest.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Status::IOError("cannot rename into " + dest + ": " + ErrnoText(err));
  }
  // Make the new directory entry durable too; a failure here leaves a correct file behind.
  (void)FsyncPath(parent, O_RDONLY | O_DIRECTORY);
  return Status::Ok();
}

Status FileBlobStore::PutBytes(const std::string& key, const std::string& bytes) {
  QUIRE_RETURN_IF_ERROR(ValidateKey(key));
  int fd = -1;
  Result<std::string> tmp = MakeTempFile(ScratchDir(), &fd);
  if (!tmp.ok()) return tmp.status();
  Status st = WriteAll(fd, bytes.data(), bytes.size(), *tmp);
  if (st.ok() && ::fsync(fd) != 0)
    st = Status::IOError("cannot fsync " + *tmp + ": " + ErrnoText(errno));
  ::close(fd);
  if (!st.ok()) {
    ::unlink(tmp->c_str());
    return st;
  }
  return Publish(key, *tmp);
}

Status FileBlobStore::PutFile(const std::string& key, const std::string& local_path) {
  QUIRE_RETURN_IF_ERROR(ValidateKey(key));
  struct stat src_stat;
  if (::stat(local_path.c_str(), &src_stat) != 0) {
    return Status::IOError("cannot read " + local_path + ": " + ErrnoText(errno));
  }
  if (!S_ISREG(src_stat.st_mode)) return Status::Invalid(local_path + " is not a regular file");

  struct stat root_stat;
  if (::stat(root_.c_str(), &root_stat) != 0) {
    return Status::IOError("cannot stat blob root " + root_ + ": " + ErrnoText(errno));
  }
  if (src_stat.st_dev == root_stat.st_dev) {
    // Same filesystem: the source itself is the temp file.
    QUIRE_RETURN_IF_ERROR(FsyncPath(local_path, O_RDONLY));
    std::string dest = root_ + "/" + key;
    std::string parent = fs::path(dest).parent_path().string();
    std::error_code ec;
    fs::create_directories(parent, ec);
    if (ec) return Status::IOError("cannot create directory " + parent + ": " + ec.message());
    if (::rename(local_path.c_str(), dest.c_str()) == 0) {
      (void)FsyncPath(parent, O_RDONLY | O_DIRECTORY);
      return Status::Ok();
    }
    if (errno != EXDEV) {
      return Status::IOError("cannot rename " + local_path + " to " + dest + ": " +
                             ErrnoText(errno));
    }
    // Bind mounts can share st_dev yet refuse rename; fall through to copying.
  }

  int fd = -1;
  Result<std::string> tmp = MakeTempFile(ScratchDir(), &fd);
  if (!tmp.ok()) return tmp.status();
  ::close(fd);
  std::error_code ec;
  fs::copy_file(local_path, *tmp, fs::copy_options::overwrite_existing, ec);
  Status st = ec ? Status::IOError("cannot copy " + local_path + ": " + ec.message())
                 : FsyncPath(*tmp, O_RDONLY);
  if (!st.ok()) {
    ::unlink(tmp->c_str());
    return st;
  }
  QUIRE_RETURN_IF_ERROR(Publish(key, *tmp));
  ::unlink(local_path.c_str());
  return Status::Ok();
}

Result<std::string> FileBlobStore::GetBytes(const std::string& key) const {
  QUIRE_RETURN_IF_ERROR(ValidateKey(key));
  std::string path = root_ + "/" + key;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return Status::NotFound("no blob " + key);
    return Status::IOError("cannot open " + path + ": " + ErrnoText(errno));
  }
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) return Status::IOError("cannot read " + path);
  return std::move(out).str();
}

bool FileBlobStore::Exists(const std::string& key) const {
  if (!ValidateKey(key).ok()) return false;
  struct stat st;
  return ::stat((root_ + "/" + key).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Status FileBlobStore::DeletePrefix(const std::string& prefix) {
  QUIRE_RETURN_IF_ERROR(ValidateKey(prefix));
  std::string path = root_ + "/" + prefix;
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::IOError("cannot stat " + path + ": " + ErrnoText(errno));
  }
  if (!S_ISDIR(st.st_mode)) return Status::Ok();  // a blob named `prefix` is not under it
  // A writer adding blobs under the prefix meanwhile (an ingest still running for the image
  // being deleted) makes a directory non-empty again between its listing and its removal:
  // go round again rather than fail the delete.
  std::error_code ec;
  for (int tries = 0; tries < 50; ++tries) {
    ec.clear();
    fs::remove_all(path, ec);
    if (ec != std::errc::directory_not_empty) break;
  }
  if (ec) return Status::IOError("cannot delete " + path + ": " + ec.message());
  return Status::Ok();
}

Result<std::string> FileBlobStore::LocalPath(const std::string& key) const {
  QUIRE_RETURN_IF_ERROR(ValidateKey(key));
  std::string path = root_ + "/" + key;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Status::NotFound("no blob " + key);
  }
  return path;
}

std::string AssetBlobPrefix(int64_t customer, int64_t space, const std::string& image_id) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string escaped;
  escaped.reserve(image_id.size());
  for (unsigned char c : image_id) {
    bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '-';
    if (safe) {
      escaped.push_back(static_cast<char>(c));
    } else {
      escaped.push_back('%');
      escaped.push_back(kHex[c >> 4]);
      escaped.push_back(kHex[c & 0xf]);
    }
  }
  // An empty id would make an empty path component; hashing keeps the key well-formed.
  if (escaped.size() > kMaxEscapedIdLength || escaped.empty()) escaped = "h-" + Sha256Hex(image_id);
  return std::to_string(customer) + "/" + std::to_string(space) + "/" + escaped;
}

Status ValidateBlobKey(const std::string& key) { return ValidateKey(key); }

Result<std::unique_ptr<BlobStore>> OpenBlobStore(const std::string& url,
                                                 const std::string& scratch_dir) {
  if (url.rfind("s3://", 0) == 0) return OpenS3BlobStore(url, scratch_dir);
  constexpr std::string_view kFile = "file:";
  if (url.rfind(kFile, 0) == 0 && url.size() > kFile.size()) {
    Result<std::unique_ptr<FileBlobStore>> store = FileBlobStore::Open(url.substr(kFile.size()));
    if (!store.ok()) return store.status();
    return std::unique_ptr<BlobStore>(std::move(*store));
  }
  return Status::Invalid("unsupported storage URL \"" + url + "\": expected file:PATH or s3://bucket/prefix?endpoint=…");
}

}  // namespace quire
