// The queue and its batches against a live `quire serve --workers 0` (spec §3, §4, §6–§8):
// listings and their orders and paging, 404s, batch images, image-listing filters, every
// queue POST rejection (all-or-nothing), minted ids, counts after submission, the global
// queue, the priority queue, media types and channels, old spellings, /test and /retry.
//
// Nothing is ingested by the server (no workers). Where a test needs outcomes, it plays the
// part of an ingest worker on the same database (as `quire worker` would): it claims the
// jobs it wants through the store and records their outcomes.
#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include "store/store.h"
#include "support/http_client.h"
#include "support/live_server.h"
#include "support/quire_process.h"

namespace quire::test {
namespace {

using nlohmann::json;

// 400 with exactly `detail`.
void Expect400(const HttpResult& r, const std::string& detail) {
  ExpectHydraError(r, 400);
  EXPECT_EQ(r.Json().value("detail", ""), detail) << r.body;
}

// 400 whose detail contains `part`.
void Expect400Containing(const HttpResult& r, const std::string& part) {
  ExpectHydraError(r, 400);
  EXPECT_NE(r.Json().value("detail", "").find(part), std::string::npos)
      << "detail does not mention '" << part << "': " << r.body;
}

json Member(const std::string& id, int64_t space = 1, const std::string& media = "image/jpeg") {
  json m = {{"space", space},
            {"origin", "https://example.org/images/" + (id.empty() ? "x" : id) + ".jpg"},
            {"mediaType", media}};
  if (!id.empty()) m["id"] = id;
  return m;
}

// Percent-encodes a query parameter value.
std::string http_escape(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char ch : s) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      out += static_cast<char>(ch);
    } else {
      out += '%';
      out += kHex[ch >> 4];
      out += kHex[ch & 15];
    }
  }
  return out;
}

// `{Member(..)}` with one element builds the object itself, not an array: wrap it.
json Body(const json& members) {
  json list = members.is_array() ? members : json::array({members});
  return json{{"@type", "Collection"}, {"member", list}};
}

json Members(const std::string& prefix, int n, int64_t space = 1) {
  json list = json::array();
  for (int i = 0; i < n; ++i) list.push_back(Member(prefix + std::to_string(i), space));
  return list;
}

class QueueApi : public LiveServerTest {
 protected:
  static void SetUpTestSuite() {
    LiveServerTest::SetUpTestSuite();
    auto s = OpenStore(DatabaseUrl());
    if (!s.ok()) throw std::runtime_error(s.status().message());
    store_ = std::move(s).value().release();
  }
  static void TearDownTestSuite() {
    delete store_;
    LiveServerTest::TearDownTestSuite();
  }

  // A fresh customer (so batch listings start empty), a key for it and space 1.
  struct Cust {
    int64_t id = 0;
    Credentials key;
    std::string base;  // API/customers/{c}
  };
  static Cust NewCustomer(const std::string& name, int spaces = 1) {
    Cust c;
    auto r = Http("POST", U("/customers"), json{{"name", name}}.dump(), Admin());
    EXPECT_EQ(r.status, 201) << r.body;
    c.id = r.Json()["id"];
    auto k = Http("POST", U("/customers/" + std::to_string(c.id) + "/keys"), "", Admin());
    EXPECT_EQ(k.status, 201) << k.body;
    c.key = Credentials{k.Json()["key"], k.Json()["secret"]};
    c.base = U("/customers/" + std::to_string(c.id));
    for (int s = 1; s <= spaces; ++s) {
      auto sp = Http("POST", c.base + "/spaces", json{{"name", "space" + std::to_string(s)}}.dump(),
                     c.key);
      EXPECT_EQ(sp.status, 201) << sp.body;
      EXPECT_EQ(sp.Json()["id"], s);
    }
    return c;
  }

  static HttpResult Post(const Cust& c, const json& body, bool priority = false) {
    return Http("POST", c.base + (priority ? "/queue/priority" : "/queue"), body.dump(), c.key);
  }
  static json Submit(const Cust& c, const json& members, bool priority = false) {
    auto r = Post(c, Body(members), priority);
    EXPECT_EQ(r.status, 201) << r.body;
    return r.Json();
  }
  static json Get(const Cust& c, const std::string& path) {
    auto r = Http("GET", c.base + path, "", c.key);
    EXPECT_EQ(r.status, 200) << path << ": " << r.body;
    return r.Json();
  }
  static json GetUrl(const Cust& c, const std::string& url) {
    auto r = Http("GET", url, "", c.key);
    EXPECT_EQ(r.status, 200) << url << ": " << r.body;
    return r.Json();
  }
  static std::string BatchPath(int64_t b) { return "/queue/batches/" + std::to_string(b); }

  static std::vector<int64_t> BatchIds(const json& collection) {
    std::vector<int64_t> ids;
    for (auto& m : collection["member"]) ids.push_back(m["id"].get<int64_t>());
    return ids;
  }
  static std::vector<std::string> ImageIds(const json& collection) {
    std::vector<std::string> ids;
    for (auto& m : collection["member"]) ids.push_back(m["id"].get<std::string>());
    return ids;
  }

