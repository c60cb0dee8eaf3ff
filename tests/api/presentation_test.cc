// IIIF Presentation against a live `quire serve` (spec/presentation-auth.md §2, §3 and the
// checks §6.1–§6.11): single-asset manifests 3.0 and 2.1, the level-0 /thumbs/v2/ service they
// link, the named-query API with its template validation, /iiif-resource manifests in template
// order, their limits and errors, and the index the store answers a named query from (its
// plan read back with EXPLAIN over a space of many rows). Real ingests of real images; every
// manifest is checked against the Presentation 3 (or 2.1) shape and its URLs are fetched.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <thread>

#include "core/vips_init.h"
#include "store/store.h"
#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/quire_process.h"
#include "support/test_database.h"
#include "support/run_command.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

const std::string kP3 = "http://iiif.io/api/presentation/3/context.json";
const std::string kP2 = "http://iiif.io/api/presentation/2/context.json";
const std::string kAcceptV2 =
    "application/ld+json;profile=\"http://iiif.io/api/presentation/2/context.json\"";

// ---- shape checks: what a Presentation 3.0 client may rely on

bool IsHttpUri(const json& v) {
  return v.is_string() && std::regex_match(v.get<std::string>(), std::regex("^https?://\\S+$"));
}

// A language map: {"lang": ["string", ...], ...}, at least one entry.
void ExpectLanguageMap(const json& v, const std::string& where) {
  ASSERT_TRUE(v.is_object() && !v.empty()) << where << ": " << v.dump();
  for (auto& [lang, values] : v.items()) {
    EXPECT_FALSE(lang.empty()) << where;
    ASSERT_TRUE(values.is_array() && !values.empty()) << where << ": " << v.dump();
    for (auto& s : values) EXPECT_TRUE(s.is_string()) << where << ": " << v.dump();
  }
}

void ExpectPositiveInt(const json& o, const char* key, const std::string& where) {
  ASSERT_TRUE(o.contains(key) && o[key].is_number_integer() && o[key].get<int64_t>() > 0)
      << where << "." << key << ": " << o.dump();
}

void ExpectImageService3(const json& s, const std::string& where) {
  ASSERT_TRUE(s.is_object()) << where;
  if (s.contains("@id")) {  // an ImageService2 beside it, as the 3.0 spec allows
    EXPECT_EQ(s["@type"], "ImageService2") << where;
    EXPECT_TRUE(IsHttpUri(s["@id"])) << where;
    EXPECT_TRUE(s["profile"].is_string()) << where;
    return;
  }
  EXPECT_TRUE(IsHttpUri(s["id"])) << where << ": " << s.dump();
  EXPECT_EQ(s["type"], "ImageService3") << where;
  EXPECT_TRUE(s["profile"] == "level0" || s["profile"] == "level2") << where;
}

void ExpectImageResource(const json& r, const std::string& where) {
  ASSERT_TRUE(r.is_object()) << where;
  EXPECT_TRUE(IsHttpUri(r["id"])) << where << ": " << r.dump();
  EXPECT_EQ(r["type"], "Image") << where;
  EXPECT_EQ(r["format"], "image/jpeg") << where;
  ExpectPositiveInt(r, "width", where);
  ExpectPositiveInt(r, "height", where);
  ASSERT_TRUE(r["service"].is_array() && !r["service"].empty()) << where;
  for (auto& s : r["service"]) ExpectImageService3(s, where + ".service");
}

// Presentation 3.0: the required properties and types of Manifest, Canvas, AnnotationPage,
// Annotation and their bodies, ids unique.
void ExpectPresentation3(const json& m) {
  ASSERT_TRUE(m.is_object());
  EXPECT_TRUE(m["@context"] == kP3 || (m["@context"].is_array() && m["@context"].back() == kP3))
      << m["@context"];
  EXPECT_TRUE(IsHttpUri(m["id"]));
  EXPECT_EQ(m["type"], "Manifest");
  ExpectLanguageMap(m["label"], "manifest.label");
  if (m.contains("thumbnail")) {
    ASSERT_TRUE(m["thumbnail"].is_array());
    for (auto& t : m["thumbnail"]) ExpectImageResource(t, "manifest.thumbnail");
  }
  ASSERT_TRUE(m["items"].is_array() && !m["items"].empty());
  std::set<std::string> ids{m["id"].get<std::string>()};
  for (auto& c : m["items"]) {
    std::string where = "canvas " + c.value("id", "?");
    EXPECT_TRUE(IsHttpUri(c["id"])) << where;
    EXPECT_TRUE(ids.insert(c["id"].get<std::string>()).second) << "duplicate id " << where;
    EXPECT_EQ(c["type"], "Canvas") << where;
    ExpectLanguageMap(c["label"], where + ".label");
    ExpectPositiveInt(c, "width", where);
    ExpectPositiveInt(c, "height", where);
    if (c.contains("metadata")) {
      ASSERT_TRUE(c["metadata"].is_array()) << where;
      for (auto& e : c["metadata"]) {
        ExpectLanguageMap(e["label"], where + ".metadata.label");
        ExpectLanguageMap(e["value"], where + ".metadata.value");
      }
    }
    if (c.contains("thumbnail"))
      for (auto& t : c["thumbnail"]) ExpectImageResource(t, where + ".thumbnail");
    ASSERT_TRUE(c["items"].is_array() && c["items"].size() == 1) << where;
    const json& page = c["items"][0];
    EXPECT_TRUE(IsHttpUri(page["id"])) << where;
    EXPECT_TRUE(ids.insert(page["id"].get<std::string>()).second) << where;
    EXPECT_EQ(page["type"], "AnnotationPage") << where;
    ASSERT_TRUE(page["items"].is_array() && page["items"].size() == 1) << where;
    const json& anno = page["items"][0];
    EXPECT_TRUE(IsHttpUri(anno["id"])) << where;
    EXPECT_TRUE(ids.insert(anno["id"].get<std::string>()).second) << where;
    EXPECT_EQ(anno["type"], "Annotation") << where;
    EXPECT_EQ(anno["motivation"], "painting") << where;
    EXPECT_EQ(anno["target"], c["id"]) << where;
    ExpectImageResource(anno["body"], where + ".body");
    if (c.contains("rendering"))
      for (auto& r : c["rendering"]) {
        EXPECT_TRUE(IsHttpUri(r["id"])) << where;
        EXPECT_TRUE(r["type"].is_string() && r["format"].is_string()) << where;
        ExpectLanguageMap(r["label"], where + ".rendering.label");
      }
  }
}

