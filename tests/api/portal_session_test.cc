// Portal sign-in over real HTTP (spec/platform.md §5): the session cookie and its flags, the
// CSRF rule for state-changing cookie requests, the customer boundary, sign-out ending the
// session for good, and the portal's files served at /portal/ by the same process.
#include <gtest/gtest.h>

#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/quire_process.h"

namespace quire::test {
namespace {

using json = nlohmann::json;

struct Session {
  std::string cookie;  // "quire_session=…", as a browser sends it
  std::string csrf;
  json body;
};

class PortalSessionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    server_ = new QuireProcess(dir_->path() + "/data", {"--workers", "0"});
    Api admin{server_->url(), server_->admin()};
    customer_ = admin.CreateCustomer("portal-customer");
    other_ = admin.CreateCustomer("portal-other");
    HttpResult k = Http("POST", Url("/customers/" + std::to_string(customer_) + "/keys"), "",
                        server_->admin());
    ASSERT_EQ(k.status, 201) << k.body;
    key_ = {k.Json()["key"], k.Json()["secret"]};
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }
  static std::string Url(const std::string& path) { return server_->url() + path; }
  static std::string C(int64_t c) { return "/customers/" + std::to_string(c); }

  static Session SignIn(const Credentials& cred, std::string* set_cookie = nullptr) {
    HttpResult r = Http("POST", Url("/portal/session"),
                        json{{"key", cred.key}, {"secret", cred.secret}}.dump(), {},
                        {{"Content-Type", "application/json"}});
    EXPECT_EQ(r.status, 201) << r.body;
    std::string sc = r.Header("set-cookie");
    if (set_cookie) *set_cookie = sc;
    Session s;
    s.cookie = sc.substr(0, sc.find(';'));
    s.body = r.Json();
    s.csrf = s.body.value("csrfToken", "");
    return s;
  }
  // A request as the portal's page (or a forged one) makes it: cookie, optional CSRF header.
  static HttpResult WithCookie(const std::string& method, const std::string& path, const Session& s,
                               const std::string& body = "", const std::string& csrf = "") {
    std::map<std::string, std::string> h = {{"Cookie", s.cookie},
                                            {"Content-Type", "application/json"}};
    if (!csrf.empty()) h["X-CSRF-Token"] = csrf;
    return Http(method, Url(path), body, {}, h);
  }

  static TempDir* dir_;
  static QuireProcess* server_;
  static int64_t customer_, other_;
  static Credentials key_;
};
TempDir* PortalSessionTest::dir_ = nullptr;
QuireProcess* PortalSessionTest::server_ = nullptr;
int64_t PortalSessionTest::customer_ = 0;
int64_t PortalSessionTest::other_ = 0;
Credentials PortalSessionTest::key_;

TEST_F(PortalSessionTest, SignInSetsAStrictHttpOnlyExpiringCookie) {
  std::string set_cookie;
  Session s = SignIn(key_, &set_cookie);
  EXPECT_EQ(s.cookie.rfind("quire_session=", 0), 0u) << set_cookie;
  EXPECT_GT(s.cookie.size(), std::string("quire_session=").size() + 32);
  EXPECT_NE(set_cookie.find("; HttpOnly"), std::string::npos) << set_cookie;
  EXPECT_NE(set_cookie.find("; SameSite=Strict"), std::string::npos) << set_cookie;
  EXPECT_NE(set_cookie.find("; Path=/"), std::string::npos) << set_cookie;
  EXPECT_NE(set_cookie.find("; Max-Age=43200"), std::string::npos) << set_cookie;
  EXPECT_EQ(set_cookie.find("Secure"), std::string::npos) << "plain http: " << set_cookie;
  EXPECT_EQ(s.body["customerId"], customer_);
  EXPECT_EQ(s.body["admin"], false);
  EXPECT_EQ(s.body["customerName"], "portal-customer");
  EXPECT_GE(s.csrf.size(), 32u);
  EXPECT_EQ(s.body["expires"].get<std::string>().back(), 'Z');

  // A reloaded page finds its session (and CSRF token) again.
  HttpResult cur = WithCookie("GET", "/portal/session", s);
  ASSERT_EQ(cur.status, 200) << cur.body;
  EXPECT_EQ(cur.Json()["signedIn"], true);
  EXPECT_EQ(cur.Json()["csrfToken"], s.csrf);
  EXPECT_EQ(cur.Header("cache-control"), "no-store");
  HttpResult none = Http("GET", Url("/portal/session"));
  ASSERT_EQ(none.status, 200) << none.body;
  EXPECT_EQ(none.Json()["signedIn"], false);
}

