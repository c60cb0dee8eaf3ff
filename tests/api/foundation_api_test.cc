// The foundation against a live `quire serve`: entry points, setup, customers, keys, spaces,
// auth and isolation, transport limits, persistence across restarts.
#include <gtest/gtest.h>

#include "support/http_client.h"
#include "support/live_server.h"
#include "support/quire_process.h"

namespace quire::test {
namespace {

using nlohmann::json;

class FoundationApi : public LiveServerTest {
 protected:
  // Creates a customer and a key for it.
  static std::pair<int64_t, Credentials> NewCustomer(const std::string& name) {
    auto c = Http("POST", U("/customers"), json{{"name", name}}.dump(), Admin());
    EXPECT_EQ(c.status, 201) << c.body;
    int64_t id = c.Json()["id"];
    auto k = Http("POST", U("/customers/" + std::to_string(id) + "/keys"), "", Admin());
    EXPECT_EQ(k.status, 201) << k.body;
    return {id, Credentials{k.Json()["key"], k.Json()["secret"]}};
  }

};

TEST_F(FoundationApi, EntryPointsAreAnonymous) {
  auto root = Http("GET", U("/"));
  ASSERT_EQ(root.status, 200);
  auto j = root.Json();
  EXPECT_EQ(j["@id"], U("/"));
  EXPECT_EQ(j["customers"], U("/customers"));
  EXPECT_EQ(j["thumbnailPolicies"], U("/thumbnailPolicies"));
  EXPECT_EQ(j["queue"], U("/queue"));
  EXPECT_EQ(Http("GET", U("/healthz")).status, 200);
  auto q = Http("GET", U("/queue")).Json();
  EXPECT_EQ(q["incoming"], 0);
  EXPECT_EQ(q["priority"], 0);
  auto policies = Http("GET", U("/thumbnailPolicies")).Json();
  EXPECT_EQ(policies["@type"], "Collection");
  EXPECT_EQ(policies["member"][0]["sizes"], json({1024, 400, 200, 100}));
  auto def = Http("GET", U("/thumbnailPolicies/default"));
  EXPECT_EQ(def.status, 200);
  EXPECT_EQ(Http("GET", U("/thumbnailPolicies/nope")).status, 404);
  // Every @context we emit resolves.
  EXPECT_EQ(Http("GET", j["@context"].get<std::string>()).status, 200);
}

TEST_F(FoundationApi, AuthenticationFailures) {
  auto none = Http("GET", U("/customers"));
  ExpectHydraError(none, 401);
  EXPECT_EQ(none.Header("www-authenticate"), "Basic realm=\"Quire\"");
  ExpectHydraError(Http("GET", U("/customers"), "", {"admin", "wrong"}), 401);
  ExpectHydraError(Http("GET", U("/customers"), "", {"nobody", "admin-secret"}), 401);
  ExpectHydraError(Http("GET", U("/customers"), "", {}, {{"Authorization", "Bearer xyz"}}), 401);
  ExpectHydraError(Http("GET", U("/customers"), "", {}, {{"Authorization", "Basic !!!"}}), 401);
  EXPECT_EQ(Http("GET", U("/customers"), "", Admin()).status, 200);
}

TEST_F(FoundationApi, SetupWorksOnlyOnce) {
  // This server was seeded with --admin-key, so setup is already done.
  ExpectHydraError(Http("POST", U("/setup")), 409);
  TempDir fresh;
  QuireProcess blank(fresh.path() + "/data", {"--workers", "0"}, /*seed_admin=*/false);
  auto first = Http("POST", blank.url() + "/setup");
  ASSERT_EQ(first.status, 201) << first.body;
  auto j = first.Json();
  EXPECT_EQ(j["id"], 1);
  EXPECT_EQ(j["administrator"], true);
  Credentials admin{j["key"], j["secret"]};
  EXPECT_GE(admin.secret.size(), 32u);  // ≥128 bits
  EXPECT_EQ(Http("GET", blank.url() + "/customers", "", admin).status, 200);
  ExpectHydraError(Http("POST", blank.url() + "/setup"), 409);
}

TEST_F(FoundationApi, CustomersLifecycle) {
  auto made = Http("POST", U("/customers"),
                   json{{"name", "wellcome"}, {"displayName", "Wellcome Collection"}}.dump(),
                   Admin());
  ASSERT_EQ(made.status, 201) << made.body;
  auto c = made.Json();
  std::string url = U("/customers/" + std::to_string(c["id"].get<int64_t>()));
  EXPECT_EQ(made.Header("location"), url);
  EXPECT_EQ(c["@id"], url);
  EXPECT_EQ(c["@type"], "vocab:Customer");
  EXPECT_EQ(c["name"], "wellcome");
  EXPECT_EQ(c["displayName"], "Wellcome Collection");
  EXPECT_EQ(c["keys"], url + "/keys");
  EXPECT_EQ(c["spaces"], url + "/spaces");
  EXPECT_EQ(c["queue"], url + "/queue");
  for (const char* link : {"keys", "spaces", "queue"})
    EXPECT_EQ(Http("GET", c[link].get<std::string>(), "", Admin()).status, 200) << link;

  ExpectHydraError(Http("POST", U("/customers"), json{{"name", "wellcome"}}.dump(), Admin()), 409);
  ExpectHydraError(Http("POST", U("/customers"), json{{"name", "bad name!"}}.dump(), Admin()), 400);
  ExpectHydraError(Http("POST", U("/customers"), json{{"displayName", "x"}}.dump(), Admin()), 400);
  ExpectHydraError(Http("POST", U("/customers"), json{{"name", 7}}.dump(), Admin()), 400);

  auto patched = Http("PATCH", url, json{{"displayName", "WC"}}.dump(), Admin());
  ASSERT_EQ(patched.status, 200);
  EXPECT_EQ(patched.Json()["displayName"], "WC");
  EXPECT_EQ(Http("GET", url, "", Admin()).Json()["displayName"], "WC");
  ExpectHydraError(Http("GET", U("/customers/99999"), "", Admin()), 404);

  // A customer's own key: its own customer yes, the list and other customers no.
  auto key = Http("POST", url + "/keys", "", Admin()).Json();
  Credentials own{key["key"], key["secret"]};
  EXPECT_EQ(Http("GET", url, "", own).status, 200);
  ExpectHydraError(Http("GET", U("/customers"), "", own), 403);
  ExpectHydraError(Http("POST", U("/customers"), json{{"name", "sneaky"}}.dump(), own), 403);
  ExpectHydraError(Http("GET", U("/customers/1"), "", own), 404);
}

TEST_F(FoundationApi, KeysAreShownOnceAndRevocable) {
  auto [id, creds] = NewCustomer("keyholder");
  std::string keys = U("/customers/" + std::to_string(id) + "/keys");
  auto list = Http("GET", keys, "", creds);
  ASSERT_EQ(list.status, 200);
  auto j = list.Json();
  EXPECT_EQ(j["totalItems"], 1);
  EXPECT_FALSE(j["member"][0].contains("secret"));
  EXPECT_EQ(list.body.find(creds.secret), std::string::npos);
  std::string one = j["member"][0]["@id"];
  EXPECT_EQ(Http("GET", one, "", creds).status, 200);

  auto second = Http("POST", keys, "", creds);
  ASSERT_EQ(second.status, 201);
  Credentials creds2{second.Json()["key"], second.Json()["secret"]};
  EXPECT_EQ(second.Header("location"), second.Json()["@id"]);
  EXPECT_EQ(Http("GET", keys, "", creds2).Json()["totalItems"], 2);

  EXPECT_EQ(Http("DELETE", keys + "/" + creds.key, "", creds2).status, 204);
  ExpectHydraError(Http("GET", keys, "", creds), 401);
  ExpectHydraError(Http("DELETE", keys + "/" + creds.key, "", creds2), 404);
  EXPECT_EQ(Http("GET", keys, "", creds2).status, 200);
}

TEST_F(FoundationApi, SpacesLifecycle) {
  auto [id, creds] = NewCustomer("spacer");
  std::string spaces = U("/customers/" + std::to_string(id) + "/spaces");
  auto a = Http("POST", spaces, json{{"name", "books"}, {"defaultTags", {"x"}}}.dump(), creds);
  ASSERT_EQ(a.status, 201) << a.body;
  EXPECT_EQ(a.Json()["id"], 1);
  EXPECT_EQ(a.Json()["maxUnauthorised"], -1);
  EXPECT_EQ(a.Json()["defaultTags"], json({"x"}));
  EXPECT_EQ(a.Header("location"), spaces + "/1");
  auto b = Http("POST", spaces, json{{"name", "maps"}, {"maxUnauthorised", 400}}.dump(), creds);
  EXPECT_EQ(b.Json()["id"], 2);
  EXPECT_EQ(b.Json()["maxUnauthorised"], 400);
  ExpectHydraError(Http("POST", spaces, json{{"name", "books"}}.dump(), creds), 409);
  ExpectHydraError(Http("POST", spaces, json{{"maxUnauthorised", 1}}.dump(), creds), 400);
  ExpectHydraError(Http("POST", spaces, json{{"name", "t"}, {"maxUnauthorised", "x"}}.dump(), creds),
              400);
  ExpectHydraError(Http("POST", spaces, json{{"name", "t"}, {"defaultTags", "x"}}.dump(), creds), 400);

  auto list = Http("GET", spaces, "", creds).Json();
  EXPECT_EQ(list["totalItems"], 2);
  EXPECT_EQ(list["member"][1]["name"], "maps");
  auto one = Http("GET", spaces + "/1", "", creds).Json();
  EXPECT_EQ(one["name"], "books");
  EXPECT_EQ(Http("GET", one["images"].get<std::string>(), "", creds).status, 200);

  auto created = Http("PUT", spaces + "/10", json{{"name", "chosen"}}.dump(), creds);
  EXPECT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(created.Json()["id"], 10);
  auto replaced = Http("PUT", spaces + "/10", json{{"name", "chosen2"}}.dump(), creds);
  EXPECT_EQ(replaced.status, 200);
  EXPECT_EQ(replaced.Json()["name"], "chosen2");
  ExpectHydraError(Http("PUT", spaces + "/10", json{{"name", "books"}}.dump(), creds), 409);

  auto patched = Http("PATCH", spaces + "/2", json{{"maxUnauthorised", 100}}.dump(), creds);
  EXPECT_EQ(patched.status, 200);
  EXPECT_EQ(patched.Json()["maxUnauthorised"], 100);
  EXPECT_EQ(patched.Json()["name"], "maps");
  ExpectHydraError(Http("PATCH", spaces + "/77", json{{"name", "x"}}.dump(), creds), 404);
  ExpectHydraError(Http("GET", spaces + "/77", "", creds), 404);
  ExpectHydraError(Http("GET", spaces + "/abc", "", creds), 404);

  EXPECT_EQ(Http("DELETE", spaces + "/10", "", creds).status, 204);
  ExpectHydraError(Http("DELETE", spaces + "/10", "", creds), 404);
  // A space holding images cannot be deleted.
  auto img = Http("PUT", spaces + "/1/images/one",
                  json{{"origin", "https://example.org/1.jpg"}, {"mediaType", "image/jpeg"}}.dump(),
                  creds);
  ASSERT_EQ(img.status, 201) << img.body;
  ExpectHydraError(Http("DELETE", spaces + "/1", "", creds), 409);
  EXPECT_EQ(Http("GET", spaces + "/1", "", creds).Json()["approximateNumberOfImages"], 1);
}

// Customer A's key against every route of customer B: always 404, never 200.
TEST_F(FoundationApi, IsolationMatrix) {
  auto [a, credsA] = NewCustomer("isolated-a");
  auto [b, credsB] = NewCustomer("isolated-b");
  std::string B = U("/customers/" + std::to_string(b));
  ASSERT_EQ(Http("POST", B + "/spaces", json{{"name", "s"}}.dump(), credsB).status, 201);
  json image = {{"origin", "https://example.org/x.jpg"}, {"mediaType", "image/jpeg"}};
  ASSERT_EQ(Http("PUT", B + "/spaces/1/images/x", image.dump(), credsB).status, 201);
  auto batch = Http("POST", B + "/queue",
                    json{{"member", {{{"space", 1}, {"id", "y"}, {"origin", "https://e.org/y"},
                                      {"mediaType", "image/jpeg"}}}}}
                        .dump(),
                    credsB);
  ASSERT_EQ(batch.status, 201) << batch.body;
  std::string bid = std::to_string(batch.Json()["id"].get<int64_t>());
  std::string keyB = Http("GET", B + "/keys", "", credsB).Json()["member"][0]["key"];

  struct Probe {
    std::string method, path, body;
  };
  std::vector<Probe> probes = {
      {"GET", "", ""},
      {"PATCH", "", json{{"displayName", "pwned"}}.dump()},
      {"GET", "/keys", ""},
      {"POST", "/keys", ""},
      {"GET", "/keys/" + keyB, ""},
      {"DELETE", "/keys/" + keyB, ""},
      {"GET", "/spaces", ""},
      {"POST", "/spaces", json{{"name", "evil"}}.dump()},
      {"GET", "/spaces/1", ""},
      {"PUT", "/spaces/1", json{{"name", "evil"}}.dump()},
      {"PATCH", "/spaces/1", json{{"name", "evil"}}.dump()},
      {"DELETE", "/spaces/1", ""},
      {"GET", "/spaces/1/images", ""},
      {"GET", "/spaces/1/images/x", ""},
      {"PUT", "/spaces/1/images/x", image.dump()},
      {"PATCH", "/spaces/1/images/x", json{{"string1", "evil"}}.dump()},
      {"DELETE", "/spaces/1/images/x", ""},
      {"POST", "/spaces/1/images/x/reingest", ""},
      {"GET", "/queue", ""},
      {"POST", "/queue", json{{"member", {{{"space", 1}, {"origin", "https://e.org/z"}, {"mediaType", "image/jpeg"}}}}}.dump()},
      {"GET", "/queue/priority", ""},
      {"POST", "/queue/priority", json{{"member", {{{"space", 1}, {"origin", "https://e.org/z"}, {"mediaType", "image/jpeg"}}}}}.dump()},
      {"GET", "/queue/batches", ""},
      {"GET", "/queue/active", ""},
      {"GET", "/queue/recent", ""},
      {"GET", "/queue/images", ""},
      {"GET", "/queue/batches/" + bid, ""},
      {"GET", "/queue/batches/" + bid + "/images", ""},
      {"GET", "/queue/batches/" + bid + "/completedImages", ""},
      {"GET", "/queue/batches/" + bid + "/errorImages", ""},
      {"POST", "/queue/batches/" + bid + "/test", ""},
      {"POST", "/queue/batches/" + bid + "/retry", ""},
  };
  for (auto& p : probes) {
    auto r = Http(p.method, B + p.path, p.body, credsA);
    EXPECT_EQ(r.status, 404) << p.method << " " << p.path << ": " << r.body;
  }
  // Nothing of B's changed.
  EXPECT_EQ(Http("GET", B, "", credsB).Json()["displayName"], "isolated-b");
  EXPECT_EQ(Http("GET", B + "/spaces/1", "", credsB).Json()["name"], "s");
  EXPECT_EQ(Http("GET", B + "/spaces/1/images/x", "", credsB).Json()["string1"], "");
  EXPECT_EQ(Http("GET", B + "/keys", "", credsB).Json()["totalItems"], 1);
  EXPECT_EQ(Http("GET", B + "/queue/batches", "", credsB).Json()["totalItems"], 2);
  // The admin reaches B.
  EXPECT_EQ(Http("GET", B + "/spaces/1", "", Admin()).status, 200);
  (void)a;
}

TEST_F(FoundationApi, TransportErrors) {
  auto [id, creds] = NewCustomer("transport");
  std::string spaces = U("/customers/" + std::to_string(id) + "/spaces");
  ExpectHydraError(Http("POST", spaces, "{\"name\": ", creds), 400);
  ExpectHydraError(Http("POST", spaces, "[1,2,3]", creds), 400);
  ExpectHydraError(Http("POST", spaces, "", creds), 400);
  ExpectHydraError(Http("POST", spaces, "\"just a string\"", creds), 400);
  ExpectHydraError(Http("POST", spaces, json{{"name", {{"nested", true}}}}.dump(), creds), 400);

  std::string big = "{\"name\":\"" + std::string(11 * 1024 * 1024, 'x') + "\"}";
  auto huge = Http("POST", spaces, big, creds);
  EXPECT_EQ(huge.status, 413);
  EXPECT_EQ(Http("GET", spaces, "", creds).Json()["totalItems"], 0);

  ExpectHydraError(Http("GET", U("/no/such/route"), "", creds), 404);
  auto wrong = Http("DELETE", U("/customers"), "", Admin());
  ExpectHydraError(wrong, 405);
  EXPECT_NE(wrong.Header("allow").find("GET"), std::string::npos);
  EXPECT_NE(wrong.Header("allow").find("POST"), std::string::npos);
  ExpectHydraError(Http("PUT", U("/queue"), "{}"), 405);
  // Keep-alive connections survive errors; HEAD has no body.
  auto head = Http("HEAD", U("/"));
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());
}

TEST(FoundationRestart, EverythingSurvivesARestart) {
  TempDir dir;
  std::string data = dir.path() + "/data";
  Credentials creds;
  std::string customer_url;
  {
    QuireProcess s(data, {"--workers", "0"});
    auto c = Http("POST", s.url() + "/customers", json{{"name", "durable"}}.dump(), s.admin());
    ASSERT_EQ(c.status, 201);
    customer_url = "/customers/" + std::to_string(c.Json()["id"].get<int64_t>());
    auto k = Http("POST", s.url() + customer_url + "/keys", "", s.admin()).Json();
    creds = {k["key"], k["secret"]};
    ASSERT_EQ(Http("POST", s.url() + customer_url + "/spaces", json{{"name", "kept"}}.dump(), creds).status, 201);
    ASSERT_EQ(Http("PUT", s.url() + customer_url + "/spaces/1/images/im",
                   json{{"origin", "https://example.org/im.jpg"}, {"mediaType", "image/jpeg"}, {"string1", "abc"}}.dump(),
                   creds).status, 201);
    EXPECT_EQ(s.Stop(), 0);  // graceful SIGTERM exits cleanly
  }
  QuireProcess s(data, {"--workers", "0"});
  EXPECT_EQ(Http("GET", s.url() + customer_url, "", creds).Json()["name"], "durable");
  EXPECT_EQ(Http("GET", s.url() + customer_url + "/spaces/1", "", creds).Json()["name"], "kept");
  auto im = Http("GET", s.url() + customer_url + "/spaces/1/images/im", "", creds).Json();
  EXPECT_EQ(im["string1"], "abc");
  EXPECT_EQ(im["ingesting"], true);
  EXPECT_EQ(Http("GET", s.url() + customer_url + "/queue", "", creds).Json()["size"], 1);
}

}  // namespace
}  // namespace quire::test
