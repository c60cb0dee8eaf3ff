// Restricted images on every delivery route against a live `quire serve`
// (spec/presentation-auth.md §5.1, §5.5, check §6.15): with maxUnauthorised n an anonymous
// caller gets the open renditions (the whole image, longest side ≤ n) and nothing else — no
// tiles, no larger sizes, no original, no thumbnail above n — and no cache or validator ever
// answers a refused request from what it kept while the image was open. Roles alone leave
// nothing open. Real ingest, real pixels decoded.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/vips_init.h"
#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/quire_process.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

class AccessTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(quire::InitVips());
    dir_ = new TempDir();
    std::string origins = dir_->path() + "/origins";
    std::filesystem::create_directories(origins);
    std::ofstream(origins + "/r.jpg", std::ios::binary) << MakeJpeg(1600, 1200, 4);
    server_ =
        new QuireProcess(dir_->path() + "/data", {"--workers", "1", "--origin-file-root", origins});
    api_ = new Api{server_->url(), server_->admin()};
    customer_ = api_->CreateCustomer("restricted-co");
    space_ = api_->CreateSpace(customer_, "vault");
    json m = Member(space_, "r", "file://" + origins + "/r.jpg", "image/jpeg");
    m["deliveryChannels"] = json::array({json{{"channel", "iiif-img"}, {"policy", "default"}},
                                         json{{"channel", "thumbs"}, {"policy", "default"}},
                                         json{{"channel", "file"}, {"policy", "none"}}});
    long status = 0;
    json batch = api_->SubmitBatch(customer_, json::array({m}), &status);
    ASSERT_EQ(status, 201) << batch.dump(2);
    json done = api_->WaitForBatch(customer_, batch.at("id"), 60s);
    ASSERT_EQ(done.value("completed", 0), 1) << done.dump(2) << server_->Log();
  }
  static void TearDownTestSuite() {
    delete api_;
    delete server_;
    delete dir_;
    api_ = nullptr;
    server_ = nullptr;
  }

  // Sets the image's access rule.
  static void Restrict(int64_t max_unauthorised, json roles = json::array()) {
    HttpResult r = Http("PATCH", ImageApi(),
                        json{{"maxUnauthorised", max_unauthorised}, {"roles", roles}}.dump(),
                        server_->admin());
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_EQ(r.Json()["maxUnauthorised"], max_unauthorised);
  }
  static std::string ImageApi() {
    return server_->url() + "/customers/" + std::to_string(customer_) + "/spaces/" +
           std::to_string(space_) + "/images/r";
  }
  static std::string Path() {
    return "/" + std::to_string(customer_) + "/" + std::to_string(space_) + "/r";
  }
  static HttpResult Get(const std::string& path,
                        const std::map<std::string, std::string>& headers = {}) {
    return Http("GET", server_->url() + path, "", {}, headers);
  }
  static void ExpectRefused(const HttpResult& r, const std::string& what) {
    EXPECT_EQ(r.status, 401) << what << ": " << r.body.substr(0, 200);
    EXPECT_EQ(r.Header("cache-control"), "no-store") << what;
    EXPECT_EQ(r.Header("access-control-allow-origin"), "*") << what;
    EXPECT_EQ(r.Header("content-type").rfind("text/plain", 0), 0u) << what;
  }
  static int Longest(const json& size) {
    return std::max(size["width"].get<int>(), size["height"].get<int>());
  }

  static inline TempDir* dir_ = nullptr;
  static inline QuireProcess* server_ = nullptr;
  static inline Api* api_ = nullptr;
  static inline int64_t customer_ = 0, space_ = 0;
};

