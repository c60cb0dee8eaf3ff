// The DLCS resources of issue 15 against a live `quire serve` over real HTTP: storage policies
// and exact usage (507 writes nothing; usage equals the bytes on disk after ingest, reingest
// and delete), origin strategies (an origin behind HTTP Basic ingests only with the right
// credentials, which never appear in a response or a log line), bulk metadata PATCH (all or
// nothing), allImages, batch assets, DELETE ?deleteFrom=, and isolation between customers.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"
#include "support/test_database.h"
#include "support/test_pyramid.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kPassword = "s3cr3t-Pa55word-never-shown";

class DlcsResourcesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    std::string key_file = dir_->path() + "/secrets.key";
    std::ofstream(key_file) << "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
    server_ = new QuireProcess(dir_->path() + "/data",
                               {"--workers", "2", "--allow-private-origins", "--secrets-key-file",
                                key_file, "--ingest-attempts", "1"});
    admin_ = new Api{server_->url(), server_->admin()};
    origin_ = new OriginServer();
  }
  static void TearDownTestSuite() {
    if (::testing::Test::HasFailure()) std::cerr << "---- log ----\n" << server_->Log();
    delete admin_;
    delete origin_;
    delete server_;
    delete dir_;
  }

  // A new customer with a key of its own; its API client.
  static Api NewCustomer(const std::string& name, int64_t* id) {
    *id = admin_->CreateCustomer(name);
    auto k = admin_->Post("/customers/" + std::to_string(*id) + "/keys", json());
    EXPECT_EQ(k.status, 201) << k.body;
    return Api{server_->url(), {k.Json()["key"], k.Json()["secret"]}};
  }
  static std::string C(int64_t c) { return "/customers/" + std::to_string(c); }
  static HttpResult Send(const Api& api, const std::string& method, const std::string& path,
                         const json& body = json()) {
    return Http(method, server_->url() + path, body.is_null() ? "" : body.dump(), api.auth);
  }
  static int64_t DiskBytes(const std::string& rel) {
    return TreeBytes(dir_->path() + "/data/blobs/" + rel);
  }

  static inline TempDir* dir_ = nullptr;
  static inline QuireProcess* server_ = nullptr;
  static inline Api* admin_ = nullptr;
  static inline OriginServer* origin_ = nullptr;
};

// ------------------------------------------------------------------ storage

TEST_F(DlcsResourcesTest, StoragePoliciesCrudAndCodes) {
  int64_t c = 0;
  Api cust = NewCustomer("policies", &c);
  auto list = cust.Get("/storagePolicies");
  ASSERT_EQ(list.status, 200) << list.body;
  bool has_default = false;
  json policies = list.Json();
  for (auto& m : policies["member"]) has_default |= m["id"] == "default";
  EXPECT_TRUE(has_default) << list.body;
  EXPECT_EQ(Http("GET", server_->url() + "/storagePolicies").status, 401);

  json small = {{"maximumNumberOfStoredImages", 5}, {"maximumTotalSizeOfStoredImages", 1000}};
  EXPECT_EQ(Send(cust, "PUT", "/storagePolicies/small", small).status, 403);  // admin only
  auto made = Send(*admin_, "PUT", "/storagePolicies/small", small);
  ASSERT_EQ(made.status, 201) << made.body;
  EXPECT_EQ(made.Header("location"), server_->url() + "/storagePolicies/small");
  EXPECT_EQ(made.Json()["@type"], "vocab:StoragePolicy");
  small["maximumNumberOfStoredImages"] = 6;
  auto updated = Send(*admin_, "PUT", "/storagePolicies/small", small);
  ASSERT_EQ(updated.status, 200) << updated.body;
  EXPECT_EQ(cust.Get("/storagePolicies/small").Json()["maximumNumberOfStoredImages"], 6);
  EXPECT_EQ(Send(*admin_, "PUT", "/storagePolicies/bad", json{{"maximumNumberOfStoredImages", -1}})
                .status,
            400);
  EXPECT_EQ(cust.Get("/storagePolicies/bad").status, 404);
  EXPECT_EQ(Send(*admin_, "PUT", "/storagePolicies/no%20spaces", small).status, 400);

  // Assigning: the administrator only; an unknown policy is a 400.
  json assign = {{"storagePolicy", server_->url() + "/storagePolicies/small"}};
  EXPECT_EQ(Send(cust, "PATCH", C(c) + "/storage", assign).status, 403);
  EXPECT_EQ(Send(*admin_, "PATCH", C(c) + "/storage", json{{"storagePolicy", "nope"}}).status, 400);
  auto set = Send(*admin_, "PATCH", C(c) + "/storage", assign);
  ASSERT_EQ(set.status, 200) << set.body;
  EXPECT_EQ(set.Json()["storagePolicy"], server_->url() + "/storagePolicies/small");
  EXPECT_EQ(Http("GET", set.Json()["storagePolicy"], "", cust.auth).status, 200);

  EXPECT_EQ(Send(*admin_, "DELETE", "/storagePolicies/small").status, 409);  // in use
  EXPECT_EQ(Send(*admin_, "DELETE", "/storagePolicies/default").status, 409);
  EXPECT_EQ(Send(*admin_, "PATCH", C(c) + "/storage", json{{"storagePolicy", "default"}}).status,
            200);
  EXPECT_EQ(Send(cust, "DELETE", "/storagePolicies/small").status, 403);
  EXPECT_EQ(Send(*admin_, "DELETE", "/storagePolicies/small").status, 204);
  EXPECT_EQ(Send(*admin_, "DELETE", "/storagePolicies/small").status, 404);
}

