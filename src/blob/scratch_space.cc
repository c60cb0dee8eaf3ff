#include "blob/scratch_space.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "core/secrets.h"

namespace quire {

Result<std::string> NewScratchFile(const std::string& dir, const char* stem, const char* suffix) {
  std::string path = dir + "/" + stem + "-XXXXXX" + suffix;
  int fd = ::mkstemps(path.data(), static_cast<int>(std::strlen(suffix)));
  if (fd < 0) {
    return Status::IOError("cannot create scratch file in " + dir + ": " + std::strerror(errno));
  }
  ::close(fd);
  return path;
}
namespace fs = std::filesystem;

namespace {

constexpr char kLockSuffix[] = ".lock";

bool OlderThan(const fs::path& p, std::chrono::seconds age) {
  std::error_code ec;
  auto t = fs::last_write_time(p, ec);
  return !ec && t < fs::file_time_type::clock::now() - age;
}

// Takes the lock at `lock_path` when nobody holds it; -1 otherwise (held, or missing).
int TryLock(const std::string& lock_path) {
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return -1;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Removes the scratch directories of processes that no longer hold their lock.
void RemoveDeadScratch(const fs::path& parent, const std::string& own_name) {
  std::error_code ec;
  uintmax_t freed = 0;
  int dirs = 0;
  for (auto it = fs::directory_iterator(parent, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    std::error_code e2;
    const fs::path& p = it->path();
    std::string name = p.filename().string();
    if (name == own_name || name == own_name + kLockSuffix) continue;
    if (it->is_directory(e2)) {
      std::string lock_path = p.string() + kLockSuffix;
      int fd = TryLock(lock_path);
      bool orphan = fd < 0 && !fs::exists(lock_path, e2) && OlderThan(p, std::chrono::minutes(1));
      if (fd < 0 && !orphan) continue;  // its process is alive (or just starting)
      for (auto f = fs::recursive_directory_iterator(p, e2);
           !e2 && f != fs::recursive_directory_iterator(); f.increment(e2)) {
        std::error_code e3;
        if (f->is_regular_file(e3)) freed += f->file_size(e3);
      }
      fs::remove_all(p, e2);
      ++dirs;
      if (fd >= 0) {
        ::unlink(lock_path.c_str());
        ::close(fd);
      }
    } else if (name.size() > sizeof kLockSuffix - 1 &&
               name.compare(name.size() - (sizeof kLockSuffix - 1), std::string::npos,
                            kLockSuffix) == 0) {
      // A lock whose directory is gone: remove it once nobody holds it.
      if (fs::exists(p.string().substr(0, p.string().size() - (sizeof kLockSuffix - 1)), e2))
        continue;
      int fd = TryLock(p.string());
      if (fd >= 0) {
        ::unlink(p.c_str());
        ::close(fd);
      }
    } else if (it->is_regular_file(e2) && OlderThan(p, std::chrono::hours(1))) {
      freed += it->file_size(e2);
      fs::remove(p, e2);
    }
  }
  if (dirs > 0) {
    spdlog::info("removed the scratch of {} stopped process{} ({} MiB)", dirs,
                 dirs == 1 ? "" : "es", (freed + (1u << 19)) >> 20);
  }
}

}  // namespace

Result<std::unique_ptr<ScratchSpace>> ScratchSpace::Open(const std::string& parent) {
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) return Status::IOError("cannot create scratch directory " + parent + ": " + ec.message());
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  for (char& c : host)
    if (c == '/' || c == '.') c = '_';

  std::unique_ptr<ScratchSpace> s(new ScratchSpace);
  std::string name;
  for (int attempt = 0; attempt < 10 && s->lock_fd_ < 0; ++attempt) {
    name = std::string(host) + "-" + std::to_string(::getpid()) + "-" + RandomHex(4);
    s->lock_path_ = parent + "/" + name + kLockSuffix;
    int fd = ::open(s->lock_path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
      if (errno == EEXIST) continue;
      return Status::IOError("cannot create " + s->lock_path_ + ": " + std::strerror(errno));
    }
    // Another process cleaning up may have taken (and removed) the new lock file between
    // open and flock: hold it only if it is still the file under that name.
    struct stat by_fd, by_name;
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0 && ::fstat(fd, &by_fd) == 0 &&
        ::stat(s->lock_path_.c_str(), &by_name) == 0 && by_fd.st_ino == by_name.st_ino) {
      s->lock_fd_ = fd;
    } else {
      ::close(fd);
    }
  }
  if (s->lock_fd_ < 0) return Status::IOError("cannot claim a scratch directory in " + parent);
  s->dir_ = parent + "/" + name;
  fs::create_directories(s->dir_, ec);
  if (ec) return Status::IOError("cannot create scratch directory " + s->dir_ + ": " + ec.message());
  RemoveDeadScratch(parent, name);
  return s;
}

ScratchSpace::~ScratchSpace() {
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
  if (lock_fd_ >= 0) {
    ::unlink(lock_path_.c_str());
    ::close(lock_fd_);
  }
}

}  // namespace quire
