// The child side of the decode sandbox: `quire decode --in SRC --out OUT.tif`.
// Order matters: everything that needs the filesystem (libvips start-up and its modules, the
// input, the output) happens first; then every other descriptor is closed and the seccomp
// filter goes on; only then does the untrusted decoder see a byte of the file.
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <new>
#include <optional>
#include <string>
#include <vector>
#include <vips/vips8>
// After vips8: vector.h needs its types.
#include <vips/vector.h>

#include "core/decode_guard.h"
#include "core/vips_init.h"
#include "media/decode_sandbox.h"
#include "model/media_sniff.h"

namespace quire::media {
namespace {

using vips::VError;
using vips::VImage;

// The one line the parent reads (standard output), then the exit status.
[[noreturn]] void Finish(int code, const std::string& line) {
  std::string text = line + "\n";
  ssize_t ignored = ::write(1, text.data(), text.size());
  (void)ignored;
  // _exit, not exit: no atexit handler or libvips shutdown runs under the filter.
  ::_exit(code);
}

// operator new failing (RLIMIT_AS reached) ends the child with its own status instead of an
// abort the parent could not tell from a crash. C allocations that fail are the decoder's
// to report (libvips and OpenJPEG do, as errors).
void OutOfMemory() {
  const char msg[] = "error: out of memory\n";
  ssize_t ignored = ::write(1, msg, sizeof msg - 1);
  (void)ignored;
  ::_exit(kDecodeOutOfMemory);
}

std::string FirstLine(const char* text) {
  std::string s = text ? text : "";
  size_t nl = s.find('\n');
  if (nl != std::string::npos) s.resize(nl);
  return s.empty() ? "unknown libvips error" : s;
}

// Closes every descriptor except the standard three and `keep`.
void CloseAllBut(std::vector<int> keep) {
  keep.insert(keep.end(), {0, 1, 2});
  std::sort(keep.begin(), keep.end());
  unsigned next = 0;
  for (int fd : keep) {
    if (static_cast<unsigned>(fd) > next) ::close_range(next, static_cast<unsigned>(fd) - 1, 0);
    next = static_cast<unsigned>(fd) + 1;
  }
  ::close_range(next, ~0U, 0);
}

// The allowlist. Anything not named kills the process (SIGSYS), so an exploited decoder that
// tries exec, ptrace, fork, mount, bpf, unlink, rename, kill ... dies at the first attempt.
// Opening files, asking whether one exists, and making sockets fail with EACCES instead:
// libraries probe for optional files (locale data, fontconfig's configuration), and a refusal
// they can handle keeps a good decode alive.
Status InstallFilter() {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
  if (ctx == nullptr) return Status::Internal("seccomp_init failed");
  struct Guard {
    scmp_filter_ctx c;
    ~Guard() { seccomp_release(c); }
  } guard{ctx};
  // Threads that libvips or glib started before now get the filter too.
  if (int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1); rc != 0)
    return Status::Internal(std::string("seccomp TSYNC: ") + std::strerror(-rc));

