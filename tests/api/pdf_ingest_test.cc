// PDF images end to end through a live `quire serve` (issue 14 §3): a PDF sent with family
// "I" is read in the decode sandbox and split into one image per page in the same batch —
// ids {id}-p0001 ..., origins {origin}#page=N, the batch's count grown by the page count in the
// transaction that records the split — and each page is rendered in the sandbox at --pdf-dpi
// into the ordinary pyramid. The document is downloaded once: the pages read the copy the PDF
// image stored. A PDF that cannot be read (damaged, encrypted, over --pdf-max-pages) is that
// one image's error, and nothing is split.
#include <gtest/gtest.h>

#include <set>

#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/jp2_fixtures.h"
#include "support/origin_server.h"
#include "support/pdf_fixtures.h"
#include "support/quire_process.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using vips::VImage;
using namespace std::chrono_literals;

constexpr int64_t kCustomer = 1;

json PdfMember(int64_t space, const std::string& id, const std::string& origin) {
  json m = Member(space, id, origin, "application/pdf");
  m["family"] = "I";
  return m;
}

class PdfIngestTest : public ::testing::Test {
 protected:
  void SetUp() override { data_ = std::make_unique<TempDir>(); }
  void TearDown() override {
    if (HasFailure() && server_) std::cerr << "---- quire log ----\n" << server_->Log();
  }

  void StartServer(std::vector<std::string> extra = {}) {
    std::vector<std::string> flags = {"--workers",
                                      "2",
                                      "--allow-private-origins",
                                      "--ingest-attempts",
                                      "2",
                                      "--ingest-backoff-ms",
                                      "100",
                                      "--pdf-dpi",
                                      "100"};
    flags.insert(flags.end(), extra.begin(), extra.end());
    server_ = std::make_unique<QuireProcess>(data_->path() + "/data", flags);
    api_ = std::make_unique<Api>(Api{server_->url(), server_->admin()});
  }

  json Submit(const json& members) {
    long status = 0;
    json batch = api_->SubmitBatch(kCustomer, members, &status);
    EXPECT_EQ(status, 201) << batch.dump();
    json done = api_->WaitForBatch(kCustomer, batch.value("id", int64_t{0}), 180s);
    EXPECT_TRUE(done.contains("finished")) << done.dump(2);
    return done;
  }

  VImage Render(int64_t space, const std::string& id, const std::string& rest) const {
    HttpResult r = Http("GET", server_->url() + "/iiif-img/" + std::to_string(kCustomer) + "/" +
                                   std::to_string(space) + "/" + id + rest);
    EXPECT_EQ(r.status, 200) << id << rest << ": " << r.body.substr(0, 200);
    if (r.status != 200) return VImage::black(1, 1);
    return DecodeToImage(r.body);
  }

  OriginServer origin_;
  std::unique_ptr<TempDir> data_;
  std::unique_ptr<QuireProcess> server_;
  std::unique_ptr<Api> api_;
};

// The pixel at (x, y) of `image`, as 0..255 per band.
std::vector<double> Pixel(const VImage& image, int x, int y) { return image.getpoint(x, y); }

void ExpectColour(const std::vector<double>& got, double r, double g, double b,
                  const std::string& where) {
  ASSERT_GE(got.size(), 3u) << where;
  EXPECT_NEAR(got[0], r * 255, 8) << where;
  EXPECT_NEAR(got[1], g * 255, 8) << where;
  EXPECT_NEAR(got[2], b * 255, 8) << where;
}

