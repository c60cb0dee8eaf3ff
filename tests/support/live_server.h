// Shared by the API tests: one `quire serve --workers 0` per test suite (nothing is ingested,
// so states stay as the test leaves them), and the check of spec §1's error body.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "support/http_client.h"
#include "support/quire_process.h"

namespace quire::test {

// Asserts `r` is an error with `status` and the Hydra/RFC 7807 body of spec §1.
void ExpectHydraError(const HttpResult& r, long status);

class LiveServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    server_ = new QuireProcess(dir_->path() + "/data", {"--workers", "0"});
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
    server_ = nullptr;
    dir_ = nullptr;
  }
  static std::string U(const std::string& path) { return server_->url() + path; }
  static Credentials Admin() { return server_->admin(); }
  static std::string DataDir() { return dir_->path() + "/data"; }
  static std::string DatabaseUrl() { return server_->database_url(); }

  static inline TempDir* dir_ = nullptr;
  static inline QuireProcess* server_ = nullptr;
};

}  // namespace quire::test