  // Acts as an ingest worker of another process (this test's own store on the server's
  // database): claims jobs until every listed (space, id) of customer `c` has been recorded
  // with its outcome (true = success). Other jobs are handed back untouched. Returns once the
  // server shows every touched batch as the database holds it: on PostgreSQL another node's
  // change reaches the server's batch cache through NOTIFY, within milliseconds, not at once.
  static void Drive(const Cust& c, const std::map<std::string, bool>& outcomes,
                    int64_t space = 1) {
    const std::string owner = "queue-api-test";
    size_t recorded = 0;
    std::set<int64_t> batches;
    for (int guard = 0; recorded < outcomes.size() && guard < 10000; ++guard) {
      auto j = store_->ClaimJob(owner, 60000);
      ASSERT_TRUE(j.ok()) << j.status().message();
      ASSERT_TRUE(j->has_value()) << "no job left for the wanted outcomes";
      const Job& job = **j;
      auto it = outcomes.find(job.asset_id);
      if (job.customer != c.id || job.space != space || it == outcomes.end()) continue;
      IngestOutcome o;
      o.success = it->second;
      o.error = it->second ? "" : "origin returned HTTP 404";
      o.width = it->second ? 100 : 0;
      o.height = it->second ? 80 : 0;
      o.duration_ms = 10;
      ASSERT_TRUE(store_->RecordOutcome(job, o).ok());
      batches.insert(job.batch);
      ++recorded;
    }
    ASSERT_TRUE(store_->ReleaseJobs(owner).ok());
    ASSERT_EQ(recorded, outcomes.size());
    for (int64_t b : batches) {
      auto truth = store_->GetBatch(c.id, b);
      ASSERT_TRUE(truth.ok()) << truth.status().message();
      auto seen = [&] {
        json shown = Get(c, BatchPath(b));
        return shown["completed"] == truth->completed && shown["errors"] == truth->errors &&
               shown.contains("finished") == truth->finished_ms.has_value();
      };
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      while (!seen() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      ASSERT_TRUE(seen()) << "batch " << b << " not shown as recorded within 2 s";
    }
  }

  static Store* store_;
};
Store* QueueApi::store_ = nullptr;

// ------------------------------------------------------------------ listings

TEST_F(QueueApi, BatchListingsContentsOrdersAndPaging) {
  Cust c = NewCustomer("listings");
  std::vector<int64_t> b;
  for (const char* id : {"i1", "i2", "i3", "i4"}) b.push_back(Submit(c, {Member(id)})["id"]);
  b.push_back(Submit(c, {Member("i5"), Member("i6")})["id"]);
  b.push_back(Submit(c, {Member("i7")})["id"]);
  // b[0..2] finish in the order b[1], b[0], b[2].
  Drive(c, {{"i2", true}});
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  Drive(c, {{"i1", false}});
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  Drive(c, {{"i3", true}});
  // b[5] is superseded (its only member moved to b[6]) — finished but in neither list.
  b.push_back(Submit(c, {Member("i7")})["id"]);
  ASSERT_EQ(b.size(), 7u);
  EXPECT_TRUE(Get(c, BatchPath(b[5]))["superseded"]);

  // All batches: id ascending by default, one page, no view.
  json all = Get(c, "/queue/batches");
  EXPECT_EQ(all["@type"], "Collection");
  EXPECT_EQ(all["@id"], c.base + "/queue/batches");
  EXPECT_EQ(all["totalItems"], 7);
  EXPECT_EQ(BatchIds(all), b);
  EXPECT_FALSE(all.contains("view"));
  for (auto& m : all["member"]) EXPECT_EQ(m["@type"], "vocab:Batch");

  // Paging: pageSize=2&page=2 of 7 → 4 pages.
  json p2 = Get(c, "/queue/batches?pageSize=2&page=2");
  EXPECT_EQ(p2["totalItems"], 7);
  EXPECT_EQ(p2["pageSize"], 2);
  EXPECT_EQ(BatchIds(p2), (std::vector<int64_t>{b[2], b[3]}));
  ASSERT_TRUE(p2.contains("view")) << p2.dump();
  json v = p2["view"];
  std::string coll = c.base + "/queue/batches";
  EXPECT_EQ(v["@type"], "PartialCollectionView");
  EXPECT_EQ(v["@id"], coll + "?page=2&pageSize=2");
  EXPECT_EQ(v["page"], 2);
  EXPECT_EQ(v["pageSize"], 2);
  EXPECT_EQ(v["totalPages"], 4);
  EXPECT_EQ(v["first"], coll + "?page=1&pageSize=2");
  EXPECT_EQ(v["previous"], coll + "?page=1&pageSize=2");
  EXPECT_EQ(v["next"], coll + "?page=3&pageSize=2");
  EXPECT_EQ(v["last"], coll + "?page=4&pageSize=2");
  // Every view link resolves to the page it names.
  json p3 = GetUrl(c, v["next"]);
  EXPECT_EQ(BatchIds(p3), (std::vector<int64_t>{b[4], b[5]}));
  json last = GetUrl(c, v["last"]);
  EXPECT_EQ(BatchIds(last), (std::vector<int64_t>{b[6]}));
  EXPECT_TRUE(last["view"].contains("first"));
  EXPECT_TRUE(last["view"].contains("previous"));
  EXPECT_FALSE(last["view"].contains("next"));
  EXPECT_FALSE(last["view"].contains("last"));
  json first = GetUrl(c, v["first"]);
  EXPECT_EQ(BatchIds(first), (std::vector<int64_t>{b[0], b[1]}));
  EXPECT_FALSE(first["view"].contains("first"));
  EXPECT_FALSE(first["view"].contains("previous"));
  EXPECT_TRUE(first["view"].contains("next"));
  // Junk or non-positive page → 1.
  EXPECT_EQ(BatchIds(Get(c, "/queue/batches?pageSize=2&page=0")), BatchIds(first));
  EXPECT_EQ(BatchIds(Get(c, "/queue/batches?pageSize=2&page=x")), BatchIds(first));
  // Past the end: an empty page, not an error.
  EXPECT_TRUE(Get(c, "/queue/batches?pageSize=2&page=9")["member"].empty());

  // Orders.
  std::vector<int64_t> rev(b.rbegin(), b.rend());
  EXPECT_EQ(BatchIds(Get(c, "/queue/batches?orderByDescending=id")), rev);
  EXPECT_EQ(BatchIds(Get(c, "/queue/batches?orderBy=submitted")), b);
  json by_desc_paged = Get(c, "/queue/batches?orderByDescending=id&pageSize=3&page=1");
  EXPECT_EQ(BatchIds(by_desc_paged), (std::vector<int64_t>{b[6], b[5], b[4]}));
  EXPECT_NE(by_desc_paged["view"]["next"].get<std::string>().find("orderByDescending=id"),
            std::string::npos);
  ExpectHydraError(Http("GET", c.base + "/queue/batches?orderBy=colour", "", c.key), 400);

  // Active: not finished, not superseded — b[3], b[4], b[6].
  json active = Get(c, "/queue/active");
  EXPECT_EQ(active["totalItems"], 3);
  EXPECT_EQ(BatchIds(active), (std::vector<int64_t>{b[3], b[4], b[6]}));
  for (auto& m : active["member"]) {
    EXPECT_FALSE(m.contains("finished"));
    EXPECT_FALSE(m["superseded"]);
  }
  json active2 = Get(c, "/queue/active?pageSize=2&page=2");
  EXPECT_EQ(active2["totalItems"], 3);
  EXPECT_EQ(BatchIds(active2), (std::vector<int64_t>{b[6]}));
  EXPECT_EQ(active2["view"]["totalPages"], 2);
  EXPECT_EQ(active2["view"]["previous"], c.base + "/queue/active?page=1&pageSize=2");
  EXPECT_FALSE(active2["view"].contains("next"));

  // Recent: finished, not superseded, finished descending — b[2], b[0], b[1].
  json recent = Get(c, "/queue/recent");
  EXPECT_EQ(recent["totalItems"], 3);
  EXPECT_EQ(BatchIds(recent), (std::vector<int64_t>{b[2], b[0], b[1]}));
  for (auto& m : recent["member"]) EXPECT_TRUE(m.contains("finished"));
  json recent2 = Get(c, "/queue/recent?pageSize=2&page=2");
  EXPECT_EQ(recent2["totalItems"], 3);
  EXPECT_EQ(BatchIds(recent2), (std::vector<int64_t>{b[1]}));
  EXPECT_EQ(recent2["view"]["first"], c.base + "/queue/recent?page=1&pageSize=2");
  json recent1 = Get(c, "/queue/recent?pageSize=2");
  EXPECT_EQ(BatchIds(recent1), (std::vector<int64_t>{b[2], b[0]}));
  EXPECT_EQ(recent1["view"]["next"], c.base + "/queue/recent?page=2&pageSize=2");
  EXPECT_EQ(recent1["view"]["last"], c.base + "/queue/recent?page=2&pageSize=2");
  EXPECT_EQ(BatchIds(Get(c, "/queue/recent?orderBy=finished")),
            (std::vector<int64_t>{b[1], b[0], b[2]}));

  // The finished ones carry their outcome.
  json b0 = Get(c, BatchPath(b[0]));
  EXPECT_EQ(b0["errors"], 1);
  EXPECT_EQ(b0["completed"], 0);
  EXPECT_EQ(b0["estCompletion"], b0["finished"]);
  json b1 = Get(c, BatchPath(b[1]));
  EXPECT_EQ(b1["completed"], 1);
  EXPECT_EQ(b1["errors"], 0);

  // Queue counts agree: 3 active batches, 4 images waiting (i4, i5, i6, i7).
  json q = Get(c, "/queue");
  EXPECT_EQ(q["batchesWaiting"], 3);
  EXPECT_EQ(q["imagesWaiting"], 4);
  EXPECT_EQ(q["size"], 4);
}

TEST_F(QueueApi, UnknownAndForeignBatchesAre404) {
  Cust c = NewCustomer("owner404");
  Cust other = NewCustomer("other404");
  int64_t b = Submit(c, {Member("x")})["id"];
  for (const char* suffix : {"", "/images", "/completedImages", "/errorImages"}) {
    ExpectHydraError(Http("GET", c.base + BatchPath(999999) + suffix, "", c.key), 404);
    ExpectHydraError(Http("GET", c.base + "/queue/batches/abc" + suffix, "", c.key), 404);
    ExpectHydraError(Http("GET", c.base + "/queue/batches/-1" + suffix, "", c.key), 404);
    // Another customer's batch through its own URL space, or through the owner's.
    ExpectHydraError(Http("GET", other.base + BatchPath(b) + suffix, "", other.key), 404);
    ExpectHydraError(Http("GET", c.base + BatchPath(b) + suffix, "", other.key), 404);
    // The owner and the administrator see it.
    EXPECT_EQ(Http("GET", c.base + BatchPath(b) + suffix, "", c.key).status, 200);
    EXPECT_EQ(Http("GET", c.base + BatchPath(b) + suffix, "", Admin()).status, 200);
  }
  for (const char* action : {"/test", "/retry"}) {
    ExpectHydraError(Http("POST", c.base + BatchPath(999999) + action, "", c.key), 404);
    ExpectHydraError(Http("POST", other.base + BatchPath(b) + action, "", other.key), 404);
    ExpectHydraError(Http("POST", c.base + BatchPath(b) + action, "", other.key), 404);
  }
  // Another customer's queue and listings.
  for (const char* path : {"/queue", "/queue/batches", "/queue/active", "/queue/recent",
                           "/queue/images", "/queue/priority"})
    ExpectHydraError(Http("GET", c.base + path, "", other.key), 404);
  ExpectHydraError(Http("POST", c.base + "/queue", Body({Member("y")}).dump(), other.key), 404);
  // Anonymous → 401.
  ExpectHydraError(Http("GET", c.base + BatchPath(b)), 401);
  // Nothing leaked into the other customer's listings.
  EXPECT_EQ(Get(other, "/queue/batches")["totalItems"], 0);
  EXPECT_EQ(Get(c, "/queue/batches")["totalItems"], 1);
}

TEST_F(QueueApi, BatchImagesPagingAndOutcomeLists) {
  Cust c = NewCustomer("batchimages");
  json batch = Submit(c, Members("m", 5));
  int64_t b = batch["id"];
  std::string images = batch["images"];
  EXPECT_EQ(images, c.base + BatchPath(b) + "/images");
  json all = GetUrl(c, images);
  EXPECT_EQ(all["totalItems"], 5);
  EXPECT_EQ(ImageIds(all), (std::vector<std::string>{"m0", "m1", "m2", "m3", "m4"}));
  json p2 = GetUrl(c, images + "?pageSize=2&page=2");
  EXPECT_EQ(p2["totalItems"], 5);
  EXPECT_EQ(ImageIds(p2), (std::vector<std::string>{"m2", "m3"}));
  EXPECT_EQ(p2["view"]["totalPages"], 3);
  EXPECT_EQ(p2["view"]["first"], images + "?page=1&pageSize=2");
  EXPECT_EQ(p2["view"]["previous"], images + "?page=1&pageSize=2");
  EXPECT_EQ(p2["view"]["next"], images + "?page=3&pageSize=2");
  EXPECT_EQ(p2["view"]["last"], images + "?page=3&pageSize=2");
  EXPECT_EQ(ImageIds(GetUrl(c, p2["view"]["last"])), (std::vector<std::string>{"m4"}));
  for (auto& m : all["member"]) {
    EXPECT_EQ(m["@type"], "vocab:Image");
    EXPECT_TRUE(m["ingesting"]);
    EXPECT_EQ(m["batch"], batch["@id"]);
  }
  EXPECT_EQ(GetUrl(c, batch["completedImages"])["totalItems"], 0);
  EXPECT_EQ(GetUrl(c, batch["errorImages"])["totalItems"], 0);

  Drive(c, {{"m1", true}, {"m3", false}});
  json done = GetUrl(c, batch["completedImages"]);
  EXPECT_EQ(ImageIds(done), (std::vector<std::string>{"m1"}));
  EXPECT_FALSE(done["member"][0]["ingesting"]);
  EXPECT_EQ(done["member"][0]["width"], 100);
  json failed = GetUrl(c, batch["errorImages"]);
  EXPECT_EQ(ImageIds(failed), (std::vector<std::string>{"m3"}));
  EXPECT_EQ(failed["member"][0]["error"], "origin returned HTTP 404");
  json now = Get(c, BatchPath(b));
  EXPECT_EQ(now["count"], 5);
  EXPECT_EQ(now["completed"], 1);
  EXPECT_EQ(now["errors"], 1);
  EXPECT_FALSE(now.contains("finished"));
  EXPECT_TRUE(now.contains("estCompletion"));  // throughput has been measured
  EXPECT_EQ(Get(c, "/queue")["imagesWaiting"], 3);
}

TEST_F(QueueApi, ImageListingFiltersAndOrders) {
  Cust c = NewCustomer("filters");
  json members = json::array();
  struct Row {
    const char* id;
    const char* s1;
    int n1;
  };
  for (Row r : {Row{"f1", "x", 2}, Row{"f2", "y", 2}, Row{"f3", "x", 1}, Row{"f4", "x", 2},
                Row{"f5", "z", 3}, Row{"f6", "x", 3}}) {
    json m = Member(r.id);
    m["string1"] = r.s1;
    m["number1"] = r.n1;
    m["string2"] = std::string("s2-") + r.id;
    members.push_back(m);
  }
  Submit(c, members);
  std::string images = c.base + "/spaces/1/images";
  auto ids = [&](const std::string& query) { return ImageIds(GetUrl(c, images + query)); };
  using V = std::vector<std::string>;
  EXPECT_EQ(ids(""), (V{"f1", "f2", "f3", "f4", "f5", "f6"}));  // created, then id
  EXPECT_EQ(ids("?q=" + http_escape("{\"string1\":\"x\"}")), (V{"f1", "f3", "f4", "f6"}));
  EXPECT_EQ(ids("?number1=2"), (V{"f1", "f2", "f4"}));
  EXPECT_EQ(ids("?string1=x&number1=2"), (V{"f1", "f4"}));
  EXPECT_EQ(ids("?q=" + http_escape("{\"string1\":\"x\",\"number1\":2}")), (V{"f1", "f4"}));
  EXPECT_EQ(ids("?q=" + http_escape("{\"number1\":3}")), (V{"f5", "f6"}));
  EXPECT_EQ(ids("?q=" + http_escape("{\"string1\":\"nope\"}")), V{});
  EXPECT_EQ(ids("?q=" + http_escape("{\"space\":1,\"string2\":\"s2-f5\"}")), (V{"f5"}));
  EXPECT_EQ(ids("?orderBy=number1"), (V{"f3", "f1", "f2", "f4", "f5", "f6"}));
  EXPECT_EQ(ids("?orderByDescending=id"), (V{"f6", "f5", "f4", "f3", "f2", "f1"}));
  EXPECT_EQ(ids("?orderByDescending=string2&number1=2"), (V{"f4", "f2", "f1"}));
  EXPECT_EQ(ids("?orderBy=string1&number1=3"), (V{"f6", "f5"}));
  EXPECT_EQ(ids("?orderBy=id&q=" + http_escape("{\"string1\":\"x\"}") + "&pageSize=2&page=2"),
            (V{"f4", "f6"}));

  // Filtered paging carries the filter into its links.
  json paged = GetUrl(c, images + "?string1=x&pageSize=3");
  EXPECT_EQ(paged["totalItems"], 4);
  ASSERT_TRUE(paged.contains("view"));
  std::string next = paged["view"]["next"];
  EXPECT_NE(next.find("string1=x"), std::string::npos) << next;
  EXPECT_EQ(ImageIds(GetUrl(c, next)), (V{"f6"}));
  json qpaged = GetUrl(c, images + "?q=" + http_escape("{\"string1\":\"x\"}") + "&pageSize=3");
  EXPECT_EQ(ImageIds(GetUrl(c, qpaged["view"]["next"])), (V{"f6"}));

  // Unparseable or unusable filters → 400.
  for (const std::string& bad :
       {std::string("?q=") + http_escape("{\"string1\":"), std::string("?q=notjson"),
        std::string("?q=") + http_escape("[1,2]"), std::string("?q=") + http_escape("\"x\""),
        std::string("?q=") + http_escape("{\"colour\":\"red\"}"),
        std::string("?q=") + http_escape("{\"number1\":\"two\"}"),
        std::string("?q=") + http_escape("{\"string1\":5}"),
        std::string("?q=") + http_escape("{\"number1\":18446744073709551615}"),
        std::string("?number1=18446744073709551615"), std::string("?number1=two"),
        std::string("?number1=1.5"), std::string("?orderBy=colour"),
        std::string("?orderBy=id&orderByDescending=id"), std::string("?space=one")})
    ExpectHydraError(Http("GET", images + bad, "", c.key), 400);
}

// ------------------------------------------------------------------ queue POST rejections

TEST_F(QueueApi, EveryRejectionIs400WithTheSpecMessageAndWritesNothing) {
  Cust c = NewCustomer("rejections", 2);
  // One existing asset that every rejected body also tries to change.
  json existing = Member("existing");
  existing["string1"] = "original";
  json first = Submit(c, {existing});
  json before_image = Get(c, "/spaces/1/images/existing");
  json changed = Member("existing");
  changed["string1"] = "changed";

  auto check_nothing_written = [&](const std::string& what) {
    SCOPED_TRACE(what);
    EXPECT_EQ(Get(c, "/queue/batches")["totalItems"], 1);
    EXPECT_EQ(Get(c, "/spaces/1/images")["totalItems"], 1);
    EXPECT_EQ(Get(c, "/spaces/2/images")["totalItems"], 0);
    json img = Get(c, "/spaces/1/images/existing");
    EXPECT_EQ(img, before_image);
    json q = Get(c, "/queue");
    EXPECT_EQ(q["size"], 1);
    EXPECT_EQ(q["imagesWaiting"], 1);
  };

  json many = Members("many", 251);
  many.push_back(changed);
  json exactly_250_plus = Members("many", 250);
  exactly_250_plus.push_back(changed);  // 251

  json no_space = Member("n1");
  no_space.erase("space");
  json no_origin = Member("n2");
  no_origin.erase("origin");
  json no_media = Member("n3");
  no_media.erase("mediaType");
  json with_width = Member("w1");
  with_width["width"] = 100;
  json with_height = Member("w2");
  with_height["height"] = 100;
  json with_batch = Member("w3");
  with_batch["batch"] = first["@id"];
  json with_error = Member("w4");
  with_error["error"] = "";
  json with_ingesting = Member("w5");
  with_ingesting["ingesting"] = true;
  json with_finished = Member("w6");
  with_finished["finished"] = "2026-11-28T19:00:00.000Z";
  json with_created = Member("w7");
  with_created["created"] = "2026-11-28T19:00:00.000Z";

  struct Case {
    std::string name;
    json body;
    std::string exact;  // exact detail, or
    std::string part;   // a part of it
  };
  std::vector<Case> cases = {
      {"empty member", json{{"member", json::array()}}, "Members cannot be empty", ""},
      {"no member", json{{"@type", "Collection"}}, "Members cannot be empty", ""},
      {"null member", json{{"member", nullptr}}, "Members cannot be empty", ""},
      {"empty members (old spelling)", json{{"members", json::array()}},
       "Members cannot be empty", ""},
      {"251 members", Body(many), "Maximum assets in single batch is 250", ""},
      {"250 + 1", Body(exactly_250_plus), "Maximum assets in single batch is 250", ""},
      {"one duplicate", Body({Member("dup"), changed, Member("dup")}),
       "Members contains 1 duplicate Id(s): Id:dup,Space:1", ""},
      {"duplicate of the existing", Body({changed, changed}),
       "Members contains 1 duplicate Id(s): Id:existing,Space:1", ""},
      {"unknown space", Body({changed, Member("s9", 9)}),
       "The following space(s) could not be found: 9", ""},
      {"unknown spaces", Body({changed, Member("s9", 9), Member("s7", 7), Member("s9b", 9)}),
       "The following space(s) could not be found: 7, 9", ""},
      {"missing space", Body({changed, no_space}), "Member 1: 'space' is required", ""},
      {"missing origin", Body({changed, no_origin}), "Member 1: 'origin' is required", ""},
      {"missing mediaType", Body({changed, no_media}), "Member 1: 'mediaType' is required", ""},
      {"id with slash", Body({changed, Member("a/b")}), "", "invalid id 'a/b'"},
      {"id with backslash", Body({changed, Member("a\\b")}), "", "invalid id"},
      {"id with space", Body({changed, Member("a b")}), "", "invalid id"},
      {"id dot-dot", Body({changed, Member("..")}), "", "invalid id"},
      {"id too long", Body({changed, Member(std::string(256, 'x'))}), "", "255"},
      {"width", Body({changed, with_width}), "", "'width' is read-only"},
      {"height", Body({changed, with_height}), "", "'height' is read-only"},
      {"batch", Body({changed, with_batch}), "", "'batch' is read-only"},
      {"error", Body({changed, with_error}), "", "'error' is read-only"},
      {"ingesting", Body({changed, with_ingesting}), "", "'ingesting' is read-only"},
      {"finished", Body({changed, with_finished}), "", "'finished' is read-only"},
      {"created", Body({changed, with_created}), "", "'created' is read-only"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    auto r = Post(c, k.body);
    if (!k.exact.empty())
      Expect400(r, k.exact);
    else
      Expect400Containing(r, k.part);
    EXPECT_EQ(r.Header("location"), "");
    auto j = r.Json();
    EXPECT_EQ(j.value("instance", ""), c.base + "/queue");
    check_nothing_written(k.name);
  }

  // Several problems at once: every message, joined with ". ".
  json ro_in_space_9 = Member("w9", 9);
  ro_in_space_9["width"] = 5;
  auto multi = Post(c, Body({Member("a/b"), ro_in_space_9, Member("d"), Member("d")}));
  ExpectHydraError(multi, 400);
  std::string detail = multi.Json().value("detail", "");
  EXPECT_NE(detail.find("Member 0: invalid id 'a/b'"), std::string::npos) << detail;
  EXPECT_NE(detail.find("Member 1: 'width' is read-only"), std::string::npos) << detail;
  EXPECT_NE(detail.find("Members contains 1 duplicate Id(s): Id:d,Space:1"), std::string::npos)
      << detail;
  EXPECT_NE(detail.find("The following space(s) could not be found: 9"), std::string::npos)
      << detail;
  EXPECT_NE(detail.find(". "), std::string::npos) << detail;
  check_nothing_written("several problems");

  // Two duplicated ids (one of them three times).
  auto dups = Post(c, Body({Member("p"), Member("q"), Member("p"), Member("q"), Member("p")}));
  ExpectHydraError(dups, 400);
  std::string dd = dups.Json().value("detail", "");
  EXPECT_EQ(dd.rfind("Members contains 2 duplicate Id(s): ", 0), 0u) << dd;
  EXPECT_NE(dd.find("Id:p,Space:1"), std::string::npos) << dd;
  EXPECT_NE(dd.find("Id:q,Space:1"), std::string::npos) << dd;
  // The same id in two different spaces is not a duplicate.
  json ok = Submit(c, {Member("same", 1), Member("same", 2)});
  EXPECT_EQ(ok["count"], 2);

  // The priority queue applies the same checks.
  Expect400(Post(c, json{{"member", json::array()}}, true), "Members cannot be empty");
  Expect400(Post(c, Body({Member("s9", 9)}), true),
            "The following space(s) could not be found: 9");
}

TEST_F(QueueApi, ExactlyMaxBatchSizeIsAccepted) {
  Cust c = NewCustomer("max250");
  json r = Submit(c, Members("big", 250));
  EXPECT_EQ(r["count"], 250);
  EXPECT_EQ(Get(c, "/spaces/1/images?pageSize=1")["totalItems"], 250);
  EXPECT_EQ(Get(c, "/queue")["size"], 250);
}

TEST_F(QueueApi, MissingAndEmptyIdsAreMintedExplicitOnesKept) {
  Cust c = NewCustomer("minted");
  json no_id = Member("");
  json empty_id = Member("");
  empty_id["id"] = "";
  json null_id = Member("");
  null_id["id"] = nullptr;
  json batch = Submit(c, {no_id, empty_id, Member("explicit-1"), null_id});
  EXPECT_EQ(batch["count"], 4);
  json images = GetUrl(c, batch["images"]);
  auto ids = ImageIds(images);
  ASSERT_EQ(ids.size(), 4u);
  std::regex uuid("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$");
  EXPECT_TRUE(std::regex_match(ids[0], uuid)) << ids[0];
  EXPECT_TRUE(std::regex_match(ids[1], uuid)) << ids[1];
  EXPECT_EQ(ids[2], "explicit-1");
  EXPECT_TRUE(std::regex_match(ids[3], uuid)) << ids[3];
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 4u);
  for (auto& id : ids) {
    json img = Get(c, "/spaces/1/images/" + id);
    EXPECT_EQ(img["id"], id);
    EXPECT_EQ(img["@id"], c.base + "/spaces/1/images/" + id);
  }
}

// ------------------------------------------------------------------ counts

TEST_F(QueueApi, CountsAfterSubmissionAndTheGlobalQueue) {
  Cust c = NewCustomer("counts");
  json g0 = Http("GET", U("/queue")).Json();  // anonymous
  ASSERT_TRUE(g0.contains("incoming") && g0.contains("priority")) << g0.dump();

  json q0 = Get(c, "/queue");
  EXPECT_EQ(q0["@type"], "vocab:CustomerQueue");
  EXPECT_EQ(q0["size"], 0);
  EXPECT_EQ(q0["batchesWaiting"], 0);
  EXPECT_EQ(q0["imagesWaiting"], 0);
  for (const char* link : {"batches", "active", "recent", "images", "priority"})
    EXPECT_EQ(Http("GET", q0[link].get<std::string>(), "", c.key).status, 200) << link;

  auto r = Post(c, Body(Members("k", 3)));
  ASSERT_EQ(r.status, 201) << r.body;
  json batch = r.Json();
  EXPECT_EQ(r.Header("location"), batch["@id"]);
  EXPECT_EQ(batch["@type"], "vocab:Batch");
  EXPECT_EQ(batch["count"], 3);
  EXPECT_EQ(batch["completed"], 0);
  EXPECT_EQ(batch["errors"], 0);
  EXPECT_FALSE(batch.contains("finished"));
  EXPECT_FALSE(batch["superseded"]);
  EXPECT_FALSE(batch["priority"]);
  EXPECT_TRUE(batch.contains("submitted"));
  json reread = GetUrl(c, batch["@id"]);  // (estCompletion moves with the clock)
  for (const char* k : {"@id", "id", "count", "completed", "errors", "submitted", "superseded"})
    EXPECT_EQ(reread[k], batch[k]) << k;
  for (const char* link : {"images", "completedImages", "errorImages"})
    EXPECT_EQ(Http("GET", batch[link].get<std::string>(), "", c.key).status, 200) << link;
  for (int i = 0; i < 3; ++i) {
    json img = Get(c, "/spaces/1/images/k" + std::to_string(i));
    EXPECT_TRUE(img["ingesting"]);
    EXPECT_EQ(img["error"], "");
    EXPECT_EQ(img["batch"], batch["@id"]);
    EXPECT_FALSE(img.contains("finished"));
  }
  json q1 = Get(c, "/queue");
  EXPECT_EQ(q1["size"], 3);
  EXPECT_EQ(q1["batchesWaiting"], 1);
  EXPECT_EQ(q1["imagesWaiting"], 3);
  json queued = Get(c, "/queue/images");
  EXPECT_EQ(ImageIds(queued), (std::vector<std::string>{"k0", "k1", "k2"}));

  json second = Submit(c, Members("l", 2));
  json q2 = Get(c, "/queue");
  EXPECT_EQ(q2["size"], 5);
  EXPECT_EQ(q2["batchesWaiting"], 2);
  EXPECT_EQ(q2["imagesWaiting"], 5);

  // Resubmitting a waiting image moves it: the old batch records it, counts stay exact.
  Submit(c, {Member("k0")});
  json q3 = Get(c, "/queue");
  EXPECT_EQ(q3["size"], 5);
  EXPECT_EQ(q3["batchesWaiting"], 3);
  EXPECT_EQ(q3["imagesWaiting"], 5);
  json old = Get(c, BatchPath(batch["id"]));
  EXPECT_EQ(old["count"], 3);
  EXPECT_EQ(old["errors"], 1);
  EXPECT_LE(old["completed"].get<int>() + old["errors"].get<int>(), old["count"].get<int>());

  json g1 = Http("GET", U("/queue")).Json();
  EXPECT_EQ(g1["incoming"].get<int64_t>() - g0["incoming"].get<int64_t>(), 5);
  EXPECT_EQ(g1["priority"].get<int64_t>() - g0["priority"].get<int64_t>(), 0);

  // The priority queue.
  json pb = Submit(c, Members("pr", 2), /*priority=*/true);
  EXPECT_TRUE(pb["priority"]);
  json g2 = Http("GET", U("/queue")).Json();
  EXPECT_EQ(g2["incoming"], g1["incoming"]);
  EXPECT_EQ(g2["priority"].get<int64_t>() - g1["priority"].get<int64_t>(), 2);
  json pq = Get(c, "/queue/priority");
  EXPECT_EQ(pq["size"], 2);
  EXPECT_EQ(pq["batchesWaiting"], 1);
  EXPECT_EQ(pq["imagesWaiting"], 2);
  json q4 = Get(c, "/queue");
  EXPECT_EQ(q4["size"], 7);
  EXPECT_EQ(q4["batchesWaiting"], 4);
  // Priority work is listed first: it is processed first.
  auto order = ImageIds(Get(c, "/queue/images"));
  ASSERT_EQ(order.size(), 7u);
  EXPECT_EQ(order[0], "pr0");
  EXPECT_EQ(order[1], "pr1");
}

// ------------------------------------------------------------------ media types and spellings

TEST_F(QueueApi, MediaTypesChannelsAndThePriorityQueue) {
  Cust c = NewCustomer("media");
  json video = Member("v1", 1, "video/mp4");
  video["deliveryChannels"] = json::array({{{"channel", "file"}}});
  Expect400Containing(Post(c, Body({video}), true), "priority queue accepts only images");
  json pdf = Member("d1", 1, "application/pdf");
  Expect400Containing(Post(c, Body({pdf}), true), "priority queue accepts only images");
  EXPECT_EQ(Get(c, "/queue/batches")["totalItems"], 0);
  json img = Submit(c, {Member("pimg")}, true);
  EXPECT_TRUE(img["priority"]);

  json av = Member("av1", 1, "video/mp4");
  av["deliveryChannels"] = json::array({{{"channel", "iiif-av"}, {"policy", "default"}}});
  Expect400Containing(Post(c, Body({av})), "Member 0: unknown policy 'default' for channel 'iiif-av'");
  json av_on_image = Member("av2", 1, "image/jpeg");
  av_on_image["deliveryChannels"] = json::array({"iiif-av"});
  Expect400Containing(Post(c, Body({av_on_image})), "'iiif-av' needs an audio/* or video/*");
  json bad_channel = Member("bc", 1, "image/jpeg");
  bad_channel["deliveryChannels"] = json::array({"teleport"});
  Expect400Containing(Post(c, Body({bad_channel})), "teleport");
  json img_on_pdf = Member("ip", 1, "application/pdf");
  img_on_pdf["deliveryChannels"] = json::array({"iiif-img"});
  Expect400Containing(Post(c, Body({img_on_pdf})), "iiif-img");
  EXPECT_EQ(Get(c, "/queue/batches")["totalItems"], 1);

  // A non-image with the file channel is accepted, on the default queue.
  json file = Member("doc", 1, "application/pdf");
  file["deliveryChannels"] = json::array({{{"channel", "file"}, {"policy", "none"}}});
  json fb = Submit(c, {file, video});
  EXPECT_EQ(fb["count"], 2);
  json doc = Get(c, "/spaces/1/images/doc");
  EXPECT_EQ(doc["mediaType"], "application/pdf");
  EXPECT_EQ(doc["family"], "F");
  ASSERT_EQ(doc["deliveryChannels"].size(), 1u);
  EXPECT_EQ(doc["deliveryChannels"][0]["channel"], "file");
  EXPECT_FALSE(doc.contains("imageService"));
  json v1 = Get(c, "/spaces/1/images/v1");
  EXPECT_EQ(v1["family"], "T");
  // An image without channels gets the default ones.
  json def = Get(c, "/spaces/1/images/pimg");
  EXPECT_EQ(def["family"], "I");
  EXPECT_EQ(def["deliveryChannels"],
            json::parse(R"([{"channel":"iiif-img","policy":"default"},)"
                        R"({"channel":"thumbs","policy":"default"}])"));
  EXPECT_EQ(def["imageService"], U("/iiif-img/" + std::to_string(c.id) + "/1/pimg"));
}

TEST_F(QueueApi, OldClientSpellingsAreAccepted) {
  Cust c = NewCustomer("oldspell");
  json m1 = {{"modelId", "old-1"},
             {"space", 1},
             {"origin", "https://example.org/old-1.jpg"},
             {"mediaType", "image/jpeg"},
             {"family", 73}};
  json m2 = {{"@id", "ignored"},
             {"@type", "vocab:Image"},
             {"modelId", "old-2"},
             {"space", 1},
             {"origin", "https://example.org/old-2.pdf"},
             {"mediaType", "application/pdf"},
             {"family", 70},
             {"deliveryChannels", json::array({"file"})}};
  json m3 = Member("new-3");
  m3["family"] = "I";
  m3["unknownProperty"] = {{"nested", true}};
  auto r = Post(c, json{{"@context", "http://www.w3.org/ns/hydra/context.jsonld"},
                        {"@type", "Collection"},
                        {"members", {m1, m2, m3}}});
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.Json()["count"], 3);
  EXPECT_EQ(Get(c, "/spaces/1/images/old-1")["family"], "I");
  EXPECT_EQ(Get(c, "/spaces/1/images/old-2")["family"], "F");
  EXPECT_EQ(Get(c, "/spaces/1/images/new-3")["id"], "new-3");
  json bad_family = Member("bf");
  bad_family["family"] = 99;
  Expect400Containing(Post(c, Body({bad_family})), "'family'");
}