TEST_F(DlcsResourcesTest, QuotaExceededIs507AndWritesNothing) {
  int64_t c = 0;
  Api cust = NewCustomer("quota", &c);
  int64_t s = cust.CreateSpace(c, "q");
  ASSERT_EQ(
      Send(*admin_, "PUT", "/storagePolicies/two",
           json{{"maximumNumberOfStoredImages", 2}, {"maximumTotalSizeOfStoredImages", 1000000000}})
          .status,
      201);
  ASSERT_EQ(Send(*admin_, "PATCH", C(c) + "/storage", json{{"storagePolicy", "two"}}).status, 200);
  origin_->Serve("/quota.jpg", MakeJpeg(300, 200, 1), "image/jpeg");
  std::string o = origin_->Url("/quota.jpg");
  json three = json::array({Member(s, "a", o, "image/jpeg"), Member(s, "b", o, "image/jpeg"),
                            Member(s, "c", o, "image/jpeg")});
  auto refused = cust.Post(C(c) + "/queue", json{{"@type", "Collection"}, {"member", three}});
  ASSERT_EQ(refused.status, 507) << refused.body;
  EXPECT_NE(refused.Json()["detail"].get<std::string>().find("1 over the maximum"),
            std::string::npos)
      << refused.body;
  EXPECT_EQ(refused.Json()["title"], "Insufficient storage");
  EXPECT_EQ(cust.Get(C(c) + "/spaces/" + std::to_string(s) + "/images").Json()["totalItems"], 0);
  EXPECT_EQ(cust.Get(C(c) + "/queue/batches").Json()["totalItems"], 0);
  EXPECT_EQ(cust.Get(C(c) + "/storage").Json()["numberOfStoredImages"], 0);

  // Two fit; a third by PUT is refused the same way, and replacing one of the two is not.
  long status = 0;
  json batch = cust.SubmitBatch(c, json::array({three[0], three[1]}), &status);
  ASSERT_EQ(status, 201) << batch.dump();
  std::string img = C(c) + "/spaces/" + std::to_string(s) + "/images/";
  auto put = Send(cust, "PUT", img + "c", json{{"origin", o}, {"mediaType", "image/jpeg"}});
  EXPECT_EQ(put.status, 507) << put.body;
  EXPECT_EQ(cust.Get(img + "c").status, 404);
  EXPECT_EQ(Send(cust, "PUT", img + "a", json{{"origin", o}, {"mediaType", "image/jpeg"}}).status,
            200);
  EXPECT_EQ(cust.Get(C(c) + "/storage").Json()["numberOfStoredImages"], 2);
}

TEST_F(DlcsResourcesTest, UsageEqualsBytesOnDiskAfterIngestReingestAndDelete) {
  int64_t c = 0;
  Api cust = NewCustomer("usage", &c);
  int64_t s = cust.CreateSpace(c, "u");
  int64_t s2 = cust.CreateSpace(c, "u2");
  origin_->Serve("/u1.jpg", MakeJpeg(900, 700, 2), "image/jpeg");
  origin_->Serve("/u2.png", MakePng(500, 400, 3), "image/png");
  origin_->Serve("/u3.jpg", MakeJpeg(1600, 1200, 4), "image/jpeg");
  json f = Member(s2, "f", origin_->Url("/u2.png"), "image/png");
  f["deliveryChannels"] = json::array({"iiif-img", "thumbs", "file"});
  json batch =
      cust.SubmitBatch(c, json::array({Member(s, "x", origin_->Url("/u1.jpg"), "image/jpeg"), f}));
  json done = cust.WaitForBatch(c, batch["id"], 60s);
  ASSERT_EQ(done["completed"], 2) << done.dump();

  auto check = [&](const std::string& when) {
    std::string sp = C(c) + "/spaces/" + std::to_string(s);
    json cu = cust.Get(C(c) + "/storage").Json();
    json su = cust.Get(sp + "/storage").Json();
    EXPECT_EQ(cu["totalSizeOfStoredImages"], DiskBytes(std::to_string(c))) << when;
    EXPECT_EQ(su["totalSizeOfStoredImages"], DiskBytes(std::to_string(c) + "/" + std::to_string(s)))
        << when;
    EXPECT_GT(cu["totalSizeOfThumbnails"].get<int64_t>(), 0) << when;
    EXPECT_LT(cu["totalSizeOfThumbnails"], cu["totalSizeOfStoredImages"]) << when;
    auto x = cust.Get(sp + "/images/x/storage");
    if (x.status == 200) {
      EXPECT_EQ(x.Json()["size"], DiskBytes(std::to_string(c) + "/" + std::to_string(s) + "/x"))
          << when;
    }
  };
  check("after ingest");
  EXPECT_EQ(cust.Get(C(c) + "/storage").Json()["numberOfStoredImages"], 2);
  EXPECT_GT(DiskBytes(std::to_string(c)), 0);

  // Reingest x from a bigger origin: the figures follow the new blobs.
  std::string x = C(c) + "/spaces/" + std::to_string(s) + "/images/x";
  int64_t before = cust.Get(x + "/storage").Json()["size"];
  auto put =
      Send(cust, "PUT", x, json{{"origin", origin_->Url("/u3.jpg")}, {"mediaType", "image/jpeg"}});
  ASSERT_EQ(put.status, 200) << put.body;
  done = cust.WaitForBatch(c, Http("GET", put.Json()["batch"], "", cust.auth).Json()["id"], 60s);
  ASSERT_EQ(done["completed"], 1) << done.dump();
  EXPECT_GT(cust.Get(x + "/storage").Json()["size"].get<int64_t>(), before);
  check("after reingest");

  ASSERT_EQ(Send(cust, "DELETE", x).status, 204);
  EXPECT_EQ(cust.Get(x + "/storage").status, 404);
  check("after delete");
  EXPECT_EQ(cust.Get(C(c) + "/storage").Json()["numberOfStoredImages"], 1);
  EXPECT_EQ(cust.Get(C(c) + "/spaces/" + std::to_string(s) + "/storage")
                .Json()["totalSizeOfStoredImages"],
            0);
  EXPECT_EQ(cust.Get(C(c) + "/spaces/999/storage").status, 404);
}

