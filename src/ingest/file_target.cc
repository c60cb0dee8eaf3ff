#include "ingest/file_target.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "blob/free_space.h"

namespace quire {

namespace {
constexpr int64_t kSpaceCheckEvery = 4 << 20;
}

Result<std::unique_ptr<GuardedFileTarget>> GuardedFileTarget::Create(const std::string& path,
                                                                     int64_t reserve_bytes) {
  std::unique_ptr<GuardedFileTarget> t(new GuardedFileTarget);
  t->path_ = path;
  t->reserve_bytes_ = reserve_bytes;
  t->fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (t->fd_ < 0) return Status::IOError("cannot create " + path + ": " + std::strerror(errno));
  if (reserve_bytes > 0) {
    QUIRE_RETURN_IF_ERROR(CheckFreeSpace(FreeBytes(t->fd_), reserve_bytes));
  }
  t->custom_ = vips_target_custom_new();
  g_signal_connect(t->custom_, "write", G_CALLBACK(&GuardedFileTarget::OnWrite), t.get());
  g_signal_connect(t->custom_, "read", G_CALLBACK(&GuardedFileTarget::OnRead), t.get());
  g_signal_connect(t->custom_, "seek", G_CALLBACK(&GuardedFileTarget::OnSeek), t.get());
  g_signal_connect(t->custom_, "end", G_CALLBACK(&GuardedFileTarget::OnEnd), t.get());
  return t;
}

GuardedFileTarget::~GuardedFileTarget() {
  if (custom_ != nullptr) {
    // libvips may still hold a reference; it must not call back into a dead object.
    g_signal_handlers_disconnect_by_data(custom_, this);
    g_object_unref(custom_);
  }
  if (fd_ >= 0) ::close(fd_);
}

vips::VTarget GuardedFileTarget::target() const {
  g_object_ref(custom_);  // VTarget steals one reference
  return vips::VTarget(VIPS_TARGET(custom_));
}

Status GuardedFileTarget::status() const {
  if (error_.empty()) return Status::Ok();
  return Status::IOError("cannot write " + path_ + ": " + error_);
}

void GuardedFileTarget::Fail(const std::string& cause) {
  if (error_.empty()) error_ = cause;
}

gint64 GuardedFileTarget::OnWrite(VipsTargetCustom*, const void* data, gint64 length,
                                  void* self_ptr) {
  auto* self = static_cast<GuardedFileTarget*>(self_ptr);
  if (length <= 0) return 0;
  if (self->error_.empty() && self->reserve_bytes_ > 0 && self->pos_ >= self->next_space_check_) {
    self->next_space_check_ = self->pos_ + kSpaceCheckEvery;
    Status room = CheckFreeSpace(FreeBytes(self->fd_), self->reserve_bytes_);
    if (!room.ok()) self->Fail(room.message());
  }
  const char* p = static_cast<const char*>(data);
  int64_t left = length, at = self->pos_;
  while (self->error_.empty() && left > 0) {
    ssize_t n = ::pwrite(self->fd_, p, static_cast<size_t>(left), at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      self->Fail(n < 0 ? std::strerror(errno) : "short write");
      break;
    }
    p += n;
    at += n;
    left -= n;
  }
  // Always "written": a failure reported to libvips 8.14 is what crashes it.
  self->pos_ += length;
  self->size_ = std::max(self->size_, self->pos_);
  return length;
}

gint64 GuardedFileTarget::OnRead(VipsTargetCustom*, void* buffer, gint64 length,
                                 void* self_ptr) {
  auto* self = static_cast<GuardedFileTarget*>(self_ptr);
  int64_t want = std::min<int64_t>(length, std::max<int64_t>(0, self->size_ - self->pos_));
  if (want <= 0) return 0;
  ssize_t n;
  do {
    n = ::pread(self->fd_, buffer, static_cast<size_t>(want), self->pos_);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    self->Fail(std::strerror(errno));
    n = 0;
  }
  if (n < want) std::memset(static_cast<char*>(buffer) + n, 0, static_cast<size_t>(want - n));
  self->pos_ += want;
  return want;
}

gint64 GuardedFileTarget::OnSeek(VipsTargetCustom*, gint64 offset, int whence, void* self_ptr) {
  auto* self = static_cast<GuardedFileTarget*>(self_ptr);
  int64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? self->pos_ : self->size_;
  if (base + offset < 0) return -1;
  self->pos_ = base + offset;
  return self->pos_;
}

int GuardedFileTarget::OnEnd(VipsTargetCustom*, void* self_ptr) {
  auto* self = static_cast<GuardedFileTarget*>(self_ptr);
  if (self->error_.empty() && ::fsync(self->fd_) != 0) self->Fail(std::strerror(errno));
  return 0;
}

}  // namespace quire
