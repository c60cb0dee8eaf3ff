#include "support/quire_process.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "support/test_database.h"

namespace quire::test {

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "quire-test-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

int64_t TreeBytes(const std::string& dir) {
  int64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code e2;
    if (it->is_regular_file(e2)) total += static_cast<int64_t>(it->file_size(e2));
  }
  return total;
}

QuireProcess::QuireProcess(const std::string& data_dir, std::vector<std::string> extra,
                           bool seed_admin)
    : data_dir_(data_dir) {
  std::filesystem::create_directories(data_dir);
  log_path_ = data_dir + "/quire-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) + ".log";
  std::vector<std::string> args = {QUIRE_BINARY, "serve", "--listen", "127.0.0.1:0", "--data",
                                   data_dir};
  if (seed_admin)
    args.insert(args.end(), {"--admin-key", "admin", "--admin-secret", "admin-secret"});
  args.insert(args.end(), extra.begin(), extra.end());
  database_url_ = "sqlite:" + data_dir + "/quire.db";
  for (size_t i = 0; i + 1 < extra.size(); ++i)
    if (extra[i] == "--database") database_url_ = extra[i + 1];
  const char* backend = std::getenv("QUIRE_TEST_BACKEND");
  bool explicit_db = std::find(extra.begin(), extra.end(), "--database") != extra.end();
  if (backend != nullptr && std::string(backend) == "postgresql" && !explicit_db) {
    // Remembered beside DATA, so that a restart on the same DATA finds its database again.
    std::string remembered = data_dir + ".database";
    std::ifstream in(remembered);
    if (!std::getline(in, database_url_) || database_url_.empty()) {
      auto fresh = FreshDatabaseUrl("postgresql", data_dir);
      if (!fresh.ok()) throw std::runtime_error(fresh.status().message());
      database_url_ = *fresh;
      std::ofstream(remembered) << database_url_ << "\n";
    }
    args.insert(args.end(), {"--database", database_url_});
  }
  Spawn(args);
  // The server logs "quire listening on HOST:PORT" once it accepts connections.
  std::regex listening("listening on 127\\.0\\.0\\.1:([0-9]+)");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::smatch m;
    std::string log = Log();
    if (std::regex_search(log, m, listening)) {
      url_ = "http://127.0.0.1:" + m[1].str();
      if (Http("GET", url_ + "/healthz").status == 200) return;
    }
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("quire exited during start-up:\n" + log);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw std::runtime_error("quire did not become ready:\n" + Log());
}

std::unique_ptr<QuireProcess> QuireProcess::Worker(const std::string& data_dir,
                                                   std::vector<std::string> extra) {
  return std::unique_ptr<QuireProcess>(new QuireProcess(WorkerTag{}, data_dir, std::move(extra)));
}

QuireProcess::QuireProcess(WorkerTag, const std::string& data_dir, std::vector<std::string> extra)
    : data_dir_(data_dir) {
  std::filesystem::create_directories(data_dir);
  log_path_ = data_dir + "/quire-worker-" +
              std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) + ".log";
  std::vector<std::string> args = {QUIRE_BINARY, "worker", "--data", data_dir};
  args.insert(args.end(), extra.begin(), extra.end());
  for (size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == "--database") database_url_ = args[i + 1];
  Spawn(args);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::string log = Log();
    if (log.find("quire worker running") != std::string::npos) return;
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("quire worker exited during start-up:\n" + log);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw std::runtime_error("quire worker did not start:\n" + Log());
}

void QuireProcess::Spawn(const std::vector<std::string>& args_in) {
  std::vector<std::string> args = args_in;
  pid_ = fork();
  if (pid_ == 0) {
    int fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
}

QuireProcess::~QuireProcess() {
  if (pid_ > 0) Kill();
}

std::string QuireProcess::Log() const {
  std::ifstream f(log_path_);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

int64_t QuireProcess::StatusKib(const std::string& field) const {
  std::ifstream f("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  return -1;
}

int QuireProcess::AnsweredWith(int status) const {
  // "... info GET /path 200 123 45us rid=..." (the text log format)
  std::regex line(" [A-Z]+ \\S+ " + std::to_string(status) + " [0-9]+ [0-9]+us");
  std::string log = Log();
  return static_cast<int>(std::distance(std::sregex_iterator(log.begin(), log.end(), line),
                                        std::sregex_iterator()));
}

int QuireProcess::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void QuireProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

}  // namespace quire::test