// ------------------------------------------------------------------ origin strategies

TEST_F(DlcsResourcesTest, BasicAuthOriginIngestsOnlyWithTheRightCredentials) {
  int64_t c = 0;
  Api cust = NewCustomer("basicauth", &c);
  int64_t s = cust.CreateSpace(c, "b");
  OriginRoute route;
  route.body = MakeJpeg(640, 480, 5);
  route.content_type = "image/jpeg";
  route.basic_auth = std::string("reader:") + kPassword;
  origin_->Route("/private/page.jpg", route);
  std::string origin = origin_->Url("/private/page.jpg");

  // No strategy: the origin's refusal is an ordinary 401.
  json batch = cust.SubmitBatch(c, json::array({Member(s, "p", origin, "image/jpeg")}));
  json done = cust.WaitForBatch(c, batch["id"], 60s);
  ASSERT_EQ(done["errors"], 1) << done.dump();

  std::string strategies = C(c) + "/originStrategies";
  EXPECT_EQ(cust.Post(strategies, json{{"regex", "("}, {"strategy", "default"}}).status, 400);
  EXPECT_EQ(cust.Post(strategies, json{{"regex", ".*"}, {"strategy", "sftp"}}).status, 400);
  EXPECT_EQ(cust.Post(strategies, json{{"regex", ".*"}, {"strategy", "basic-http-authentication"}})
                .status,
            400);  // no credentials
  // Wrong password first.
  auto made = cust.Post(
      strategies, json{{"regex", "^http://127\\.0\\.0\\.1:[0-9]+/private/"},
                       {"strategy", "basic-http-authentication"},
                       {"credentials", json{{"user", "reader"}, {"password", "wrong"}}.dump()}});
  ASSERT_EQ(made.status, 201) << made.body;
  EXPECT_EQ(made.Json()["credentials"], "xxx");
  EXPECT_EQ(made.Header("location"), made.Json()["@id"].get<std::string>());
  std::string sid = made.Json()["id"];

  std::string img = C(c) + "/spaces/" + std::to_string(s) + "/images/p";
  auto re = cust.Post(img + "/reingest", json());
  ASSERT_EQ(re.status, 200) << re.body;
  done = cust.WaitForBatch(c, Http("GET", re.Json()["batch"], "", cust.auth).Json()["id"], 60s);
  ASSERT_EQ(done["errors"], 1) << done.dump();
  std::string error = cust.Get(img).Json()["error"];
  EXPECT_NE(error.find("refused the credentials of origin strategy " + sid), std::string::npos)
      << error;

  // The right password: it ingests, with the true dimensions.
  auto patched = Send(cust, "PATCH", strategies + "/" + sid,
                      json{{"credentials", json{{"user", "reader"}, {"password", kPassword}}}});
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_EQ(patched.Json()["credentials"], "xxx");
  re = cust.Post(img + "/reingest", json());
  done = cust.WaitForBatch(c, Http("GET", re.Json()["batch"], "", cust.auth).Json()["id"], 60s);
  ASSERT_EQ(done["completed"], 1) << done.dump();
  EXPECT_EQ(cust.Image(c, s, "p")["width"], 640);
  auto seen = origin_->Received("/private/page.jpg");
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.front().headers.count("authorization"), 0u);  // before any strategy

  // Other fields change without the credentials; "xxx" keeps them.
  auto reorder =
      Send(cust, "PATCH", strategies + "/" + sid, json{{"order", 5}, {"credentials", "xxx"}});
  ASSERT_EQ(reorder.status, 200) << reorder.body;
  EXPECT_EQ(reorder.Json()["order"], 5);

  // The credentials never come back, from any read, nor in the log.
  for (const std::string& body : {made.body, patched.body, reorder.body, cust.Get(strategies).body,
                                  cust.Get(strategies + "/" + sid).body, cust.Get(img).body}) {
    EXPECT_EQ(body.find(kPassword), std::string::npos) << body;
    EXPECT_EQ(body.find("wrong"), std::string::npos) << body;
  }
  EXPECT_EQ(server_->Log().find(kPassword), std::string::npos);
  // Nor does the database hold them in the clear.
  std::string db = dir_->path() + "/data/quire.db";
  if (std::filesystem::exists(db)) {
    std::ifstream in(db, std::ios::binary);
    std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(raw.find(kPassword), std::string::npos);
  }

  if (const char* backend = std::getenv("QUIRE_TEST_BACKEND");
      backend != nullptr && std::string(backend) == "postgresql") {
    ASSERT_EQ(server_->database_url().rfind("postgresql", 0), 0u) << server_->database_url();
    EXPECT_EQ(QueryInt(server_->database_url(),
                       "SELECT COUNT(*) FROM origin_strategies WHERE "
                       "credentials LIKE '%" +
                           std::string(kPassword) + "%'"),
              0);
    EXPECT_EQ(QueryInt(server_->database_url(),
                       "SELECT COUNT(*) FROM origin_strategies WHERE credentials LIKE 'v1:%'"),
              1);
  }
  // Another customer sees none of it.
  int64_t other = 0;
  Api stranger = NewCustomer("stranger", &other);
  EXPECT_EQ(stranger.Get(strategies + "/" + sid).status, 404);
  EXPECT_EQ(stranger.Get(strategies).status, 404);
  EXPECT_EQ(stranger.Get(C(other) + "/originStrategies/" + sid).status, 404);
  EXPECT_EQ(stranger.Get(C(other) + "/originStrategies").Json()["totalItems"], 0);
  EXPECT_EQ(Send(stranger, "DELETE", strategies + "/" + sid).status, 404);

  EXPECT_EQ(Send(cust, "DELETE", strategies + "/" + sid).status, 204);
  EXPECT_EQ(cust.Get(strategies + "/" + sid).status, 404);
  EXPECT_EQ(Send(cust, "DELETE", strategies + "/" + sid).status, 404);
}

