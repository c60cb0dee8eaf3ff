// libFuzzer target for the image listing's query string (src/api/image_listing.cc): paging,
// orderBy, string/number filters and the JSON `q` filter. Input: a raw query string. Beyond
// "no crash, ASan/UBSan clean": an accepted query has a page size within 1..500, and the
// query string it keeps for paging links parses to the same query again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "api/image_listing.h"

namespace {
void Check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  quire::http::Request req;
  req.method = "GET";
  req.path = "/customers/1/spaces/1/images";
  req.query.assign(reinterpret_cast<const char*>(data), size);
  quire::AssetQuery q;
  std::string keep;
  std::string problem = quire::api::ReadAssetQuery(req, &q, &keep);
  if (!problem.empty()) return 0;
  Check(q.page.page_size >= 1 && q.page.page_size <= 500 && q.page.page >= 1);
  quire::http::Request again = req;
  again.query = keep;
  quire::AssetQuery q2;
  std::string keep2;
  Check(quire::api::ReadAssetQuery(again, &q2, &keep2).empty());
  Check(q2.string1 == q.string1 && q2.string2 == q.string2 && q2.string3 == q.string3);
  Check(q2.number1 == q.number1 && q2.number2 == q.number2 && q2.number3 == q.number3);
  Check(q2.space == q.space && q2.order_by == q.order_by && q2.descending == q.descending);
  return 0;
}
