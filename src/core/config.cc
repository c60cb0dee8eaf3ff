#include "core/config.h"

#include <thread>

namespace quire {

std::string Config::DatabaseUrl() const {
  return database.empty() ? "sqlite:" + data_dir + "/quire.db" : database;
}
std::string Config::StorageUrl() const {
  return storage.empty() ? "file:" + data_dir + "/blobs" : storage;
}
bool Config::RemoteStorage() const { return StorageUrl().rfind("s3://", 0) == 0; }
std::string Config::CacheDir() const { return cache_dir.empty() ? data_dir + "/cache" : cache_dir; }
std::string Config::ScratchDir() const { return data_dir + "/scratch"; }
std::string Config::PublicUrl() const {
  std::string url = public_url.empty() ? "http://" + listen : public_url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}
static int Cores() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 2 : static_cast<int>(n);
}
int Config::EffectiveWorkers() const { return workers < 0 ? Cores() : workers; }
int Config::EffectiveIoThreads() const { return io_threads <= 0 ? Cores() : io_threads; }

}  // namespace quire