  auto rule = [&](uint32_t action, const char* name, unsigned count = 0,
                  const scmp_arg_cmp* args = nullptr) -> Status {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) return Status::Ok();  // not a call of this architecture
    int rc = seccomp_rule_add_array(ctx, action, nr, count, args);
    if (rc != 0 && rc != -EEXIST)
      return Status::Internal(std::string("seccomp rule for ") + name + ": " + std::strerror(-rc));
    return Status::Ok();
  };
  // clang-format off
  static const char* const kAllowed[] = {
      // the input, the output and the one-line report
      "read", "write", "readv", "writev", "pread64", "pwrite64", "lseek", "close", "dup",
      "fstat", "newfstatat", "statx", "fcntl",
      // memory (mmap and mprotect below)
      "munmap", "mremap", "madvise", "brk",
      // threads and their synchronisation (clone below)
      "futex", "set_robust_list", "get_robust_list", "rseq", "sched_yield", "sched_getaffinity",
      "getpid", "gettid", "getuid", "geteuid", "getgid", "getegid",
      // time
      "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
      "getrandom", "getrusage", "sysinfo", "uname",
      // signals to itself, and the end
      "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "restart_syscall",
      "exit", "exit_group"};
  // clang-format on
  for (const char* name : kAllowed) QUIRE_RETURN_IF_ERROR(rule(SCMP_ACT_ALLOW, name));
  // Memory, but never executable: no code can be mapped or made runnable from the file.
  const scmp_arg_cmp no_exec = SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
  QUIRE_RETURN_IF_ERROR(rule(SCMP_ACT_ALLOW, "mmap", 1, &no_exec));
  QUIRE_RETURN_IF_ERROR(rule(SCMP_ACT_ALLOW, "mprotect", 1, &no_exec));
  // New threads (libvips' pipeline), never new processes: clone only with CLONE_THREAD;
  // clone3 passes its flags in memory where a filter cannot look, so it says "not
  // implemented" and glibc falls back to clone.
  const scmp_arg_cmp thread = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD);
  QUIRE_RETURN_IF_ERROR(rule(SCMP_ACT_ALLOW, "clone", 1, &thread));
  QUIRE_RETURN_IF_ERROR(rule(SCMP_ACT_ERRNO(ENOSYS), "clone3"));
  // abort() and raise() signal the calling thread of this process only.
  const scmp_arg_cmp self = SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(::getpid()));
  QUIRE_RETURN_IF_ERROR(rule(SCMP_ACT_ALLOW, "tgkill", 1, &self));
  // Limits may be read, not raised.
  const scmp_arg_cmp read_only = SCMP_A2(SCMP_CMP_EQ, 0);
  QUIRE_RETURN_IF_ERROR(rule(SCMP_ACT_ALLOW, "prlimit64", 1, &read_only));
  // Thread names (glib names its threads); nothing else prctl can do.
  const scmp_arg_cmp set_name = SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME);
  QUIRE_RETURN_IF_ERROR(rule(SCMP_ACT_ALLOW, "prctl", 1, &set_name));
  for (const char* name :
       {"open", "openat", "openat2", "creat", "open_by_handle_at", "access", "faccessat",
        "faccessat2", "readlink", "readlinkat", "socket", "socketpair"})
    QUIRE_RETURN_IF_ERROR(rule(SCMP_ACT_ERRNO(EACCES), name));
  QUIRE_RETURN_IF_ERROR(rule(SCMP_ACT_ERRNO(ENOTTY), "ioctl"));  // isatty() on stderr
  // glib asks whether stderr is journald's socket before it prints a warning.
  QUIRE_RETURN_IF_ERROR(rule(SCMP_ACT_ERRNO(ENOTSOCK), "getpeername"));
  if (int rc = seccomp_load(ctx); rc != 0)
    return Status::Internal(std::string("seccomp_load: ") + std::strerror(-rc));
  return Status::Ok();
}

// Test faults, committed after the filter is on: each stands for a decoder gone wrong.
[[noreturn]] void CommitFault(const std::string& fault) {
  if (fault == "crash") {
    volatile int* nowhere = nullptr;
    *nowhere = 1;
  } else if (fault == "loop") {
    for (;;) asm volatile("");  // spins: the CPU limit must end it
  } else if (fault == "hang") {
    for (;;) ::sleep(60);  // waits: only the wall clock can end it
  } else if (fault == "allocate") {
    // 8 GiB, touched: a decoder trusting a header's sizes.
    std::vector<char> huge(size_t{8} << 30, 1);
    Finish(kDecodeOk, "allocated " + std::to_string(huge.size()));
  } else if (fault == "probe") {
    int fd = ::open("/etc/passwd", O_RDONLY | O_CLOEXEC);
    int open_errno = errno;
    int sock = ::socket(AF_INET, SOCK_STREAM, 0);
    int socket_errno = errno;
    std::string line = std::string("open /etc/passwd: ") +
                       (fd >= 0 ? "opened" : std::strerror(open_errno)) +
                       "; socket: " + (sock >= 0 ? "created" : std::strerror(socket_errno));
    Finish(fd < 0 && sock < 0 ? kDecodeOk : kDecodeProbeFailed, line);
  } else if (fault == "exec") {
    char* const argv[] = {const_cast<char*>("/bin/true"), nullptr};
    ::execve("/bin/true", argv, nullptr);
    Finish(kDecodeProbeFailed, std::string("execve returned: ") + std::strerror(errno));
  }
  Finish(kDecodeCannotOpen, "error: unknown test fault '" + fault + "'");
}