TEST_F(DlcsResourcesTest, FirstMatchingStrategyWinsAndS3AmbientNeedsAnS3Origin) {
  int64_t c = 0;
  Api cust = NewCustomer("ordering", &c);
  int64_t s = cust.CreateSpace(c, "o");
  origin_->Serve("/plain/a.jpg", MakeJpeg(200, 100, 6), "image/jpeg");
  std::string strategies = C(c) + "/originStrategies";
  // The s3-ambient rule comes first for /plain/: the image fails naming it.
  ASSERT_EQ(
      cust.Post(strategies, json{{"regex", "/plain/"}, {"strategy", "s3-ambient"}, {"order", 1}})
          .status,
      201);
  auto def =
      cust.Post(strategies, json{{"regex", "/plain/"}, {"strategy", "default"}, {"order", 2}});
  ASSERT_EQ(def.status, 201);
  json batch = cust.SubmitBatch(
      c, json::array({Member(s, "a", origin_->Url("/plain/a.jpg"), "image/jpeg")}));
  json done = cust.WaitForBatch(c, batch["id"], 60s);
  ASSERT_EQ(done["errors"], 1) << done.dump();
  EXPECT_NE(cust.Image(c, s, "a")["error"].get<std::string>().find("s3-ambient"),
            std::string::npos);
  // Moving `default` ahead makes it the first match.
  ASSERT_EQ(Send(cust, "PATCH", strategies + "/" + def.Json()["id"].get<std::string>(),
                 json{{"order", 0}})
                .status,
            200);
  auto listed = cust.Get(strategies).Json();
  ASSERT_EQ(listed["totalItems"], 2);
  EXPECT_EQ(listed["member"][0]["strategy"], "default");
  auto re = cust.Post(C(c) + "/spaces/" + std::to_string(s) + "/images/a/reingest", json());
  done = cust.WaitForBatch(c, Http("GET", re.Json()["batch"], "", cust.auth).Json()["id"], 60s);
  EXPECT_EQ(done["completed"], 1) << done.dump();
}

// ------------------------------------------------------------------ bulk operations

// Six clients PATCH six different fields of the same two images at the same moment, ten times
// over: each request reads and writes inside one transaction, so after every round all six
// fields hold that round's values (a PATCH that read before another wrote would put back the
// other's old value: a lost update).
TEST_F(DlcsResourcesTest, ConcurrentBulkPatchesOfDifferentFieldsLoseNoUpdate) {
  int64_t c = 0;
  Api cust = NewCustomer("bulk-race", &c);
  int64_t s = cust.CreateSpace(c, "race");
  origin_->Serve("/race.jpg", MakeJpeg(64, 48, 5), "image/jpeg");
  json batch =
      cust.SubmitBatch(c, json::array({Member(s, "r1", origin_->Url("/race.jpg"), "image/jpeg"),
                                       Member(s, "r2", origin_->Url("/race.jpg"), "image/jpeg")}));
  ASSERT_EQ(cust.WaitForBatch(c, batch["id"], 60s)["completed"], 2);
  std::string images = C(c) + "/spaces/" + std::to_string(s) + "/images";
  const std::vector<std::string> fields = {"string1", "string2", "string3",
                                           "number1", "number2", "number3"};
  auto value = [](const std::string& field, int round) {
    return field.rfind("string", 0) == 0 ? json("round-" + std::to_string(round)) : json(round);
  };
  for (int round = 1; round <= 10; ++round) {
    std::vector<std::thread> clients;
    std::vector<int> statuses(fields.size());
    std::atomic<int> ready{0};
    for (size_t f = 0; f < fields.size(); ++f)
      clients.emplace_back([&, f] {
        json members = json::array();
        for (const char* id : {"r1", "r2"})
          members.push_back(json{{"id", id}, {fields[f], value(fields[f], round)}});
        ++ready;
        while (ready < int(fields.size())) std::this_thread::yield();
        statuses[f] = Send(cust, "PATCH", images, json{{"member", members}}).status;
      });
    for (auto& t : clients) t.join();
    for (size_t f = 0; f < fields.size(); ++f) ASSERT_EQ(statuses[f], 200) << fields[f];
    for (const char* id : {"r1", "r2"}) {
      json image = cust.Image(c, s, id);
      for (const std::string& field : fields)
        ASSERT_EQ(image[field], value(field, round))
            << "round " << round << ", " << id << "." << field << ": " << image.dump();
    }
  }
}

