// IIIF Authorization Flow 2.0 (and Authentication 1.0 on 2.1 info.json) against a live
// `quire serve` over real HTTP (spec/presentation-auth.md §5.2–§5.5): one test per check
// §6.13–§6.22, plus the pages' escaping and the caches. The fixture is §6's, on customers and
// spaces this server numbers itself: `a` 4000×3000 with role `staff` (grant) and
// maxUnauthorised 400; `b1` with role `other` only. Real ingest, real pixels decoded.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "access/access_control.h"
#include "core/vips_init.h"
#include "http/message.h"
#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/quire_process.h"
#include "support/test_database.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kAuth2 = "http://iiif.io/api/auth/2/context.json";

class AuthFlowTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(quire::InitVips());
    dir_ = new TempDir();
    std::string origins = dir_->path() + "/origins";
    std::filesystem::create_directories(origins);
    std::ofstream(origins + "/a.jpg", std::ios::binary) << MakeJpeg(4000, 3000, 7);
    std::ofstream(origins + "/b.jpg", std::ios::binary) << MakeJpeg(800, 600, 3);
    server_ =
        new QuireProcess(dir_->path() + "/data", {"--workers", "1", "--origin-file-root", origins});
    api_ = new Api{server_->url(), server_->admin()};
    customer_ = api_->CreateCustomer("acme");
    space_ = api_->CreateSpace(customer_, "books");
    auto member = [&](const std::string& id, const std::string& file) {
      json m = Member(space_, id, "file://" + origins + "/" + file, "image/jpeg");
      m["deliveryChannels"] = json::array({json{{"channel", "iiif-img"}, {"policy", "default"}},
                                           json{{"channel", "thumbs"}, {"policy", "default"}},
                                           json{{"channel", "file"}, {"policy", "none"}}});
      return m;
    };
    long status = 0;
    json batch = api_->SubmitBatch(
        customer_, json::array({member("a", "a.jpg"), member("b1", "b.jpg")}), &status);
    ASSERT_EQ(status, 201) << batch.dump(2);
    json done = api_->WaitForBatch(customer_, batch.at("id"), 120s);
    ASSERT_EQ(done.value("completed", 0), 2) << done.dump(2) << server_->Log();
    PutRole("staff", {{"provider", "grant"}, {"label", "Staff"}});
    PutRole("other", {{"label", "Others"}, {"heading", "Others only"}});
    Patch("a", {{"roles", {RoleUri("staff")}}, {"maxUnauthorised", 400}});
    Patch("b1", {{"roles", {RoleUri("other")}}, {"maxUnauthorised", -1}});
  }
  static void TearDownTestSuite() {
    delete api_;
    delete server_;
    delete dir_;
    api_ = nullptr;
    server_ = nullptr;
  }

  static std::string C() { return std::to_string(customer_); }
  static std::string P() { return server_->url(); }
  static std::string Roles() { return P() + "/customers/" + C() + "/roles"; }
  static std::string RoleUri(const std::string& r) { return Roles() + "/" + r; }
  static std::string Access() { return P() + "/auth/v2/access/" + C(); }
  static std::string Img(const std::string& id) {
    return "/" + C() + "/" + std::to_string(space_) + "/" + id;
  }
  static std::string Probe(const std::string& id) { return P() + "/auth/v2/probe" + Img(id); }

  static HttpResult PutRole(const std::string& name, const json& body) {
    HttpResult r = Http("PUT", RoleUri(name), body.dump(), server_->admin());
    EXPECT_TRUE(r.status == 200 || r.status == 201) << r.body;
    return r;
  }
  static void Patch(const std::string& id, const json& body) {
    HttpResult r = Http(
        "PATCH", P() + "/customers/" + C() + "/spaces/" + std::to_string(space_) + "/images/" + id,
        body.dump(), server_->admin());
    ASSERT_EQ(r.status, 200) << r.body;
  }
  static HttpResult Get(const std::string& path_or_url,
                        const std::map<std::string, std::string>& headers = {}) {
    std::string url = path_or_url.rfind("http", 0) == 0 ? path_or_url : P() + path_or_url;
    return Http("GET", url, "", {}, headers);
  }
  static HttpResult Post(const std::string& url, const std::string& form,
                         const std::map<std::string, std::string>& headers = {}) {
    auto h = headers;
    h["Content-Type"] = "application/x-www-form-urlencoded";
    return Http("POST", url, form, {}, h);
  }
  // The cookie value a Set-Cookie of ours carries ("" when none or deleted).
  static std::string CookieOf(const HttpResult& r) {
    std::string set = r.Header("set-cookie");
    std::string name = "quire-auth-" + C() + "=";
    if (set.rfind(name, 0) != 0) return "";
    return set.substr(name.size(), set.find(';') - name.size());
  }
  static std::map<std::string, std::string> WithCookie(const std::string& cookie) {
    return {{"Cookie", "quire-auth-" + C() + "=" + cookie}};
  }
  static json NewGrant(const std::string& role, const json& body = json::object()) {
    HttpResult r = Http("POST", RoleUri(role) + "/grants", body.dump(), server_->admin());
    EXPECT_EQ(r.status, 201) << r.body;
    return r.Json();
  }
  // A fresh staff session: a grant's code redeemed on the access page. Returns the cookie.
  static std::string StaffCookie(json* grant = nullptr) {
    json g = NewGrant("staff");
    if (grant) *grant = g;
    HttpResult r =
        Post(Access() + "/staff?origin=https://v.example", "code=" + g["code"].get<std::string>());
    EXPECT_EQ(r.status, 200) << r.body;
    std::string cookie = CookieOf(r);
    EXPECT_EQ(cookie.size(), 64u) << r.Header("set-cookie");
    return cookie;
  }
  // The message a token page posts, and the target origin it posts to.
  static json PostedMessage(const HttpResult& page, std::string* target = nullptr) {
    const std::string& b = page.body;
    size_t start = b.find("window.parent.postMessage(");
    if (start == std::string::npos) {
      ADD_FAILURE() << "no postMessage in " << b;
      return json();
    }
    start += std::strlen("window.parent.postMessage(");
    std::string args = b.substr(start, b.find(");", start) - start);
    size_t split = args.rfind("}, ");
    if (target) *target = json::parse(args.substr(split + 3), nullptr, false).get<std::string>();
    return json::parse(args.substr(0, split + 1), nullptr, false);
  }
  static std::string TokenOf(const std::string& cookie) {
    HttpResult page =
        Get(Access() + "/token?messageId=t&origin=https://v.example", WithCookie(cookie));
    json msg = PostedMessage(page);
    EXPECT_EQ(msg["type"], "AuthAccessToken2") << page.body;
    return msg.value("accessToken", "");
  }
  static std::map<std::string, std::string> Bearer(const std::string& token) {
    return {{"Authorization", "Bearer " + token}};
  }

  static inline TempDir* dir_ = nullptr;
  static inline QuireProcess* server_ = nullptr;
  static inline Api* api_ = nullptr;
  static inline int64_t customer_ = 0, space_ = 0;
};