// What the intermediate carries besides pixels: the colour profile and the orientation. The
// rest (EXIF, XMP, IPTC blobs) would be more for the server to parse, and nothing it uses.
void KeepOnlyColourAndOrientation(VImage& image) {
  gchar** fields = vips_image_get_fields(image.get_image());
  for (gchar** f = fields; f && *f; ++f) {
    std::string name = *f;
    // Header fields (width, format, xres ...) are listed too; removing one is a no-op.
    if (name != VIPS_META_ICC_NAME && name != VIPS_META_ORIENTATION)
      vips_image_remove(image.get_image(), name.c_str());
  }
  g_strfreev(fields);
}

// What poppler says about a document it cannot open, in words for the image's error.
std::string PdfProblem(const std::string& said) {
  std::string lower = said;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.find("password") != std::string::npos || lower.find("encrypt") != std::string::npos)
    return "it is encrypted (it opens only with its password)";
  return said;
}

// A PDF: --pdf-info reports its page count and ends here; --page N renders page N (1-based) at
// --dpi, or at the largest resolution under --max-pixels when that would be more, flattened
// onto white (pages are paper; the pyramid has no alpha).
VImage LoadPdf(vips::VSource& input, const DecodeRequest& request, std::string* scaled) {
  // One parse of the document per call; poppler's reason in `why` when it fails.
  auto load = [&](int page, double dpi, std::string* why) -> std::optional<VImage> {
    try {
      return VImage::new_from_source(input, "",
                                     VImage::option()
                                         ->set("page", page)
                                         ->set("dpi", dpi)
                                         ->set("access", VIPS_ACCESS_SEQUENTIAL)
                                         ->set("fail_on", VIPS_FAIL_ON_TRUNCATED));
    } catch (const VError& e) {
      *why = PdfProblem(FirstLine(e.what()));
      return std::nullopt;
    }
  };
  auto open = [&](int page, double dpi) {
    std::string why;
    std::optional<VImage> image = load(page, dpi, &why);
    if (!image) Finish(kDecodeRefused, "error: " + why);
    return *image;
  };
  auto page_count = [](const VImage& image) {
    return image.get_typeof("n-pages") != 0 ? image.get_int("n-pages") : 1;
  };
  if (request.pdf_info) Finish(kDecodeOk, "ok pages " + std::to_string(page_count(open(0, 72))));
  double dpi = request.dpi;
  std::string why;
  std::optional<VImage> loaded = load(request.page - 1, dpi, &why);
  if (!loaded) {
    // Past the last page: say so with the count (the document is read again only then).
    int pages = page_count(open(0, 72));
    if (request.page > pages)
      Finish(kDecodeRefused, "error: the PDF has " + std::to_string(pages) + " page" +
                                 (pages == 1 ? "" : "s") + "; there is no page " +
                                 std::to_string(request.page));
    Finish(kDecodeRefused, "error: " + why);
  }
  VImage image = *loaded;
  double pixels = double(image.width()) * image.height();
  if (pixels > double(request.max_pixels)) {
    // Pixels grow with the square of the resolution.
    double fits = std::floor(dpi * std::sqrt(double(request.max_pixels) / pixels) * 100) / 100;
    if (fits < 1)
      Finish(kDecodeOverLimit, "error: page " + std::to_string(request.page) +
                                   " is too large to render under the limit of " +
                                   std::to_string(request.max_pixels) + " pixels");
    image = open(request.page - 1, fits);
    while (double(image.width()) * image.height() > double(request.max_pixels) && fits > 1) {
      fits = std::max(1.0, fits - 1);  // rounding of the page size
      image = open(request.page - 1, fits);
    }
    char note[96];
    std::snprintf(note, sizeof note, " (page rendered at %g dpi, not %g: --max-pixels)", fits, dpi);
    *scaled = note;
  }
  if (image.has_alpha()) image = image.flatten(VImage::option()->set("background", 255.0));
  return image;
}

}  // namespace

