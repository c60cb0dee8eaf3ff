#include "support/store_fixture.h"

namespace quire::test {

void StoreContractTest::SetUp() {
  auto url = FreshDatabaseUrl(GetParam(), dir_.path());
  ASSERT_TRUE(url.ok()) << url.status().message();
  auto s = OpenStore(*url);
  ASSERT_TRUE(s.ok()) << s.status().message();
  store_ = std::move(s).value();
  Status migrated = store_->Migrate();
  ASSERT_TRUE(migrated.ok()) << migrated.message();
}

int64_t StoreContractTest::MakeCustomer(const std::string& name) {
  Customer c;
  c.name = name;
  c.display_name = name;
  auto made = store_->CreateCustomer(c);
  EXPECT_TRUE(made.ok()) << made.status().message();
  return made.ok() ? made->id : 0;
}

int64_t StoreContractTest::MakeSpace(int64_t customer, const std::string& name) {
  Space s;
  s.customer = customer;
  s.name = name;
  auto made = store_->CreateSpace(s);
  EXPECT_TRUE(made.ok()) << made.status().message();
  return made.ok() ? made->id : 0;
}

}  // namespace quire::test
