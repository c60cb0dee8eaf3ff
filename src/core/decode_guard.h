// A stage between a libvips pipeline and a writer that keeps a failing decode from reaching
// the writer's error paths.
//
// Why: libvips 8.14.1 (Debian 12) crashes in tiffsave when its input fails part-way
// (libvips#3411, fixed in 8.14.2): a truncated or corrupt source would take the process down
// (the server when it writes a pyramid; the decode sandbox's child when it writes its
// intermediate, which would then report a crash instead of the decoder's reason). The guard
// passes regions through without copying, and on the first upstream error records the
// message and feeds black pixels from then on, so the save always completes and the caller
// discards the file.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <vips/vips8>

namespace quire {

struct DecodeGuard {
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::string message;  // the first line of the first upstream error; under mu
};

// Returns `in` wrapped by a DecodeGuard owned by the returned image (valid while it lives).
// Throws vips::VError when the wrapping itself fails.
vips::VImage Guarded(const vips::VImage& in, DecodeGuard** guard_out);

}  // namespace quire
