// The S3 server of the ctest `s3` fixture (scripts/s3-test-server.sh, real radosgw on
// loopback), as the tests see it: endpoint and keys read from QUIRE_S3_ENV_FILE, and the
// independent client (awscli) to check what Quire wrote.
#pragma once

#include <string>
#include <vector>

namespace quire::test {

struct S3TestServer {
  std::string endpoint;  // http://127.0.0.1:PORT
  std::string port;
  std::string region, access_key, secret_key, bucket, dir;
};

// The fixture's server; throws std::runtime_error (failing the test) when it is not running.
const S3TestServer& S3Server();
// Exports the server's keys as QUIRE_S3_ACCESS_KEY / QUIRE_S3_SECRET_KEY (children inherit).
void UseS3Credentials();
// A prefix no other test (or run) uses: "t/<name>-<pid>-<n>".
std::string UniqueS3Prefix(const std::string& name);
// s3://BUCKET/PREFIX?endpoint=…&region=…&path_style=1 plus `extra` ("&k=v…").
std::string S3StorageUrl(const std::string& prefix, const std::string& extra = "");
// Runs `aws --endpoint-url … ARGS` (awscli, the independent client); returns its stdout and
// sets *rc to its exit status.
std::string AwsCli(const std::vector<std::string>& args, int* rc = nullptr);
// Keys under s3://BUCKET/PREFIX as the independent client lists them (relative to PREFIX/).
std::vector<std::string> AwsListKeys(const std::string& prefix);

}  // namespace quire::test
