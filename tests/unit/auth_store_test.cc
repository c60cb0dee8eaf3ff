// The store contract for access grants and auth sessions (spec/presentation-auth.md §5.2,
// §5.3), on every backend (SQLite and a real PostgreSQL): a grant's code is spent at most
// maxUses times and never after it expires; roles join one session and expire on their own;
// dropping the last role ends the session; revoking a grant ends its sessions; deleting a role
// ends its grants and session roles. Times are given, so expiry is tested without waiting.
#include <gtest/gtest.h>

#include "support/store_fixture.h"

namespace quire {
namespace {

class AuthStoreTest : public test::StoreContractTest {
 protected:
  void SetUp() override {
    StoreContractTest::SetUp();
    if (HasFatalFailure()) return;
    for (const char* name : {"library", "museum"}) customers_.push_back(MakeCustomer(name));
    c_ = customers_[0];
    AddRole(c_, "staff", 600);
    AddRole(c_, "readers", 60);
    AddRole(customers_[1], "staff", 600);
  }

  void AddRole(int64_t customer, const std::string& name, int64_t ttl_s) {
    Role r;
    r.customer = customer;
    r.name = name;
    r.label = R"({"en":["x"]})";
    r.provider = "grant";
    r.session_ttl_s = ttl_s;
    bool created = false;
    ASSERT_TRUE(store_->PutRole(r, &created).ok());
  }
  AuthGrant Grant(const std::string& id, const std::string& role, int64_t expires,
                  int64_t max_uses = 1, int64_t customer = 0) {
    AuthGrant g;
    g.id = id;
    g.customer = customer ? customer : c_;
    g.role = role;
    g.code_hash = "code-" + id;
    g.label = "label " + id;
    g.created_ms = 1000;
    g.expires_ms = expires;
    g.max_uses = max_uses;
    return g;
  }
  AuthSession Session(const std::string& name, int64_t customer = 0) {
    AuthSession s;
    s.cookie_hash = "cookie-" + name;
    s.token_hash = "token-" + name;
    s.customer = customer ? customer : c_;
    return s;
  }

  std::vector<int64_t> customers_;
  int64_t c_ = 0;
};

TEST_P(AuthStoreTest, GrantsAreStoredListedAndDeleted) {
  ASSERT_TRUE(store_->CreateAuthGrant(Grant("g1", "staff", 90000)).ok());
  AuthGrant later = Grant("g2", "staff", 90000, 3);
  later.created_ms = 2000;
  ASSERT_TRUE(store_->CreateAuthGrant(later).ok());
  EXPECT_EQ(store_->CreateAuthGrant(Grant("g3", "nobody", 90000)).code(), Code::kNotFound);
  AuthGrant dup = Grant("g4", "staff", 90000);
  dup.code_hash = "code-g1";
  EXPECT_FALSE(store_->CreateAuthGrant(dup).ok()) << "code hashes are unique";

  auto g = store_->GetAuthGrant(c_, "staff", "g2");
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(g->label, "label g2");
  EXPECT_EQ(g->max_uses, 3);
  EXPECT_EQ(g->uses, 0);
  EXPECT_EQ(g->expires_ms, 90000);
  EXPECT_EQ(store_->GetAuthGrant(c_, "readers", "g2").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->GetAuthGrant(customers_[1], "staff", "g2").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->FindAuthGrantByCode("code-g1")->id, "g1");

  PageRequest page;
  auto list = store_->ListAuthGrants(c_, "staff", page);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->total, 2);
  ASSERT_EQ(list->items.size(), 2u);
  EXPECT_EQ(list->items[0].id, "g2") << "newest first";
  EXPECT_EQ(store_->ListAuthGrants(c_, "nobody", page).status().code(), Code::kNotFound);

