// Running a helper program as a short-lived child under limits: the decode sandbox
// (`quire decode`) and media transcoders (ffmpeg) run so, so that a decoder that crashes, loops
// or allocates without end costs one image's error and nothing else.
// The child gets its own process group, an empty stdin, and the limits below; its standard
// output and standard error are kept (each up to a bound). It is killed (the whole group) when
// the wall clock runs out or when `cancel` turns true.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace quire {

struct ChildLimits {
  int64_t memory_bytes = 0;   // RLIMIT_AS; 0: none
  int cpu_seconds = 0;        // RLIMIT_CPU (SIGXCPU, then SIGKILL at +1 s); 0: none
  int64_t timeout_ms = 0;     // wall clock, then SIGKILL of the group; 0: none
  int64_t file_bytes = 0;     // RLIMIT_FSIZE: the largest file the child may write; 0: none
  int max_open_files = 0;     // RLIMIT_NOFILE; 0: inherited
  bool core_dumps = false;    // RLIMIT_CORE 0 unless true
};

struct ChildResult {
  int exit_code = -1;       // when it exited normally, else -1
  int signal = 0;           // the signal that ended it, else 0
  bool timed_out = false;   // killed by the wall clock
  bool cancelled = false;   // killed because `cancel` turned true
  double cpu_seconds = 0;   // user + system time the child used
  int64_t peak_rss_bytes = 0;
  std::string out;          // standard output, first `max_output_bytes`
  std::string err;          // standard error, last `max_output_bytes`

  bool Succeeded() const { return exit_code == 0 && !timed_out && !cancelled; }
  // "exit status 3", "killed by SIGSEGV", "CPU time limit exceeded", "timed out after N ms"...
  std::string Describe(const ChildLimits& limits) const;
};

struct ChildOptions {
  ChildLimits limits;
  std::vector<std::string> env;       // extra "NAME=value" entries on top of a minimal PATH/HOME/LANG
  bool inherit_env = false;           // start from this process's environment instead
  std::string working_dir;            // "" keeps the current one
  size_t max_output_bytes = 64 << 10; // per stream
  const std::atomic<bool>* cancel = nullptr;
};

// Runs argv[0] (a path, or a name looked up on PATH) with argv and waits for it.
// Errors: kInternal when it cannot be started at all (fork, pipes, exec failure is reported
// as exit status 127 with the reason on `err`). A child that fails is not an error here: the
// caller reads ChildResult.
Result<ChildResult> RunChild(const std::vector<std::string>& argv, const ChildOptions& options);

// The running program's own executable (/proc/self/exe resolved), for re-executing it as a
// child (`quire decode ...`).
std::string SelfExecutable();

}  // namespace quire
