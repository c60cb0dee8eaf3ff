// The store contract for portal sessions, on every backend (SQLite and a real PostgreSQL):
// a session is found by its token hash until it expires, ends when signed out or when its key
// is deleted, and a new sign-in drops the sessions that expired.
#include <gtest/gtest.h>

#include "core/time_util.h"
#include "store/store.h"
#include "support/store_fixture.h"

namespace quire {
namespace {

class PortalSessionStoreTest : public test::StoreContractTest {
 protected:
  void SetUp() override {
    StoreContractTest::SetUp();
    if (HasFatalFailure()) return;
    customer_ = MakeCustomer("reader");
    ApiKey k;
    k.key = "k1";
    k.customer = customer_;
    k.salt = "s";
    k.secret_hash = "h";
    ASSERT_TRUE(store_->CreateKey(k).ok());
  }

  PortalSession Make(const std::string& hash, int64_t created, int64_t expires,
                     const std::string& key = "k1") {
    PortalSession s;
    s.token_hash = hash;
    s.customer = customer_;
    s.admin = false;
    s.key = key;
    s.csrf = "csrf-" + hash;
    s.created_ms = created;
    s.expires_ms = expires;
    return s;
  }

  int64_t customer_ = 0;
};

TEST_P(PortalSessionStoreTest, FoundUntilItExpires) {
  ASSERT_TRUE(store_->CreateSession(Make("aa", 1000, 5000)).ok());
  auto s = store_->GetSession("aa", 4999);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->customer, customer_);
  EXPECT_EQ(s->key, "k1");
  EXPECT_EQ(s->csrf, "csrf-aa");
  EXPECT_EQ(s->expires_ms, 5000);
  EXPECT_FALSE(s->admin);
  EXPECT_EQ(store_->GetSession("aa", 5000).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->GetSession("other", 2000).status().code(), Code::kNotFound);
}

TEST_P(PortalSessionStoreTest, SignOutAndKeyDeletionEndIt) {
  ASSERT_TRUE(store_->CreateSession(Make("aa", 1000, 9000)).ok());
  ASSERT_TRUE(store_->CreateSession(Make("bb", 1000, 9000)).ok());
  ASSERT_TRUE(store_->DeleteSession("aa", 2000).ok());
  EXPECT_EQ(store_->GetSession("aa", 2000).status().code(), Code::kNotFound);
  EXPECT_TRUE(store_->GetSession("bb", 2000).ok()) << "only that session ended";
  EXPECT_TRUE(store_->DeleteSession("aa", 2000).ok()) << "idempotent";
  ASSERT_TRUE(store_->DeleteKey(customer_, "k1").ok());
  EXPECT_EQ(store_->GetSession("bb", 2000).status().code(), Code::kNotFound);
}

TEST_P(PortalSessionStoreTest, ANewSignInDropsExpiredSessions) {
  ASSERT_TRUE(store_->CreateSession(Make("old", 1000, 2000)).ok());
  ASSERT_TRUE(store_->CreateSession(Make("live", 1000, 90000)).ok());
  ASSERT_TRUE(store_->CreateSession(Make("new", 3000, 90000)).ok());
  // Gone for good: even a clock that steps back does not revive it.
  EXPECT_EQ(store_->GetSession("old", 1500).status().code(), Code::kNotFound);
  EXPECT_TRUE(store_->GetSession("live", 3000).ok());
  EXPECT_TRUE(store_->GetSession("new", 3000).ok());
  EXPECT_FALSE(store_->CreateSession(Make("new", 3000, 90000)).ok()) << "token hashes are unique";
}

INSTANTIATE_TEST_SUITE_P(Stores, PortalSessionStoreTest, ::testing::ValuesIn(test::StoreBackends()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace quire