// §6.13: a grant role; the image carries its URI and maxUnauthorised 400.
TEST_F(AuthFlowTest, Check13_GrantRoleOnTheImage) {
  HttpResult removed = Http("DELETE", RoleUri("staff"), "", server_->admin());
  EXPECT_EQ(removed.status, 204) << removed.body;
  HttpResult made = Http("PUT", RoleUri("staff"),
                         json{{"provider", "grant"}, {"label", "Staff"}}.dump(), server_->admin());
  ASSERT_EQ(made.status, 201) << made.body;
  EXPECT_EQ(made.Json()["@id"], RoleUri("staff"));
  EXPECT_EQ(made.Json()["provider"], "grant");
  EXPECT_EQ(made.Json()["grants"], RoleUri("staff") + "/grants");
  Patch("a", {{"roles", {RoleUri("staff")}}, {"maxUnauthorised", 400}});
  json image = api_->Image(customer_, space_, "a");
  EXPECT_EQ(image["roles"], json::array({RoleUri("staff")})) << image.dump();
  EXPECT_EQ(image["maxUnauthorised"], 400);
  // Role fields of the flow, validated.
  EXPECT_EQ(Http("PUT", RoleUri("bad"), json{{"label", "x"}, {"provider", "kiosk"}}.dump(),
                 server_->admin())
                .status,
            400);
  EXPECT_EQ(Http("GET", RoleUri("bad"), "", server_->admin()).status, 404);
}