// §6.15: maxUnauthorised 400 — open renditions up to 400 for anyone, nothing else.
TEST_F(AccessTest, MaxUnauthorisedServesOnlyOpenRenditions) {
  Restrict(400);
  std::string img = "/iiif-img" + Path();
  ExpectRefused(Get(img + "/full/max/0/default.jpg"), "full/max");
  ExpectRefused(Get(img + "/0,0,512,512/256,/0/default.jpg"), "a tile");
  ExpectRefused(Get(img + "/full/401,/0/default.jpg"), "401 wide");
  ExpectRefused(Get(img + "/square/300,/0/default.jpg"), "a square crop");
  ExpectRefused(Get("/iiif-img/v2" + Path() + "/full/full/0/default.jpg"), "v2 full/full");
  for (std::string size : {"!400,400", "400,", "pct:10"}) {
    HttpResult r = Get(img + "/full/" + size + "/0/default.jpg");
    ASSERT_EQ(r.status, 200) << size << ": " << r.body;
    EXPECT_EQ(r.Header("cache-control").rfind("public", 0), 0u) << size;
    Decoded d = Decode(r.body);
    EXPECT_TRUE(d.ok) << size;
    EXPECT_LE(std::max(d.width, d.height), 400) << size;
  }
  EXPECT_EQ(Decode(Get(img + "/full/!400,400/0/default.jpg").body).width, 400);
  EXPECT_EQ(Get(img + "/full/!400,400/90/gray.png").status, 200);

  // v3 info.json: 200 for everyone, no tiles, maxWidth n, sizes only the open ones.
  HttpResult info = Get(img + "/info.json");
  ASSERT_EQ(info.status, 200) << info.body;
  json j = info.Json();
  EXPECT_FALSE(j.contains("tiles")) << j.dump();
  EXPECT_EQ(j["maxWidth"], 400);
  ASSERT_FALSE(j["sizes"].empty());
  for (auto& s : j["sizes"]) EXPECT_LE(Longest(s), 400) << s;
  // v2 info.json: 401 with the body, private.
  HttpResult v2 = Get("/iiif-img/v2" + Path() + "/info.json");
  EXPECT_EQ(v2.status, 401);
  EXPECT_EQ(v2.Header("cache-control"), "private");
  EXPECT_EQ(v2.Json()["profile"][1]["maxWidth"], 400);
  EXPECT_FALSE(v2.Json().contains("tiles"));

  // /thumbs/: only the open sizes exist.
  json thumbs = Get("/thumbs" + Path() + "/info.json").Json();
  ASSERT_EQ(thumbs["sizes"].size(), 3u) << thumbs.dump();  // 400, 200, 100 of 1024..100
  for (auto& s : thumbs["sizes"]) EXPECT_LE(Longest(s), 400) << s;
  EXPECT_EQ(Get("/thumbs" + Path() + "/full/1024,768/0/default.jpg").status, 404);
  EXPECT_EQ(Get("/thumbs/v2" + Path() + "/full/1024,768/0/default.jpg").status, 404);
  EXPECT_EQ(Decode(Get("/thumbs" + Path() + "/full/max/0/default.jpg").body).width, 400);
  EXPECT_EQ(Get("/thumbs" + Path() + "/full/400,300/0/default.jpg").status, 200);

  // The original is not open.
  ExpectRefused(Get("/file" + Path()), "/file");

  // The manifest offers the largest open size and open thumbnail sizes only.
  HttpResult m = Get("/iiif-manifest" + Path());
  ASSERT_EQ(m.status, 200) << m.body;
  json canvas = m.Json()["items"][0];
  json body = canvas["items"][0]["items"][0]["body"];
  EXPECT_EQ(body["width"], 400);
  EXPECT_EQ(Http("GET", body["id"]).status, 200) << body["id"];
  for (auto& s : canvas["thumbnail"][0]["service"][1]["sizes"]) EXPECT_LE(Longest(s), 400);
}