// ------------------------------------------------------------------ /test and /retry

TEST_F(QueueApi, SupersededIsMaintainedAndTestOnAnEmptiedBatch) {
  Cust c = NewCustomer("superseded");
  json b1 = Submit(c, {Member("s1"), Member("s2")});
  std::string b1p = BatchPath(b1["id"]);
  Submit(c, {Member("s1")});
  json partly = Get(c, b1p);
  EXPECT_FALSE(partly["superseded"]);
  EXPECT_EQ(partly["errors"], 1);
  json b3 = Submit(c, {Member("s2")});
  // No image points at b1 any more: superseded on the next GET, without /test.
  json gone = Get(c, b1p);
  EXPECT_TRUE(gone["superseded"]);
  EXPECT_EQ(gone["count"], 2);
  EXPECT_TRUE(gone.contains("finished"));
  for (auto& m : Get(c, "/queue/active")["member"]) EXPECT_NE(m["id"], b1["id"]);
  for (auto& m : Get(c, "/queue/recent")["member"]) EXPECT_NE(m["id"], b1["id"]);
  EXPECT_EQ(Get(c, "/queue")["batchesWaiting"], 2);
  // /test finds nothing pointing at it; it is already superseded, so nothing changes.
  auto t = Http("POST", c.base + b1p + "/test", "", c.key);
  ASSERT_EQ(t.status, 200) << t.body;
  EXPECT_EQ(t.Json(), json({{"success", false}}));
  EXPECT_TRUE(Get(c, b1p)["superseded"]);
  // Its images listing still shows the members that were submitted in it.
  EXPECT_EQ(Get(c, b1p + "/images")["totalItems"], 2);

  // /test on a batch with an unfinished image: success false, nothing changed.
  std::string b3p = BatchPath(b3["id"]);
  json before = Get(c, b3p);
  auto t3 = Http("POST", c.base + b3p + "/test", "", c.key);
  ASSERT_EQ(t3.status, 200) << t3.body;
  EXPECT_EQ(t3.Json(), json({{"success", false}}));
  json after = Get(c, b3p);
  EXPECT_EQ(after["count"], before["count"]);
  EXPECT_EQ(after["completed"], before["completed"]);
  EXPECT_EQ(after["errors"], before["errors"]);
  EXPECT_FALSE(after.contains("finished"));
  EXPECT_FALSE(after["superseded"]);
}

