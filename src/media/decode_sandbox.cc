#include "media/decode_sandbox.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "model/media_sniff.h"

namespace quire::media {
namespace {

// The child's report: its last non-empty line on standard output, "error: " taken off.
std::string ReportLine(std::string out) {
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  size_t nl = out.rfind('\n');
  std::string line = nl == std::string::npos ? out : out.substr(nl + 1);
  if (line.rfind("error: ", 0) == 0) line.erase(0, 7);
  return line;
}

void Replace(std::string* text, const std::string& what, const std::string& with) {
  if (what.empty()) return;
  for (size_t at; (at = text->find(what)) != std::string::npos;)
    text->replace(at, what.size(), with);
}

}  // namespace

bool ParseSandboxScope(const std::string& name, SandboxScope* scope) {
  if (name == "untrusted") {
    *scope = SandboxScope::kUntrusted;
  } else if (name == "all") {
    *scope = SandboxScope::kAll;
  } else {
    return false;
  }
  return true;
}

std::string SniffFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  char head[kSniffBytes];
  ssize_t got = ::read(fd, head, sizeof head);
  ::close(fd);
  return got > 0 ? SniffMediaType(std::string_view(head, static_cast<size_t>(got))) : "";
}

bool DecodesInSandbox(const std::string& sniffed, SandboxScope scope) {
  if (scope == SandboxScope::kAll) return true;
  // The loaders libvips marks untrusted that Quire reads, JPEG 2000 and PDF: a PDF image's
  // pages are counted and rendered in the child only (poppler unblocked there alone). A PDF
  // sent as anything else is refused, pdfload blocked in the child too, but libvips 8.14
  // lets poppler parse the document before it checks the block, so that happens there too.
  return sniffed == "image/jp2" || sniffed == "application/pdf";
}

std::string FormatName(const std::string& sniffed) {
  static const std::pair<const char*, const char*> kNames[] = {
      {"image/jp2", "JPEG 2000"}, {"image/jpeg", "JPEG"}, {"image/png", "PNG"},
      {"image/tiff", "TIFF"},     {"image/webp", "WebP"}, {"image/gif", "GIF"},
      {"image/heic", "HEIF"},     {"image/bmp", "BMP"},   {"application/pdf", "PDF"}};
  for (const auto& [type, name] : kNames)
    if (sniffed == type) return name;
  return "the image";
}

namespace {

// Runs `quire decode` on `source_path` with `extra` arguments and maps how it ended. `pdf`:
// the arguments ask for a PDF image's pages, so a refusal is the document's.
Status RunDecoder(const std::string& source_path, const std::string& out_path, int64_t max_pixels,
                  const std::vector<std::string>& extra, bool pdf,
                  const DecodeSandboxOptions& options, const std::atomic<bool>* cancel,
                  SandboxRun* run) {
  std::string exe = options.executable.empty() ? SelfExecutable() : options.executable;
  if (exe.empty()) return Status::Internal("cannot find the quire executable to run the decoder");
  std::vector<std::string> argv = {exe,     "decode", "--in",         source_path,
                                   "--out", out_path, "--max-pixels", std::to_string(max_pixels)};
  argv.insert(argv.end(), extra.begin(), extra.end());
  if (!options.test_fault.empty()) argv.insert(argv.end(), {"--test-fault", options.test_fault});
  ChildOptions child;
  child.limits.memory_bytes = options.memory_bytes;
  child.limits.cpu_seconds = options.cpu_seconds;
  child.limits.timeout_ms = options.timeout_ms;
  // The largest honest output: every pixel allowed, five 16-bit bands (CMYK + alpha), plus
  // room for the TIFF's directory and colour profile.
  child.limits.file_bytes = std::max<int64_t>(max_pixels, 1) * 5 * 2 + (64 << 20);
  child.limits.max_open_files = 64;
  child.max_output_bytes = 4096;
  child.cancel = cancel;
  Result<ChildResult> ran = RunChild(argv, child);
  if (!ran.ok()) return ran.status();
  const ChildResult& r = *ran;
  if (run != nullptr) *run = {r.cpu_seconds, r.peak_rss_bytes, ReportLine(r.out)};
  if (r.cancelled) return Status::Unavailable("the decode was interrupted");
  if (r.Succeeded()) return Status::Ok();

  std::string format = FormatName(SniffFile(source_path));
  std::string said = ReportLine(r.out);
  // The submitter never saw the scratch paths.
  Replace(&said, source_path, "source");
  Replace(&said, out_path, "output");
  auto could_not = [&](const std::string& what) {
    return Status::Invalid("could not decode " + format + ": " + what);
  };
  if (r.timed_out || r.signal != 0) return could_not(r.Describe(child.limits));
  switch (r.exit_code) {
    case kDecodeRefused:
      if (pdf && format == "PDF") {
        if (said.rfind("glib: ", 0) == 0) said.erase(0, 6);  // poppler speaks through glib
        return Status::Invalid("could not read the PDF: " + said);
      }
      // OpenJPEG says so when an allocation fails: the limit is why.
      if (said.find("memory") != std::string::npos || said.find("allocate") != std::string::npos)
        return could_not("memory limit of " + std::to_string(options.memory_bytes >> 20) +
                         " MiB exceeded (" + said + ")");
      // libvips tries every loader that claims the bytes; when the one that should read the
      // file rejects it, the last word may come from a blocked fallback.
      if (said.find("operation is blocked") != std::string::npos)
        said = "the file is damaged or in a format Quire does not accept";
      return Status::Invalid("not a decodable image: " + said);
    case kDecodeOverLimit:
      return Status::Invalid(said);
    case kDecodeOutOfMemory:
      return could_not("memory limit of " + std::to_string(options.memory_bytes >> 20) +
                       " MiB exceeded");
    case kDecodeCannotOpen:
    case kDecodeNoSandbox:
      return Status::Internal("could not decode " + format + ": " + said);
    default:
      return could_not(r.Describe(child.limits) + (said.empty() ? "" : " (" + said + ")"));
  }
}

}  // namespace

Status DecodeInSandbox(const std::string& source_path, const std::string& out_path,
                       int64_t max_pixels, const DecodeSandboxOptions& options,
                       const std::atomic<bool>* cancel, SandboxRun* run, int pdf_page) {
  std::vector<std::string> extra;
  if (pdf_page > 0) {
    char dpi[32];
    std::snprintf(dpi, sizeof dpi, "%g", options.pdf_dpi);
    extra = {"--page", std::to_string(pdf_page), "--dpi", dpi};
  }
  return RunDecoder(source_path, out_path, max_pixels, extra, pdf_page > 0, options, cancel, run);
}

Result<int> PdfPageCount(const std::string& source_path, const DecodeSandboxOptions& options,
                         const std::atomic<bool>* cancel, SandboxRun* run) {
  SandboxRun ran;
  Status st =
      RunDecoder(source_path, "/dev/null", 1, {"--pdf-info"}, /*pdf=*/true, options, cancel, &ran);
  if (run != nullptr) *run = ran;
  if (!st.ok()) return st;
  int pages = 0;
  if (std::sscanf(ran.report.c_str(), "ok pages %d", &pages) != 1 || pages < 1)
    return Status::Internal("the PDF reader reported '" + ran.report + "'");
  return pages;
}

}  // namespace quire::media
