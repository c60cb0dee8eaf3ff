// A corpus of malformed queue POSTs against a live `quire serve --workers 0` (spec §1, §6):
// each is answered 400 with the Hydra/RFC 7807 error shape and a non-empty `detail`, never a
// 500, and nothing is written — the batch list, the images and the queue are unchanged at the
// end. Every body that is otherwise well-formed also carries a valid member that would change
// an existing image, so a partial write would show.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/http_client.h"
#include "support/live_server.h"
#include "support/quire_process.h"

namespace quire::test {
namespace {

using nlohmann::json;

// A valid member that would change the existing image if anything were written.
const std::string W =
    R"({"id":"existing","space":1,"origin":"https://example.org/e.jpg","mediaType":"image/jpeg","string1":"changed"})";

// A member with the given extra/overriding properties, e.g. M(R"("space":"1")").
// Later duplicate keys win in nlohmann::json, so overrides replace the defaults.
std::string M(const std::string& props) {
  return R"({"id":"new1","space":1,"origin":"https://example.org/n.jpg","mediaType":"image/jpeg")" +
         (props.empty() ? "" : "," + props) + "}";
}
// A member without the named property.
std::string Without(const std::string& name) {
  json m = json::parse(M(R"("string2":"x")"));
  m.erase(name);
  return m.dump();
}
std::string B(const std::string& members) { return R"({"@type":"Collection","member":[)" + members + "]}"; }
std::string BW(const std::string& member) { return B(W + "," + member); }

std::string Many(int n) {
  std::string out;
  for (int i = 0; i < n; ++i)
    out += (i ? "," : "") + M(R"("id":"m)" + std::to_string(i) + "\"");
  return out;
}
std::string Nested(int depth, char open, char close) {
  return std::string(depth, open) + std::string(depth, close);
}
std::string NestedObjects(int depth) {
  std::string s;
  for (int i = 0; i < depth; ++i) s += R"({"a":)";
  s += "1";
  for (int i = 0; i < depth; ++i) s += "}";
  return s;
}

struct Case {
  const char* name;
  std::string body;
};

const std::vector<Case>& Corpus() {
  static const std::vector<Case> corpus = {
      // --- not a JSON object at all
      {"empty body", ""},
      {"whitespace only", "   \n\t  "},
      {"null", "null"},
      {"true", "true"},
      {"number", "42"},
      {"string", R"("member")"},
      {"array body", "[" + W + "]"},
      {"empty array body", "[]"},
      {"BOM then array", "\xEF\xBB\xBF[]"},
      // --- truncated or broken JSON
      {"truncated in member list", R"({"member":[)" + W},
      {"truncated in string", R"({"member":[{"id":"abc)"},
      {"missing closing brace", R"({"member":[)" + W + "]"},
      {"trailing comma", R"({"member":[)" + W + ",]}"},
      {"unquoted key", "{member:[" + W + "]}"},
      {"single quotes", "{'member':[" + W + "]}"},
      {"extra closing brace", R"({"member":[)" + W + "]}}"},
      {"trailing garbage", R"({"member":[)" + W + "]} garbage"},
      {"two documents", R"({"member":[)" + W + R"(]}{"member":[]})"},
      {"comment", R"({"member":[)" + W + "] /* note */}"},
      {"leading zero", BW(M(R"("space":01)"))},
      {"NaN", BW(M(R"("number1":NaN)"))},
      {"Infinity", BW(M(R"("number1":Infinity)"))},
      {"hex number", BW(M(R"("number1":0x10)"))},
      {"number beyond double range", BW(M(R"("number1":1e999)"))},
      {"negative number beyond double range", BW(M(R"("space":-1e999)"))},
      {"id beyond double range", BW(M(R"("id":1e400)"))},
      // --- bytes that are not UTF-8, control characters
      {"invalid UTF-8 byte in a string", BW(M("\"id\":\"a\xff\""))},
      {"overlong UTF-8 in a string", BW(M("\"string1\":\"\xc0\xaf\""))},
      {"invalid UTF-8 outside strings", "\xff" + BW(M(""))},
      {"truncated UTF-8 sequence", BW(M("\"id\":\"caf\xc3\""))},
      {"lone surrogate escape", BW(M(R"("id":"\ud800")"))},
      {"raw control character in a string", BW(M("\"id\":\"a\x01z\""))},
      {"raw NUL byte after the document", BW(M("\"id\":\"x\"")) + std::string(1, '\0')},
      {"raw NUL byte in a string", BW(M("\"id\":\"a" + std::string(1, '\0') + "b\""))},
      // --- the member list
      {"member missing", R"({"@type":"Collection"})"},
      {"member null", R"({"member":null})"},
      {"member empty", R"({"member":[]})"},
      {"member a string", R"({"member":"x"})"},
      {"member an object", R"({"member":)" + W + "}"},
      {"member a number", R"({"member":5})"},
      {"member true", R"({"member":true})"},
      {"members (old) not an array", R"({"members":{"a":1}})"},
      {"member entry null", B(W + ",null")},
      {"member entries numbers", B("1,2")},
      {"member entry string", B(W + R"(,"existing")")},
      {"member entry empty array", B(W + ",[]")},
      {"member entry empty object", B(W + ",{}")},
      {"deeply nested arrays", R"({"member":)" + Nested(20000, '[', ']') + "}"},
      {"deeply nested objects as a member", B(W + "," + NestedObjects(5000))},
      {"deeply nested junk in tags", BW(M(R"("tags":)" + Nested(5000, '[', ']')))},
      {"251 members", B(W + "," + Many(250))},
      {"1000 members", B(Many(1000))},
      {"duplicate ids", BW(M("") + "," + M(""))},
      {"duplicate of the existing", B(W + "," + W)},
      {"unknown space", BW(M(R"("space":9)"))},
      {"space 0", BW(M(R"("space":0)"))},
      // --- space
      {"space missing", BW(Without("space"))},
      {"space null", BW(M(R"("space":null)"))},
      {"space a string", BW(M(R"("space":"1")"))},
      {"space a float", BW(M(R"("space":1.5)"))},
      {"space negative", BW(M(R"("space":-1)"))},
      {"space huge", BW(M(R"("space":18446744073709551615)"))},
      {"space beyond uint64", BW(M(R"("space":99999999999999999999999)"))},
      {"space a bool", BW(M(R"("space":true)"))},
      {"space an operator object", BW(M(R"("space":{"$gt":0})"))},
      // --- origin
      {"origin missing", BW(Without("origin"))},
      {"origin null", BW(M(R"("origin":null)"))},
      {"origin a number", BW(M(R"("origin":5)"))},
      {"origin empty", BW(M(R"("origin":"")"))},
      {"origin ftp", BW(M(R"("origin":"ftp://example.org/a.jpg")"))},
      {"origin javascript", BW(M(R"x("origin":"javascript:alert(1)")x"))},
      {"origin without host", BW(M(R"("origin":"https://")"))},
      {"origin with a space", BW(M(R"("origin":"https://example.org/a b.jpg")"))},
      {"origin with a newline", BW(M(R"("origin":"https://example.org/a\n.jpg")"))},
      {"origin file without root", BW(M(R"("origin":"file:///etc/passwd")"))},
      {"origin 1 MB", BW(M(R"("origin":"https://example.org/)" + std::string(1 << 20, 'a') + "\""))},
      // --- mediaType
      {"mediaType missing", BW(Without("mediaType"))},
      {"mediaType a number", BW(M(R"("mediaType":5)"))},
      {"mediaType empty", BW(M(R"("mediaType":"")"))},
      {"mediaType without slash", BW(M(R"("mediaType":"jpeg")"))},
      {"mediaType two slashes", BW(M(R"("mediaType":"image/jpeg/x")"))},
      {"mediaType with spaces", BW(M(R"("mediaType":"image/ jpeg")"))},
      {"mediaType huge", BW(M(R"("mediaType":"image/)" + std::string(5000, 'x') + "\""))},
      // --- id
      {"id a number", BW(M(R"("id":5)"))},
      {"id an object", BW(M(R"("id":{"a":1})"))},
      {"id an array", BW(M(R"("id":["a"])"))},
      {"id with slash", BW(M(R"("id":"a/b")"))},
      {"id with backslash", BW(M(R"("id":"a\\b")"))},
      {"id with BEL", BW(M(R"("id":"a\u0007b")"))},
      {"id with NUL escape", BW(M(R"("id":"a\u0000b")"))},
      {"id with tab", BW(M(R"("id":"a\tb")"))},
      {"id with DEL", BW(M(R"("id":"a\u007fb")"))},
      {"id with line separator", BW(M(R"("id":"a\u2028b")"))},
      {"id with C1 control", BW(M(R"("id":"a\u0085b")"))},
      {"id dot-dot", BW(M(R"("id":"..")"))},
      {"id 256 chars", BW(M(R"("id":")" + std::string(256, 'x') + "\""))},
      {"id 301 chars, multibyte cut in the echo", BW(M(R"("id":"a)" + [] {
         std::string s;
         for (int i = 0; i < 150; ++i) s += "\xc3\xa9";
         return s;
       }() + "\""))},
      {"id 100 KB", BW(M(R"("id":")" + std::string(100000, 'x') + "\""))},
      {"modelId a number", BW([] {
         json m = json::parse(M(""));
         m.erase("id");
         m["modelId"] = 7;
         return m.dump();
       }())},
      // --- metadata types and ranges
      {"tags a string", BW(M(R"("tags":"a,b")"))},
      {"tags numbers", BW(M(R"("tags":[1,2])"))},
      {"tags 101 entries", BW(M(R"("tags":[)" + [] {
         std::string s;
         for (int i = 0; i < 101; ++i) s += (i ? "," : "") + std::string("\"t\"");
         return s;
       }() + "]"))},
      {"roles an object", BW(M(R"("roles":{})"))},
      {"string1 a number", BW(M(R"("string1":1)"))},
      {"string1 5000 chars", BW(M(R"("string1":")" + std::string(5000, 's') + "\""))},
      {"number1 a string", BW(M(R"("number1":"2")"))},
      {"number1 a float", BW(M(R"("number1":2.5)"))},
      {"number1 int64 max", BW(M(R"("number1":9223372036854775807)"))},
      {"number1 int64 min", BW(M(R"("number1":-9223372036854775808)"))},
      {"number2 uint64 max", BW(M(R"("number2":18446744073709551615)"))},
      {"number3 an array", BW(M(R"("number3":[3])"))},
      {"maxUnauthorised -2", BW(M(R"("maxUnauthorised":-2)"))},
      {"maxUnauthorised huge", BW(M(R"("maxUnauthorised":10000000000)"))},
      {"family unknown letter", BW(M(R"("family":"X")"))},
      {"family 0", BW(M(R"("family":0)"))},
      {"family negative", BW(M(R"("family":-73)"))},
      {"family an array", BW(M(R"("family":[])"))},
      // --- delivery channels
      {"deliveryChannels a string", BW(M(R"("deliveryChannels":"iiif-img")"))},
      {"deliveryChannels numbers", BW(M(R"("deliveryChannels":[5])"))},
      {"deliveryChannels without channel", BW(M(R"("deliveryChannels":[{"policy":"default"}])"))},
      {"deliveryChannels policy a number",
       BW(M(R"("deliveryChannels":[{"channel":"iiif-img","policy":5}])"))},
      {"deliveryChannels unknown policy",
       BW(M(R"("deliveryChannels":[{"channel":"iiif-img","policy":"nope"}])"))},
      {"deliveryChannels unknown channel", BW(M(R"("deliveryChannels":["teleport"])"))},
      {"deliveryChannels twice", BW(M(R"("deliveryChannels":["iiif-img","iiif-img"])"))},
      {"deliveryChannels none plus file", BW(M(R"("deliveryChannels":["none","file"])"))},
      {"iiif-av on an image", BW(M(R"("mediaType":"image/jpeg","deliveryChannels":["iiif-av"])"))},
      {"iiif-img on a pdf", BW(M(R"("mediaType":"application/pdf","deliveryChannels":["iiif-img"])"))},
      // --- read-only properties
      {"width", BW(M(R"("width":100)"))},
      {"height", BW(M(R"("height":0)"))},
      {"batch", BW(M(R"("batch":"https://example.org/batches/1")"))},
      {"finished", BW(M(R"("finished":"2026-11-28T19:00:00.000Z")"))},
      {"created", BW(M(R"("created":"2026-11-28T19:00:00.000Z")"))},
      {"ingesting", BW(M(R"("ingesting":false)"))},
      {"error", BW(M(R"("error":"")"))},
      {"imageService", BW(M(R"("imageService":"https://example.org/iiif")"))},
      {"thumbnailImageService", BW(M(R"("thumbnailImageService":"https://example.org/t")"))},
  };
  return corpus;
}

class QueueMalformed : public LiveServerTest {};

void ExpectBadRequest(const HttpResult& r, const std::string& instance) {
  ASSERT_NE(r.status, 500) << r.body;
  EXPECT_EQ(r.status, 400) << r.body.substr(0, 500);
  auto j = r.Json();
  ASSERT_TRUE(j.is_object()) << r.body.substr(0, 500);
  EXPECT_EQ(j["@type"], "Error");
  EXPECT_EQ(j["statusCode"], 400);
  EXPECT_EQ(j["status"], 400);
  EXPECT_EQ(j["title"], "Bad request");
  ASSERT_TRUE(j["detail"].is_string());
  EXPECT_FALSE(j["detail"].get<std::string>().empty());
  EXPECT_EQ(j["description"], j["detail"]);
  EXPECT_EQ(j["instance"], instance);
  EXPECT_EQ(r.Header("location"), "");
}

TEST_F(QueueMalformed, CorpusIsLargeEnough) { EXPECT_GE(Corpus().size(), 60u); }

TEST_F(QueueMalformed, EveryMalformedPostIs400AndWritesNothing) {
  const std::string c1 = U("/customers/1");
  ASSERT_EQ(Http("POST", c1 + "/spaces", R"({"name":"one"})", Admin()).status, 201);
  ASSERT_EQ(Http("POST", c1 + "/spaces", R"({"name":"two"})", Admin()).status, 201);
  auto seed = Http("POST", c1 + "/queue",
                   R"({"member":[{"id":"existing","space":1,"origin":"https://example.org/e.jpg",)"
                   R"("mediaType":"image/jpeg","string1":"original"}]})",
                   Admin());
  ASSERT_EQ(seed.status, 201) << seed.body;
  const json batches_before = Http("GET", c1 + "/queue/batches", "", Admin()).Json();
  const json images_before = Http("GET", c1 + "/spaces/1/images", "", Admin()).Json();
  const json queue_before = Http("GET", c1 + "/queue", "", Admin()).Json();
  const json global_before = Http("GET", U("/queue")).Json();
  ASSERT_EQ(batches_before["totalItems"], 1);
  ASSERT_EQ(images_before["totalItems"], 1);

  for (const char* queue : {"/queue", "/queue/priority"}) {
    for (const Case& k : Corpus()) {
      SCOPED_TRACE(std::string(queue) + ": " + k.name);
      auto r = Http("POST", c1 + queue, k.body, Admin());
      ExpectBadRequest(r, c1 + queue);
    }
  }

  // Nothing was written: same batches, same images (byte for byte), same queue.
  EXPECT_EQ(Http("GET", c1 + "/queue/batches", "", Admin()).Json(), batches_before);
  EXPECT_EQ(Http("GET", c1 + "/spaces/1/images", "", Admin()).Json(), images_before);
  EXPECT_EQ(Http("GET", c1 + "/spaces/2/images", "", Admin()).Json()["totalItems"], 0);
  json q = Http("GET", c1 + "/queue", "", Admin()).Json();
  EXPECT_EQ(q["size"], queue_before["size"]);
  EXPECT_EQ(q["batchesWaiting"], queue_before["batchesWaiting"]);
  EXPECT_EQ(q["imagesWaiting"], queue_before["imagesWaiting"]);
  EXPECT_EQ(Http("GET", U("/queue")).Json(), global_before);
  json existing = Http("GET", c1 + "/spaces/1/images/existing", "", Admin()).Json();
  EXPECT_EQ(existing["string1"], "original");
  EXPECT_EQ(existing["batch"], batches_before["member"][0]["@id"]);
  // No handler threw.
  EXPECT_EQ(server_->Log().find("threw"), std::string::npos) << server_->Log();

  // The server is still well: a valid POST goes through.
  auto ok = Http("POST", c1 + "/queue", B(M("")), Admin());
  EXPECT_EQ(ok.status, 201) << ok.body;
}

// The image PUT/PATCH bodies go through the same JSON parsing (overflow, NUL bytes).
TEST_F(QueueMalformed, ImagePutAndPatchRejectMalformedJson) {
  const std::string c1 = U("/customers/1");
  auto sp = Http("PUT", c1 + "/spaces/50", R"({"name":"fifty"})", Admin());
  ASSERT_TRUE(sp.status == 201 || sp.status == 200) << sp.body;
  std::string img = c1 + "/spaces/50/images/put1";
  ExpectBadRequest(Http("PUT", img,
                        R"({"origin":"https://example.org/a.jpg","mediaType":"image/jpeg",)"
                        R"("number1":1e999})",
                        Admin()),
                   img);
  EXPECT_EQ(Http("GET", img, "", Admin()).status, 404);
  auto made = Http("PUT", img, R"({"origin":"https://example.org/a.jpg","mediaType":"image/jpeg"})",
                   Admin());
  ASSERT_EQ(made.status, 201) << made.body;
  ExpectBadRequest(Http("PATCH", img, R"({"number1":-1e999})", Admin()), img);
  ExpectBadRequest(Http("PATCH", img, "{\"string1\":\"\xff\"}", Admin()), img);
  ExpectBadRequest(Http("PUT", img, "[1", Admin()), img);
  ExpectBadRequest(Http("PUT", img,
                        std::string(R"({"origin":"https://example.org/b.jpg","mediaType":"image/png"})") +
                            std::string(1, '\0') + "junk",
                        Admin()),
                   img);
  EXPECT_EQ(Http("GET", img, "", Admin()).Json()["mediaType"], "image/jpeg");
  EXPECT_EQ(Http("GET", img, "", Admin()).Json()["number1"], 0);
}

}  // namespace
}  // namespace quire::test