// What was fetched while the image was open is never handed out once it is restricted: not
// from the response cache, not as a 304 to a client that kept the ETag.
TEST_F(AccessTest, CachesNeverServeARestrictedResponse) {
  Restrict(-1);
  std::string tile = "/iiif-img" + Path() + "/0,0,512,512/256,/0/default.jpg";
  std::string render = "/iiif-img" + Path() + "/full/800,/0/default.png";
  HttpResult open_tile = Get(tile), open_render = Get(render);
  ASSERT_EQ(open_tile.status, 200);
  ASSERT_EQ(open_render.status, 200);
  ASSERT_EQ(Get(render).status, 200);  // now in the response cache
  HttpResult file = Get("/file" + Path());
  ASSERT_EQ(file.status, 200);
  std::string thumb = "/thumbs" + Path() + "/full/1024,768/0/default.jpg";
  ASSERT_EQ(Get(thumb).status, 200);

  Restrict(200);
  ExpectRefused(Get(tile), "cached tile");
  ExpectRefused(Get(render), "cached render");
  ExpectRefused(Get(tile, {{"If-None-Match", open_tile.Header("etag")}}), "tile revalidation");
  ExpectRefused(Get(render, {{"If-None-Match", open_render.Header("etag")}}),
                "render revalidation");
  ExpectRefused(Get("/file" + Path(), {{"If-None-Match", file.Header("etag")}}), "file");
  EXPECT_EQ(Get(thumb).status, 404);
  // info.json changed with the rule: a kept ETag does not get a 304.
  Restrict(-1);
  HttpResult info = Get("/iiif-img" + Path() + "/info.json");
  ASSERT_TRUE(info.Json().contains("tiles"));
  Restrict(200);
  HttpResult again =
      Get("/iiif-img" + Path() + "/info.json", {{"If-None-Match", info.Header("etag")}});
  EXPECT_EQ(again.status, 200);
  EXPECT_FALSE(again.Json().contains("tiles"));
  EXPECT_EQ(again.Json()["maxWidth"], 200);

  // Open again: everything is back.
  Restrict(-1);
  EXPECT_EQ(Get(tile).status, 200);
  EXPECT_EQ(Get(render).status, 200);
  EXPECT_EQ(Get("/file" + Path()).status, 200);
}

// Roles without maxUnauthorised: nothing is open to an anonymous caller.
TEST_F(AccessTest, RolesAloneLeaveNothingOpen) {
  Restrict(-1, json::array(
                   {server_->url() + "/customers/" + std::to_string(customer_) + "/roles/staff"}));
  std::string img = "/iiif-img" + Path();
  ExpectRefused(Get(img + "/full/!100,100/0/default.jpg"), "small full");
  ExpectRefused(Get(img + "/0,0,256,256/256,/0/default.jpg"), "tile");
  ExpectRefused(Get("/file" + Path()), "file");
  EXPECT_EQ(Get("/thumbs" + Path() + "/info.json").status, 404);
  EXPECT_EQ(Get("/thumbs" + Path() + "/full/100,75/0/default.jpg").status, 404);
  json info = Get(img + "/info.json").Json();
  EXPECT_FALSE(info.contains("tiles"));
  EXPECT_FALSE(info.contains("sizes"));
  EXPECT_FALSE(info.contains("maxWidth"));
  // maxUnauthorised 0 is no better.
  Restrict(0);
  ExpectRefused(Get(img + "/full/!100,100/0/default.jpg"), "maxUnauthorised 0");
  EXPECT_EQ(Get("/thumbs" + Path() + "/info.json").status, 404);
  Restrict(-1);
  EXPECT_EQ(Get(img + "/full/!100,100/0/default.jpg").status, 200);
}

