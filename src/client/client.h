// `quire client`: submit files, folders or a CSV of origins to a Quire (or DLCS) over its public
// HTTP API and show the progress live; watch a batch; retry a batch's failures. Exit status:
// 0 when every image completed, 1 when some failed, 2 on usage or connection errors (wrong
// credentials, unknown space, a server that does not answer), 130 when interrupted (Ctrl-C).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "client/api_client.h"

namespace quire::client {

enum class OutputMode { kAuto, kJson, kPlain };

struct ClientOptions {
  Endpoint endpoint;
  std::string customer;  // id or name; empty: from GET / with the key (Quire)
  int64_t space = 0;
  std::vector<std::string> paths;
  std::string csv;
  int jobs = 4;           // parallel uploads
  int retries = 4;        // extra tries of a transient failure
  int64_t limit_rate = 0;  // bytes per second per upload; 0 = unlimited
  bool priority = false;   // the priority queue
  OutputMode output = OutputMode::kAuto;
  // How the person ran the command (the secret masked), for "run again to resume".
  std::string command_line;
};

int RunSubmit(const ClientOptions& options);
int RunWatch(const ClientOptions& options, const std::string& batch_url);
int RunRetry(const ClientOptions& options, const std::string& batch_url);

}  // namespace quire::client