// Presentation 2.1: sc:Manifest → one sc:Sequence → sc:Canvas → oa:Annotation → dctypes:Image.
void ExpectPresentation2(const json& m) {
  EXPECT_EQ(m["@context"], kP2);
  EXPECT_TRUE(IsHttpUri(m["@id"]));
  EXPECT_EQ(m["@type"], "sc:Manifest");
  EXPECT_TRUE(m["label"].is_string());
  ASSERT_TRUE(m["sequences"].is_array() && m["sequences"].size() == 1);
  const json& seq = m["sequences"][0];
  EXPECT_EQ(seq["@type"], "sc:Sequence");
  EXPECT_EQ(seq["@id"], m["@id"].get<std::string>() + "/sequence/0");
  ASSERT_TRUE(seq["canvases"].is_array() && !seq["canvases"].empty());
  for (auto& c : seq["canvases"]) {
    EXPECT_EQ(c["@type"], "sc:Canvas");
    EXPECT_TRUE(IsHttpUri(c["@id"]));
    EXPECT_TRUE(c["label"].is_string());
    ExpectPositiveInt(c, "width", "v2 canvas");
    ExpectPositiveInt(c, "height", "v2 canvas");
    ASSERT_TRUE(c["images"].is_array() && c["images"].size() == 1);
    const json& a = c["images"][0];
    EXPECT_EQ(a["@type"], "oa:Annotation");
    EXPECT_EQ(a["motivation"], "sc:painting");
    EXPECT_EQ(a["on"], c["@id"]);
    EXPECT_EQ(a["resource"]["@type"], "dctypes:Image");
    EXPECT_TRUE(IsHttpUri(a["resource"]["@id"]));
    EXPECT_EQ(a["resource"]["service"]["@context"], "http://iiif.io/api/image/2/context.json");
    EXPECT_FALSE(a["resource"]["service"].contains("@type"));
    if (c.contains("thumbnail")) {
      EXPECT_TRUE(IsHttpUri(c["thumbnail"]["@id"]));
      EXPECT_FALSE(c["thumbnail"]["service"].contains("@type"));
    }
  }
}

// Canvas image ids in order: "c/s/id" taken from each canvas's image service.
std::vector<std::string> CanvasImages(const json& m) {
  std::vector<std::string> out;
  const json& canvases = m.contains("items") ? m["items"] : m["sequences"][0]["canvases"];
  std::regex id(".*/iiif-img/(?:v2/)?([^/]+/[^/]+/[^/]+)$");
  for (auto& c : canvases) {
    std::string service = m.contains("items")
                              ? c["items"][0]["items"][0]["body"]["service"][1]["id"]
                              : c["images"][0]["resource"]["service"]["@id"];
    std::smatch match;
    out.push_back(std::regex_match(service, match, id) ? match[1].str() : service);
  }
  return out;
}

class PresentationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(quire::InitVips());
    dir_ = new TempDir();
    origins_ = dir_->path() + "/origins";
    std::filesystem::create_directories(origins_);
    auto write = [](const std::string& path, const std::string& bytes) {
      std::ofstream(path, std::ios::binary) << bytes;
    };
    write(origins_ + "/a.jpg", MakeJpeg(4000, 3000, 1));
    for (int i = 1; i <= 3; ++i)
      write(origins_ + "/b" + std::to_string(i) + ".jpg", MakeJpeg(600 + 40 * i, 400, i + 1));
    write(origins_ + "/x.jpg", MakeJpeg(500, 500, 9));
    origin_ = new OriginServer();
    origin_->Stall("/never.jpg");
    server_ =
        new QuireProcess(dir_->path() + "/data",
                         {"--workers", "2", "--origin-file-root", origins_,
                          "--allow-private-origins", "--nq-max-items", "4", "--pdf-wait-ms", "0"});
    api_ = new Api{server_->url(), server_->admin()};
    customer_ = api_->CreateCustomer("acme");
    c_ = std::to_string(customer_);
    ASSERT_EQ(Put("/customers/" + c_ + "/spaces/3", {{"name", "three"}}).status, 201);
    ASSERT_EQ(Put("/customers/" + c_ + "/spaces/4", {{"name", "four"}}).status, 201);
    auto member = [&](int64_t space, const std::string& id, const std::string& file) {
      return Member(space, id, "file://" + origins_ + "/" + file, "image/jpeg");
    };
    json a = member(3, "a", "a.jpg");
    a["deliveryChannels"] = json::array({json{{"channel", "iiif-img"}, {"policy", "default"}},
                                         json{{"channel", "thumbs"}, {"policy", "default"}},
                                         json{{"channel", "file"}, {"policy", "none"}}});
    json members = json::array({a});
    int n1[] = {3, 1, 2};
    for (int i = 1; i <= 3; ++i) {
      json b = member(3, "b" + std::to_string(i), "b" + std::to_string(i) + ".jpg");
      b["string1"] = "book";
      b["number1"] = n1[i - 1];
      members.push_back(b);
    }
    json x = member(4, "x", "x.jpg");
    x["string1"] = "book";
    members.push_back(x);
    long status = 0;
    json batch = api_->SubmitBatch(customer_, members, &status);
    ASSERT_EQ(status, 201) << batch.dump(2);
    batch_ = batch.at("id").get<int64_t>();
    json done = api_->WaitForBatch(customer_, batch_, 120s);
    ASSERT_TRUE(done.contains("finished")) << done.dump(2) << server_->Log();
    ASSERT_EQ(done["completed"], 5) << done.dump(2) << server_->Log();
    // An image whose first ingest never ends (its origin stalls).
    json pending = Member(3, "pending", origin_->Url("/never.jpg"), "image/jpeg");
    api_->SubmitBatch(customer_, json::array({pending}), &status);
    ASSERT_EQ(status, 201);
  }
  static void TearDownTestSuite() {
    if (::testing::Test::HasFailure() && server_) {
      std::string log = server_->Log();
      std::cerr << "---- quire log (tail) ----\n"
                << log.substr(log.size() > 6000 ? log.size() - 6000 : 0);
    }
    delete api_;
    delete origin_;  // first: the stalled fetch ends, so the server stops at once
    delete server_;
    delete dir_;
    origin_ = nullptr;
    api_ = nullptr;
    server_ = nullptr;
  }

  static HttpResult Get(const std::string& path,
                        const std::map<std::string, std::string>& headers = {}) {
    return Http("GET", server_->url() + path, "", {}, headers);
  }
  static HttpResult Put(const std::string& path, const json& body, const Credentials& auth = {}) {
    return Http("PUT", server_->url() + path, body.dump(), auth.empty() ? server_->admin() : auth);
  }
  static HttpResult PostJson(const std::string& path, const json& body,
                             const Credentials& auth = {}) {
    return Http("POST", server_->url() + path, body.dump(), auth.empty() ? server_->admin() : auth);
  }
  static std::string P() { return server_->url(); }
  static std::string Queries() { return "/customers/" + c_ + "/namedQueries"; }
  // Creates (or finds) the named query `name` with `tmpl`; its @id.
  static std::string MakeQuery(const std::string& name, const std::string& tmpl) {
    HttpResult r = PostJson(Queries(), {{"name", name}, {"template", tmpl}});
    EXPECT_EQ(r.status, 201) << r.body;
    return r.Json().value("@id", "");
  }

  static inline TempDir* dir_ = nullptr;
  static inline std::string origins_;
  static inline OriginServer* origin_ = nullptr;
  static inline QuireProcess* server_ = nullptr;
  static inline Api* api_ = nullptr;
  static inline int64_t customer_ = 0;
  static inline std::string c_;
  static inline int64_t batch_ = 0;
};

