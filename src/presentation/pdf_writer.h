// A minimal PDF 1.4 writer for named-query PDFs (spec/presentation-auth.md §4): one page per
// image with its JPEG embedded as is (/DCTDecode, MediaBox = pixels as points), or a text
// page (Helvetica) where the image has nothing open. Pure, thread-safe.
#pragma once

#include <string>
#include <vector>

namespace quire::presentation {

struct PdfPage {
  std::string jpeg;           // baseline or progressive JPEG; empty: a text page
  int width = 0, height = 0;  // the JPEG's pixels (ignored for a text page)
  std::string text;           // shown on a text page
};

// The components of a JPEG (1, 3 or 4) and its size from the first SOF marker; false when the
// bytes are not a JPEG with one.
bool JpegInfo(const std::string& jpeg, int* width, int* height, int* components);

// The whole document. Text is written as Latin-1 where it can be; other characters become '?'.
std::string WritePdf(const std::vector<PdfPage>& pages);

}  // namespace quire::presentation
