#include "core/vips_init.h"

#include <mutex>

#include <vips/vips8>

namespace quire {

bool InitVips(const char* argv0) {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [&] {
    ok = VIPS_INIT(argv0) == 0;
    if (!ok) return;
    vips_block_untrusted_set(TRUE);
    // No operation cache: every request and every ingest works on different pixels, and the
    // cache would hold decoded images alive (memory the server cannot afford).
    vips_cache_set_max(0);
    vips_cache_set_max_mem(0);
    vips_cache_set_max_files(0);
    // Parallelism comes from Quire's own worker threads; one libvips thread per pipeline keeps
    // memory per job predictable.
    vips_concurrency_set(1);
  });
  return ok;
}

}  // namespace quire