// §6.13 and the role resource (§5.2).
TEST_F(AccessTest, RolesResource) {
  std::string roles = server_->url() + "/customers/" + std::to_string(customer_) + "/roles";
  HttpResult made = Http("PUT", roles + "/staff",
                         json{{"provider", "grant"}, {"label", "Staff"}}.dump(), server_->admin());
  ASSERT_EQ(made.status, 201) << made.body;
  json role = made.Json();
  EXPECT_EQ(role["@id"], roles + "/staff");
  EXPECT_EQ(made.Header("location"), roles + "/staff");
  EXPECT_EQ(role["@type"], "vocab:Role");
  EXPECT_EQ(role["label"], json::parse(R"({"en":["Staff"]})"));
  EXPECT_EQ(role["provider"], "grant");
  EXPECT_EQ(role["sessionTtl"], 3600);
  EXPECT_FALSE(role.contains("heading"));
  // Replaced: 200, with language maps kept as given.
  HttpResult replaced = Http("PUT", roles + "/staff",
                             json{{"label", {{"en", {"Staff"}}, {"cy", {"Staff"}}}},
                                  {"heading", "Staff only"},
                                  {"confirmLabel", "Log in"},
                                  {"sessionTtl", 600}}
                                 .dump(),
                             server_->admin());
  ASSERT_EQ(replaced.status, 200) << replaced.body;
  EXPECT_EQ(replaced.Json()["label"]["cy"][0], "Staff");
  EXPECT_EQ(replaced.Json()["heading"], json::parse(R"({"en":["Staff only"]})"));
  EXPECT_EQ(replaced.Json()["provider"], "clickthrough");
  EXPECT_EQ(Http("GET", roles + "/staff", "", server_->admin()).Json()["sessionTtl"], 600);

  // Bad input: a precise 400, nothing stored.
  const std::pair<std::string, json> bad[] = {
      {"token", {{"label", "x"}}},
      {"Staff", {{"label", "x"}}},
      {"a%20b", {{"label", "x"}}},
      {std::string(65, 'a'), {{"label", "x"}}},
      {"nolabel", json::object()},
      {"p", {{"label", "x"}, {"provider", "oidc"}}},
      {"t", {{"label", "x"}, {"sessionTtl", 30}}},
      {"t", {{"label", "x"}, {"sessionTtl", 86401}}},
      {"m", {{"label", {{"en", "not an array"}}}}},
      {"u", {{"label", "x"}, {"colour", "red"}}},
  };
  for (const auto& [name, body] : bad) {
    HttpResult r = Http("PUT", roles + "/" + name, body.dump(), server_->admin());
    EXPECT_EQ(r.status, 400) << name << " " << body.dump() << ": " << r.body;
    EXPECT_TRUE(r.Json().contains("detail")) << r.body;
  }
  HttpResult list = Http("GET", roles, "", server_->admin());
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.Json()["totalItems"], 1) << list.body;
  EXPECT_EQ(list.Json()["member"][0]["@id"], roles + "/staff");

  // The role URI on an image restricts it like any role (auth_flow_test unlocks it by session).
  HttpResult patched =
      Http("PATCH", ImageApi(),
           json{{"roles", {roles + "/staff"}}, {"maxUnauthorised", 400}}.dump(), server_->admin());
  ASSERT_EQ(patched.status, 200) << patched.body;
  ExpectRefused(Get("/iiif-img" + Path() + "/full/max/0/default.jpg"), "full/max");
  EXPECT_EQ(Get("/iiif-img" + Path() + "/full/!400,400/0/default.jpg").status, 200);

  // Another customer cannot see it; DELETE ends it.
  int64_t other = api_->CreateCustomer("other-roles");
  EXPECT_EQ(Http("GET", server_->url() + "/customers/" + std::to_string(other) + "/roles/staff", "",
                 server_->admin())
                .status,
            404);
  EXPECT_EQ(Http("DELETE", roles + "/staff", "", server_->admin()).status, 204);
  EXPECT_EQ(Http("GET", roles + "/staff", "", server_->admin()).status, 404);
  EXPECT_EQ(Http("DELETE", roles + "/staff", "", server_->admin()).status, 404);
  Restrict(-1);
}

}  // namespace
}  // namespace quire::test
