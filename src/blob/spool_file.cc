#include "blob/spool_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "blob/free_space.h"

namespace quire {

namespace {
constexpr int64_t kCheckEvery = 8 << 20;
}  // namespace

Result<std::unique_ptr<SpoolFile>> SpoolFile::Create(const std::string& dir,
                                                     int64_t reserve_bytes,
                                                     int64_t expected_bytes) {
  std::unique_ptr<SpoolFile> f(new SpoolFile());
  std::string tmpl = dir + "/upload-XXXXXX";
  f->fd_ = ::mkstemp(tmpl.data());
  if (f->fd_ < 0)
    return Status::IOError("cannot create a scratch file in " + dir + ": " + std::strerror(errno));
  f->path_ = tmpl;
  f->reserve_ = reserve_bytes;
  f->expected_ = expected_bytes;
  QUIRE_RETURN_IF_ERROR(CheckFreeSpace(FreeBytes(f->fd_), reserve_bytes + expected_bytes));
  f->next_check_ = kCheckEvery;
  return f;
}

SpoolFile::~SpoolFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!released_ && !path_.empty()) {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
}

Status SpoolFile::Append(std::string_view bytes) {
  if (fd_ < 0) return Status::Internal("append to a closed spool file");
  if (size_ + static_cast<int64_t>(bytes.size()) >= next_check_) {
    int64_t still = std::max<int64_t>(0, expected_ - size_);
    QUIRE_RETURN_IF_ERROR(CheckFreeSpace(FreeBytes(fd_), reserve_ + still));
    next_check_ = size_ + static_cast<int64_t>(bytes.size()) + kCheckEvery;
  }
  while (!bytes.empty()) {
    ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return Status::IOError(std::string("cannot write the upload to scratch: ") +
                             std::strerror(errno));
    bytes.remove_prefix(static_cast<size_t>(n));
    size_ += n;
  }
  return Status::Ok();
}

Status SpoolFile::Sync() {
  if (fd_ < 0) return Status::Ok();
  int rc = ::fsync(fd_);
  int err = errno;
  ::close(fd_);
  fd_ = -1;
  if (rc != 0)
    return Status::IOError(std::string("cannot flush the upload to disk: ") + std::strerror(err));
  return Status::Ok();
}

}  // namespace quire