TEST_F(QueueApi, TestResetsCountsOnceEveryImageFinishedWithAnError) {
  Cust c = NewCustomer("testreset");
  json b1 = Submit(c, {Member("t1"), Member("t2"), Member("t3")});
  std::string p = BatchPath(b1["id"]);
  Submit(c, {Member("t3")});  // t3 leaves b1 before it is processed
  Drive(c, {{"t1", true}, {"t2", false}});
  json before = Get(c, p);
  EXPECT_EQ(before["count"], 3);
  EXPECT_EQ(before["completed"], 1);
  EXPECT_EQ(before["errors"], 2);
  ASSERT_TRUE(before.contains("finished"));
  EXPECT_EQ(before["estCompletion"], before["finished"]);
  EXPECT_TRUE(Get(c, "/spaces/1/images/t3")["ingesting"]);

  auto t = Http("POST", c.base + p + "/test", "", c.key);
  ASSERT_EQ(t.status, 200) << t.body;
  EXPECT_EQ(t.Json(), json({{"success", true}}));
  json after = Get(c, p);
  EXPECT_EQ(after["count"], 2);
  EXPECT_EQ(after["errors"], 1);
  EXPECT_EQ(after["completed"], 1);
  EXPECT_EQ(after["finished"], before["finished"]);
  EXPECT_FALSE(after["superseded"]);
  auto again = Http("POST", c.base + p + "/test", "", c.key);
  EXPECT_EQ(again.Json(), json({{"success", false}}));
}