TEST_F(PortalSessionTest, WrongCredentialsAndBadBodiesAreRefusedWithoutACookie) {
  HttpResult r =
      Http("POST", Url("/portal/session"), json{{"key", key_.key}, {"secret", "wrong"}}.dump());
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_TRUE(r.Header("set-cookie").empty());
  EXPECT_EQ(r.Json()["detail"], "invalid key or secret");
  r = Http("POST", Url("/portal/session"), json{{"key", key_.key}}.dump());
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.Json()["detail"], "\"secret\" must be a non-empty string");
  r = Http("POST", Url("/portal/session"), "{not json");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_TRUE(r.Header("set-cookie").empty());
  // The portal's own calls get no Basic challenge (a browser would pop up a login box).
  r = Http("GET", Url(C(customer_) + "/spaces"), "", {}, {{"X-Quire-Portal", "1"}});
  EXPECT_EQ(r.status, 401);
  EXPECT_TRUE(r.Header("www-authenticate").empty());
  r = Http("GET", Url(C(customer_) + "/spaces"));
  EXPECT_EQ(r.status, 401);
  EXPECT_FALSE(r.Header("www-authenticate").empty());
}

TEST_F(PortalSessionTest, CookieActsForItsCustomerOnlyAndChangesNeedTheCsrfToken) {
  Session s = SignIn(key_);
  EXPECT_EQ(WithCookie("GET", C(customer_) + "/spaces", s).status, 200);
  EXPECT_EQ(WithCookie("GET", C(other_) + "/spaces", s).status, 404);
  EXPECT_EQ(WithCookie("GET", "/customers", s).status, 403);

  std::string body = json{{"name", "by-cookie"}}.dump();
  // A cross-site form or script has the cookie (were it sent) but not the token.
  HttpResult forged = WithCookie("POST", C(customer_) + "/spaces", s, body);
  EXPECT_EQ(forged.status, 403) << forged.body;
  EXPECT_EQ(forged.Json()["detail"],
            "a request signed in by the portal's cookie must carry its X-CSRF-Token header");
  HttpResult wrong = WithCookie("POST", C(customer_) + "/spaces", s, body, "0123456789abcdef");
  EXPECT_EQ(wrong.status, 403) << wrong.body;
  Session other_session = SignIn(key_);
  HttpResult swapped = WithCookie("POST", C(customer_) + "/spaces", s, body, other_session.csrf);
  EXPECT_EQ(swapped.status, 403) << "a token belongs to its own session";
  Api admin{server_->url(), server_->admin()};
  EXPECT_EQ(admin.All(Url(C(customer_) + "/spaces")).size(), 0u) << "nothing was created";

  HttpResult ok = WithCookie("POST", C(customer_) + "/spaces", s, body, s.csrf);
  EXPECT_EQ(ok.status, 201) << ok.body;
  // Basic auth needs no CSRF token: scripts are not browsers.
  HttpResult basic =
      Http("POST", Url(C(customer_) + "/spaces"), json{{"name", "by-basic"}}.dump(), key_);
  EXPECT_EQ(basic.status, 201) << basic.body;
}