// §6.14: v3 info.json names the probe, the access service (active) with token and logout.
TEST_F(AuthFlowTest, Check14_V3InfoJsonCarriesTheProbeService) {
  HttpResult r = Get("/iiif-img" + Img("a") + "/info.json");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("cache-control").rfind("public", 0), 0u);
  json j = r.Json();
  ASSERT_TRUE(j["@context"].is_array()) << j.dump();
  EXPECT_EQ(j["@context"][0], kAuth2);
  EXPECT_EQ(j["@context"][1], "http://iiif.io/api/image/3/context.json");
  ASSERT_EQ(j["service"].size(), 1u) << j.dump();
  json probe = j["service"][0];
  EXPECT_EQ(probe["id"], Probe("a"));
  EXPECT_EQ(probe["type"], "AuthProbeService2");
  ASSERT_EQ(probe["service"].size(), 1u);
  json access = probe["service"][0];
  EXPECT_EQ(access["id"], Access() + "/staff");
  EXPECT_EQ(access["type"], "AuthAccessService2");
  EXPECT_EQ(access["profile"], "active");
  EXPECT_EQ(access["label"], json::parse(R"({"en":["Staff"]})"));
  ASSERT_EQ(access["service"].size(), 2u);
  EXPECT_EQ(access["service"][0]["id"], Access() + "/token");
  EXPECT_EQ(access["service"][0]["type"], "AuthAccessTokenService2");
  EXPECT_EQ(access["service"][1]["id"], Access() + "/staff/logout");
  EXPECT_EQ(access["service"][1]["type"], "AuthLogoutService2");
  EXPECT_TRUE(access["service"][1].contains("label"));
  // A matched role opens everything to its holders: all thumbnail sizes, tiles.
  EXPECT_TRUE(j.contains("tiles"));
  EXPECT_FALSE(j.contains("maxWidth"));
  int largest = 0;
  for (auto& s : j["sizes"]) largest = std::max(largest, s["width"].get<int>());
  EXPECT_EQ(largest, 1024) << j["sizes"].dump();
  // The same body for everyone, cookie or not.
  std::string cookie = StaffCookie();
  EXPECT_EQ(Get("/iiif-img" + Img("a") + "/info.json", WithCookie(cookie)).body, r.body);
  // A role's texts change the body, and a kept ETag gets no 304.
  PutRole("staff", {{"provider", "grant"}, {"label", "Staff"}, {"heading", "Staff <only>"}});
  HttpResult changed =
      Get("/iiif-img" + Img("a") + "/info.json", {{"If-None-Match", r.Header("etag")}});
  ASSERT_EQ(changed.status, 200);
  EXPECT_EQ(changed.Json()["service"][0]["service"][0]["heading"]["en"][0], "Staff <only>");
  PutRole("staff", {{"provider", "grant"}, {"label", "Staff"}});
  // An unmatched role: no PROBE, the open rules.
  Patch("b1", {{"roles", {RoleUri("nobody")}}, {"maxUnauthorised", 200}});
  json unmatched = Get("/iiif-img" + Img("b1") + "/info.json").Json();
  EXPECT_FALSE(unmatched.contains("service")) << unmatched.dump();
  EXPECT_EQ(unmatched["@context"], "http://iiif.io/api/image/3/context.json");
  EXPECT_EQ(unmatched["maxWidth"], 200);
  EXPECT_FALSE(unmatched.contains("tiles"));
  Patch("b1", {{"roles", {RoleUri("other")}}, {"maxUnauthorised", -1}});
}

// §6.15: anonymous callers get the open renditions only.
TEST_F(AuthFlowTest, Check15_AnonymousGetsOnlyOpenRenditions) {
  std::string img = "/iiif-img" + Img("a");
  HttpResult max = Get(img + "/full/max/0/default.jpg");
  EXPECT_EQ(max.status, 401);
  EXPECT_EQ(max.Header("cache-control"), "no-store");
  HttpResult open = Get(img + "/full/!400,400/0/default.jpg");
  ASSERT_EQ(open.status, 200);
  EXPECT_EQ(open.Header("cache-control").rfind("public", 0), 0u);
  EXPECT_LE(Decode(open.body).width, 400);
  EXPECT_EQ(Get(img + "/0,0,512,512/256,/0/default.jpg").status, 401);
  json thumbs = Get("/thumbs" + Img("a") + "/info.json").Json();
  ASSERT_FALSE(thumbs["sizes"].empty());
  for (auto& s : thumbs["sizes"])
    EXPECT_LE(std::max(s["width"].get<int>(), s["height"].get<int>()), 400) << s;
  // A Bearer token opens no pixels, and a made-up cookie neither.
  EXPECT_EQ(Get(img + "/full/max/0/default.jpg", Bearer(std::string(64, 'a'))).status, 401);
  EXPECT_EQ(Get(img + "/full/max/0/default.jpg", WithCookie(std::string(64, 'a'))).status, 401);
  EXPECT_EQ(Get("/file" + Img("a")).status, 401);
}

