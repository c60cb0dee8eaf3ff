// The decode sandbox: formats whose libvips loaders are marked untrusted (JPEG 2000 via
// OpenJPEG) are decoded by a short-lived child, `quire decode`, not by the server. The child
// opens its input and its one output, then locks itself in with a seccomp allowlist (no
// opening of files, no sockets, no exec, no ptrace), runs under RLIMIT_AS / RLIMIT_CPU /
// RLIMIT_FSIZE and a wall clock (core/child_process.h), and writes only pixels: an
// uncompressed TIFF of 8- or 16-bit samples that the server then feeds to the ordinary
// trusted pipeline (ProcessImage), so pyramids, thumbnails and colour handling stay one path.
// A child that crashes, loops, allocates without end or hangs costs that image an error and
// nothing else: the server's memory and threads never see the decoder.
//
// Why an uncompressed TIFF and not a .v file or raw bands: libvips marks its own .v loader
// and rawload untrusted, and the server keeps untrusted loaders blocked, so it cannot read
// either without unblocking them for every submitted file too. libtiff is the loader the
// server already trusts with submitters' TIFFs, so the intermediate adds no parser to what an
// attacker can reach; uncompressed strips cost no decode time and are read with bounded
// memory (not memory-mapped whole like a .v).
//
// Why seccomp (libseccomp) and not bubblewrap: bubblewrap needs user namespaces (often
// disabled on servers and inside containers) or a setuid helper, is one more program to
// install and start per image, and confines by filesystem view while leaving the whole kernel
// interface open; a seccomp filter needs no privilege and no extra program at run time, costs
// nothing per call, and shuts the kernel's surface down to the ~50 calls a decoder needs
// (decode_child.cc), the arguments of some checked.
//
// Thread-safe: DecodeInSandbox may run from several workers at once (one child each).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "core/child_process.h"
#include "core/status.h"

namespace quire::media {

// Which sources go through the child. kUntrusted: formats whose loaders libvips marks
// untrusted that Quire reads (JPEG 2000, and PDF: a PDF image's pages; a PDF sent as any
// other image is refused, but parsed by poppler before libvips 8.14 checks the block); kAll:
// every format (to measure what the wall costs).
enum class SandboxScope { kUntrusted, kAll };

// "untrusted" / "all" -> scope; false when neither.
bool ParseSandboxScope(const std::string& name, SandboxScope* scope);

struct DecodeSandboxOptions {
  SandboxScope scope = SandboxScope::kUntrusted;
  int64_t memory_bytes = 2LL << 30;  // RLIMIT_AS of the child (--decode-memory-bytes)
  int cpu_seconds = 120;             // RLIMIT_CPU (--decode-cpu-seconds)
  int64_t timeout_ms = 300000;       // wall clock (--decode-timeout-ms)
  double pdf_dpi = 300;              // PDF pages are rendered at this resolution (--pdf-dpi)
  std::string executable;            // the quire binary; "" = this process's own
  // Tests only: a fault the child commits after locking itself in ("crash", "loop", "hang",
  // "allocate", "probe", "exec"); "" in production.
  std::string test_fault;
};

// The leading bytes of the file at `path`, sniffed (model/media_sniff.h); "" when unknown or
// unreadable.
std::string SniffFile(const std::string& path);

// Whether a source whose bytes sniff as `sniffed` is decoded in the child.
bool DecodesInSandbox(const std::string& sniffed, SandboxScope scope);

// The name messages use for a sniffed type: "JPEG 2000", "JPEG", ..., else "the image".
std::string FormatName(const std::string& sniffed);

// What a child cost, for the log and the benchmark.
struct SandboxRun {
  double cpu_seconds = 0;
  int64_t peak_rss_bytes = 0;
  std::string report;  // the child's last line ("ok 2480x3508 3 bands 8-bit ...")
};

// Decodes `source_path` in a child and writes the intermediate TIFF to `out_path` (which the
// caller created, in its scratch directory, and removes afterwards). `max_pixels` is judged
// by the child from the header, before decoding.
// Errors (all permanent unless said): kInvalid "not a decodable image: CAUSE" when the decoder
// refuses the file; kInvalid "image is WxH pixels, over the limit of N"; kInvalid "could not
// decode FORMAT: WHAT" when the child crashed, ran out of memory, CPU time or wall clock
// ("CPU time limit of 120 s exceeded", "memory limit of 2048 MiB exceeded", "killed by
// SIGSEGV", "timed out after 300000 ms"); kUnavailable (transient) when `cancel` turned true;
// kInternal when no child could be started.
// `pdf_page` > 0: the source is a PDF and that page (1-based) is rendered at
// options.pdf_dpi, or at the largest resolution within max_pixels (the report says so).
Status DecodeInSandbox(const std::string& source_path, const std::string& out_path,
                       int64_t max_pixels, const DecodeSandboxOptions& options,
                       const std::atomic<bool>* cancel = nullptr, SandboxRun* run = nullptr,
                       int pdf_page = 0);

// The number of pages of the PDF at `source_path`, read by the child (poppler parses the
// document there, under the same limits). kInvalid "could not read the PDF: it is encrypted
// (it opens only with its password)", or poppler's reason ("PDF document is damaged").
Result<int> PdfPageCount(const std::string& source_path, const DecodeSandboxOptions& options,
                         const std::atomic<bool>* cancel = nullptr, SandboxRun* run = nullptr);

// ---- the child side (`quire decode`) ----

struct DecodeRequest {
  std::string in, out;
  int64_t max_pixels = 1000000000;
  // PDF sources: pdf_info reports "ok pages N" and writes nothing; page (1-based) renders that
  // page at dpi. Neither: the file is decoded as one image (a PDF is then refused).
  bool pdf_info = false;
  int page = 0;
  double dpi = 300;
  std::string test_fault;
};

// Exit statuses of `quire decode`; its one line on standard output says more.
inline constexpr int kDecodeOk = 0;
inline constexpr int kDecodeRefused = 2;      // the decoder rejected the file: "error: CAUSE"
inline constexpr int kDecodeOverLimit = 3;    // "error: image is WxH pixels, over the limit of N"
inline constexpr int kDecodeOutOfMemory = 4;  // an allocation failed (RLIMIT_AS)
inline constexpr int kDecodeCannotOpen = 5;   // the input or output could not be opened
inline constexpr int kDecodeNoSandbox = 6;    // the seccomp filter could not be installed
inline constexpr int kDecodeProbeFailed =
    7;  // test fault "probe": the sandbox let something through

// Runs the child: opens `in` and `out`, closes every other descriptor, installs the seccomp
// filter, and only then decodes. Returns the exit status. Never returns to code that might
// open files: call it from main and exit with its result.
int RunDecodeChild(const DecodeRequest& request);

}  // namespace quire::media