TEST_F(DlcsResourcesTest, BulkPatchIsAllOrNothingAndAllImagesFindsAcrossSpaces) {
  int64_t c = 0;
  Api cust = NewCustomer("bulk", &c);
  int64_t s1 = cust.CreateSpace(c, "one");
  int64_t s2 = cust.CreateSpace(c, "two");
  origin_->Serve("/bulk.jpg", MakeJpeg(120, 80, 7), "image/jpeg");
  std::string o = origin_->Url("/bulk.jpg");
  json m1 = Member(s1, "i1", o, "image/jpeg");
  json m2 = Member(s1, "i2", o, "image/jpeg");
  json m3 = Member(s2, "j1", o, "image/jpeg");
  m3["string1"] = "keep";
  json batch = cust.SubmitBatch(c, json::array({m1, m2, m3}));
  ASSERT_EQ(cust.WaitForBatch(c, batch["id"], 60s)["completed"], 3);
  std::string images = C(c) + "/spaces/" + std::to_string(s1) + "/images";

  // One missing image: 400 naming it, and neither of the others changed.
  json bad = {{"@type", "Collection"},
              {"member", json::array({json{{"id", "i1"}, {"string1", "new"}},
                                      json{{"id", "nope"}, {"string1", "new"}}})}};
  auto r = Send(cust, "PATCH", images, bad);
  ASSERT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("nope"), std::string::npos);
  EXPECT_EQ(cust.Image(c, s1, "i1")["string1"], "");
  // A non-metadata field is refused.
  r = Send(cust, "PATCH", images,
           json{{"member", json::array({json{{"id", "i1"}, {"origin", "http://x/y.jpg"}}})}});
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("'origin'"), std::string::npos);
  // A bad value in the second member: nothing from the first is written either.
  r = Send(cust, "PATCH", images,
           json{{"member", json::array({json{{"id", "i1"}, {"number1", 4}},
                                        json{{"id", "i2"}, {"number1", "four"}}})}});
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(cust.Image(c, s1, "i1")["number1"], 0);
  // Over the limit, and empty.
  json many = json::array();
  for (int i = 0; i < 251; ++i) many.push_back(json{{"id", "i" + std::to_string(i)}});
  EXPECT_EQ(Send(cust, "PATCH", images, json{{"member", many}}).status, 400);
  EXPECT_EQ(Send(cust, "PATCH", images, json{{"member", json::array()}}).status, 400);

  r = Send(cust, "PATCH", images,
           json{{"member", json::array({json{{"id", "i1"}, {"string1", "new"}, {"number1", 4}},
                                        json{{"id", "i2"}, {"tags", {"t"}}}})}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["totalItems"], 2);
  EXPECT_EQ(cust.Image(c, s1, "i1")["string1"], "new");
  EXPECT_EQ(cust.Image(c, s1, "i1")["number1"], 4);
  EXPECT_EQ(cust.Image(c, s1, "i2")["tags"], json::array({"t"}));
  EXPECT_EQ(cust.Image(c, s1, "i1")["width"], 120);  // no reingest

  // allImages: across spaces, with the filters of a listing.
  auto all = cust.Get(C(c) + "/allImages");
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(all.Json()["totalItems"], 3);
  EXPECT_EQ(cust.Get(C(c) + "/allImages?string1=keep").Json()["totalItems"], 1);
  EXPECT_EQ(cust.Get(C(c) + "/allImages?space=" + std::to_string(s1)).Json()["totalItems"], 2);
  EXPECT_EQ(cust.Get(C(c) + "/allImages?q=notjson").status, 400);
  std::string cs = std::to_string(c) + "/";
  auto found = cust.Post(C(c) + "/allImages",
                         json{{"member", json::array({json{{"id", cs + std::to_string(s1) + "/i1"}},
                                                      json{{"id", cs + std::to_string(s2) + "/j1"}},
                                                      json{{"id", cs + "77/zz"}}})}});
  ASSERT_EQ(found.status, 200) << found.body;
  EXPECT_EQ(found.Json()["totalItems"], 2);
  EXPECT_EQ(
      cust.Post(C(c) + "/allImages", json{{"member", json::array({json{{"id", "1/1/x"}}})}}).status,
      400);  // another customer's id
  json lots = json::array();
  for (int i = 0; i < 501; ++i) lots.push_back(json{{"id", cs + "1/x" + std::to_string(i)}});
  EXPECT_EQ(cust.Post(C(c) + "/allImages", json{{"member", lots}}).status, 400);

  // Batch assets: historical membership (i1 was reingested in a newer batch since).
  auto re = cust.Post(images + "/i1/reingest", json());
  ASSERT_EQ(re.status, 200);
  auto assets =
      cust.Get(C(c) + "/queue/batches/" + std::to_string(batch["id"].get<int64_t>()) + "/assets");
  ASSERT_EQ(assets.status, 200) << assets.body;
  EXPECT_EQ(assets.Json()["totalItems"], 3);

  // Isolation: another customer reaches none of it.
  int64_t other = 0;
  Api stranger = NewCustomer("bulk-stranger", &other);
  EXPECT_EQ(Send(stranger, "PATCH", images, bad).status, 404);
  EXPECT_EQ(stranger.Get(C(c) + "/allImages").status, 404);
  EXPECT_EQ(stranger.Get(C(other) + "/allImages").Json()["totalItems"], 0);
  EXPECT_EQ(stranger.Get(C(c) + "/storage").status, 404);

  // DELETE ?deleteFrom=: a bad value deletes nothing; a valid one deletes.
  EXPECT_EQ(Send(cust, "DELETE", images + "/i2?deleteFrom=everywhere").status, 400);
  EXPECT_EQ(cust.Get(images + "/i2").status, 200);
  EXPECT_EQ(Send(cust, "DELETE", images + "/i2?deleteFrom=internalCache,cdn").status, 204);
  EXPECT_EQ(cust.Get(images + "/i2").status, 404);
}

// ------------------------------------------------------------------ delivery channel policies