// §6.1
TEST_F(PresentationTest, SingleAssetManifestV3) {
  HttpResult r = Get("/iiif-manifest/" + c_ + "/3/a");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("access-control-allow-origin"), "*");
  EXPECT_EQ(r.Header("content-type"),
            "application/ld+json;profile=\"http://iiif.io/api/presentation/3/context.json\"");
  EXPECT_EQ(r.Header("cache-control"), "public, max-age=600");
  EXPECT_EQ(r.Header("vary"), "Accept");
  json m = r.Json();
  ExpectPresentation3(m);
  EXPECT_EQ(m["@context"], kP3);
  EXPECT_EQ(m["id"], P() + "/iiif-manifest/" + c_ + "/3/a");
  EXPECT_EQ(m["label"], json::parse(R"({"en":["Generated by Quire"]})"));
  EXPECT_FALSE(m.contains("metadata"));
  ASSERT_EQ(m["items"].size(), 1u);
  const json& canvas = m["items"][0];
  EXPECT_EQ(canvas["id"], P() + "/iiif-img/" + c_ + "/3/a/canvas/c/1");
  EXPECT_EQ(canvas["label"], json::parse(R"({"en":["Canvas 1"]})"));
  EXPECT_EQ(canvas["width"], 4000);
  EXPECT_EQ(canvas["height"], 3000);
  const json& body = canvas["items"][0]["items"][0]["body"];
  // b = the largest open thumbnail (default policy: 1024, 400, 200, 100).
  EXPECT_EQ(body["id"], P() + "/iiif-img/" + c_ + "/3/a/full/1024,768/0/default.jpg");
  EXPECT_EQ(body["width"], 1024);
  EXPECT_EQ(body["height"], 768);
  ASSERT_EQ(body["service"].size(), 2u);
  const json& is2 = body["service"][0];
  EXPECT_EQ(is2["@id"], P() + "/iiif-img/v2/" + c_ + "/3/a");
  EXPECT_EQ(is2["@type"], "ImageService2");
  EXPECT_EQ(is2["profile"], "http://iiif.io/api/image/2/level2.json");
  const json& is3 = body["service"][1];
  EXPECT_EQ(is3["id"], P() + "/iiif-img/" + c_ + "/3/a");
  EXPECT_EQ(is3["type"], "ImageService3");
  EXPECT_EQ(is3["profile"], "level2");
  EXPECT_EQ(is3["width"], 4000);
  EXPECT_EQ(is3["height"], 3000);
  // t = the open size nearest 200, with the level-0 services.
  const json& thumb = canvas["thumbnail"][0];
  EXPECT_EQ(thumb["id"], P() + "/thumbs/" + c_ + "/3/a/full/200,150/0/default.jpg");
  EXPECT_EQ(thumb["service"][0]["@id"], P() + "/thumbs/v2/" + c_ + "/3/a");
  EXPECT_EQ(thumb["service"][0]["profile"], "http://iiif.io/api/image/2/level0.json");
  EXPECT_EQ(thumb["service"][1]["id"], P() + "/thumbs/" + c_ + "/3/a");
  EXPECT_EQ(thumb["service"][1]["sizes"].size(), 4u);
  EXPECT_EQ(m["thumbnail"], canvas["thumbnail"]);
  // The file channel adds a rendering; metadata lists the eight fields.
  EXPECT_EQ(canvas["rendering"][0]["id"], P() + "/file/" + c_ + "/3/a");
  EXPECT_EQ(canvas["rendering"][0]["format"], "image/jpeg");
  EXPECT_EQ(canvas["metadata"].size(), 8u);
  EXPECT_EQ(canvas["metadata"][0]["label"], json::parse(R"({"none":["String 1"]})"));
  // Every URL the manifest names answers: body, services' info.json, thumbnail, file.
  for (const std::string& url :
       {body["id"].get<std::string>(), is3["id"].get<std::string>() + "/info.json",
        is2["@id"].get<std::string>() + "/info.json", thumb["id"].get<std::string>(),
        thumb["service"][0]["@id"].get<std::string>() + "/info.json",
        thumb["service"][1]["id"].get<std::string>() + "/info.json",
        canvas["rendering"][0]["id"].get<std::string>()}) {
    HttpResult got = Http("GET", url);
    EXPECT_EQ(got.status, 200) << url << ": " << got.body;
  }
  HttpResult img = Http("GET", body["id"]);
  Decoded d = Decode(img.body);
  EXPECT_TRUE(d.ok) << d.error;
  EXPECT_EQ(d.width, 1024);
  EXPECT_EQ(d.height, 768);
}

// §6.2
TEST_F(PresentationTest, CustomerNameKeepsManifestIdButServicesUseTheNumber) {
  HttpResult r = Get("/iiif-manifest/acme/3/a");
  ASSERT_EQ(r.status, 200) << r.body;
  json m = r.Json();
  ExpectPresentation3(m);
  EXPECT_EQ(m["id"], P() + "/iiif-manifest/acme/3/a");
  EXPECT_EQ(m["items"][0]["items"][0]["items"][0]["body"]["service"][1]["id"],
            P() + "/iiif-img/" + c_ + "/3/a");
  EXPECT_EQ(Get("/iiif-manifest/v3/acme/3/a").Json()["id"], P() + "/iiif-manifest/v3/acme/3/a");
}

// §6.3
TEST_F(PresentationTest, SingleAssetManifestV2ByPathAndByAccept) {
  HttpResult r = Get("/iiif-manifest/v2/" + c_ + "/3/a");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("content-type"),
            "application/ld+json;profile=\"http://iiif.io/api/presentation/2/context.json\"");
  json m = r.Json();
  ExpectPresentation2(m);
  EXPECT_EQ(m["label"], "Generated by Quire");
  const json& canvas = m["sequences"][0]["canvases"][0];
  EXPECT_EQ(canvas["images"][0]["resource"]["service"]["@id"], P() + "/iiif-img/v2/" + c_ + "/3/a");
  EXPECT_EQ(canvas["images"][0]["@id"], canvas["@id"].get<std::string>() + "/imageanno/0");
  EXPECT_EQ(canvas["thumbnail"]["service"]["@id"], P() + "/thumbs/v2/" + c_ + "/3/a");
  EXPECT_EQ(canvas["metadata"][3], json::parse(R"({"label":"Number 1","value":"0"})"));

  HttpResult negotiated = Get("/iiif-manifest/" + c_ + "/3/a", {{"Accept", kAcceptV2}});
  ASSERT_EQ(negotiated.status, 200);
  EXPECT_EQ(negotiated.Header("vary"), "Accept");
  json n = negotiated.Json();
  EXPECT_EQ(n["@type"], "sc:Manifest");
  EXPECT_EQ(n["sequences"][0]["canvases"], m["sequences"][0]["canvases"]);
  EXPECT_EQ(n["@id"], P() + "/iiif-manifest/" + c_ + "/3/a");
  // Naming both profiles keeps 3.0.
  HttpResult both = Get("/iiif-manifest/" + c_ + "/3/a",
                        {{"Accept", kAcceptV2 + ", application/ld+json;profile=\"" + kP3 + "\""}});
  EXPECT_EQ(both.Json()["type"], "Manifest");
}

