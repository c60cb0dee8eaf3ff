#include "blob/free_space.h"

#include <sys/statvfs.h>

namespace quire {

namespace {
int64_t Available(const struct statvfs& s) {
  return static_cast<int64_t>(s.f_bavail) * static_cast<int64_t>(s.f_frsize);
}
std::string Mib(int64_t bytes) {
  return std::to_string((bytes + (1 << 19)) >> 20) + " MiB";
}
}  // namespace

int64_t FreeBytes(int fd) {
  struct statvfs s;
  return ::fstatvfs(fd, &s) == 0 ? Available(s) : -1;
}

int64_t FreeBytes(const std::string& path) {
  struct statvfs s;
  return ::statvfs(path.c_str(), &s) == 0 ? Available(s) : -1;
}

Status CheckFreeSpace(int64_t free_bytes, int64_t reserve_bytes) {
  if (free_bytes < 0 || free_bytes >= reserve_bytes) return Status::Ok();
  return Status::IOError("no space left on the data volume: " + Mib(free_bytes) + " free, " +
                         Mib(reserve_bytes) + " kept in reserve");
}

}  // namespace quire