// §6.16: a probe without a token: HTTP 200, status 401, the open substitute; CORS preflight.
TEST_F(AuthFlowTest, Check16_ProbeWithoutToken) {
  HttpResult r = Get(Probe("a"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("cache-control"), "no-store");
  EXPECT_EQ(r.Header("access-control-allow-origin"), "*");
  json j = r.Json();
  EXPECT_EQ(j["@context"], kAuth2);
  EXPECT_EQ(j["type"], "AuthProbeResult2");
  EXPECT_EQ(j["status"], 401);
  EXPECT_EQ(j["heading"]["en"][0], "Missing credentials");
  ASSERT_TRUE(j.contains("substitute")) << j.dump();
  EXPECT_EQ(j["substitute"][0]["id"], P() + "/thumbs" + Img("a"));
  EXPECT_EQ(j["substitute"][0]["type"], "ImageService3");
  EXPECT_EQ(j["substitute"][0]["profile"], "level0");
  // No open size, no substitute; an unknown token is "Invalid credentials".
  json b1 = Get(Probe("b1"), Bearer(std::string(64, 'b'))).Json();
  EXPECT_EQ(b1["status"], 401);
  EXPECT_EQ(b1["heading"]["en"][0], "Invalid credentials");
  EXPECT_FALSE(b1.contains("substitute"));
  EXPECT_EQ(Get(P() + "/auth/v2/probe" + Img("nothing")).status, 404);

  HttpResult pre = Http("OPTIONS", Probe("a"), "", {},
                        {{"Origin", "https://v.example"},
                         {"Access-Control-Request-Method", "GET"},
                         {"Access-Control-Request-Headers", "authorization"}});
  EXPECT_EQ(pre.status, 204);
  EXPECT_EQ(pre.Header("access-control-allow-origin"), "*");
  std::string allowed = pre.Header("access-control-allow-headers");
  std::transform(allowed.begin(), allowed.end(), allowed.begin(), ::tolower);
  EXPECT_NE(allowed.find("authorization"), std::string::npos) << allowed;
}

// §6.17: a grant's code, shown once; GET never spends it; POST redeems it once.
TEST_F(AuthFlowTest, Check17_GrantCodeRedeemedByPostOnce) {
  json g = NewGrant("staff", {{"label", "for the reading room"}});
  std::string code = g["code"];
  EXPECT_GE(code.size(), 32u) << "at least 128 bits of hex";
  EXPECT_EQ(g["loginUrl"], P() + "/auth/v2/grant/" + code);
  EXPECT_EQ(g["@type"], "vocab:AccessGrant");
  EXPECT_EQ(g["maxUses"], 1);
  EXPECT_EQ(g["label"], "for the reading room");
  // Later reads never show the code again.
  HttpResult read = Http("GET", g["@id"], "", server_->admin());
  ASSERT_EQ(read.status, 200) << read.body;
  EXPECT_FALSE(read.Json().contains("code"));
  EXPECT_EQ(read.body.find(code), std::string::npos);
  HttpResult list = Http("GET", RoleUri("staff") + "/grants", "", server_->admin());
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.body.find(code), std::string::npos);
  EXPECT_GE(list.Json()["totalItems"].get<int>(), 1);

  HttpResult look = Get(g["loginUrl"]);
  ASSERT_EQ(look.status, 200);
  EXPECT_TRUE(look.Header("set-cookie").empty()) << "a GET spends nothing";
  EXPECT_NE(look.body.find("method=\"post\""), std::string::npos);
  HttpResult redeemed = Post(g["loginUrl"], "");
  ASSERT_EQ(redeemed.status, 200) << redeemed.body;
  std::string set = redeemed.Header("set-cookie");
  EXPECT_EQ(set.rfind("quire-auth-" + C() + "=", 0), 0u) << set;
  EXPECT_NE(set.find("HttpOnly"), std::string::npos) << set;
  EXPECT_NE(set.find("Path=/"), std::string::npos) << set;
  EXPECT_EQ(set.find("Secure"), std::string::npos) << "plain http: " << set;
  EXPECT_EQ(CookieOf(redeemed).size(), 64u);
  EXPECT_NE(redeemed.body.find("window.close()"), std::string::npos);
  HttpResult again = Post(g["loginUrl"], "");
  EXPECT_EQ(again.status, 403);
  EXPECT_TRUE(again.Header("set-cookie").empty());
  EXPECT_EQ(Http("GET", g["@id"], "", server_->admin()).Json()["uses"], 1);

  // The access page's form: a spent or made-up code shows the form again, no cookie.
  HttpResult form = Get(Access() + "/staff?origin=https://v.example");
  ASSERT_EQ(form.status, 200);
  EXPECT_NE(form.body.find("name=\"code\""), std::string::npos) << form.body;
  EXPECT_NE(form.Header("content-security-policy").find("frame-ancestors 'none'"),
            std::string::npos);
  EXPECT_EQ(form.Header("cache-control"), "no-store");
  HttpResult spent = Post(Access() + "/staff?origin=https://v.example", "code=" + code);
  EXPECT_EQ(spent.status, 403);
  EXPECT_TRUE(spent.Header("set-cookie").empty());
  EXPECT_NE(spent.body.find("name=\"code\""), std::string::npos);
  // A code of another role does not open this one.
  json other = NewGrant("other");
  EXPECT_EQ(Post(Access() + "/staff", "code=" + other["code"].get<std::string>()).status, 403);

  // Bad grant bodies: precise 400s; unknown role 404.
  for (json bad :
       {json{{"maxUses", 0}}, json{{"expires", "yesterday"}},
        json{{"expires", "2001-01-01T00:00:00Z"}}, json{{"colour", "red"}}, json{{"label", 5}}}) {
    HttpResult r = Http("POST", RoleUri("staff") + "/grants", bad.dump(), server_->admin());
    EXPECT_EQ(r.status, 400) << bad.dump() << ": " << r.body;
  }
  EXPECT_EQ(Http("POST", RoleUri("nobody") + "/grants", "{}", server_->admin()).status, 404);
  // Two uses, then spent. Behind an https proxy the cookie is SameSite=None; Secure.
  json twice = NewGrant("staff", {{"maxUses", 2}});
  std::string link = twice["loginUrl"];
  EXPECT_NE(Post(link, "").Header("set-cookie").find("; SameSite=Lax"), std::string::npos);
  HttpResult https = Post(link, "", {{"X-Forwarded-Proto", "https"}});
  EXPECT_EQ(https.status, 200);
  EXPECT_NE(https.Header("set-cookie").find("; SameSite=None; Secure"), std::string::npos)
      << https.Header("set-cookie");
  EXPECT_EQ(Post(link, "").status, 403);
}