  ASSERT_TRUE(store_->DeleteAuthGrant(c_, "staff", "g1").ok());
  EXPECT_EQ(store_->DeleteAuthGrant(c_, "staff", "g1").code(), Code::kNotFound);
  EXPECT_EQ(store_->FindAuthGrantByCode("code-g1").status().code(), Code::kNotFound);
}

TEST_P(AuthStoreTest, ACodeIsSpentAtMostMaxUsesAndNotAfterItExpires) {
  ASSERT_TRUE(store_->CreateAuthGrant(Grant("once", "staff", 50000)).ok());
  auto used = store_->RedeemAuthGrant("code-once", c_, Session("a"), 2000);
  ASSERT_TRUE(used.ok()) << used.status().message();
  EXPECT_EQ(used->uses, 1);
  EXPECT_EQ(used->role, "staff");
  EXPECT_EQ(store_->RedeemAuthGrant("code-once", c_, Session("b"), 2000).status().code(),
            Code::kNotFound);
  EXPECT_EQ(store_->FindAuthSession("cookie-b", "").status().code(), Code::kNotFound)
      << "a refused code creates no session";

  ASSERT_TRUE(store_->CreateAuthGrant(Grant("twice", "staff", 50000, 2)).ok());
  EXPECT_TRUE(store_->RedeemAuthGrant("code-twice", 0, Session("c"), 2000).ok());
  EXPECT_EQ(store_->RedeemAuthGrant("code-twice", c_, Session("d"), 50000).status().code(),
            Code::kNotFound)
      << "expired";
  EXPECT_EQ(
      store_->RedeemAuthGrant("code-twice", customers_[1], Session("d"), 2000).status().code(),
      Code::kNotFound)
      << "another customer's code";
  EXPECT_TRUE(store_->RedeemAuthGrant("code-twice", c_, Session("d"), 3000).ok());
  EXPECT_EQ(store_->GetAuthGrant(c_, "staff", "twice")->uses, 2);
  EXPECT_EQ(store_->RedeemAuthGrant("unknown", c_, Session("e"), 2000).status().code(),
            Code::kNotFound);
}

TEST_P(AuthStoreTest, RolesJoinOneSessionAndExpireOnTheirOwn) {
  ASSERT_TRUE(store_->CreateAuthGrant(Grant("g", "staff", 900000)).ok());
  ASSERT_TRUE(store_->RedeemAuthGrant("code-g", c_, Session("s"), 10000).ok());
  ASSERT_TRUE(store_->GrantSessionRole(Session("s"), "readers", 20000).ok());
  EXPECT_EQ(store_->GrantSessionRole(Session("s"), "nobody", 20000).code(), Code::kNotFound);

  auto by_cookie = store_->FindAuthSession("cookie-s", "");
  ASSERT_TRUE(by_cookie.ok()) << by_cookie.status().message();
  EXPECT_EQ(by_cookie->customer, c_);
  EXPECT_EQ(by_cookie->token_hash, "token-s");
  ASSERT_EQ(by_cookie->roles.size(), 2u);
  EXPECT_EQ(by_cookie->roles.at("staff"), 10000 + 600 * 1000) << "sessionTtl after the grant";
  EXPECT_EQ(by_cookie->roles.at("readers"), 20000 + 60 * 1000);
  auto by_token = store_->FindAuthSession("", "token-s");
  ASSERT_TRUE(by_token.ok());
  EXPECT_EQ(by_token->cookie_hash, "cookie-s");
  EXPECT_EQ(by_token->roles, by_cookie->roles);
  EXPECT_EQ(store_->FindAuthSession("cookie-x", "").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->FindAuthSession("", "").status().code(), Code::kInvalid);

  // Not sliding: using the session does not extend a role; granting it again does.
  EXPECT_TRUE(by_cookie->HasLiveRole(80000 + 1));
  EXPECT_EQ(by_cookie->LatestExpiry(80001), 610000);
  EXPECT_FALSE(by_cookie->HasLiveRole(610000));
  ASSERT_TRUE(store_->GrantSessionRole(Session("s"), "readers", 700000).ok());
  EXPECT_EQ(store_->FindAuthSession("cookie-s", "")->roles.at("readers"), 760000);

  // A cookie of one customer never joins another customer's session.
  EXPECT_EQ(store_->GrantSessionRole(Session("s", customers_[1]), "staff", 20000).code(),
            Code::kConflict);
  EXPECT_EQ(store_->FindAuthSession("cookie-s", "")->customer, c_);
}

TEST_P(AuthStoreTest, RolesADayPastTheirExpiryAreForgottenWithTheirSessions) {
  const int64_t day = 24 * 3600 * 1000;
  ASSERT_TRUE(store_->GrantSessionRole(Session("old"), "readers", 1000).ok());  // ends 61000
  ASSERT_TRUE(store_->GrantSessionRole(Session("kept"), "readers", day).ok());
  // Within the day after expiry: still found, so that it can be told "expired".
  ASSERT_TRUE(store_->GrantSessionRole(Session("new"), "staff", 61000 + day - 1).ok());
  auto old = store_->FindAuthSession("cookie-old", "");
  ASSERT_TRUE(old.ok());
  EXPECT_FALSE(old->HasLiveRole(61000 + day - 1));
  ASSERT_TRUE(store_->GrantSessionRole(Session("new"), "staff", 61000 + day).ok());
  EXPECT_EQ(store_->FindAuthSession("cookie-old", "").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->FindAuthSession("", "token-old").status().code(), Code::kNotFound);
  EXPECT_TRUE(store_->FindAuthSession("cookie-kept", "").ok());
  EXPECT_TRUE(store_->FindAuthSession("cookie-new", "").ok());
}

TEST_P(AuthStoreTest, DroppingTheLastRoleEndsTheSession) {
  ASSERT_TRUE(store_->GrantSessionRole(Session("s"), "staff", 1000).ok());
  ASSERT_TRUE(store_->GrantSessionRole(Session("s"), "readers", 1000).ok());
  auto left = store_->DropSessionRole("cookie-s", "readers");
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(*left, 1);
  EXPECT_EQ(store_->FindAuthSession("cookie-s", "")->roles.count("readers"), 0u);
  left = store_->DropSessionRole("cookie-s", "staff");
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(*left, 0);
  EXPECT_EQ(store_->FindAuthSession("cookie-s", "").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->FindAuthSession("", "token-s").status().code(), Code::kNotFound)
      << "the token is void";
  EXPECT_EQ(*store_->DropSessionRole("cookie-s", "staff"), 0) << "idempotent";
}

TEST_P(AuthStoreTest, RevokingAGrantEndsItsSessions) {
  ASSERT_TRUE(store_->CreateAuthGrant(Grant("g", "staff", 900000, 2)).ok());
  ASSERT_TRUE(store_->RedeemAuthGrant("code-g", c_, Session("a"), 1000).ok());
  ASSERT_TRUE(store_->GrantSessionRole(Session("a"), "readers", 1000).ok());
  ASSERT_TRUE(store_->RedeemAuthGrant("code-g", c_, Session("b"), 1000).ok());
  ASSERT_TRUE(store_->GrantSessionRole(Session("c"), "staff", 1000).ok());  // a clickthrough
  ASSERT_TRUE(store_->DeleteAuthGrant(c_, "staff", "g").ok());
  EXPECT_EQ(store_->FindAuthSession("cookie-a", "").status().code(), Code::kNotFound)
      << "the whole session ends";
  EXPECT_EQ(store_->FindAuthSession("cookie-b", "").status().code(), Code::kNotFound);
  EXPECT_TRUE(store_->FindAuthSession("cookie-c", "").ok()) << "not opened by the grant";
}

TEST_P(AuthStoreTest, DeletingARoleEndsItsGrantsAndSessionRoles) {
  ASSERT_TRUE(store_->CreateAuthGrant(Grant("g", "staff", 900000, 5)).ok());
  ASSERT_TRUE(store_->CreateAuthGrant(Grant("m", "staff", 900000, 5, customers_[1])).ok());
  ASSERT_TRUE(store_->RedeemAuthGrant("code-g", c_, Session("a"), 1000).ok());
  ASSERT_TRUE(store_->GrantSessionRole(Session("a"), "readers", 1000).ok());
  ASSERT_TRUE(store_->GrantSessionRole(Session("b"), "staff", 1000).ok());
  ASSERT_TRUE(store_->RedeemAuthGrant("code-m", 0, Session("m", customers_[1]), 1000).ok());
  ASSERT_TRUE(store_->DeleteRole(c_, "staff").ok());
  EXPECT_EQ(store_->FindAuthGrantByCode("code-g").status().code(), Code::kNotFound);
  auto a = store_->FindAuthSession("cookie-a", "");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->roles.size(), 1u);
  EXPECT_EQ(a->roles.count("readers"), 1u);
  EXPECT_EQ(store_->FindAuthSession("cookie-b", "").status().code(), Code::kNotFound);
  // The other customer's role of the same name is untouched.
  EXPECT_TRUE(store_->FindAuthGrantByCode("code-m").ok());
  EXPECT_EQ(store_->FindAuthSession("cookie-m", "")->roles.count("staff"), 1u);
}

INSTANTIATE_TEST_SUITE_P(Stores, AuthStoreTest, ::testing::ValuesIn(test::StoreBackends()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace quire