// §6.4
TEST_F(PresentationTest, UnknownOrUningestedImagesAre404) {
  EXPECT_EQ(Get("/iiif-manifest/" + c_ + "/3/nope").status, 404);
  EXPECT_EQ(Get("/iiif-manifest/" + c_ + "/99/a").status, 404);
  EXPECT_EQ(Get("/iiif-manifest/nobody/3/a").status, 404);
  EXPECT_EQ(Get("/iiif-manifest/" + c_ + "/three/a").status, 400);
  json image = api_->Image(customer_, 3, "pending");
  ASSERT_EQ(image.value("ingesting", false), true) << image.dump();
  HttpResult r = Get("/iiif-manifest/" + c_ + "/3/pending");
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_EQ(r.Header("access-control-allow-origin"), "*");
}

// §6.5
TEST_F(PresentationTest, EtagPreflightAndThumbnail) {
  HttpResult r = Get("/iiif-manifest/" + c_ + "/3/a");
  std::string etag = r.Header("etag");
  ASSERT_FALSE(etag.empty());
  EXPECT_EQ(etag.front(), '"');  // strong
  HttpResult again = Get("/iiif-manifest/" + c_ + "/3/a", {{"If-None-Match", etag}});
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
  EXPECT_EQ(Get("/iiif-manifest/" + c_ + "/3/a").body, r.body);  // deterministic
  HttpResult pre = Http("OPTIONS", P() + "/iiif-manifest/" + c_ + "/3/a", "", {},
                        {{"Origin", "https://viewer.example"},
                         {"Access-Control-Request-Method", "GET"},
                         {"Access-Control-Request-Headers", "authorization, accept"}});
  EXPECT_EQ(pre.status, 204);
  EXPECT_EQ(pre.Header("access-control-allow-origin"), "*");
  std::string allowed = pre.Header("access-control-allow-headers");
  std::transform(allowed.begin(), allowed.end(), allowed.begin(), ::tolower);
  EXPECT_NE(allowed.find("authorization"), std::string::npos);
  EXPECT_NE(allowed.find("accept"), std::string::npos);
  std::string thumb = r.Json()["items"][0]["thumbnail"][0]["id"];
  HttpResult t = Http("GET", thumb);
  ASSERT_EQ(t.status, 200);
  EXPECT_EQ(t.Header("content-type"), "image/jpeg");
  Decoded d = Decode(t.body);
  EXPECT_EQ(d.width, 200);
  EXPECT_EQ(d.height, 150);
}

// The level-0 Image API 2.1 service the manifests link (spec/iiif.md).
TEST_F(PresentationTest, ThumbsV2IsAnImageApi21Level0Service) {
  HttpResult info = Get("/thumbs/v2/" + c_ + "/3/a/info.json");
  ASSERT_EQ(info.status, 200) << info.body;
  EXPECT_EQ(info.Header("access-control-allow-origin"), "*");
  EXPECT_NE(info.Header("link").find("http://iiif.io/api/image/2/level0.json"), std::string::npos);
  json j = info.Json();
  EXPECT_EQ(j["@context"], "http://iiif.io/api/image/2/context.json");
  EXPECT_EQ(j["@id"], P() + "/thumbs/v2/" + c_ + "/3/a");
  EXPECT_EQ(j["profile"][0], "http://iiif.io/api/image/2/level0.json");
  ASSERT_EQ(j["sizes"].size(), 4u);
  EXPECT_EQ(j["width"], 1024);
  EXPECT_EQ(Get("/thumbs/v2/acme/3/a/info.json").Json()["@id"], P() + "/thumbs/v2/acme/3/a");
  for (const char* size : {"200,150", "200,", "!200,200", "full", "max"}) {
    HttpResult t = Get("/thumbs/v2/" + c_ + "/3/a/full/" + size + "/0/default.jpg");
    ASSERT_EQ(t.status, 200) << size << ": " << t.body;
    Decoded d = Decode(t.body);
    EXPECT_TRUE(d.ok) << size;
    EXPECT_EQ(d.width, std::string(size).rfind("200", 0) == 0 || size[0] == '!' ? 200 : 1024)
        << size;
  }
  EXPECT_EQ(Get("/thumbs/v2/" + c_ + "/3/a/full/300,/0/default.jpg").status, 404);
  HttpResult redirect = Get("/thumbs/v2/" + c_ + "/3/a");
  EXPECT_EQ(redirect.status, 303);
  EXPECT_EQ(redirect.Header("location"), P() + "/thumbs/v2/" + c_ + "/3/a/info.json");
  // The 3.0 service is unchanged.
  EXPECT_EQ(Get("/thumbs/" + c_ + "/3/a/info.json").Json()["type"], "ImageService3");
  std::string etag = info.Header("etag");
  EXPECT_EQ(Get("/thumbs/v2/" + c_ + "/3/a/info.json", {{"If-None-Match", etag}}).status, 304);
  EXPECT_NE(Get("/thumbs/" + c_ + "/3/a/info.json").Header("etag"), etag);
}