// §6.18: the token page posts the token to the origin; without a cookie, missingAspect.
TEST_F(AuthFlowTest, Check18_TokenPage) {
  std::string cookie = StaffCookie();
  HttpResult page =
      Get(Access() + "/token?messageId=m1&origin=https://v.example", WithCookie(cookie));
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.Header("content-type").rfind("text/html", 0), 0u);
  EXPECT_EQ(page.Header("cache-control"), "no-store");
  EXPECT_EQ(page.Header("content-security-policy").find("frame-ancestors"), std::string::npos)
      << "the token page lives in the viewer's iframe";
  std::string target;
  json msg = PostedMessage(page, &target);
  EXPECT_EQ(msg["@context"], kAuth2);
  EXPECT_EQ(msg["type"], "AuthAccessToken2");
  EXPECT_EQ(msg["messageId"], "m1");
  EXPECT_EQ(target, "https://v.example");
  EXPECT_EQ(msg["accessToken"].get<std::string>().size(), 64u);
  EXPECT_NE(msg["accessToken"], cookie) << "the token is not the cookie";
  EXPECT_GT(msg["expiresIn"].get<int>(), 3500);
  EXPECT_LE(msg["expiresIn"].get<int>(), 3600);

  json none = PostedMessage(Get(Access() + "/token?messageId=m1&origin=https://v.example"));
  EXPECT_EQ(none["type"], "AuthAccessTokenError2");
  EXPECT_EQ(none["profile"], "missingAspect");
  EXPECT_EQ(none["messageId"], "m1");
  EXPECT_TRUE(none.contains("heading"));
  json invalid = PostedMessage(Get(Access() + "/token?messageId=m2&origin=https://v.example",
                                   WithCookie(std::string(64, 'c'))));
  EXPECT_EQ(invalid["profile"], "invalidAspect");
  // Not an origin, or no messageId: invalidRequest, posted to "*".
  for (std::string q : {"messageId=m3&origin=https://v.example/path", "messageId=m3",
                        "origin=https://v.example", "messageId=m3&origin=javascript:alert(1)"}) {
    std::string t;
    json bad = PostedMessage(Get(Access() + "/token?" + q, WithCookie(cookie)), &t);
    EXPECT_EQ(bad["profile"], "invalidRequest") << q;
    EXPECT_EQ(t, "*") << q;
  }
  // Escaping inside the script: nothing a messageId holds can end it.
  std::string evil = "</script><script>alert(1)</script>&\xE2\x80\xA8\xE2\x80\xA9";
  HttpResult escaped = Get(Access() + "/token?messageId=" + http::PercentEncodeQueryValue(evil) +
                               "&origin=https://v.example",
                           WithCookie(cookie));
  EXPECT_EQ(escaped.body.find("</script><script>"), std::string::npos) << escaped.body;
  EXPECT_EQ(escaped.body.find("alert(1)</"), std::string::npos);
  EXPECT_EQ(escaped.body.find("\xE2\x80\xA8"), std::string::npos);
  EXPECT_NE(escaped.body.find("\\u003c/script\\u003e"), std::string::npos);
  EXPECT_NE(escaped.body.find("\\u0026\\u2028\\u2029"), std::string::npos);
  EXPECT_EQ(PostedMessage(escaped)["messageId"], evil);
}

// §6.19: the Bearer token passes the probe; the cookie opens full/max and tiles, private.
TEST_F(AuthFlowTest, Check19_TokenProbesAndCookieOpensPixels) {
  std::string cookie = StaffCookie();
  std::string token = TokenOf(cookie);
  json probe = Get(Probe("a"), Bearer(token)).Json();
  EXPECT_EQ(probe["status"], 200) << probe.dump();
  EXPECT_FALSE(probe.contains("substitute"));
  std::string img = "/iiif-img" + Img("a");
  HttpResult max = Get(img + "/full/max/0/default.jpg", WithCookie(cookie));
  ASSERT_EQ(max.status, 200) << max.body.substr(0, 200);
  EXPECT_EQ(max.Header("cache-control"), "private");
  Decoded d = Decode(max.body);
  EXPECT_EQ(d.width, 4000);
  EXPECT_EQ(d.height, 3000);
  HttpResult tile = Get(img + "/0,0,512,512/256,/0/default.jpg", WithCookie(cookie));
  EXPECT_EQ(tile.status, 200);
  EXPECT_EQ(tile.Header("cache-control"), "private");
  EXPECT_EQ(Decode(tile.body).width, 256);
  // Open renditions stay public for the session too.
  EXPECT_EQ(Get(img + "/full/!400,400/0/default.jpg", WithCookie(cookie))
                .Header("cache-control")
                .rfind("public", 0),
            0u);
  HttpResult file = Get("/file" + Img("a"), WithCookie(cookie));
  EXPECT_EQ(file.status, 200);
  EXPECT_EQ(file.Header("cache-control"), "private");
  // What the session fetched is in the response cache now: never for anyone else.
  EXPECT_EQ(Get(img + "/0,0,512,512/256,/0/default.jpg").status, 401);
  EXPECT_EQ(
      Get(img + "/0,0,512,512/256,/0/default.jpg", {{"If-None-Match", tile.Header("etag")}}).status,
      401);
  EXPECT_EQ(Get(img + "/full/max/0/default.jpg").status, 401);
  // The token is not a cookie: pixels ignore it.
  EXPECT_EQ(Get(img + "/full/max/0/default.jpg", Bearer(token)).status, 401);
  // Nor does a cookie under another customer's name count.
  EXPECT_EQ(Get(img + "/full/max/0/default.jpg", {{"Cookie", "quire-auth-999=" + cookie}}).status,
            401);
}

