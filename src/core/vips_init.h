// One-time libvips set-up for the process: untrusted loaders blocked, the operation cache
// off (Quire never repeats an operation on the same input), bounded thread use.
#pragma once

namespace quire {

// Safe to call more than once and from several threads; only the first call acts.
// Returns false if libvips could not start.
bool InitVips(const char* argv0 = "quire");

}  // namespace quire
