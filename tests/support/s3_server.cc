#include "support/s3_server.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace quire::test {

const S3TestServer& S3Server() {
  static const S3TestServer server = [] {
    std::ifstream in(QUIRE_S3_ENV_FILE);
    if (!in) {
      throw std::runtime_error(std::string("the S3 test server is not running (no ") +
                               QUIRE_S3_ENV_FILE + "; the s3_server_start fixture failed?)");
    }
    std::map<std::string, std::string> env;
    std::string line;
    while (std::getline(in, line)) {
      size_t eq = line.find('=');
      if (eq == std::string::npos) continue;
      std::string v = line.substr(eq + 1);
      if (v.size() >= 2 && v.front() == '"') v = v.substr(1, v.size() - 2);
      env[line.substr(0, eq)] = v;
    }
    S3TestServer s;
    s.endpoint = env["S3_ENDPOINT"];
    s.port = s.endpoint.substr(s.endpoint.rfind(':') + 1);
    s.region = env["S3_REGION"];
    s.access_key = env["S3_ACCESS_KEY"];
    s.secret_key = env["S3_SECRET_KEY"];
    s.bucket = env["S3_BUCKET"];
    s.dir = env["S3_DIR"];
    if (s.endpoint.empty() || s.bucket.empty()) throw std::runtime_error("bad S3 env file");
    return s;
  }();
  return server;
}

void UseS3Credentials() {
  const S3TestServer& s = S3Server();
  setenv("QUIRE_S3_ACCESS_KEY", s.access_key.c_str(), 1);
  setenv("QUIRE_S3_SECRET_KEY", s.secret_key.c_str(), 1);
}

std::string UniqueS3Prefix(const std::string& name) {
  static std::atomic<int> n{0};
  return "t/" + name + "-" + std::to_string(::getpid()) + "-" + std::to_string(::time(nullptr)) +
         "-" + std::to_string(n++);
}

std::string S3StorageUrl(const std::string& prefix, const std::string& extra) {
  const S3TestServer& s = S3Server();
  return "s3://" + s.bucket + "/" + prefix + "?endpoint=" + s.endpoint + "&region=" + s.region +
         "&path_style=1" + extra;
}

std::string AwsCli(const std::vector<std::string>& args, int* rc) {
  const S3TestServer& s = S3Server();
  int out[2];
  if (pipe(out) != 0) throw std::runtime_error("pipe failed");
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    setenv("AWS_ACCESS_KEY_ID", s.access_key.c_str(), 1);
    setenv("AWS_SECRET_ACCESS_KEY", s.secret_key.c_str(), 1);
    setenv("AWS_DEFAULT_REGION", s.region.c_str(), 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    setenv("AWS_CONFIG_FILE", "/dev/null", 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null", 1);
    std::vector<std::string> all = {"aws", "--endpoint-url", s.endpoint};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp("aws", argv.data());
    _exit(127);
  }
  close(out[1]);
  std::string text;
  char buf[65536];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof buf)) > 0) text.append(buf, size_t(n));
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  if (rc) *rc = code;
  return text;
}

std::vector<std::string> AwsListKeys(const std::string& prefix) {
  int rc = 0;
  std::string out = AwsCli({"s3api", "list-objects-v2", "--bucket", S3Server().bucket, "--prefix",
                            prefix + "/", "--output", "json"},
                           &rc);
  if (rc != 0) throw std::runtime_error("aws list-objects-v2 failed: " + out);
  std::vector<std::string> keys;
  if (out.empty()) return keys;
  auto j = nlohmann::json::parse(out);
  for (auto& o : j.value("Contents", nlohmann::json::array()))
    keys.push_back(o["Key"].get<std::string>().substr(prefix.size() + 1));
  return keys;
}

}  // namespace quire::test
