// FileBlobStore's ranged, streamed and listing reads (the writes are in file_blob_store.cc).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "blob/file_blob_store.h"

namespace quire {
namespace fs = std::filesystem;

namespace {

std::string VersionOf(const struct stat& st) {
  return std::to_string(st.st_ino) + "-" + std::to_string(st.st_size) + "-" +
         std::to_string(int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec);
}

// Opens `path` for reading; kNotFound when it is missing or not a regular file.
Result<int> OpenBlob(const std::string& key, const std::string& path, struct stat* st) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return Status::NotFound("no blob " + key);
    return Status::IOError("cannot open " + path + ": " + std::strerror(errno));
  }
  if (::fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
    ::close(fd);
    return Status::NotFound("no blob " + key);
  }
  return fd;
}

}  // namespace

Result<BlobStat> FileBlobStore::Stat(const std::string& key) const {
  QUIRE_RETURN_IF_ERROR(ValidateBlobKey(key));
  struct stat st;
  if (::stat((root_ + "/" + key).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Status::NotFound("no blob " + key);
  }
  return BlobStat{int64_t(st.st_size), VersionOf(st),
                  int64_t(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000};
}

Result<std::string> FileBlobStore::GetRange(const std::string& key, int64_t offset,
                                            int64_t length, const std::string& version) const {
  QUIRE_RETURN_IF_ERROR(ValidateBlobKey(key));
  if (offset < 0 || length < 0) return Status::Invalid("negative blob range");
  std::string path = root_ + "/" + key;
  struct stat st;
  Result<int> fd = OpenBlob(key, path, &st);
  if (!fd.ok()) return fd.status();
  if (!version.empty() && VersionOf(st) != version) {
    ::close(*fd);
    return Status::Conflict("blob " + key + " changed");
  }
  int64_t n = std::max<int64_t>(0, std::min<int64_t>(length, int64_t(st.st_size) - offset));
  std::string out(size_t(n), '\0');
  int64_t done = 0;
  while (done < n) {
    ssize_t got = ::pread(*fd, out.data() + done, size_t(n - done), off_t(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      ::close(*fd);
      return Status::IOError("cannot read " + path);
    }
    done += got;
  }
  ::close(*fd);
  return out;
}

Status FileBlobStore::GetToFile(const std::string& key, const std::string& local_path) const {
  QUIRE_RETURN_IF_ERROR(ValidateBlobKey(key));
  std::string path = root_ + "/" + key;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Status::NotFound("no blob " + key);
  }
  std::error_code ec;
  fs::copy_file(path, local_path, fs::copy_options::overwrite_existing, ec);
  if (ec) return Status::IOError("cannot copy " + path + " to " + local_path + ": " + ec.message());
  return Status::Ok();
}

Result<std::vector<BlobListing>> FileBlobStore::List(const std::string& prefix) const {
  std::vector<BlobListing> out;
  std::error_code ec;
  const fs::path root(root_);
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.empty() && name[0] == '.') {  // the scratch directory, temp files
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    std::error_code e2;
    if (!it->is_regular_file(e2)) continue;
    std::string key = it->path().lexically_relative(root).string();
    if (key.compare(0, prefix.size(), prefix) != 0) continue;
    struct stat st;
    if (::stat(it->path().c_str(), &st) != 0) continue;  // removed meanwhile
    out.push_back({key, int64_t(st.st_size), VersionOf(st)});
  }
  if (ec) return Status::IOError("cannot list " + root_ + ": " + ec.message());
  std::sort(out.begin(), out.end(),
            [](const BlobListing& a, const BlobListing& b) { return a.key < b.key; });
  return out;
}

}  // namespace quire
