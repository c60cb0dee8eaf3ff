#include "blob/cache/blob_cache.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

namespace quire {
namespace fs = std::filesystem;

namespace {

std::string NameOf(const std::string& what) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(what.data(), what.size(), md, &len, EVP_sha256(), nullptr);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < 20; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

bool WriteFile(const std::string& path, const std::string& bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return false;
    }
    done += size_t(n);
  }
  return ::close(fd) == 0;
}

}  // namespace

Result<std::unique_ptr<BlobCache>> BlobCache::Open(const BlobStore& source, const std::string& dir,
                                                   int64_t capacity, size_t max_open_files) {
  if (capacity <= 0) return Status::Invalid("--cache-bytes must be positive");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::IOError("cannot create cache directory " + dir + ": " + ec.message());
  std::unique_ptr<BlobCache> cache(new BlobCache(source, dir, capacity, max_open_files));
  struct Found {
    std::string name;
    int64_t size;
    fs::file_time_type mtime;
  };
  std::vector<Found> found;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code e2;
    if (!it->is_regular_file(e2)) continue;
    const std::string name = it->path().filename().string();
    if (name.size() != 40 || name.find('.') != std::string::npos) {
      fs::remove(it->path(), e2);  // a temp file of a writer that died
      continue;
    }
    found.push_back({name, int64_t(it->file_size(e2)), it->last_write_time(e2)});
  }
  std::sort(found.begin(), found.end(),
            [](const Found& a, const Found& b) { return a.mtime > b.mtime; });
  for (const Found& f : found) {
    if (cache->used_ + f.size > capacity) {
      std::error_code e2;
      fs::remove(cache->PathOf(f.name), e2);
      continue;
    }
    cache->lru_.push_back({f.name, f.size, true, nullptr, {}});
    cache->index_[f.name] = std::prev(cache->lru_.end());
    cache->used_ += f.size;
  }
  return cache;
}

std::string BlobCache::PathOf(const std::string& name) const {
  return dir_ + "/" + name.substr(0, 2) + "/" + name;
}

int64_t BlobCache::used_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return used_;
}

BlobCache::OpenFile::~OpenFile() {
  if (data != nullptr) ::munmap(const_cast<char*>(data), size);
  if (fd >= 0) ::close(fd);
}

