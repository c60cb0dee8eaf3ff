#include "core/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

extern char** environ;

namespace quire {
namespace {

// The path execve should run: argv0 itself when it names a path, else the first match on PATH.
std::string ResolveProgram(const std::string& argv0) {
  if (argv0.find('/') != std::string::npos) return argv0;
  const char* path = std::getenv("PATH");
  std::string dirs = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/" + argv0;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return argv0;  // execve fails with ENOENT, reported as exit 127
}

void SetLimit(int resource, rlim_t soft, rlim_t hard) {
  struct rlimit lim{soft, hard};
  ::setrlimit(resource, &lim);
}

// Between fork and execve only async-signal-safe calls: everything is prepared before.
[[noreturn]] void ExecChild(const std::string& program, char* const* argv, char* const* envp,
                            const ChildOptions& o, int out_fd, int err_fd) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // the server gone: so are its decoders
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd >= 0) ::dup2(null_fd, 0);
  ::dup2(out_fd, 1);
  ::dup2(err_fd, 2);
  ::close_range(3, ~0U, 0);
  // Signals ignored or blocked by the server (SIGPIPE, say) must not stay so in the child.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_DFL);
  const ChildLimits& l = o.limits;
  if (l.memory_bytes > 0) SetLimit(RLIMIT_AS, l.memory_bytes, l.memory_bytes);
  if (l.cpu_seconds > 0) SetLimit(RLIMIT_CPU, l.cpu_seconds, l.cpu_seconds + 1);
  if (l.file_bytes > 0) SetLimit(RLIMIT_FSIZE, l.file_bytes, l.file_bytes);
  if (l.max_open_files > 0) SetLimit(RLIMIT_NOFILE, l.max_open_files, l.max_open_files);
  if (!l.core_dumps) SetLimit(RLIMIT_CORE, 0, 0);
  if (!o.working_dir.empty() && ::chdir(o.working_dir.c_str()) != 0) ::_exit(127);
  ::execve(program.c_str(), argv, envp);
  const char msg[] = "cannot execute the program\n";
  ssize_t ignored = ::write(2, msg, sizeof msg - 1);
  (void)ignored;
  ::_exit(127);
}

const char* SignalName(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGKILL: return "SIGKILL";
    case SIGXCPU: return "SIGXCPU";
    case SIGXFSZ: return "SIGXFSZ";
    case SIGSYS: return "SIGSYS";
    case SIGTERM: return "SIGTERM";
    default: return nullptr;
  }
}

}  // namespace

std::string ChildResult::Describe(const ChildLimits& limits) const {
  if (timed_out) return "timed out after " + std::to_string(limits.timeout_ms) + " ms";
  if (cancelled) return "cancelled";
  if (signal == SIGXCPU ||
      (signal == SIGKILL && limits.cpu_seconds > 0 && cpu_seconds >= limits.cpu_seconds))
    return "CPU time limit of " + std::to_string(limits.cpu_seconds) + " s exceeded";
  if (signal == SIGXFSZ) return "output size limit exceeded";
  if (signal == SIGSYS) return "a forbidden system call (seccomp)";
  if (signal != 0) {
    const char* name = SignalName(signal);
    return std::string("killed by ") + (name ? name : "signal " + std::to_string(signal));
  }
  return "exit status " + std::to_string(exit_code);
}

Result<ChildResult> RunChild(const std::vector<std::string>& argv, const ChildOptions& options) {
  if (argv.empty()) return Status::Internal("RunChild: no program");
  std::string program = ResolveProgram(argv[0]);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_strings;
  if (options.inherit_env) {
    for (char** e = environ; e && *e; ++e) env_strings.emplace_back(*e);
  } else {
    env_strings = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/nonexistent", "LANG=C.UTF-8"};
  }
  for (const std::string& e : options.env) env_strings.push_back(e);
  std::vector<char*> envp;
  for (const std::string& e : env_strings) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return Status::Internal(std::string("pipe: ") + std::strerror(errno));
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return Status::Internal(std::string("pipe: ") + std::strerror(errno));
  }
  auto started = std::chrono::steady_clock::now();
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
    return Status::Internal(std::string("fork: ") + std::strerror(e));
  }
  if (pid == 0) ExecChild(program, args.data(), envp.data(), options, out_pipe[1], err_pipe[1]);
  ::setpgid(pid, pid);  // also from here: no window in which a kill of the group misses it
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);

  ChildResult result;
  auto kill_group = [&] { ::kill(-pid, SIGKILL); };
  struct pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_streams = 2;
  char buf[16384];
  bool killed = false;
  while (open_streams > 0) {
    int wait_ms = 100;
    if (options.limits.timeout_ms > 0 && !killed) {
      auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - started)
                         .count();
      if (elapsed >= options.limits.timeout_ms) {
        result.timed_out = true;
        killed = true;
        kill_group();
      } else {
        wait_ms = static_cast<int>(std::min<int64_t>(wait_ms, options.limits.timeout_ms - elapsed));
      }
    }
    if (options.cancel && options.cancel->load() && !killed) {
      result.cancelled = true;
      killed = true;
      kill_group();
    }
    int n = ::poll(fds, 2, wait_ms);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        std::string& sink = i == 0 ? result.out : result.err;
        if (i == 0) {
          size_t room = options.max_output_bytes > sink.size() ? options.max_output_bytes - sink.size() : 0;
          sink.append(buf, std::min<size_t>(room, static_cast<size_t>(got)));
        } else {
          sink.append(buf, static_cast<size_t>(got));
          if (sink.size() > options.max_output_bytes)
            sink.erase(0, sink.size() - options.max_output_bytes);
        }
      } else if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_streams;
      }
    }
  }
  // The streams closed: the child is exiting (or a grandchild holds them no more). Wait for
  // it, still under the wall clock.
  int status = 0;
  struct rusage usage{};
  for (;;) {
    pid_t done = ::wait4(pid, &status, WNOHANG, &usage);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) return Status::Internal(std::string("wait: ") + std::strerror(errno));
    if (!killed) {
      auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - started)
                         .count();
      bool over = options.limits.timeout_ms > 0 && elapsed >= options.limits.timeout_ms;
      bool cancel = options.cancel && options.cancel->load();
      if (over || cancel) {
        result.timed_out = over;
        result.cancelled = !over;
        killed = true;
        kill_group();
      }
    }
    ::usleep(2000);
  }
  kill_group();  // whatever the child left running in its group
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  result.cpu_seconds = usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 +
                       usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
  result.peak_rss_bytes = static_cast<int64_t>(usage.ru_maxrss) * 1024;
  return result;
}

std::string SelfExecutable() {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : self.string();
}

}  // namespace quire