TEST_F(QueueApi, RetryPutsErrorImagesBackOnTheQueue) {
  Cust c = NewCustomer("retry");
  json b = Submit(c, {Member("r1"), Member("r2"), Member("r3")});
  std::string p = BatchPath(b["id"]);
  Drive(c, {{"r1", false}, {"r2", true}, {"r3", false}});
  json done = Get(c, p);
  EXPECT_EQ(done["errors"], 2);
  EXPECT_EQ(done["completed"], 1);
  ASSERT_TRUE(done.contains("finished"));
  EXPECT_EQ(Get(c, "/queue")["size"], 0);
  EXPECT_EQ(Get(c, p + "/errorImages")["totalItems"], 2);
  EXPECT_FALSE(Get(c, "/spaces/1/images/r1")["ingesting"]);
  EXPECT_EQ(Get(c, "/spaces/1/images/r1")["error"], "origin returned HTTP 404");

  auto r = Http("POST", c.base + p + "/retry", "", c.key);
  ASSERT_EQ(r.status, 200) << r.body;
  json retried = r.Json();
  EXPECT_EQ(retried["@type"], "vocab:Batch");
  EXPECT_EQ(retried["count"], 3);
  EXPECT_EQ(retried["completed"], 1);
  EXPECT_EQ(retried["errors"], 0);
  EXPECT_FALSE(retried.contains("finished"));
  json reread = Get(c, p);
  for (const char* k : {"count", "completed", "errors", "superseded"}) EXPECT_EQ(reread[k], retried[k]);
  EXPECT_FALSE(reread.contains("finished"));
  for (const char* id : {"r1", "r3"}) {
    json img = Get(c, std::string("/spaces/1/images/") + id);
    EXPECT_TRUE(img["ingesting"]) << id;
    EXPECT_EQ(img["error"], "") << id;
    EXPECT_EQ(img["batch"], b["@id"]);
  }
  EXPECT_FALSE(Get(c, "/spaces/1/images/r2")["ingesting"]);
  json q = Get(c, "/queue");
  EXPECT_EQ(q["size"], 2);
  EXPECT_EQ(q["batchesWaiting"], 1);
  EXPECT_EQ(q["imagesWaiting"], 2);
  EXPECT_EQ(Get(c, p + "/errorImages")["totalItems"], 0);
  EXPECT_EQ(BatchIds(Get(c, "/queue/active")), (std::vector<int64_t>{b["id"]}));

  Drive(c, {{"r1", true}, {"r3", true}});
  json fixed = Get(c, p);
  EXPECT_EQ(fixed["completed"], 3);
  EXPECT_EQ(fixed["errors"], 0);
  EXPECT_TRUE(fixed.contains("finished"));
  EXPECT_EQ(Get(c, "/queue")["size"], 0);
}

}  // namespace
}  // namespace quire::test
