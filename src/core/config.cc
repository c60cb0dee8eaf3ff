#include "core/config.h"

#include <thread>

namespace quire {

std::string Config::DatabaseUrl() const {
  return database.empty() ? "sqlite:" + data_dir + "/quire.db" : database;
}
std::string Config::StorageUrl() const {
  return storage.empty() ? "file:" + data_dir + "/blobs" : storage;
}
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