TEST_F(PdfIngestTest, ATwelvePagePdfBecomesTwelveImagesOfItsBatch) {
  // Page 12 is 40 x 30 inches: at 100 dpi 12 Mpx, over --max-pixels, so it is rendered at
  // the largest resolution that fits instead.
  StartServer({"--max-pixels", "5000000"});
  int64_t space = api_->CreateSpace(kCustomer, "books");
  std::vector<PdfPage> pages;
  for (int i = 0; i < 12; ++i) pages.push_back(BookPage(i));
  pages[11].width_pt = 2880;
  pages[11].height_pt = 2160;
  origin_.Serve("/book.pdf", MakePdf(pages), "application/pdf");
  origin_.Serve("/plate.jpg", MakeJpeg(640, 480, 3), "image/jpeg");
  json members = json::array({PdfMember(space, "book", origin_.Url("/book.pdf")),
                              Member(space, "plate", origin_.Url("/plate.jpg"), "image/jpeg"),
                              // A page named in the origin is that page only, not a split.
                              PdfMember(space, "frontispiece", origin_.Url("/book.pdf#page=3"))});
  json done = Submit(members);
  EXPECT_EQ(done["count"], 15) << done.dump(2);
  EXPECT_EQ(done["completed"], 15) << done.dump(2);
  EXPECT_EQ(done["errors"], 0) << done.dump(2);

  // The batch lists the members, then the pages in order.
  std::vector<json> listed = api_->All(api_->base + "/customers/1/queue/batches/" +
                                       std::to_string(done["id"].get<int64_t>()) + "/images");
  ASSERT_EQ(listed.size(), 15u);
  std::vector<std::string> ids;
  for (const json& image : listed) ids.push_back(image["id"]);
  EXPECT_EQ(ids[0], "book");
  for (int n = 1; n <= 12; ++n) {
    char id[32];
    std::snprintf(id, sizeof id, "book-p%04d", n);
    EXPECT_NE(std::find(ids.begin(), ids.end(), id), ids.end()) << id;
  }

  // The PDF image holds the document; it has no pixels of its own, and says where they are.
  HttpResult info =
      Http("GET", server_->url() + "/iiif-img/1/" + std::to_string(space) + "/book/info.json");
  EXPECT_EQ(info.status, 404);
  EXPECT_NE(info.body.find("split into pages"), std::string::npos) << info.body;
  EXPECT_NE(info.body.find("book-p0001"), std::string::npos) << info.body;
  json book = api_->Image(kCustomer, space, "book");
  EXPECT_EQ(book["family"], "I") << book.dump(2);
  EXPECT_EQ(book.value("error", ""), "") << book.dump(2);
  EXPECT_EQ(book["ingesting"], false);

  // Page 7: its origin, its size at 100 dpi, its colour, and its bar (70 pt from x = 20 pt:
  // pixels 28..125 at 100 dpi), which tells it from page 6 (to 111) and page 8 (to 139).
  json page7 = api_->Image(kCustomer, space, "book-p0007");
  EXPECT_EQ(page7["origin"], origin_.Url("/book.pdf") + "#page=7") << page7.dump(2);
  EXPECT_EQ(page7["mediaType"], "application/pdf");
  EXPECT_EQ(page7["width"], 400);
  EXPECT_EQ(page7["height"], 300);
  VImage seven = Render(space, "book-p0007", "/full/max/0/default.png");
  ASSERT_EQ(seven.width(), 400);
  const PdfPage p7 = BookPage(6);
  ExpectColour(Pixel(seven, 200, 100), p7.r, p7.g, p7.b, "page 7's background");
  ExpectColour(Pixel(seven, 120, 250), 0, 0, 0, "page 7's bar at x=120");
  ExpectColour(Pixel(seven, 132, 250), p7.r, p7.g, p7.b, "page 7 right of its bar");
  VImage six = Render(space, "book-p0006", "/full/max/0/default.png");
  ExpectColour(Pixel(six, 120, 250), BookPage(5).r, BookPage(5).g, BookPage(5).b,
               "page 6 right of its bar");
  // Thumbnails came with the pages, as with any image.
  HttpResult thumb = Http("GET", server_->url() + "/thumbs/1/" + std::to_string(space) +
                                     "/book-p0007/full/max/0/default.jpg");
  EXPECT_EQ(thumb.status, 200);

  // Page 12, over the pixel limit, was rendered smaller and whole (40 x 30 in. at 64.55 dpi).
  json page12 = api_->Image(kCustomer, space, "book-p0012");
  int w = page12["width"], h = page12["height"];
  EXPECT_LE(int64_t{w} * h, 5000000) << page12.dump(2);
  EXPECT_GT(w, 2500) << page12.dump(2);
  EXPECT_NEAR(double(w) / h, 4.0 / 3.0, 0.01);

  // The origin named by #page=3 is page 3 alone.
  json front = api_->Image(kCustomer, space, "frontispiece");
  EXPECT_EQ(front["width"], 400) << front.dump(2);
  VImage three = Render(space, "frontispiece", "/full/max/0/default.png");
  ExpectColour(Pixel(three, 200, 100), BookPage(2).r, BookPage(2).g, BookPage(2).b,
               "frontispiece = page 3");
  EXPECT_EQ(api_->Get("/customers/1/spaces/" + std::to_string(space) + "/images/frontispiece-p0001")
                .status,
            404);

  // Downloaded twice in all: by the PDF image and by the frontispiece; the 12 pages read the
  // copy the PDF image stored.
  EXPECT_EQ(origin_.Requests("/book.pdf"), 2);

  // Reingesting the PDF splits it again: the same pages, superseded and redone.
  json again = Submit(json::array({PdfMember(space, "book", origin_.Url("/book.pdf"))}));
  EXPECT_EQ(again["count"], 13) << again.dump(2);
  EXPECT_EQ(again["completed"], 13) << again.dump(2);
  EXPECT_NE(api_->Image(kCustomer, space, "book-p0007")["batch"].dump().find(
                "/batches/" + std::to_string(again["id"].get<int64_t>())),
            std::string::npos)
      << api_->Image(kCustomer, space, "book-p0007").dump(2);
}