// §6.6
TEST_F(PresentationTest, CreateNamedQueryValidatesTemplateAndName) {
  HttpResult r =
      PostJson(Queries(), {{"name", "book"}, {"template", "assetOrder=n1&space=p1&s1=p2"}});
  ASSERT_EQ(r.status, 201) << r.body;
  json q = r.Json();
  EXPECT_EQ(r.Header("location"), q["@id"]);
  EXPECT_EQ(q["@type"], "vocab:NamedQuery");
  EXPECT_EQ(q["name"], "book");
  EXPECT_EQ(q["global"], false);
  EXPECT_EQ(q["template"], "assetOrder=n1&space=p1&s1=p2");
  EXPECT_TRUE(std::regex_match(q["@id"].get<std::string>(),
                               std::regex(".*/customers/" + c_ +
                                          "/namedQueries/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-"
                                          "[89ab][0-9a-f]{3}-[0-9a-f]{12}")));
  EXPECT_EQ(Http("GET", q["@id"], "", server_->admin()).Json()["template"], q["template"]);
  HttpResult dup = PostJson(Queries(), {{"name", "book"}, {"template", "s1=p1"}});
  EXPECT_EQ(dup.status, 409) << dup.body;
  for (const char* bad : {"foo=1", "assetOrder=n9", "s1", "s1=a=b", "space=abc", "n1=x",
                          "batch=1,x", "manifest=p1", "assetOrder=n1 sideways", "s1=p1&s1=p2"}) {
    HttpResult b = PostJson(Queries(), {{"name", "bad"}, {"template", bad}});
    EXPECT_EQ(b.status, 400) << bad << ": " << b.body;
    EXPECT_TRUE(b.Json().contains("detail")) << b.body;
  }
  EXPECT_EQ(PostJson(Queries(), {{"name", "bad name!"}, {"template", "s1=p1"}}).status, 400);
  EXPECT_EQ(PostJson(Queries(), {{"template", "s1=p1"}}).status, 400);
  EXPECT_EQ(PostJson(Queries(), {{"name", "bad"}}).status, 400);
  EXPECT_EQ(PostJson(Queries(), {{"name", "ok-ignored"},
                                 {"template",
                                  "s1=p1&coverpage=x&sequence=1&roles=r&canvas=n2 "
                                  "desc;s3"}})
                .status,
            201);
  // A customer's own key may not create a global query; the administrator may.
  HttpResult key = Http("POST", P() + "/customers/" + c_ + "/keys", "", server_->admin());
  Credentials own{key.Json()["key"], key.Json()["secret"]};
  HttpResult forbidden =
      PostJson(Queries(), {{"name", "g"}, {"template", "s1=p1"}, {"global", true}}, own);
  EXPECT_EQ(forbidden.status, 403) << forbidden.body;
  EXPECT_EQ(PostJson(Queries(), {{"name", "mine"}, {"template", "s1=p1"}}, own).status, 201);
  // Nothing was stored by the refused writes.
  HttpResult list = Http("GET", P() + Queries() + "?pageSize=100", "", server_->admin());
  std::set<std::string> names;
  json listed = list.Json();
  for (auto& m : listed["member"]) names.insert(m["name"].get<std::string>());
  EXPECT_FALSE(names.count("bad"));
  EXPECT_FALSE(names.count("g"));
  EXPECT_TRUE(names.count("book") && names.count("mine")) << list.body;
}

class NamedQueryManifestTest : public PresentationTest {
 protected:
  static void SetUpTestSuite() {
    PresentationTest::SetUpTestSuite();
    if (HasFatalFailure()) return;
    book_ = MakeQuery("book", "assetOrder=n1&space=p1&s1=p2");
  }
  static inline std::string book_;
};

// §6.7
TEST_F(NamedQueryManifestTest, CanvasesInTemplateOrder) {
  HttpResult r = Get("/iiif-resource/" + c_ + "/book/3/book");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Header("cache-control"), "public, max-age=60");
  EXPECT_EQ(r.Header("access-control-allow-origin"), "*");
  json m = r.Json();
  ExpectPresentation3(m);
  EXPECT_EQ(m["id"], P() + "/iiif-resource/" + c_ + "/book/3/book");
  EXPECT_EQ(m["label"], json::parse(R"({"en":["Generated from 'book' named query"]})"));
  std::string s = c_ + "/3/";
  EXPECT_EQ(CanvasImages(m), (std::vector<std::string>{s + "b2", s + "b3", s + "b1"}));
  for (size_t i = 0; i < 3; ++i)
    EXPECT_EQ(m["items"][i]["label"]["en"][0], "Canvas " + std::to_string(i + 1));
  // By customer name too; ETag and 304.
  EXPECT_EQ(CanvasImages(Get("/iiif-resource/acme/book/3/book").Json()), CanvasImages(m));
  EXPECT_EQ(
      Get("/iiif-resource/" + c_ + "/book/3/book", {{"If-None-Match", r.Header("etag")}}).status,
      304);
  // Every canvas's body is a real image of its size.
  for (auto& c : m["items"]) {
    const json& body = c["items"][0]["items"][0]["body"];
    Decoded d = Decode(Http("GET", body["id"]).body);
    EXPECT_TRUE(d.ok) << body["id"];
    EXPECT_EQ(d.width, body["width"]);
  }
}

// §6.8
TEST_F(NamedQueryManifestTest, PutTemplateReordersAndV2HasThreeCanvases) {
  HttpResult put =
      Http("PUT", book_, json{{"template", "assetOrder=n1 desc&space=p1&s1=p2"}}.dump(),
           server_->admin());
  ASSERT_EQ(put.status, 200) << put.body;
  EXPECT_EQ(put.Json()["template"], "assetOrder=n1 desc&space=p1&s1=p2");
  std::string s = c_ + "/3/";
  EXPECT_EQ(CanvasImages(Get("/iiif-resource/" + c_ + "/book/3/book").Json()),
            (std::vector<std::string>{s + "b1", s + "b3", s + "b2"}));
  HttpResult v2 = Get("/iiif-resource/v2/" + c_ + "/book/3/book");
  ASSERT_EQ(v2.status, 200) << v2.body;
  json m = v2.Json();
  ExpectPresentation2(m);
  EXPECT_EQ(m["label"], "Generated from 'book' named query");
  ASSERT_EQ(m["sequences"][0]["canvases"].size(), 3u);
  for (auto& c : m["sequences"][0]["canvases"]) EXPECT_EQ(c["@type"], "sc:Canvas");
  EXPECT_EQ(CanvasImages(m), (std::vector<std::string>{s + "b1", s + "b3", s + "b2"}));
  EXPECT_EQ(Get("/iiif-resource/v3/" + c_ + "/book/3/book").Json()["type"], "Manifest");
  EXPECT_EQ(Get("/iiif-resource/" + c_ + "/book/3/book", {{"Accept", kAcceptV2}}).Json()["@type"],
            "sc:Manifest");
  // '+' stands for a space in assetOrder.
  ASSERT_EQ(Http("PUT", book_, json{{"template", "assetOrder=n1+asc&space=p1&s1=p2"}}.dump(),
                 server_->admin())
                .status,
            200);
  EXPECT_EQ(CanvasImages(Get("/iiif-resource/" + c_ + "/book/3/book").Json()),
            (std::vector<std::string>{s + "b2", s + "b3", s + "b1"}));
}

// §6.9
TEST_F(NamedQueryManifestTest, NoMatchesUnknownQueryBadAndMissingParameters) {
  EXPECT_EQ(Get("/iiif-resource/" + c_ + "/book/3/none").status, 404);
  EXPECT_EQ(Get("/iiif-resource/" + c_ + "/nosuch/3/book").status, 404);
  EXPECT_EQ(Get("/iiif-resource/nobody/book/3/book").status, 404);
  MakeQuery("num", "n1=p1");
  HttpResult abc = Get("/iiif-resource/" + c_ + "/num/abc");
  EXPECT_EQ(abc.status, 400) << abc.body;
  EXPECT_EQ(abc.Header("access-control-allow-origin"), "*");
  EXPECT_EQ(CanvasImages(Get("/iiif-resource/" + c_ + "/num/2").Json()),
            (std::vector<std::string>{c_ + "/3/b3"}));
  EXPECT_EQ(Get("/iiif-resource/" + c_ + "/book/x/book").status, 400);  // space not an integer
  HttpResult zero = Get("/iiif-resource/" + c_ + "/book");
  EXPECT_EQ(zero.status, 400) << zero.body;
  EXPECT_EQ(Get("/iiif-resource/" + c_ + "/book/").status, 400);  // empty segments dropped
  // A parameter beyond the count drops its criterion: space 3 only → a, b1..b3 (+ not x).
  HttpResult one = Get("/iiif-resource/" + c_ + "/book/3");
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(one.Json()["items"].size(), 4u);
  // Extra parameters are ignored.
  EXPECT_EQ(Get("/iiif-resource/" + c_ + "/book/3/book/extra/more").Json()["items"].size(), 3u);
}

