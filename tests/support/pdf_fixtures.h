// PDF test files written at test time: pages of known size and colour, drawn with two
// rectangle fills each (so a page's pixels identify it), in a minimal but valid PDF 1.4
// (catalog, page tree, one content stream per page, a correct cross-reference table).
#pragma once

#include <string>
#include <vector>

namespace quire::test {

struct PdfPage {
  double width_pt = 288, height_pt = 216;  // 72 points to the inch
  double r = 1, g = 1, b = 1;              // the page's fill, 0..1
  // A black bar from (20, 20) points (the page's lower left is 0, 0), `bar_pt` wide and 30
  // high; 0 draws none.
  double bar_pt = 0;
};

std::string MakePdf(const std::vector<PdfPage>& pages);

// Page `i` (0-based) of the test books: a colour of its own and a bar 10 (i + 1) points wide.
PdfPage BookPage(int i);

// The PDF bytes encrypted by qpdf with a user password (AES-256): unreadable without it.
// Throws when qpdf fails.
std::string EncryptPdf(const std::string& pdf);

}  // namespace quire::test