// §6.20: a live staff session probing an image of role `other` only: 403.
TEST_F(AuthFlowTest, Check20_OtherRoleIsForbidden) {
  std::string token = TokenOf(StaffCookie());
  json probe = Get(Probe("b1"), Bearer(token)).Json();
  EXPECT_EQ(probe["status"], 403) << probe.dump();
  EXPECT_EQ(probe["heading"]["en"][0], "Forbidden");
  // A clickthrough for `other`: GET shows the confirm button (escaped texts), POST consents.
  PutRole("other", {{"label", "Others"},
                    {"heading", "Others <b>only</b>"},
                    {"note", "Read & agree"},
                    {"confirmLabel", "I \"agree\""}});
  HttpResult page = Get(Access() + "/other?origin=https://v.example");
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("Others &lt;b&gt;only&lt;/b&gt;"), std::string::npos) << page.body;
  EXPECT_EQ(page.body.find("<b>only"), std::string::npos);
  EXPECT_NE(page.body.find("Read &amp; agree"), std::string::npos);
  EXPECT_NE(page.body.find("I &quot;agree&quot;"), std::string::npos);
  EXPECT_EQ(page.body.find("name=\"code\""), std::string::npos) << "no code for clickthrough";
  EXPECT_TRUE(page.Header("set-cookie").empty());
  HttpResult confirmed = Post(Access() + "/other?origin=https://v.example", "");
  ASSERT_EQ(confirmed.status, 200);
  std::string cookie = CookieOf(confirmed);
  ASSERT_FALSE(cookie.empty());
  EXPECT_EQ(Get(Probe("b1"), Bearer(TokenOf(cookie))).Json()["status"], 200);
  EXPECT_EQ(Get("/iiif-img" + Img("b1") + "/full/max/0/default.jpg", WithCookie(cookie)).status,
            200);
  EXPECT_EQ(Get(Probe("a"), Bearer(TokenOf(cookie))).Json()["status"], 403);
  // Now holding it, the access page closes itself.
  HttpResult held = Get(Access() + "/other", WithCookie(cookie));
  EXPECT_NE(held.body.find("window.close()"), std::string::npos);
  EXPECT_EQ(held.body.find("<form"), std::string::npos);
  EXPECT_EQ(Get(Access() + "/nosuchrole").status, 404);
  // An unrestricted image probes 200 without any token.
  Patch("b1", {{"roles", json::array()}, {"maxUnauthorised", -1}});
  EXPECT_EQ(Get(Probe("b1")).Json()["status"], 200);
  Patch("b1", {{"roles", {RoleUri("other")}}, {"maxUnauthorised", -1}});
}