int RunDecodeChild(const DecodeRequest& request) {
  // One malloc arena: RLIMIT_AS then measures what the decoder holds, not the 64 MiB of
  // address space glibc reserves for each thread's arena.
  ::mallopt(M_ARENA_MAX, 1);
  std::set_new_handler(OutOfMemory);
  if (!InitVips("quire-decode")) Finish(kDecodeCannotOpen, "error: libvips failed to start");
  // ORC compiles vector code into executable memory, which the filter forbids.
  vips_vector_set_enabled(FALSE);

  int in = ::open(request.in.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0)
    Finish(kDecodeCannotOpen, "error: cannot open the input: " + std::string(std::strerror(errno)));
  int out = ::open(request.out.c_str(), O_RDWR | O_TRUNC | O_CLOEXEC);
  if (out < 0)
    Finish(kDecodeCannotOpen,
           "error: cannot open the output: " + std::string(std::strerror(errno)));
  char head[kSniffBytes] = {};
  ssize_t got = ::pread(in, head, sizeof head, 0);
  std::string sniffed =
      SniffMediaType(std::string_view(head, got > 0 ? static_cast<size_t>(got) : 0));
  // The untrusted loader of this format, and only that one, for this process only (the server
  // keeps them all blocked). A PDF is read only when asked for its pages or one of them.
  const bool pdf = sniffed == "application/pdf" && (request.pdf_info || request.page > 0);
  if (sniffed == "image/jp2") vips_operation_block_set("VipsForeignLoadJp2k", FALSE);
  if (pdf) vips_operation_block_set("VipsForeignLoadPdf", FALSE);
  if ((request.pdf_info || request.page > 0) && !pdf) Finish(kDecodeRefused, "error: not a PDF");
  CloseAllBut({in, out});
  VipsSource* source = vips_source_new_from_descriptor(in);
  VipsTarget* target = vips_target_new_to_descriptor(out);
  if (source == nullptr || target == nullptr)
    Finish(kDecodeCannotOpen, "error: " + FirstLine(vips_error_buffer()));

  if (Status locked = InstallFilter(); !locked.ok())
    Finish(kDecodeNoSandbox, "error: cannot install the sandbox: " + locked.message());
  if (!request.test_fault.empty()) CommitFault(request.test_fault);

  try {
    vips::VSource input(source);
    std::string scaled;  // a PDF page rendered below the asked resolution says so
    VImage image;
    if (pdf) {
      image = LoadPdf(input, request, &scaled);
    } else {
      image = VImage::new_from_source(input, "",
                                      VImage::option()
                                          ->set("access", VIPS_ACCESS_SEQUENTIAL)
                                          ->set("fail_on", VIPS_FAIL_ON_TRUNCATED));
    }
    // The pixel limit, from the header: nothing is decoded yet.
    int orientation =
        image.get_typeof(VIPS_META_ORIENTATION) != 0 ? image.get_int(VIPS_META_ORIENTATION) : 1;
    bool swap = orientation >= 5 && orientation <= 8;
    int width = swap ? image.height() : image.width();
    int height = swap ? image.width() : image.height();
    if (int64_t{width} * height > request.max_pixels)
      Finish(kDecodeOverLimit, "error: image is " + std::to_string(width) + "x" +
                                   std::to_string(height) + " pixels, over the limit of " +
                                   std::to_string(request.max_pixels));
    // 8- or 16-bit unsigned samples only: what the trusted pipeline expects from a TIFF.
    VipsBandFormat format = image.format();
    if (format == VIPS_FORMAT_CHAR) {
      image = image.cast(VIPS_FORMAT_UCHAR);
    } else if (format != VIPS_FORMAT_UCHAR && format != VIPS_FORMAT_USHORT) {
      image = image.cast(VIPS_FORMAT_USHORT);
    }
    image = image.copy();
    KeepOnlyColourAndOrientation(image);
    // A decoder that fails part-way (a damaged tile, an allocation refused by RLIMIT_AS) must
    // be reported as its reason, not as the crash libvips 8.14's TIFF writer makes of it.
    DecodeGuard* guard = nullptr;
    VImage guarded = Guarded(image, &guard);
    guarded.tiffsave_target(vips::VTarget(target),
                            VImage::option()
                                ->set("compression", VIPS_FOREIGN_TIFF_COMPRESSION_NONE)
                                ->set("bigtiff", true));
    if (guard->failed) {
      std::lock_guard<std::mutex> lock(guard->mu);
      Finish(kDecodeRefused, "error: " + guard->message);
    }
    Finish(kDecodeOk, "ok " + std::to_string(image.width()) + "x" + std::to_string(image.height()) +
                          " " + std::to_string(image.bands()) + " bands " +
                          (image.format() == VIPS_FORMAT_UCHAR ? "8" : "16") + "-bit" + scaled);
  } catch (const VError& e) {
    Finish(kDecodeRefused, "error: " + FirstLine(e.what()));
  }
}

}  // namespace quire::media