// §6.10, and the item limit (--nq-max-items 4 here) and the batch criterion.
TEST_F(NamedQueryManifestTest, LiteralsLimitAndBatch) {
  MakeQuery("lit", "s1=p1&#=book");
  HttpResult r = Get("/iiif-resource/" + c_ + "/lit");
  ASSERT_EQ(r.status, 200) << r.body;
  std::string s3 = c_ + "/3/";
  EXPECT_EQ(CanvasImages(r.Json()),
            (std::vector<std::string>{s3 + "b1", s3 + "b2", s3 + "b3", c_ + "/4/x"}));
  // A URL parameter comes before the literals: p1 is now "none".
  EXPECT_EQ(Get("/iiif-resource/" + c_ + "/lit/none").status, 404);
  MakeQuery("all", "assetOrder=s1;n1 desc");
  HttpResult all = Get("/iiif-resource/" + c_ + "/all");
  ASSERT_EQ(all.status, 400) << all.body;
  EXPECT_EQ(all.body, "Named query matches 5 images; the limit is 4\n");
  MakeQuery("inbatch", "batch=p1&space=3&assetOrder=n1");
  EXPECT_EQ(
      CanvasImages(Get("/iiif-resource/" + c_ + "/inbatch/" + std::to_string(batch_) + "/").Json()),
      (std::vector<std::string>{s3 + "a", s3 + "b2", s3 + "b3", s3 + "b1"}));
  EXPECT_EQ(Get("/iiif-resource/" + c_ + "/inbatch/999999").status, 404);
  EXPECT_EQ(Get("/iiif-resource/" + c_ + "/inbatch/1,y").status, 400);
  MakeQuery("byname", "spacename=p1&s1=book&assetOrder=n1");
  EXPECT_EQ(CanvasImages(Get("/iiif-resource/" + c_ + "/byname/four").Json()),
            (std::vector<std::string>{c_ + "/4/x"}));
  EXPECT_EQ(Get("/iiif-resource/" + c_ + "/byname/nosuchspace").status, 404);
  // A parameter carrying an encoded slash stays one parameter.
  MakeQuery("slash", "s2=p1");
  EXPECT_EQ(Get("/iiif-resource/" + c_ + "/slash/a%2Fb").status, 404);
}

// §6.11
TEST_F(NamedQueryManifestTest, PutNameRefusedOtherCustomerDelete) {
  std::string url = MakeQuery("temp", "s1=p1");
  HttpResult named =
      Http("PUT", url, json{{"name", "x"}, {"template", "s1=p1"}}.dump(), server_->admin());
  EXPECT_EQ(named.status, 400) << named.body;
  EXPECT_EQ(Http("PUT", url, json{{"template", "bogus=1"}}.dump(), server_->admin()).status, 400);
  EXPECT_EQ(Http("GET", url, "", server_->admin()).Json()["template"], "s1=p1");
  EXPECT_EQ(Get("/iiif-resource/" + c_ + "/temp/book").status, 200);
  // Another customer neither sees it through the API nor gets a manifest from it.
  int64_t other = api_->CreateCustomer("other-co");
  std::string o = std::to_string(other);
  EXPECT_EQ(Get("/iiif-resource/" + o + "/temp/book").status, 404);
  std::string id = url.substr(url.rfind('/') + 1);
  EXPECT_EQ(
      Http("GET", P() + "/customers/" + o + "/namedQueries/" + id, "", server_->admin()).status,
      404);
  EXPECT_EQ(
      Http("DELETE", P() + "/customers/" + o + "/namedQueries/" + id, "", server_->admin()).status,
      404);
  EXPECT_EQ(Http("DELETE", url, "", server_->admin()).status, 204);
  EXPECT_EQ(Http("DELETE", url, "", server_->admin()).status, 404);
  EXPECT_EQ(Http("GET", url, "", server_->admin()).status, 404);
  EXPECT_EQ(Get("/iiif-resource/" + c_ + "/temp/book").status, 404);
}

// A global query is listed for every customer and runs over the requester's own images.
TEST_F(NamedQueryManifestTest, GlobalQueryRunsOnTheRequestersImages) {
  int64_t owner = api_->CreateCustomer("global-owner");
  HttpResult made =
      PostJson("/customers/" + std::to_string(owner) + "/namedQueries",
               {{"name", "everybook"}, {"template", "s1=p1&assetOrder=n1"}, {"global", true}});
  ASSERT_EQ(made.status, 201) << made.body;
  EXPECT_EQ(made.Json()["global"], true);
  HttpResult r = Get("/iiif-resource/" + c_ + "/everybook/book");
  ASSERT_EQ(r.status, 200) << r.body;
  std::string s3 = c_ + "/3/";
  EXPECT_EQ(CanvasImages(r.Json()),
            (std::vector<std::string>{c_ + "/4/x", s3 + "b2", s3 + "b3", s3 + "b1"}));
  HttpResult list = Http("GET", P() + Queries() + "?pageSize=500", "", server_->admin());
  bool listed = false;
  json members = list.Json()["member"];
  for (auto& m : members) listed = listed || m["name"] == "everybook";
  EXPECT_TRUE(listed);
  std::string id = made.Json()["id"];
  EXPECT_EQ(Http("GET", P() + Queries() + "/" + id, "", server_->admin()).status, 200);
  // Only its owner may change or delete it.
  EXPECT_EQ(
      Http("PUT", P() + Queries() + "/" + id, json{{"template", "s1=p2"}}.dump(), server_->admin())
          .status,
      404);
  EXPECT_EQ(Http("DELETE", P() + Queries() + "/" + id, "", server_->admin()).status, 404);
  // The owner's own images: none are books.
  EXPECT_EQ(Get("/iiif-resource/" + std::to_string(owner) + "/everybook/book").status, 404);
}

// Pages of a PDF as the bytes count them: "/Type /Page" not followed by "s".
int PageObjects(const std::string& pdf) {
  int n = 0;
  for (size_t at = 0; (at = pdf.find("/Type /Page", at)) != std::string::npos; at += 11)
    n += pdf.compare(at + 11, 1, "s") != 0;
  return n;
}

// GETs a PDF, following 202 + Retry-After until it is ready; counts the 202s in *accepted.
HttpResult PollPdf(const std::string& url, int* accepted) {
  HttpResult r;
  for (int i = 0; i < 120; ++i) {
    r = Http("GET", url);
    if (r.status != 202) return r;
    ++*accepted;
    EXPECT_EQ(r.Header("retry-after"), "5") << "202 without Retry-After";
    std::this_thread::sleep_for(500ms);
  }
  return r;
}

