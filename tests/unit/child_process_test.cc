// RunChild: a helper program under limits (the decode sandbox and transcoders run so). Each
// limit is hit by a real program and reported as what it was; the child's group is gone after.
#include "core/child_process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

namespace quire {
namespace {

using Clock = std::chrono::steady_clock;

ChildResult RunScript(const std::string& script, ChildLimits limits = {}) {
  ChildOptions options;
  options.limits = limits;
  Result<ChildResult> r = RunChild({"/bin/sh", "-c", script}, options);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : ChildResult{};
}

// True while `pid` is a live process (a zombie waiting for init counts as gone).
bool Alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  size_t close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

TEST(ChildProcessTest, KeepsOutputErrorAndExitStatus) {
  ChildResult r = RunScript("echo out; echo err >&2; exit 3");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.signal, 0);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  EXPECT_FALSE(r.Succeeded());
  EXPECT_EQ(r.Describe({}), "exit status 3");
  EXPECT_TRUE(RunScript("true").Succeeded());
}

TEST(ChildProcessTest, AProgramThatCannotRunIsExit127) {
  ChildOptions options;
  Result<ChildResult> r = RunChild({"/nonexistent/program"}, options);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 127);
  EXPECT_NE(r->err.find("cannot execute"), std::string::npos);
}

TEST(ChildProcessTest, ACrashIsNamedBySignal) {
  ChildResult r = RunScript("kill -SEGV $$");
  EXPECT_EQ(r.signal, SIGSEGV);
  EXPECT_EQ(r.Describe({}), "killed by SIGSEGV");
}

TEST(ChildProcessTest, TheWallClockKillsTheWholeGroup) {
  ChildLimits limits;
  limits.timeout_ms = 300;
  auto began = Clock::now();
  // The shell starts a grandchild that would outlive it, and then hangs itself.
  ChildResult r = RunScript("sleep 60 >/dev/null 2>&1 & echo $!; sleep 60", limits);
  double s = std::chrono::duration<double>(Clock::now() - began).count();
  EXPECT_TRUE(r.timed_out);
  EXPECT_LT(s, 5.0);
  EXPECT_EQ(r.Describe(limits), "timed out after 300 ms");
  pid_t grandchild = std::stoi(r.out);
  for (int i = 0; i < 100 && Alive(grandchild); ++i) usleep(10000);
  EXPECT_FALSE(Alive(grandchild));
}

TEST(ChildProcessTest, WhatTheChildLeftRunningIsKilledWhenItExits) {
  ChildResult r = RunScript("sleep 60 >/dev/null 2>&1 & echo $!");
  EXPECT_TRUE(r.Succeeded());
  pid_t grandchild = std::stoi(r.out);
  for (int i = 0; i < 100 && Alive(grandchild); ++i) usleep(10000);
  EXPECT_FALSE(Alive(grandchild));
}

TEST(ChildProcessTest, TheCpuLimitStopsALoop) {
  ChildLimits limits;
  limits.cpu_seconds = 1;
  limits.timeout_ms = 30000;
  ChildResult r = RunScript("while :; do :; done", limits);
  EXPECT_FALSE(r.timed_out);
  EXPECT_TRUE(r.signal == SIGXCPU || r.signal == SIGKILL) << r.signal;
  EXPECT_GE(r.cpu_seconds, 0.9);
  EXPECT_EQ(r.Describe(limits), "CPU time limit of 1 s exceeded");
}

TEST(ChildProcessTest, TheMemoryLimitRefusesAHugeAllocation) {
  ChildLimits limits;
  limits.memory_bytes = 256LL << 20;
  // python3 asks for 1 GiB at once: refused by RLIMIT_AS, so it fails with MemoryError.
  ChildResult r = RunScript("exec python3 -c 'b = bytearray(1 << 30)'", limits);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("MemoryError"), std::string::npos) << r.err;
  EXPECT_LT(r.peak_rss_bytes, 256LL << 20);
}

TEST(ChildProcessTest, TheFileSizeLimitStopsAWriter) {
  char dir[] = "/tmp/quire-child-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string file = std::string(dir) + "/out";
  ChildLimits limits;
  limits.file_bytes = 1 << 20;
  ChildResult r = RunScript("exec head -c 10000000 /dev/zero > " + file, limits);
  EXPECT_EQ(r.signal, SIGXFSZ);
  EXPECT_EQ(r.Describe(limits), "output size limit exceeded");
  std::ifstream in(file, std::ios::ate | std::ios::binary);
  EXPECT_LE(static_cast<int64_t>(in.tellg()), 1 << 20);
  std::remove(file.c_str());
  rmdir(dir);
}

TEST(ChildProcessTest, CancelKillsIt) {
  std::atomic<bool> cancel{false};
  std::thread later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel = true;
  });
  ChildOptions options;
  options.cancel = &cancel;
  auto began = Clock::now();
  Result<ChildResult> r = RunChild({"/bin/sleep", "60"}, options);
  later.join();
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->cancelled);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - began).count(), 5.0);
}

TEST(ChildProcessTest, TheEnvironmentIsMinimalUnlessAsked) {
  setenv("QUIRE_CHILD_TEST_SECRET", "s3cr3t", 1);
  ChildResult plain = RunScript("echo \"[$QUIRE_CHILD_TEST_SECRET]\"");
  EXPECT_EQ(plain.out, "[]\n");
  ChildOptions options;
  options.env = {"EXTRA=1"};
  Result<ChildResult> extra = RunChild({"/bin/sh", "-c", "echo $EXTRA"}, options);
  ASSERT_TRUE(extra.ok());
  EXPECT_EQ(extra->out, "1\n");
  unsetenv("QUIRE_CHILD_TEST_SECRET");
}

TEST(ChildProcessTest, SelfExecutableIsThisTestBinary) {
  std::string self = SelfExecutable();
  EXPECT_NE(self.find("unit_tests"), std::string::npos) << self;
}

}  // namespace
}  // namespace quire