// §6.21: 2.1 info.json: 401 with the Auth 1.0 login service, 200 with a matching Bearer.
TEST_F(AuthFlowTest, Check21_V2InfoJsonWithAuth1) {
  std::string info = "/iiif-img/v2" + Img("a") + "/info.json";
  HttpResult r = Get(info);
  ASSERT_EQ(r.status, 401) << r.body;
  EXPECT_EQ(r.Header("cache-control"), "private");
  EXPECT_EQ(r.Header("vary"), "Authorization");
  json j = r.Json();
  ASSERT_EQ(j["service"].size(), 2u) << j.dump();
  EXPECT_EQ(j["service"][0]["type"], "AuthProbeService2");
  json login = j["service"][1];
  EXPECT_EQ(login["@context"], "http://iiif.io/api/auth/1/context.json");
  EXPECT_EQ(login["@id"], P() + "/auth/" + C() + "/staff");
  EXPECT_EQ(login["profile"], "http://iiif.io/api/auth/1/login");
  EXPECT_EQ(login["label"], "Staff");
  EXPECT_EQ(login["service"][0]["@id"], P() + "/auth/" + C() + "/token");
  EXPECT_EQ(login["service"][0]["profile"], "http://iiif.io/api/auth/1/token");
  EXPECT_EQ(login["service"][1]["@id"], P() + "/auth/" + C() + "/staff/logout");
  EXPECT_EQ(login["service"][1]["profile"], "http://iiif.io/api/auth/1/logout");
  EXPECT_TRUE(j.contains("tiles"));

  std::string cookie = StaffCookie();
  HttpResult ok = Get(info, Bearer(TokenOf(cookie)));
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.Header("cache-control"), "private");
  EXPECT_EQ(ok.Json(), j);
  EXPECT_EQ(Get(info, Bearer(std::string(64, 'd'))).status, 401);
  EXPECT_EQ(Get(info, WithCookie(cookie)).status, 401) << "2.1 info.json needs the Bearer";

  // The 1.0 token service: JSON, or a postMessage page with messageId.
  std::string token1 = P() + "/auth/" + C() + "/token";
  HttpResult t = Get(token1, WithCookie(cookie));
  ASSERT_EQ(t.status, 200) << t.body;
  EXPECT_EQ(t.Json()["accessToken"], TokenOf(cookie));
  EXPECT_EQ(Get(token1).status, 401);
  EXPECT_EQ(Get(token1).Json()["error"], "missingCredentials");
  EXPECT_EQ(Get(token1, WithCookie(std::string(64, 'e'))).status, 403);
  std::string target;
  json posted = PostedMessage(
      Get(token1 + "?messageId=7&origin=https://v.example", WithCookie(cookie)), &target);
  EXPECT_EQ(posted["messageId"], "7");
  EXPECT_EQ(posted["accessToken"], TokenOf(cookie));
  EXPECT_EQ(target, "https://v.example");
  json denied = PostedMessage(Get(token1 + "?messageId=8&origin=https://v.example"));
  EXPECT_EQ(denied["error"], "missingCredentials");
  // The 1.0 login service of a grant role shows the form; a clickthrough one sets the
  // cookie at once.
  HttpResult form = Get(P() + "/auth/" + C() + "/staff");
  EXPECT_NE(form.body.find("name=\"code\""), std::string::npos);
  EXPECT_TRUE(form.Header("set-cookie").empty());
  HttpResult click = Get(P() + "/auth/" + C() + "/other");
  EXPECT_FALSE(CookieOf(click).empty()) << click.body;
  EXPECT_NE(click.body.find("window.close()"), std::string::npos);
  json other_v2 = Get("/iiif-img/v2" + Img("b1") + "/info.json").Json();
  EXPECT_EQ(other_v2["service"][1]["profile"], "http://iiif.io/api/auth/1/clickthrough");
}

// §6.22: logout ends the role (the last one: cookie deleted, token void); revoking a grant
// ends its sessions.
TEST_F(AuthFlowTest, Check22_LogoutAndRevocation) {
  std::string cookie = StaffCookie();
  std::string token = TokenOf(cookie);
  std::string max = "/iiif-img" + Img("a") + "/full/max/0/default.jpg";
  ASSERT_EQ(Get(max, WithCookie(cookie)).status, 200);
  HttpResult out = Get(Access() + "/staff/logout", WithCookie(cookie));
  ASSERT_EQ(out.status, 200);
  std::string set = out.Header("set-cookie");
  EXPECT_EQ(set.rfind("quire-auth-" + C() + "=;", 0), 0u) << set;
  EXPECT_NE(set.find("Max-Age=0"), std::string::npos) << set;
  EXPECT_EQ(Get(max, WithCookie(cookie)).status, 401);
  json probe = Get(Probe("a"), Bearer(token)).Json();
  EXPECT_EQ(probe["status"], 401) << probe.dump();

  // A session with two roles keeps the cookie when one of them logs out.
  std::string both = StaffCookie();
  ASSERT_EQ(Post(Access() + "/other", "", WithCookie(both)).status, 200);
  HttpResult one = Get(Access() + "/other/logout", WithCookie(both));
  EXPECT_TRUE(one.Header("set-cookie").empty()) << one.Header("set-cookie");
  EXPECT_EQ(Get(max, WithCookie(both)).status, 200);
  EXPECT_EQ(Get("/iiif-img" + Img("b1") + "/full/max/0/default.jpg", WithCookie(both)).status, 401);

  // Revoked: the grant's sessions end.
  json grant;
  std::string revoked = StaffCookie(&grant);
  std::string revoked_token = TokenOf(revoked);
  ASSERT_EQ(Get(max, WithCookie(revoked)).status, 200);
  EXPECT_EQ(Http("DELETE", grant["@id"], "", server_->admin()).status, 204);
  EXPECT_EQ(Http("GET", grant["@id"], "", server_->admin()).status, 404);
  EXPECT_EQ(Http("DELETE", grant["@id"], "", server_->admin()).status, 404);
  EXPECT_EQ(Get(max, WithCookie(revoked)).status, 401);
  EXPECT_EQ(Get(Probe("a"), Bearer(revoked_token)).Json()["status"], 401);
  EXPECT_EQ(Get(max, WithCookie(both)).status, 200) << "other sessions live on";

  // Deleting the role ends what it gave, too.
  PutRole("temp", {{"label", "Temp"}});
  Patch("b1", {{"roles", {RoleUri("temp")}}, {"maxUnauthorised", -1}});
  HttpResult temp = Post(Access() + "/temp", "");
  std::string temp_cookie = CookieOf(temp);
  std::string b1 = "/iiif-img" + Img("b1") + "/full/max/0/default.jpg";
  ASSERT_EQ(Get(b1, WithCookie(temp_cookie)).status, 200);
  EXPECT_EQ(Http("DELETE", RoleUri("temp"), "", server_->admin()).status, 204);
  PutRole("temp", {{"label", "Temp"}});
  EXPECT_EQ(Get(b1, WithCookie(temp_cookie)).status, 401);
  Patch("b1", {{"roles", {RoleUri("other")}}, {"maxUnauthorised", -1}});
}

