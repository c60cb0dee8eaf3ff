// A process's own scratch directory for downloads and derivatives before they are stored.
//
// Each process works in PARENT/<host>-<pid>-<nonce>/, claimed by an exclusive flock on
// PARENT/<same name>.lock held for the life of the process. The kernel drops the lock when the
// process dies however it dies (a crash, SIGKILL, the OOM killer), so at start a process can
// tell the directories of dead processes from those of live ones — its own host's and those of
// other nodes sharing the directory alike — and remove them, instead of waiting for an age
// rule while a full disk stays full. Thread-safe (immutable after Open).
#pragma once

#include <memory>
#include <string>

#include "core/status.h"

namespace quire {

// A new file DIR/STEM-XXXXXX(SUFFIX) with a unique name, created empty to claim the name
// (mkstemps), for a tool or a pipeline to write. kIOError when it cannot be created.
Result<std::string> NewScratchFile(const std::string& dir, const char* stem, const char* suffix);

class ScratchSpace {
 public:
  // Creates PARENT if missing, claims a new directory in it, then removes every directory
  // whose lock nobody holds, and loose files in PARENT over an hour old (earlier versions
  // wrote scratch files there directly).
  static Result<std::unique_ptr<ScratchSpace>> Open(const std::string& parent);
  // Removes this process's directory and releases the claim.
  ~ScratchSpace();
  ScratchSpace(const ScratchSpace&) = delete;
  ScratchSpace& operator=(const ScratchSpace&) = delete;

  const std::string& dir() const { return dir_; }

 private:
  ScratchSpace() = default;
  std::string dir_, lock_path_;
  int lock_fd_ = -1;
};

}  // namespace quire