// §6.12, and the PDF opens in a standard reader (poppler) and is rebuilt when an image
// changes.
TEST_F(NamedQueryManifestTest, PdfOfANamedQuery) {
  // This server answers at once (--pdf-wait-ms 0): a build not yet done is a 202.
  int accepted = 0;
  std::string url = P() + "/pdf/" + c_ + "/book/3/book";
  HttpResult r = PollPdf(url, &accepted);
  ASSERT_EQ(r.status, 200) << r.body.substr(0, 300);
  EXPECT_EQ(r.Header("content-type"), "application/pdf");
  EXPECT_EQ(r.Header("content-disposition"), "inline; filename=\"book.pdf\"");
  EXPECT_EQ(r.Header("access-control-allow-origin"), "*");
  ASSERT_EQ(r.body.rfind("%PDF-", 0), 0u);
  EXPECT_EQ(PageObjects(r.body), 3);
  TempDir tmp;
  std::string file = tmp.path() + "/book.pdf";
  std::ofstream(file, std::ios::binary) << r.body;
  int code = -1;
  std::string info = RunCommand("pdfinfo " + file + " 2>&1", &code);
  ASSERT_EQ(code, 0) << info;
  EXPECT_TRUE(std::regex_search(info, std::regex("Pages:\\s+3\n"))) << info;
  EXPECT_EQ(info.find("Syntax Error"), std::string::npos) << info;
  RunCommand("pdftoppm -r 20 -png " + file + " " + tmp.path() + "/page 2>&1", &code);
  ASSERT_EQ(code, 0);
  int rendered = 0;
  for (auto& e : std::filesystem::directory_iterator(tmp.path()))
    if (e.path().extension() == ".png") {
      ++rendered;
      Decoded d = Decode([&] {
        std::ifstream in(e.path(), std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), {});
      }());
      EXPECT_TRUE(d.ok) << e.path();
      EXPECT_GT(d.width, 20) << e.path();
    }
  EXPECT_EQ(rendered, 3);

  // The control record.
  HttpResult control = Get("/pdf-control/" + c_ + "/book/3/book");
  ASSERT_EQ(control.status, 200) << control.body;
  json c = control.Json();
  EXPECT_EQ(c["exists"], true);
  EXPECT_EQ(c["inProcess"], false);
  EXPECT_EQ(c["itemCount"], 3);
  EXPECT_EQ(c["pageCount"], 3);
  EXPECT_EQ(c["sizeBytes"], r.body.size());
  EXPECT_EQ(c["roles"], json::array());
  EXPECT_TRUE(c.contains("created"));
  json other = Get("/pdf-control/" + c_ + "/book/3/other").Json();
  EXPECT_EQ(other["exists"], false);
  EXPECT_EQ(other["inProcess"], false);
  EXPECT_EQ(other["itemCount"], 0);
  EXPECT_FALSE(other.contains("created"));
  EXPECT_EQ(Get("/pdf-control/" + c_ + "/nosuch/3/book").status, 404);
  EXPECT_EQ(Get("/pdf/" + c_ + "/nosuch/3/book").status, 404);
  EXPECT_EQ(Get("/pdf/" + c_ + "/book/3/none").status, 404);
  EXPECT_EQ(Get("/pdf/" + c_ + "/book").status, 400);
  // Built once: the same bytes again.
  EXPECT_EQ(Http("GET", url).body, r.body);

  // An image that changes (b1 restricted, nothing open): rebuilt, b1 now a text page.
  HttpResult patched = Http("PATCH", P() + "/customers/" + c_ + "/spaces/3/images/b1",
                            json{{"maxUnauthorised", 0}}.dump(), server_->admin());
  ASSERT_EQ(patched.status, 200) << patched.body;
  HttpResult rebuilt = PollPdf(url, &accepted);
  ASSERT_EQ(rebuilt.status, 200);
  EXPECT_NE(rebuilt.body, r.body);
  EXPECT_EQ(PageObjects(rebuilt.body), 3);
  size_t images = 0;
  for (size_t at = 0; (at = rebuilt.body.find("/DCTDecode", at)) != std::string::npos; ++at)
    ++images;
  EXPECT_EQ(images, 2u);
  std::ofstream(file, std::ios::binary | std::ios::trunc) << rebuilt.body;
  std::string text = RunCommand("pdftotext " + file + " - 2>&1", &code);
  EXPECT_EQ(code, 0);
  EXPECT_NE(text.find("This page is restricted"), std::string::npos) << text;
  EXPECT_EQ(Get("/pdf-control/" + c_ + "/book/3/book").Json()["sizeBytes"], rebuilt.body.size());
  Http("PATCH", P() + "/customers/" + c_ + "/spaces/3/images/b1",
       json{{"maxUnauthorised", -1}}.dump(), server_->admin());

  // objectname and redactedmessage from the template.
  MakeQuery("named-pdf", "s1=p1&space=3&objectname=Book {s1} (n)&assetOrder=n1");
  HttpResult named = PollPdf(P() + "/pdf/" + c_ + "/named-pdf/book", &accepted);
  ASSERT_EQ(named.status, 200) << named.body.substr(0, 200);
  EXPECT_EQ(named.Header("content-disposition"), "inline; filename=\"Book_book__n_\"");
  EXPECT_GT(accepted, 0) << "three builds, none of them answered 202 while running";

  // DELETE of a stored PDF (Basic): gone, then built again on the next request.
  std::string resource = P() + "/customers/" + c_ + "/resources/pdf/book";
  HttpResult deleted = Http("DELETE", resource + "?args=3/book", "", server_->admin());
  ASSERT_EQ(deleted.status, 200) << deleted.body;
  EXPECT_EQ(deleted.Json()["success"], true);
  EXPECT_EQ(Get("/pdf-control/" + c_ + "/book/3/book").Json()["exists"], false);
  EXPECT_EQ(Http("DELETE", resource + "?args=3/book", "", server_->admin()).Json()["success"],
            false);
  EXPECT_EQ(Http("DELETE", resource, "", server_->admin()).status, 400);
  EXPECT_EQ(Http("DELETE", resource + "?args=3/book").status, 401);
  EXPECT_EQ(Http("DELETE", P() + "/customers/" + c_ + "/resources/pdf/nosuch?args=1", "",
                 server_->admin())
                .status,
            404);
  EXPECT_EQ(PollPdf(url, &accepted).status, 200);
  EXPECT_EQ(Get("/pdf-control/" + c_ + "/book/3/book").Json()["exists"], true);
}