TEST_F(PortalSessionTest, AdminSessionReachesEveryCustomer) {
  Session s = SignIn(server_->admin());
  EXPECT_EQ(s.body["admin"], true);
  EXPECT_EQ(WithCookie("GET", "/customers", s).status, 200);
  EXPECT_EQ(WithCookie("GET", C(other_) + "/spaces", s).status, 200);
  HttpResult made =
      WithCookie("POST", C(other_) + "/spaces", s, json{{"name", "admin-made"}}.dump(), s.csrf);
  EXPECT_EQ(made.status, 201) << made.body;
}

TEST_F(PortalSessionTest, SignOutEndsTheSessionForGood) {
  Session s = SignIn(key_);
  // Signing out is a state change too.
  EXPECT_EQ(WithCookie("DELETE", "/portal/session", s).status, 403);
  EXPECT_EQ(WithCookie("GET", C(customer_) + "/spaces", s).status, 200);
  HttpResult out = WithCookie("DELETE", "/portal/session", s, "", s.csrf);
  EXPECT_EQ(out.status, 204) << out.body;
  EXPECT_NE(out.Header("set-cookie").find("Max-Age=0"), std::string::npos);
  HttpResult after = WithCookie("GET", C(customer_) + "/spaces", s);
  EXPECT_EQ(after.status, 401) << after.body;
  EXPECT_EQ(after.Json()["detail"], "the portal session has ended; sign in again");
  EXPECT_EQ(
      WithCookie("POST", C(customer_) + "/spaces", s, json{{"name", "late"}}.dump(), s.csrf).status,
      401);
  EXPECT_EQ(WithCookie("GET", "/portal/session", s).Json()["signedIn"], false);
}

TEST_F(PortalSessionTest, RevokingTheKeyEndsItsSessions) {
  HttpResult k = Http("POST", Url(C(customer_) + "/keys"), "", server_->admin());
  ASSERT_EQ(k.status, 201);
  Credentials cred{k.Json()["key"], k.Json()["secret"]};
  Session s = SignIn(cred);
  EXPECT_EQ(WithCookie("GET", C(customer_) + "/spaces", s).status, 200);
  ASSERT_EQ(Http("DELETE", Url(C(customer_) + "/keys/" + cred.key), "", server_->admin()).status,
            204);
  EXPECT_EQ(WithCookie("GET", C(customer_) + "/spaces", s).status, 401);
}

TEST_F(PortalSessionTest, PortalFilesAreServedByTheSameProcess) {
  HttpResult root = Http("GET", Url("/portal/"));
  ASSERT_EQ(root.status, 200) << root.body;
  EXPECT_EQ(root.Header("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(root.body.find("<script type=\"module\" src=\"/portal/app.js\">"), std::string::npos);
  EXPECT_NE(root.Header("content-security-policy").find("default-src 'self'"), std::string::npos);
  EXPECT_EQ(root.Header("x-frame-options"), "DENY");
  // A page URL reloads the application itself.
  HttpResult page = Http("GET", Url("/portal/customers/2/batches/17"));
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.body, root.body);
  HttpResult js = Http("GET", Url("/portal/app.js"));
  EXPECT_EQ(js.status, 200);
  EXPECT_EQ(js.Header("content-type"), "text/javascript; charset=utf-8");
  HttpResult osd = Http("GET", Url("/portal/vendor/openseadragon/openseadragon.min.js"));
  EXPECT_EQ(osd.status, 200) << "OpenSeadragon is copied from npm at build time";
  EXPECT_GT(osd.body.size(), 100000u);
  EXPECT_EQ(Http("GET", Url("/portal/missing.js")).status, 404);
  EXPECT_EQ(Http("GET", Url("/portal/%2e%2e/%2e%2e/etc/passwd.txt")).status, 404);
  HttpResult bare = Http("GET", Url("/portal"));
  EXPECT_EQ(bare.status, 301);
  EXPECT_EQ(bare.Header("location"), "/portal/");
  EXPECT_EQ(Http("POST", Url("/portal/app.js")).status, 405);
}

}  // namespace
}  // namespace quire::test