TEST_F(DlcsResourcesTest, ThumbsPolicySizesAreMadeAndListedInThumbsInfoJson) {
  int64_t c = 0;
  Api cust = NewCustomer("thumbpolicy", &c);
  int64_t s = cust.CreateSpace(c, "t");
  std::string base = C(c) + "/deliveryChannelPolicies";
  auto channels = cust.Get(base);
  ASSERT_EQ(channels.status, 200) << channels.body;
  json ch = channels.Json();
  ASSERT_EQ(ch["totalItems"], 4);  // iiif-img, iiif-av, thumbs, file
  for (auto& m : ch["member"]) EXPECT_EQ(Http("GET", m["@id"], "", cust.auth).status, 200);

  EXPECT_EQ(cust.Post(base + "/thumbs", json{{"name", "bad"}, {"policyData", "[\"800,\"]"}}).status,
            400);
  EXPECT_EQ(
      cust.Post(base + "/thumbs", json{{"name", "default"}, {"policyData", "[\"!8,8\"]"}}).status,
      409);
  EXPECT_EQ(cust.Post(base + "/iiif-img", json{{"name", "x"}, {"policyData", "[\"!8,8\"]"}}).status,
            400);
  EXPECT_EQ(cust.Post(base + "/nosuch", json{{"name", "x"}, {"policyData", "[]"}}).status, 404);
  auto made = cust.Post(base + "/thumbs", json{{"name", "small"},
                                               {"displayName", "Small thumbs"},
                                               {"policyData", "[\"!300,300\",\"!60,60\"]"}});
  ASSERT_EQ(made.status, 201) << made.body;
  EXPECT_EQ(made.Header("location"), server_->url() + base + "/thumbs/small");
  EXPECT_EQ(
      cust.Post(base + "/thumbs", json{{"name", "small"}, {"policyData", "[\"!8,8\"]"}}).status,
      409);
  EXPECT_EQ(Send(cust, "PATCH", base + "/thumbs/small", json{{"displayName", "Smaller"}}).status,
            200);
  EXPECT_EQ(cust.Get(base + "/thumbs/small").Json()["displayName"], "Smaller");
  EXPECT_EQ(cust.Get(base + "/thumbs").Json()["totalItems"], 2);  // default + small
  EXPECT_EQ(Send(cust, "DELETE", base + "/thumbs/default").status, 409);

  // An unknown policy on a member: the batch is refused whole.
  json unknown = Member(s, "u", origin_->Url("/thumbs.jpg"), "image/jpeg");
  unknown["deliveryChannels"] = json::array({json{{"channel", "iiif-img"}, {"policy", "default"}},
                                             json{{"channel", "thumbs"}, {"policy", "nosuch"}}});
  auto refused = cust.Post(C(c) + "/queue", json{{"member", json::array({unknown})}});
  EXPECT_EQ(refused.status, 400) << refused.body;

  origin_->Serve("/thumbs.jpg", MakeJpeg(1000, 750, 8), "image/jpeg");
  json m = Member(s, "t1", origin_->Url("/thumbs.jpg"), "image/jpeg");
  m["deliveryChannels"] = json::array({json{{"channel", "iiif-img"}, {"policy", "default"}},
                                       json{{"channel", "thumbs"}, {"policy", "small"}}});
  json batch = cust.SubmitBatch(c, json::array({m}));
  ASSERT_EQ(cust.WaitForBatch(c, batch["id"], 60s)["completed"], 1);
  auto info = Http("GET", server_->url() + "/thumbs/" + std::to_string(c) + "/" +
                              std::to_string(s) + "/t1/info.json");
  ASSERT_EQ(info.status, 200) << info.body;
  json sizes = info.Json()["sizes"];
  ASSERT_EQ(sizes.size(), 2u) << info.body;
  std::set<std::pair<int, int>> listed;
  for (auto& z : sizes) listed.insert({z["width"].get<int>(), z["height"].get<int>()});
  EXPECT_EQ(listed, (std::set<std::pair<int, int>>{{300, 225}, {60, 45}})) << info.body;
  auto thumb = Http("GET", server_->url() + "/thumbs/" + std::to_string(c) + "/" +
                               std::to_string(s) + "/t1/full/!300,300/0/default.jpg");
  ASSERT_EQ(thumb.status, 200);
  Decoded d = Decode(thumb.body);
  EXPECT_EQ(d.width, 300);
  EXPECT_EQ(d.height, 225);

  // Isolation: another customer neither sees nor can use it.
  int64_t other = 0;
  Api stranger = NewCustomer("thumb-stranger", &other);
  EXPECT_EQ(stranger.Get(base + "/thumbs/small").status, 404);
  EXPECT_EQ(stranger.Get(C(other) + "/deliveryChannelPolicies/thumbs/small").status, 404);
  EXPECT_EQ(Send(cust, "DELETE", base + "/thumbs/small").status, 204);
  EXPECT_EQ(cust.Get(base + "/thumbs/small").status, 404);
}

