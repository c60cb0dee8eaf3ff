// Starts a real `quire serve` on a free loopback port with its own --data, for API tests.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "support/http_client.h"

namespace quire::test {

// A fresh temporary directory, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Bytes in the regular files below `dir` (0 when it is missing).
int64_t TreeBytes(const std::string& dir);

class QuireProcess {
 public:
  // Starts `quire serve --listen 127.0.0.1:0 --data DATA --admin-key admin --admin-secret
  // admin-secret` (the admin flags only when `seed_admin`) plus `extra` flags, and waits for
  // /healthz. With QUIRE_TEST_BACKEND=postgresql (and no --database in `extra`) the server
  // runs on a fresh database of the test PostgreSQL, the same one for every process started
  // on the same DATA.
  explicit QuireProcess(const std::string& data_dir, std::vector<std::string> extra = {},
                        bool seed_admin = true);
  ~QuireProcess();
  // Starts `quire worker --data DATA` plus `extra` (an ingest-only node; url() is empty) and
  // waits until its workers run.
  static std::unique_ptr<QuireProcess> Worker(const std::string& data_dir,
                                              std::vector<std::string> extra);

  const std::string& url() const { return url_; }
  // The --database the server runs on.
  const std::string& database_url() const { return database_url_; }
  Credentials admin() const { return {"admin", "admin-secret"}; }
  pid_t pid() const { return pid_; }
  std::string Log() const;
  // A field of /proc/PID/status in KiB ("VmRSS", "VmHWM"); -1 when unreadable.
  int64_t StatusKib(const std::string& field) const;
  // Access-log lines so far that answered `status` (not other log text that mentions it).
  int AnsweredWith(int status) const;

  // Graceful stop (SIGTERM) and wait; returns the exit status.
  int Stop();
  // SIGKILL, no goodbye.
  void Kill();

 private:
  struct WorkerTag {};
  QuireProcess(WorkerTag, const std::string& data_dir, std::vector<std::string> extra);
  void Spawn(const std::vector<std::string>& args);
  std::string data_dir_;
  std::string log_path_;
  std::string url_;
  std::string database_url_;
  pid_t pid_ = -1;
};

}  // namespace quire::test
