#include "support/live_server.h"

namespace quire::test {

void ExpectHydraError(const HttpResult& r, long status) {
  EXPECT_EQ(r.status, status) << r.body;
  auto j = r.Json();
  ASSERT_TRUE(j.is_object()) << r.body;
  EXPECT_EQ(j["@type"], "Error");
  EXPECT_EQ(j["statusCode"], status);
  EXPECT_EQ(j["status"], status);
  EXPECT_TRUE(j["title"].is_string());
  ASSERT_TRUE(j["detail"].is_string());
  EXPECT_FALSE(j["detail"].get<std::string>().empty());
  EXPECT_EQ(j["detail"], j["description"]);
  ASSERT_TRUE(j["instance"].is_string());
  EXPECT_EQ(j["instance"].get<std::string>().rfind("http", 0), 0u) << "instance is absolute";
}

}  // namespace quire::test