// §2 with §5.4: a v3 manifest nests the PROBE of a restricted image in its image services
// (and beside them) under the auth/2 context; 2.1 manifests carry no auth services.
TEST_F(AuthFlowTest, ManifestsCarryTheProbe) {
  HttpResult r = Get("/iiif-manifest" + Img("a"));
  ASSERT_EQ(r.status, 200) << r.body;
  json m = r.Json();
  EXPECT_EQ(m["@context"], json::array({kAuth2, "http://iiif.io/api/presentation/3/context.json"}));
  json services = m["items"][0]["items"][0]["items"][0]["body"]["service"];
  ASSERT_EQ(services.size(), 3u) << services.dump();
  EXPECT_EQ(services[0]["service"][0]["id"], Probe("a"));
  EXPECT_EQ(services[1]["service"][0]["id"], Probe("a"));
  EXPECT_EQ(services[2]["type"], "AuthProbeService2");
  EXPECT_EQ(services[2]["service"][0]["id"], Access() + "/staff");
  json v2 = Get("/iiif-manifest/v2" + Img("a")).Json();
  EXPECT_EQ(v2.dump().find("auth"), std::string::npos) << v2.dump();
  // No role of the image exists: no PROBE, the plain context.
  Patch("b1", {{"roles", {RoleUri("nobody")}}, {"maxUnauthorised", 200}});
  json none = Get("/iiif-manifest" + Img("b1")).Json();
  EXPECT_EQ(none["@context"], "http://iiif.io/api/presentation/3/context.json");
  EXPECT_EQ(none.dump().find("AuthProbeService2"), std::string::npos);
  Patch("b1", {{"roles", {RoleUri("other")}}, {"maxUnauthorised", -1}});
}

// A role expires sessionTtl after it was granted: the session is then told apart from an
// unknown one (probe "Expired session", token page expiredAspect) and opens nothing; a new
// code joins the same cookie again.
TEST_F(AuthFlowTest, AnExpiredSessionIsToldApartAndOpensNothing) {
  std::string cookie = StaffCookie();
  std::string token = TokenOf(cookie);
  std::string max = "/iiif-img" + Img("a") + "/full/max/0/default.jpg";
  ASSERT_EQ(Get(max, WithCookie(cookie)).status, 200);
  // Two hours pass for this session's roles (as the clock would move them).
  ExecSql(server_->database_url(),
         "UPDATE auth_session_roles SET expires = expires - 7200000 WHERE cookie_hash = '" +
             access::HashCookie(cookie) + "'");
  // A node keeps a session that opened an image for a second, with the expiries it read; the
  // SQL above moved them behind its back (a real expiry is seen at once from the kept ones).
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_EQ(Get(max, WithCookie(cookie)).status, 401);
  json probe = Get(Probe("a"), Bearer(token)).Json();
  EXPECT_EQ(probe["status"], 401) << probe.dump();
  EXPECT_EQ(probe["heading"]["en"][0], "Expired session");
  json page = PostedMessage(
      Get(Access() + "/token?messageId=x&origin=https://v.example", WithCookie(cookie)));
  EXPECT_EQ(page["type"], "AuthAccessTokenError2");
  EXPECT_EQ(page["profile"], "expiredAspect");
  EXPECT_EQ(Get(P() + "/auth/" + C() + "/token", WithCookie(cookie)).status, 403);
  EXPECT_EQ(Get("/iiif-img/v2" + Img("a") + "/info.json", Bearer(token)).status, 401);
  // The access page offers the form again; a new code renews the role on the same cookie.
  HttpResult form = Get(Access() + "/staff", WithCookie(cookie));
  EXPECT_NE(form.body.find("name=\"code\""), std::string::npos);
  json g = NewGrant("staff");
  HttpResult again =
      Post(Access() + "/staff", "code=" + g["code"].get<std::string>(), WithCookie(cookie));
  ASSERT_EQ(again.status, 200);
  EXPECT_EQ(CookieOf(again), cookie) << "the session is joined, not replaced";
  EXPECT_EQ(Get(max, WithCookie(cookie)).status, 200);
  EXPECT_EQ(Get(Probe("a"), Bearer(token)).Json()["status"], 200) << "the token lives again";
}

}  // namespace
}  // namespace quire::test
