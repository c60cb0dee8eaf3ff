#include "support/pdf_fixtures.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "support/run_command.h"

namespace quire::test {

std::string MakePdf(const std::vector<PdfPage>& pages) {
  std::vector<std::string> objects;
  std::string kids;
  for (size_t i = 0; i < pages.size(); ++i)
    kids += (i ? " " : "") + std::to_string(3 + 2 * i) + " 0 R";
  objects.push_back("<< /Type /Catalog /Pages 2 0 R >>");
  objects.push_back("<< /Type /Pages /Kids [" + kids + "] /Count " + std::to_string(pages.size()) +
                    " >>");
  for (size_t i = 0; i < pages.size(); ++i) {
    const PdfPage& p = pages[i];
    char content[256];
    int n = std::snprintf(content, sizeof content, "%.4f %.4f %.4f rg 0 0 %.2f %.2f re f", p.r, p.g,
                          p.b, p.width_pt, p.height_pt);
    if (p.bar_pt > 0)
      n += std::snprintf(content + n, sizeof content - n, " 0 0 0 rg 20 20 %.2f 30 re f", p.bar_pt);
    char page[256];
    std::snprintf(page, sizeof page,
                  "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.2f %.2f] /Contents %zu 0 R "
                  "/Resources << >> >>",
                  p.width_pt, p.height_pt, 4 + 2 * i);
    objects.push_back(page);
    objects.push_back("<< /Length " + std::to_string(n) + " >>\nstream\n" +
                      std::string(content, n) + "\nendstream");
  }
  std::string out = "%PDF-1.4\n";
  std::vector<size_t> offsets;
  for (size_t k = 0; k < objects.size(); ++k) {
    offsets.push_back(out.size());
    out += std::to_string(k + 1) + " 0 obj\n" + objects[k] + "\nendobj\n";
  }
  size_t xref = out.size();
  out += "xref\n0 " + std::to_string(objects.size() + 1) + "\n0000000000 65535 f \n";
  for (size_t off : offsets) {
    char line[32];
    std::snprintf(line, sizeof line, "%010zu 00000 n \n", off);
    out += line;
  }
  out += "trailer\n<< /Size " + std::to_string(objects.size() + 1) +
         " /Root 1 0 R >>\nstartxref\n" + std::to_string(xref) + "\n%%EOF\n";
  return out;
}

PdfPage BookPage(int i) {
  PdfPage p;
  p.r = ((i * 37) % 256) / 255.0;
  p.g = ((i * 91 + 40) % 256) / 255.0;
  p.b = ((i * 53 + 100) % 256) / 255.0;
  p.bar_pt = 10.0 * (i + 1);
  return p;
}

std::string EncryptPdf(const std::string& pdf) {
  auto dir = std::filesystem::temp_directory_path() /
             ("quire-pdf-" + std::to_string(::getpid()) + "-" + std::to_string(rand()));
  std::filesystem::create_directories(dir);
  std::string in = (dir / "in.pdf").string(), out = (dir / "out.pdf").string();
  std::ofstream(in, std::ios::binary) << pdf;
  int code = -1;
  std::string said = RunCommand("qpdf --encrypt secret-user secret-owner 256 -- " + ShellQuote(in) +
                                    " " + ShellQuote(out) + " 2>&1",
                                &code);
  std::ifstream f(out, std::ios::binary);
  std::stringstream bytes;
  bytes << f.rdbuf();
  std::filesystem::remove_all(dir);
  if (code != 0 || bytes.str().empty()) throw std::runtime_error("qpdf failed: " + said);
  return bytes.str();
}

}  // namespace quire::test