// Listing scale: a query matching 500 of many images in one space is answered from an
// index (EXPLAIN, on SQLite and PostgreSQL), and its 500-canvas manifest is served.
// Manifests are kept serialized between requests (ManifestCache); a change of an image reaches
// its single-asset and named-query manifests on the very next request: metadata, order,
// dimensions after a reingest, and the ETag with them.
TEST_F(NamedQueryManifestTest, ManifestsFollowAChangeOfTheirImagesAtOnce) {
  ASSERT_EQ(Put("/customers/" + c_ + "/spaces/6", {{"name", "changing"}}).status, 201);
  std::ofstream(origins_ + "/wide.jpg", std::ios::binary) << MakeJpeg(900, 300, 21);
  json members = json::array();
  for (int i = 1; i <= 2; ++i) {
    json m = Member(6, "c" + std::to_string(i),
                    "file://" + origins_ + "/b" + std::to_string(i) + ".jpg", "image/jpeg");
    m["string1"] = "cache";
    m["number1"] = i;
    members.push_back(m);
  }
  long status = 0;
  json batch = api_->SubmitBatch(customer_, members, &status);
  ASSERT_EQ(status, 201) << batch.dump(2);
  ASSERT_EQ(api_->WaitForBatch(customer_, batch.at("id"), 60s)["completed"], 2);
  MakeQuery("cache", "space=p1&s1=p2&assetOrder=n1");
  const std::string single = "/iiif-manifest/" + c_ + "/6/c1";
  const std::string query = "/iiif-resource/" + c_ + "/cache/6/cache";
  auto string2 = [](const json& m) { return m["items"][0]["metadata"][1]["value"]["none"][0]; };
  const std::string s = c_ + "/6/";

  HttpResult first = Get(single);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(string2(first.Json()), "");
  EXPECT_EQ(Get(single).body, first.body);  // the kept copy, byte for byte
  EXPECT_EQ(CanvasImages(Get(query).Json()), (std::vector<std::string>{s + "c1", s + "c2"}));

  auto patch = [&](const std::string& id, const json& body) {
    HttpResult r = Http("PATCH", P() + "/customers/" + c_ + "/spaces/6/images/" + id, body.dump(),
                        server_->admin());
    ASSERT_EQ(r.status, 200) << r.body;
  };
  patch("c1", {{"string2", "changed"}, {"number1", 3}});
  HttpResult after = Get(single);
  EXPECT_EQ(string2(after.Json()), "changed");
  EXPECT_NE(after.Header("etag"), first.Header("etag"));
  EXPECT_EQ(Get(single, {{"If-None-Match", first.Header("etag")}}).status, 200);
  EXPECT_EQ(Get(single, {{"If-None-Match", after.Header("etag")}}).status, 304);
  EXPECT_EQ(CanvasImages(Get(query).Json()), (std::vector<std::string>{s + "c2", s + "c1"}));

  // A reingest from another origin: the new dimensions, in both manifests.
  json re = Member(6, "c2", "file://" + origins_ + "/wide.jpg", "image/jpeg");
  re["string1"] = "cache";
  re["number1"] = 2;
  batch = api_->SubmitBatch(customer_, json::array({re}), &status);
  ASSERT_EQ(status, 201) << batch.dump(2);
  ASSERT_EQ(api_->WaitForBatch(customer_, batch.at("id"), 60s)["completed"], 1);
  EXPECT_EQ(Get("/iiif-manifest/" + c_ + "/6/c2").Json()["items"][0]["width"], 900);
  json m = Get(query).Json();
  ASSERT_EQ(CanvasImages(m), (std::vector<std::string>{s + "c2", s + "c1"}));
  EXPECT_EQ(m["items"][0]["width"], 900);
  EXPECT_EQ(m["items"][0]["height"], 300);
}

TEST_F(NamedQueryManifestTest, QueryOverALargeSpaceUsesAnIndex) {
  const int64_t rows =
      std::getenv("QUIRE_NQ_ROWS") ? std::atoll(std::getenv("QUIRE_NQ_ROWS")) : 200000;
  ASSERT_EQ(Put("/customers/" + c_ + "/spaces/5", {{"name", "bulk"}}).status, 201);
  std::string url = server_->database_url();
  bool sqlite = url.rfind("sqlite:", 0) == 0;
  std::string values = c_ +
                       ", 5, 'bulk-' || i, 'https://example.org/' || i, 'image/jpeg', 'I', "
                       "'[{\"channel\":\"iiif-img\",\"policy\":\"default\"}]', 'shelf-' || (i % " +
                       std::to_string(rows / 500) + "), i, 1, i, 1000, 800, '[[200,160]]'";
  std::string cols =
      "(customer, space, id, origin, media_type, family, delivery_channels, string1, number1, "
      "created, finished, width, height, thumbnails)";
  auto start = std::chrono::steady_clock::now();
  if (sqlite) {
    ExecSql(url, "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < " +
                     std::to_string(rows - 1) + ") INSERT INTO assets " + cols + " SELECT " +
                     values + " FROM n;");  // no ANALYZE: nothing runs one on a live server
  } else {
    ExecSql(url, "INSERT INTO assets " + cols + " SELECT " + values + " FROM generate_series(0, " +
                     std::to_string(rows - 1) + ") AS i; ANALYZE assets;");
  }
  std::cerr << rows << " rows inserted in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - start)
                   .count()
            << " ms\n";
  auto store = OpenStore(url);
  ASSERT_TRUE(store.ok()) << store.status().message();
  AssetSelection sel;
  sel.customer = customer_;
  sel.space = 5;
  sel.strings[0] = "shelf-7";
  sel.order = {{3, false}};
  auto plan = (*store)->ExplainSelectAssets(sel, 1000);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  std::cerr << "plan:\n" << *plan;
  EXPECT_NE(plan->find("assets_string1"), std::string::npos) << *plan;
  if (sqlite) {
    EXPECT_EQ(plan->find("SCAN a"), std::string::npos) << *plan;
  } else {
    EXPECT_EQ(plan->find("Seq Scan"), std::string::npos) << *plan;
  }
  auto matched = (*store)->SelectAssets(sel, 1000);
  ASSERT_TRUE(matched.ok());
  EXPECT_EQ(matched->total, 500);
  ASSERT_EQ(matched->items.size(), 500u);
  EXPECT_EQ(matched->items.front().number1, 7);
  EXPECT_EQ(matched->items.back().number1, 7 + 499 * (rows / 500));

  // Over HTTP (this server's limit is 4: a second server on the same data holds 1000).
  TempDir second;
  QuireProcess big(second.path() + "/data", {"--workers", "0", "--database", url});
  MakeQuery("shelf", "space=p1&s1=p2&assetOrder=n1");
  std::vector<double> ms;
  for (int i = 0; i < 11; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    HttpResult r = Http("GET", big.url() + "/iiif-resource/" + c_ + "/shelf/5/shelf-7");
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    ASSERT_EQ(r.status, 200) << r.body.substr(0, 300);
    if (i == 0) {
      json m = r.Json();
      ExpectPresentation3(m);
      EXPECT_EQ(m["items"].size(), 500u);
    }
  }
  std::sort(ms.begin(), ms.end());
  std::cerr << "500-canvas named-query manifest over " << rows << " images: p50 " << ms[5]
            << " ms\n";
  RecordProperty("nq_manifest_500_p50_ms", std::to_string(ms[5]));
}

}  // namespace
}  // namespace quire::test