TEST_F(DlcsResourcesTest, UseOriginalStoresATiledPyramidAsItIs) {
  int64_t c = 0;
  Api cust = NewCustomer("useoriginal", &c);
  int64_t s = cust.CreateSpace(c, "p");
  std::string jpeg = MakeJpeg(700, 500, 9);
  std::string path = dir_->path() + "/origin-pyramid.tif";
  WriteTestPyramid(vips::VImage::new_from_buffer(jpeg.data(), jpeg.size(), ""), path);
  std::ifstream in(path, std::ios::binary);
  std::string pyramid((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  origin_->Serve("/pyramid.tif", pyramid, "image/tiff");
  origin_->Serve("/flat.jpg", jpeg, "image/jpeg");
  auto member = [&](const std::string& id, const std::string& o, const std::string& type) {
    json m = Member(s, id, origin_->Url(o), type);
    m["deliveryChannels"] = json::array({json{{"channel", "iiif-img"}, {"policy", "use-original"}},
                                         json{{"channel", "thumbs"}, {"policy", "default"}}});
    return m;
  };
  json batch = cust.SubmitBatch(c, json::array({member("pyr", "/pyramid.tif", "image/tiff"),
                                                member("flat", "/flat.jpg", "image/jpeg")}));
  json done = cust.WaitForBatch(c, batch["id"], 60s);
  ASSERT_EQ(done["completed"], 1) << done.dump();
  ASSERT_EQ(done["errors"], 1) << done.dump();
  EXPECT_NE(cust.Image(c, s, "flat")["error"].get<std::string>().find("use-original"),
            std::string::npos);
  std::ifstream stored(dir_->path() + "/data/blobs/" + std::to_string(c) + "/" + std::to_string(s) +
                           "/pyr/image.tif",
                       std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(stored)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(bytes == pyramid) << "stored " << bytes.size() << " bytes, origin " << pyramid.size();
  auto tile = Http("GET", server_->url() + "/iiif-img/" + std::to_string(c) + "/" +
                              std::to_string(s) + "/pyr/0,0,256,256/256,/0/default.jpg");
  ASSERT_EQ(tile.status, 200);
  EXPECT_EQ(Decode(tile.body).width, 256);
}

TEST_F(DlcsResourcesTest, EntryPointCustomerAndSpaceLinkEveryNewCollectionAndEachResolves) {
  int64_t c = 0;
  Api cust = NewCustomer("links", &c);
  int64_t s = cust.CreateSpace(c, "l");
  json entry = cust.Get("/").Json();
  ASSERT_TRUE(entry.contains("storagePolicies")) << entry.dump();
  EXPECT_EQ(Http("GET", entry["storagePolicies"], "", cust.auth).status, 200);
  json customer = cust.Get(C(c)).Json();
  for (const char* link : {"storage", "originStrategies", "deliveryChannelPolicies", "allImages",
                           "defaultDeliveryChannels", "customHeaders", "keys", "spaces", "queue"}) {
    ASSERT_TRUE(customer.contains(link)) << link << " in " << customer.dump();
    EXPECT_EQ(Http("GET", customer[link], "", cust.auth).status, 200) << link;
  }
  json space = cust.Get(C(c) + "/spaces/" + std::to_string(s)).Json();
  ASSERT_TRUE(space.contains("storage")) << space.dump();
  EXPECT_EQ(Http("GET", space["storage"], "", cust.auth).status, 200);
  json usage = Http("GET", space["storage"], "", cust.auth).Json();
  for (const char* link : {"customer", "storagePolicy", "space"})
    EXPECT_EQ(Http("GET", usage[link], "", cust.auth).status, 200) << link;
}

TEST_F(DlcsResourcesTest, DefaultDeliveryChannelsResolveSpaceThenCustomerThenSystem) {
  int64_t c = 0;
  Api cust = NewCustomer("defaults", &c);
  int64_t s1 = cust.CreateSpace(c, "d1");
  int64_t s2 = cust.CreateSpace(c, "d2");
  ASSERT_EQ(cust.Post(C(c) + "/deliveryChannelPolicies/thumbs",
                      json{{"name", "tiny"}, {"policyData", "[\"!50,50\"]"}})
                .status,
            201);
  std::string customer_rules = C(c) + "/defaultDeliveryChannels";
  std::string space_rules = C(c) + "/spaces/" + std::to_string(s1) + "/defaultDeliveryChannels";
  EXPECT_EQ(cust.Post(customer_rules, json{{"mediaType", "image"}, {"channel", "thumbs"}}).status,
            400);
  EXPECT_EQ(cust.Post(customer_rules,
                      json{{"mediaType", "image/*"}, {"channel", "thumbs"}, {"policy", "nope"}})
                .status,
            400);
  EXPECT_EQ(
      cust.Post(customer_rules, json{{"mediaType", "application/pdf"}, {"channel", "iiif-img"}})
          .status,
      400);
  EXPECT_EQ(cust.Post(C(c) + "/spaces/999/defaultDeliveryChannels",
                      json{{"mediaType", "image/*"}, {"channel", "file"}})
                .status,
            404);
  // Customer-wide: images get iiif-img + the tiny thumbs.
  for (const json& rule :
       {json{{"mediaType", "image/*"}, {"channel", "iiif-img"}, {"policy", "default"}},
        json{{"mediaType", "image/*"}, {"channel", "thumbs"}, {"policy", "tiny"}}}) {
    auto made = cust.Post(customer_rules, rule);
    ASSERT_EQ(made.status, 201) << made.body;
    EXPECT_EQ(Http("GET", made.Header("location"), "", cust.auth).status, 200);
  }
  // Space 1: only the file channel for JPEGs.
  auto sp = cust.Post(space_rules,
                      json{{"mediaType", "image/jpeg"}, {"channel", "file"}, {"policy", "none"}});
  ASSERT_EQ(sp.status, 201) << sp.body;
  EXPECT_EQ(cust.Get(customer_rules).Json()["totalItems"], 2);
  EXPECT_EQ(cust.Get(space_rules).Json()["totalItems"], 1);

  origin_->Serve("/defaults.jpg", MakeJpeg(400, 300, 10), "image/jpeg");
  std::string o = origin_->Url("/defaults.jpg");
  json batch = cust.SubmitBatch(
      c, json::array({Member(s1, "in-s1", o, "image/jpeg"), Member(s2, "in-s2", o, "image/jpeg")}));
  ASSERT_EQ(cust.WaitForBatch(c, batch["id"], 60s)["completed"], 2);
  auto channels_of = [&](int64_t s, const std::string& id) {
    std::set<std::string> out;
    json image = cust.Image(c, s, id);
    for (auto& ch : image["deliveryChannels"])
      out.insert(ch["channel"].get<std::string>() + ":" + ch.value("policy", ""));
    return out;
  };
  EXPECT_EQ(channels_of(s1, "in-s1"), (std::set<std::string>{"file:none"}));
  EXPECT_EQ(channels_of(s2, "in-s2"), (std::set<std::string>{"iiif-img:default", "thumbs:tiny"}));
  auto info = Http("GET", server_->url() + "/thumbs/" + std::to_string(c) + "/" +
                              std::to_string(s2) + "/in-s2/info.json");
  ASSERT_EQ(info.status, 200);
  ASSERT_EQ(info.Json()["sizes"].size(), 1u) << info.body;
  EXPECT_EQ(info.Json()["sizes"][0]["width"], 50);

  // Without rules, the system default; an explicit deliveryChannels always wins.
  ASSERT_EQ(Send(cust, "DELETE", sp.Header("location").substr(server_->url().size())).status, 204);
  json rules = cust.Get(customer_rules).Json();
  for (auto& rule : rules["member"])
    ASSERT_EQ(Http("DELETE", rule["@id"], "", cust.auth).status, 204);
  auto put = Send(cust, "PUT", C(c) + "/spaces/" + std::to_string(s1) + "/images/plain",
                  json{{"origin", o}, {"mediaType", "image/jpeg"}});
  ASSERT_EQ(put.status, 201) << put.body;
  EXPECT_EQ(channels_of(s1, "plain"),
            (std::set<std::string>{"iiif-img:default", "thumbs:default"}));

  int64_t other = 0;
  Api stranger = NewCustomer("defaults-stranger", &other);
  EXPECT_EQ(stranger.Get(customer_rules).status, 404);
  EXPECT_EQ(stranger.Get(C(other) + "/defaultDeliveryChannels").Json()["totalItems"], 0);
}

TEST_F(DlcsResourcesTest, CustomHeadersReachDeliveryOfTheirSpaceAndUnsafeOnesAreRefused) {
  int64_t c = 0;
  Api cust = NewCustomer("headers", &c);
  int64_t s1 = cust.CreateSpace(c, "h1");
  int64_t s2 = cust.CreateSpace(c, "h2");
  std::string base = C(c) + "/customHeaders";
  for (const char* bad : {"Set-Cookie", "Connection", "Transfer-Encoding", "Content-Length",
                          "Location", "Keep-Alive", "Upgrade"})
    EXPECT_EQ(cust.Post(base, json{{"key", bad}, {"value", "x"}}).status, 400) << bad;
  EXPECT_EQ(cust.Post(base, json{{"key", "Cache-Control"}, {"value", "a\r\nSet-Cookie: x"}}).status,
            400);
  EXPECT_EQ(cust.Post(base, json{{"key", "Cache-Control"}, {"value", "x"}, {"space", 999}}).status,
            400);
  auto all = cust.Post(base, json{{"key", "X-Robots-Tag"}, {"value", "noindex"}});
  ASSERT_EQ(all.status, 201) << all.body;
  auto one = cust.Post(base, json{{"key", "Cache-Control"},
                                  {"value", "public, max-age=31536000, immutable"},
                                  {"space", s1}});
  ASSERT_EQ(one.status, 201) << one.body;
  EXPECT_EQ(Http("GET", one.Header("location"), "", cust.auth).status, 200);
  EXPECT_EQ(cust.Get(base).Json()["totalItems"], 2);

  origin_->Serve("/headers.jpg", MakeJpeg(300, 200, 11), "image/jpeg");
  std::string o = origin_->Url("/headers.jpg");
  json batch = cust.SubmitBatch(
      c, json::array({Member(s1, "a", o, "image/jpeg"), Member(s2, "b", o, "image/jpeg")}));
  ASSERT_EQ(cust.WaitForBatch(c, batch["id"], 60s)["completed"], 2);
  std::string cs = std::to_string(c) + "/";
  auto a_info =
      Http("GET", server_->url() + "/iiif-img/" + cs + std::to_string(s1) + "/a/info.json");
  auto a_tile = Http("GET", server_->url() + "/iiif-img/" + cs + std::to_string(s1) +
                                "/a/full/100,/0/default.jpg");
  auto a_thumb = Http("GET", server_->url() + "/thumbs/" + cs + std::to_string(s1) +
                                 "/a/full/!100,100/0/default.jpg");
  auto b_info =
      Http("GET", server_->url() + "/iiif-img/" + cs + std::to_string(s2) + "/b/info.json");
  for (const HttpResult* r : {&a_info, &a_tile, &a_thumb}) {
    ASSERT_EQ(r->status, 200);
    EXPECT_EQ(r->Header("cache-control"), "public, max-age=31536000, immutable");
    EXPECT_EQ(r->Header("x-robots-tag"), "noindex");
  }
  ASSERT_EQ(b_info.status, 200);
  EXPECT_NE(b_info.Header("cache-control"), "public, max-age=31536000, immutable");
  EXPECT_EQ(b_info.Header("x-robots-tag"), "noindex");

  int64_t other = 0;
  Api stranger = NewCustomer("headers-stranger", &other);
  EXPECT_EQ(stranger.Get(base).status, 404);
  EXPECT_EQ(Send(stranger, "DELETE", one.Header("location").substr(server_->url().size())).status,
            404);
  EXPECT_EQ(Send(cust, "DELETE", one.Header("location").substr(server_->url().size())).status, 204);
  EXPECT_EQ(cust.Get(base).Json()["totalItems"], 1);
}

}  // namespace
}  // namespace quire::test
