// ScratchSpace: each process has its own scratch directory, and the scratch of processes that
// are gone is removed at the next start (a full disk must not stay full after a crash).
#include "blob/scratch_space.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "support/quire_process.h"

namespace quire {
namespace {
namespace fs = std::filesystem;

void Touch(const std::string& path, size_t bytes = 16) {
  std::ofstream(path) << std::string(bytes, 'x');
}

TEST(ScratchSpaceTest, EachOpenGetsItsOwnDirectoryRemovedOnClose) {
  test::TempDir tmp;
  std::string parent = tmp.path() + "/.tmp";
  auto a = ScratchSpace::Open(parent);
  auto b = ScratchSpace::Open(parent);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE((*a)->dir(), (*b)->dir());
  EXPECT_EQ(fs::path((*a)->dir()).parent_path(), fs::path(parent));
  Touch((*a)->dir() + "/download");
  std::string dir = (*a)->dir();
  a->reset();
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_FALSE(fs::exists(dir + ".lock"));
  EXPECT_TRUE(fs::is_directory((*b)->dir()));  // a live one is never touched
}

// A process killed with SIGKILL leaves its directory; the next Open removes it because its
// lock died with it. A live process's directory stays.
TEST(ScratchSpaceTest, ScratchOfAKilledProcessIsRemovedAtTheNextOpen) {
  test::TempDir tmp;
  std::string parent = tmp.path() + "/.tmp";
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t child = fork();
  if (child == 0) {
    auto s = ScratchSpace::Open(parent);
    if (!s.ok()) _exit(1);
    Touch((*s)->dir() + "/pyramid-abc.tif", 1 << 20);
    std::string dir = (*s)->dir();
    (void)!write(pipefd[1], dir.c_str(), dir.size());
    pause();  // until killed
    _exit(0);
  }
  char buf[512] = {0};
  ssize_t n = read(pipefd[0], buf, sizeof buf - 1);
  ASSERT_GT(n, 0);
  std::string dead_dir(buf, static_cast<size_t>(n));
  auto live = ScratchSpace::Open(parent);  // while the child still lives
  ASSERT_TRUE(live.ok());
  EXPECT_TRUE(fs::exists(dead_dir + "/pyramid-abc.tif"));
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  EXPECT_TRUE(fs::exists(dead_dir));  // nothing happens by itself...

  auto next = ScratchSpace::Open(parent);  // ... until the next process starts
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(fs::exists(dead_dir));
  EXPECT_FALSE(fs::exists(dead_dir + ".lock"));
  EXPECT_TRUE(fs::is_directory((*live)->dir()));
  close(pipefd[0]);
  close(pipefd[1]);
}

TEST(ScratchSpaceTest, LooseFilesGoOnlyWhenOld) {
  test::TempDir tmp;
  std::string parent = tmp.path() + "/.tmp";
  fs::create_directories(parent);
  Touch(parent + "/fetch-1-old");
  Touch(parent + "/fetch-2-new");
  fs::last_write_time(parent + "/fetch-1-old",
                      fs::file_time_type::clock::now() - std::chrono::hours(2));
  auto s = ScratchSpace::Open(parent);
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(fs::exists(parent + "/fetch-1-old"));
  EXPECT_TRUE(fs::exists(parent + "/fetch-2-new"));
}

}  // namespace
}  // namespace quire
