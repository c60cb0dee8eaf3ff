// A small blocking HTTP client over libcurl for tests: real HTTP over loopback.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace quire::test {

struct HttpResult {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names lower case
  nlohmann::json Json() const;                 // discarded value when not JSON
  std::string Header(const std::string& name) const;
};

struct Credentials {
  std::string key, secret;
  bool empty() const { return key.empty(); }
};

HttpResult Http(const std::string& method, const std::string& url, const std::string& body = "",
                const Credentials& auth = {},
                const std::map<std::string, std::string>& headers = {});

}  // namespace quire::test
