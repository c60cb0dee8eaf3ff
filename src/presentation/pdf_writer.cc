#include "presentation/pdf_writer.h"

#include <cstdio>

namespace quire::presentation {

namespace {

// A PDF literal string: Latin-1 where possible, with (, ) and \ escaped.
std::string PdfString(const std::string& utf8) {
  std::string out = "(";
  for (size_t i = 0; i < utf8.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(utf8[i]);
    if (c >= 0x80) {
      // Two-byte sequences up to U+00FF map to Latin-1; anything else is shown as '?'.
      if ((c == 0xC2 || c == 0xC3) && i + 1 < utf8.size()) {
        c = static_cast<unsigned char>(((c & 0x03) << 6) | (utf8[++i] & 0x3F));
      } else {
        while (i + 1 < utf8.size() && (static_cast<unsigned char>(utf8[i + 1]) & 0xC0) == 0x80) ++i;
        c = '?';
      }
    }
    if (c == '(' || c == ')' || c == '\\') out += '\\';
    if (c < 0x20) c = ' ';
    out += static_cast<char>(c);
  }
  return out + ")";
}

}  // namespace

bool JpegInfo(const std::string& jpeg, int* width, int* height, int* components) {
  const auto* b = reinterpret_cast<const unsigned char*>(jpeg.data());
  size_t n = jpeg.size();
  if (n < 4 || b[0] != 0xFF || b[1] != 0xD8) return false;
  size_t i = 2;
  while (i + 4 <= n) {
    if (b[i] != 0xFF) return false;
    unsigned char marker = b[i + 1];
    if (marker == 0xFF) {
      ++i;
      continue;
    }
    size_t len = (size_t(b[i + 2]) << 8) | b[i + 3];
    bool sof =
        marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (sof) {
      if (i + 10 > n) return false;
      *height = (b[i + 5] << 8) | b[i + 6];
      *width = (b[i + 7] << 8) | b[i + 8];
      *components = b[i + 9];
      return *width > 0 && *height > 0 &&
             (*components == 1 || *components == 3 || *components == 4);
    }
    i += 2 + len;
  }
  return false;
}

std::string WritePdf(const std::vector<PdfPage>& pages) {
  std::string out = "%PDF-1.4\n%\xE2\xE3\xCF\xD3\n";
  std::vector<size_t> offsets;  // of objects 1..N
  auto begin = [&](size_t number) {
    if (offsets.size() < number) offsets.resize(number);
    offsets[number - 1] = out.size();
    out += std::to_string(number) + " 0 obj\n";
  };
  // 1: catalog, 2: pages, 3: the font; then per page: page, contents, image (if any).
  const size_t first = 4;
  std::vector<size_t> page_objects;
  size_t next = first;
  for (const PdfPage& p : pages) {
    page_objects.push_back(next);
    next += p.jpeg.empty() ? 2 : 3;
  }
  begin(1);
  out += "<< /Type /Catalog /Pages 2 0 R >>\nendobj\n";
  begin(2);
  out += "<< /Type /Pages /Count " + std::to_string(pages.size()) + " /Kids [";
  for (size_t k : page_objects) out += " " + std::to_string(k) + " 0 R";
  out += " ] >>\nendobj\n";
  begin(3);
  out +=
      "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>\n"
      "endobj\n";
  for (size_t i = 0; i < pages.size(); ++i) {
    const PdfPage& p = pages[i];
    size_t page = page_objects[i], contents = page + 1, image = page + 2;
    bool text = p.jpeg.empty();
    int w = text ? 595 : p.width, h = text ? 842 : p.height;
    int components = 3, jw = 0, jh = 0;
    if (!text) JpegInfo(p.jpeg, &jw, &jh, &components);
    begin(page);
    out += "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 " + std::to_string(w) + " " +
           std::to_string(h) + "] /Contents " + std::to_string(contents) + " 0 R /Resources << ";
    out += text ? "/Font << /F1 3 0 R >>" : "/XObject << /Im1 " + std::to_string(image) + " 0 R >>";
    out += " >> >>\nendobj\n";
    std::string stream =
        text
            ? "BT /F1 24 Tf 72 " + std::to_string(h - 120) + " Td " + PdfString(p.text) + " Tj ET\n"
            : "q " + std::to_string(w) + " 0 0 " + std::to_string(h) + " 0 0 cm /Im1 Do Q\n";
    begin(contents);
    out += "<< /Length " + std::to_string(stream.size()) + " >>\nstream\n" + stream +
           "endstream\nendobj\n";
    if (!text) {
      const char* space = components == 1   ? "/DeviceGray"
                          : components == 4 ? "/DeviceCMYK"
                                            : "/DeviceRGB";
      begin(image);
      out += "<< /Type /XObject /Subtype /Image /Width " + std::to_string(p.width) + " /Height " +
             std::to_string(p.height) + " /ColorSpace " + space +
             " /BitsPerComponent 8 /Filter /DCTDecode";
      // Adobe CMYK JPEGs store inverted values.
      if (components == 4) out += " /Decode [1 0 1 0 1 0 1 0]";
      out += " /Length " + std::to_string(p.jpeg.size()) + " >>\nstream\n";
      out += p.jpeg;
      out += "\nendstream\nendobj\n";
    }
  }
  size_t xref = out.size();
  out += "xref\n0 " + std::to_string(offsets.size() + 1) + "\n0000000000 65535 f \n";
  char line[32];
  for (size_t off : offsets) {
    std::snprintf(line, sizeof line, "%010zu 00000 n \n", off);
    out += line;
  }
  out += "trailer\n<< /Size " + std::to_string(offsets.size() + 1) +
         " /Root 1 0 R >>\nstartxref\n" + std::to_string(xref) + "\n%%EOF\n";
  return out;
}

}  // namespace quire::presentation