bool BlobCache::OpenFile::Copy(size_t offset, size_t n, char* out) const {
  if (offset > size || n > size - offset) return false;
  if (fd < 0) {
    if (n > 0) std::memcpy(out, data + offset, n);
    return true;
  }
  size_t done = 0;
  while (done < n) {
    ssize_t got = ::pread(fd, out + done, n - done, off_t(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    done += size_t(got);
  }
  return true;
}

void BlobCache::DropFile(Entry& e) {
  if (!e.file) return;
  open_lru_.erase(e.open_at);
  e.file.reset();
}

size_t BlobCache::HeldEntries() {
  long long maps = 65530;  // the kernel's default
  std::ifstream in("/proc/sys/vm/max_map_count");
  if (!(in >> maps) || maps <= 0) maps = 65530;
  return std::clamp<size_t>(size_t(maps) / 4, 1024, 32768);
}

std::shared_ptr<BlobCache::OpenFile> BlobCache::Acquire(const std::string& name, int64_t* size) {
  std::shared_ptr<OpenFile> file;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(name);
    if (it == index_.end() || !it->second->ready) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    *size = it->second->size;
    file = it->second->file;
    if (file) open_lru_.splice(open_lru_.begin(), open_lru_, it->second->open_at);
  }
  if (file) return file;
  int fd = ::open(PathOf(name).c_str(), O_RDONLY | O_CLOEXEC | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = ::open(PathOf(name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;  // evicted meanwhile
  struct stat sb;
  if (::fstat(fd, &sb) != 0 || int64_t(sb.st_size) != *size) {
    ::close(fd);
    return nullptr;  // not the entry's size: never read a short (or replaced) file
  }
  if (*size > kMaxMappedBytes) return std::make_shared<OpenFile>(nullptr, size_t(*size), fd);
  const char* data = nullptr;
  if (*size > 0) {
    void* m = ::mmap(nullptr, size_t(*size), PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) return std::make_shared<OpenFile>(nullptr, size_t(*size), fd);
    data = static_cast<const char*>(m);
  }
  ::close(fd);
  file = std::make_shared<OpenFile>(data, size_t(*size), -1);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(name);
  if (file->fd < 0 && it != index_.end() && it->second->ready && !it->second->file) {
    open_lru_.push_front(name);
    it->second->file = file;
    it->second->open_at = open_lru_.begin();
    if (open_lru_.size() > max_open_) DropFile(*index_.at(open_lru_.back()));
  }
  return file;
}

bool BlobCache::ReadInto(const std::string& name, char* out, size_t n) {
  // The hot path of warm delivery: one copy from the entry's mapping (held, or made now and
  // then held for the next read).
  int64_t size = 0;
  std::shared_ptr<OpenFile> file = Acquire(name, &size);
  if (!file || size_t(size) != n) return false;
  return file->Copy(0, n, out);
}

bool BlobCache::Read(const std::string& name, std::string* out) {
  int64_t size = 0;
  std::shared_ptr<OpenFile> file = Acquire(name, &size);
  if (!file) return false;
  out->resize(size_t(size));
  return file->Copy(0, out->size(), out->data());
}

BlobCache::Reservation BlobCache::Reserve(const std::string& name, int64_t size) {
  if (size > capacity_ / 2) return Reservation::kTooLarge;  // it would crowd out the rest
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (index_.count(name)) return Reservation::kBusy;
    // Only ready entries can go; pending ones hold their reservation until written.
    auto victim = lru_.end();
    while (used_ + size > capacity_ && victim != lru_.begin()) {
      --victim;
      if (!victim->ready) continue;
      used_ -= victim->size;
      // Unlinked while the lock is held, so the bytes on disk never pass the bound either; a
      // reader that already opened the file keeps its bytes.
      ::unlink(PathOf(victim->name).c_str());
      DropFile(*victim);  // closed now unless a reader holds it for its pread
      index_.erase(victim->name);
      victim = lru_.erase(victim);
    }
    if (used_ + size > capacity_) return Reservation::kTooLarge;  // all pending
    lru_.push_front({name, size, false, nullptr, {}});
    index_[name] = lru_.begin();
    used_ += size;
  }
  return Reservation::kReserved;
}

void BlobCache::Commit(const std::string& name, bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(name);
  if (it == index_.end()) return;
  if (ok) {
    it->second->ready = true;
    return;
  }
  used_ -= it->second->size;
  DropFile(*it->second);
  lru_.erase(it->second);
  index_.erase(it);
}

void BlobCache::Store(const std::string& name, const std::string& bytes) {
  const std::string path = PathOf(name);
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  const std::string tmp = path + ".tmp" + std::to_string(temp_counter_++);
  bool ok = !ec && WriteFile(tmp, bytes) && ::rename(tmp.c_str(), path.c_str()) == 0;
  if (!ok) ::unlink(tmp.c_str());
  Commit(name, ok);
}

namespace {
std::string RangeName(const std::string& key, const std::string& version, int64_t offset,
                      int64_t length) {
  return NameOf("range\n" + key + "\n" + version + "\n" + std::to_string(offset) + "\n" +
                std::to_string(length));
}
}  // namespace

bool BlobCache::PeekRange(const std::string& key, const std::string& version, int64_t offset,
                          int64_t length, std::string* out) {
  if (!Read(RangeName(key, version, offset, length), out)) return false;
  ++hits_;
  return true;
}

bool BlobCache::PeekRangeInto(const std::string& key, const std::string& version,
                              int64_t offset, int64_t length, char* out) {
  if (length < 0 || !ReadInto(RangeName(key, version, offset, length), out, size_t(length)))
    return false;
  ++hits_;
  return true;
}

Status BlobCache::GetRangeInto(const std::string& key, const std::string& version,
                               int64_t offset, int64_t length, char* out) {
  if (PeekRangeInto(key, version, offset, length, out)) return Status::Ok();
  Result<std::string> got = GetRange(key, version, offset, length);
  if (!got.ok()) return got.status();
  if (int64_t(got->size()) != length)
    return Status::IOError("short range of " + key + ": " + std::to_string(got->size()) + " of " +
                           std::to_string(length) + " bytes");
  std::memcpy(out, got->data(), got->size());
  return Status::Ok();
}

bool BlobCache::PeekBytes(const std::string& key, const std::string& tag, std::string* out) {
  if (!Read(NameOf("whole\n" + key + "\n" + tag), out)) return false;
  ++hits_;
  return true;
}

Result<std::string> BlobCache::GetRange(const std::string& key, const std::string& version,
                                        int64_t offset, int64_t length) {
  const std::string name = RangeName(key, version, offset, length);
  std::string bytes;
  if (Read(name, &bytes)) {
    ++hits_;
    return bytes;
  }
  ++misses_;
  Result<std::string> got = source_.GetRange(key, offset, length, version);
  if (!got.ok()) return got.status();
  if (Reserve(name, int64_t(got->size())) == Reservation::kReserved) Store(name, *got);
  return got;
}

Result<std::string> BlobCache::GetBytes(const std::string& key, const std::string& tag) {
  const std::string name = NameOf("whole\n" + key + "\n" + tag);
  std::string bytes;
  if (Read(name, &bytes)) {
    ++hits_;
    return bytes;
  }
  ++misses_;
  Result<std::string> got = source_.GetBytes(key);
  if (!got.ok()) return got.status();
  if (Reserve(name, int64_t(got->size())) == Reservation::kReserved) Store(name, *got);
  return got;
}

Result<std::string> BlobCache::LocalFile(const std::string& key, const std::string& version,
                                         int64_t size) {
  const std::string name = NameOf("file\n" + key + "\n" + version);
  const std::string path = PathOf(name);
  for (int wait = 0;; ++wait) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = index_.find(name);
      if (it != index_.end() && it->second->ready) {
        lru_.splice(lru_.begin(), lru_, it->second);
        ++hits_;
        return path;
      }
    }
    Reservation r = Reserve(name, size);
    if (r == Reservation::kReserved) break;
    if (r == Reservation::kTooLarge) {
      return Status::Unsupported("blob " + key + " does not fit the delivery cache");
    }
    // Another request is fetching the same file: wait for it rather than fetch it twice.
    if (wait > 3000) return Status::Unavailable("blob " + key + " is still being fetched");
    ::usleep(10000);
  }
  ++misses_;
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  const std::string tmp = path + ".tmp" + std::to_string(temp_counter_++);
  Status st = source_.GetToFile(key, tmp);
  struct stat sb;
  if (st.ok() && (::stat(tmp.c_str(), &sb) != 0 || int64_t(sb.st_size) != size)) {
    st = Status::Conflict("blob " + key + " changed while it was fetched");
  }
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    st = Status::IOError("cannot place " + path);
  }
  if (!st.ok()) ::unlink(tmp.c_str());
  Commit(name, st.ok());
  if (!st.ok()) return st;
  return path;
}

}  // namespace quire