TEST_F(PdfIngestTest, APdfThatCannotBeReadIsOneErrorAndNothingIsSplit) {
  StartServer();
  int64_t space = api_->CreateSpace(kCustomer, "bad-pdfs");
  const int64_t peak_before = server_->StatusKib("VmHWM");
  // Image channels on a PDF need family "I": without it the PDF is a file.
  long status = 0;
  json plain = Member(space, "plain", origin_.Url("/fine.pdf"), "application/pdf");
  plain["deliveryChannels"] = json::array({json{{"channel", "iiif-img"}}});
  json refused = api_->SubmitBatch(kCustomer, json::array({plain}), &status);
  EXPECT_EQ(status, 400) << refused.dump();

  std::string book = MakePdf({BookPage(0), BookPage(1), BookPage(2)});
  std::vector<PdfPage> many(10000, BookPage(4));
  origin_.Serve("/damaged.pdf", book.substr(0, 200) + std::string(400, 'x'), "application/pdf");
  origin_.Serve("/encrypted.pdf", EncryptPdf(book), "application/pdf");
  origin_.Serve("/huge.pdf", MakePdf(many), "application/pdf");
  origin_.Serve("/text.pdf", "this is not a PDF at all, only text\n", "application/pdf");
  origin_.Serve("/fine.pdf", book, "application/pdf");
  json members = json::array({PdfMember(space, "damaged", origin_.Url("/damaged.pdf")),
                              PdfMember(space, "encrypted", origin_.Url("/encrypted.pdf")),
                              PdfMember(space, "huge", origin_.Url("/huge.pdf")),
                              PdfMember(space, "text", origin_.Url("/text.pdf")),
                              PdfMember(space, "fine", origin_.Url("/fine.pdf"))});
  json done = Submit(members);
  EXPECT_EQ(done["count"], 8) << done.dump(2);  // 5 members + fine's 3 pages
  EXPECT_EQ(done["completed"], 4) << done.dump(2);
  EXPECT_EQ(done["errors"], 4) << done.dump(2);

  auto error = [&](const std::string& id) {
    return api_->Image(kCustomer, space, id).value("error", std::string());
  };
  EXPECT_NE(error("damaged"), "");
  EXPECT_EQ(error("encrypted"),
            "could not read the PDF: it is encrypted (it opens only with its password)");
  EXPECT_EQ(error("damaged"), "could not read the PDF: PDF document is damaged");
  EXPECT_NE(error("huge").find("10000 pages, over the limit of 2000"), std::string::npos)
      << error("huge");
  EXPECT_NE(error("text"), "");
  EXPECT_EQ(error("fine"), "");
  // poppler ran in the children: the server's own peak memory barely moved.
  EXPECT_LT(server_->StatusKib("VmHWM") - peak_before, 64 * 1024);
  for (const char* id : {"damaged-p0001", "encrypted-p0001", "huge-p0001", "text-p0001"})
    EXPECT_EQ(api_->Get("/customers/1/spaces/" + std::to_string(space) + "/images/" + id).status,
              404)
        << id;
}

}  // namespace
}  // namespace quire::test
