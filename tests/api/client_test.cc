// `quire client` (the real binary) against a live `quire serve`: a folder of mixed files, a
// CSV of origins, a run interrupted half-way and resumed without uploading anything twice,
// the live display under a pseudo-terminal, and --json lines that parse one by one.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "support/http_client.h"
#include "support/ingest_fixtures.h"
#include "support/origin_server.h"
#include "support/pdf_fixtures.h"
#include "support/quire_process.h"

namespace quire::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr int64_t kCustomer = 1;

void WriteFile(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

// A running `quire client ...` with its stdout on a pipe (or a pseudo-terminal).
class ClientRun {
 public:
  ClientRun(const std::vector<std::string>& args, bool pty) {
    std::vector<std::string> argv = {QUIRE_BINARY, "client"};
    argv.insert(argv.end(), args.begin(), args.end());
    int out_fd = -1;
    if (pty) {
      struct winsize ws {};
      ws.ws_col = 120;
      ws.ws_row = 40;
      pid_ = forkpty(&out_fd, nullptr, nullptr, &ws);
    } else {
      int p[2];
      if (pipe(p) != 0) throw std::runtime_error("pipe");
      pid_ = fork();
      if (pid_ == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);  // messages to stderr are read too
        close(p[0]);
        close(p[1]);
      } else {
        close(p[1]);
        out_fd = p[0];
      }
    }
    if (pid_ < 0) throw std::runtime_error("fork");
    if (pid_ == 0) {
      std::vector<char*> cargs;
      for (auto& a : argv) cargs.push_back(const_cast<char*>(a.c_str()));
      cargs.push_back(nullptr);
      setenv("TERM", "xterm", 1);
      execv(cargs[0], cargs.data());
      _exit(127);
    }
    fd_ = out_fd;
  }
  ~ClientRun() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) close(fd_);
  }
  // Reads what is there within `wait`; false at EOF.
  bool ReadSome(std::chrono::milliseconds wait) {
    struct pollfd p {fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(wait.count())) <= 0) return true;
    char buf[65536];
    ssize_t n = read(fd_, buf, sizeof buf);
    if (n <= 0) return false;  // EOF (a pty answers EIO once the child is gone)
    out_.append(buf, static_cast<size_t>(n));
    return true;
  }
  // Reads until the client exits (or `timeout`); returns its exit status (-1 on timeout).
  int Wait(std::chrono::seconds timeout = 120s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline && ReadSome(100ms)) {
    }
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        exited_ = true;
        while (ReadSome(10ms)) {
          struct pollfd p {fd_, POLLIN, 0};
          if (poll(&p, 1, 10) <= 0) break;
        }
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(20ms);
    }
    return -1;
  }
  void Signal(int sig) { kill(pid_, sig); }
  const std::string& out() const { return out_; }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  bool exited_ = false;
  std::string out_;
};

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class ClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    origin_ = new OriginServer();
    server_ = new QuireProcess(dir_->path() + "/data",
                               {"--workers", "2", "--allow-private-origins"});
    api_ = new Api{server_->url(), server_->admin()};
  }
  static void TearDownTestSuite() {
    if (::testing::Test::HasFailure()) std::cerr << "---- quire log ----\n" << server_->Log();
    delete api_;
    delete server_;
    delete origin_;
    delete dir_;
  }
  static std::vector<std::string> Common() {
    return {"--url", server_->url(), "--key", "admin", "--secret", "admin-secret"};
  }
  static std::vector<std::string> Submit(int64_t space, std::vector<std::string> rest) {
    std::vector<std::string> a = {"submit"};
    for (auto& c : Common()) a.push_back(c);
    a.push_back("--space");
    a.push_back(std::to_string(space));
    a.insert(a.end(), rest.begin(), rest.end());
    return a;
  }
  static int64_t Uploads() {
    return api_->Get("/customers/1/uploads").Json().value("totalItems", int64_t{-1});
  }
  static std::string Dir(const std::string& name) { return dir_->path() + "/" + name; }

  static inline TempDir* dir_ = nullptr;
  static inline OriginServer* origin_ = nullptr;
  static inline QuireProcess* server_ = nullptr;
  static inline Api* api_ = nullptr;
};

TEST_F(ClientTest, AFolderOfThirtyMixedFilesCompletes28AndNamesBothFailures) {
  int64_t space = api_->CreateSpace(kCustomer, "folder");
  std::string root = Dir("mixed");
  for (int i = 0; i < 28; ++i) {
    std::string sub = i % 3 == 0 ? "/deeper/" : "/";
    int w = 40 + i, h = 30 + i;
    std::string bytes = i % 4 == 0   ? MakePng(w, h, i)
                        : i % 4 == 1 ? MakeTiff(w, h, i)
                        : i % 4 == 2 ? MakeWebp(w, h, i)
                                     : MakeJpeg(w, h, i);
    // Names do not decide: some images carry the wrong extension or none.
    std::string name = "img" + std::to_string(i) + (i == 5 ? ".dat" : i == 6 ? "" : ".bin");
    WriteFile(root + sub + name, bytes);
  }
  WriteFile(root + "/notes.txt", "call the photographer\n");
  WriteFile(root + "/deeper/looks-like.jpg", "<html>not an image</html>");
  WriteFile(root + "/.DS_Store", "hidden");  // dot-files are not part of the folder's images

  ClientRun run(Submit(space, {root}), false);
  int rc = run.Wait();
  const std::string& out = run.out();
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("completed        28"), std::string::npos) << out;
  EXPECT_NE(out.find("failed            2"), std::string::npos) << out;
  size_t failures = out.find("Failures");
  ASSERT_NE(failures, std::string::npos) << out;
  EXPECT_NE(out.find("notes.txt", failures), std::string::npos) << out;
  EXPECT_NE(out.find("looks-like.jpg", failures), std::string::npos) << out;
  EXPECT_NE(out.find("not an image", failures), std::string::npos) << out;
  // The server agrees: 28 images, each with its true size.
  auto images = api_->All(server_->url() + "/customers/1/spaces/" + std::to_string(space) +
                          "/images");
  ASSERT_EQ(images.size(), 28u);
  for (auto& img : images) {
    std::string id = img["id"];
    int i = std::stoi(id.substr(id.find("img") + 3));
    EXPECT_EQ(img["width"], 40 + i) << id;
    EXPECT_EQ(img["height"], 30 + i) << id;
    EXPECT_EQ(img["error"], "") << id;
  }
  EXPECT_TRUE(std::any_of(images.begin(), images.end(),
                          [](const json& j) { return j["id"] == "deeper_img0.bin"; }));
}

TEST_F(ClientTest, APdfInAFolderIsSplitIntoItsPages) {
  int64_t space = api_->CreateSpace(kCustomer, "with-a-book");
  std::string root = Dir("book-folder");
  WriteFile(root + "/plate.jpg", MakeJpeg(64, 48, 1));
  WriteFile(root + "/book.pdf", MakePdf({BookPage(0), BookPage(1), BookPage(2)}));
  ClientRun run(Submit(space, {root}), false);
  int rc = run.Wait();
  EXPECT_EQ(rc, 0) << run.out();
  // The PDF's pages joined its batch and were ingested before the client said it was done.
  auto images = api_->All(server_->url() + "/customers/1/spaces/" + std::to_string(space) +
                          "/images");
  std::set<std::string> ids;
  for (auto& img : images) {
    ids.insert(img["id"].get<std::string>());
    EXPECT_EQ(img["error"], "") << img.dump();
    EXPECT_EQ(img["ingesting"], false) << img.dump();
  }
  EXPECT_EQ(ids, (std::set<std::string>{"plate.jpg", "book.pdf", "book.pdf-p0001",
                                        "book.pdf-p0002", "book.pdf-p0003"}))
      << run.out();
  json page = api_->Image(kCustomer, space, "book.pdf-p0002");
  EXPECT_EQ(page["width"], 1200) << page.dump();  // 4 in. at the default 300 dpi
}

TEST_F(ClientTest, CsvOfOriginsIngestsAndNamesBadLines) {
  int64_t space = api_->CreateSpace(kCustomer, "csv");
  origin_->Serve("/a.jpg", MakeJpeg(120, 90, 1), "image/jpeg");
  origin_->Serve("/b.png", MakePng(64, 48, 2), "image/png");
  origin_->Status("/missing.jpg", 404);
  std::string csv = Dir("origins.csv");
  WriteFile(csv,
            "id,origin,mediaType,string1,number1,tags\n"
            "first," + origin_->Url("/a.jpg") + ",image/jpeg,ref-1,7,a;b\n"
            "," + origin_->Url("/b.png") + ",,,,\n"
            "gone," + origin_->Url("/missing.jpg") + ",image/jpeg,,,\n"
            "first," + origin_->Url("/a.jpg") + ",image/jpeg,,,\n"
            "nomedia,https://example.org/no-extension,,,,\n");
  ClientRun run(Submit(space, {"--csv", csv, "--json"}), false);
  int rc = run.Wait();
  EXPECT_EQ(rc, 1) << run.out();
  json summary;
  std::map<std::string, std::string> failed;  // file label → error
  std::istringstream lines(run.out());
  for (std::string line; std::getline(lines, line);) {
    json j = json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << "not a JSON line: " << line;
    if (j["event"] == "summary") summary = j;
    if (j["event"] == "failed") failed[j["file"]] = j["error"];
  }
  EXPECT_EQ(summary["completed"], 2) << run.out();
  EXPECT_EQ(summary["failed"], 3) << run.out();
  EXPECT_NE(failed["origins.csv line 4"].find("404"), std::string::npos) << run.out();
  EXPECT_NE(failed["origins.csv line 5"].find("duplicate id 'first'"), std::string::npos);
  EXPECT_NE(failed["origins.csv line 6"].find("mediaType"), std::string::npos);
  json first = api_->Image(kCustomer, space, "first");
  EXPECT_EQ(first["width"], 120);
  EXPECT_EQ(first["string1"], "ref-1");
  EXPECT_EQ(first["number1"], 7);
  EXPECT_EQ(first["tags"], json::array({"a", "b"}));
  EXPECT_EQ(api_->Image(kCustomer, space, "b.png")["height"], 48);

  // A CSV without an origin column is a usage error naming it, and nothing is sent.
  std::string bad = Dir("bad.csv");
  WriteFile(bad, "id,url\nx,http://example.org/x.jpg\n");
  ClientRun usage(Submit(space, {"--csv", bad}), false);
  EXPECT_EQ(usage.Wait(), 2);
  EXPECT_NE(usage.out().find("no 'origin' column (found: id, url)"), std::string::npos)
      << usage.out();
}

TEST_F(ClientTest, AnInterruptedRunResumesWithoutUploadingAnythingTwice) {
  int64_t space = api_->CreateSpace(kCustomer, "resume");
  std::string root = Dir("resume");
  constexpr int kFiles = 12;
  int64_t before = Uploads();
  for (int i = 0; i < kFiles; ++i)
    WriteFile(root + "/p" + std::to_string(10 + i) + ".jpg", MakeJpeg(200 + i, 150, 100 + i, 98));
  // One upload at a time, slowly, so there is a "half-way" to interrupt.
  auto args = Submit(space, {root, "--jobs", "1", "--limit-rate", "150000"});
  ClientRun first(args, false);
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (Count(first.out(), "\nuploaded ") < 4 && std::chrono::steady_clock::now() < deadline)
    ASSERT_TRUE(first.ReadSome(100ms)) << first.out();
  first.Signal(SIGINT);
  EXPECT_EQ(first.Wait(), 130) << first.out();
  EXPECT_NE(first.out().find("Interrupted"), std::string::npos) << first.out();
  EXPECT_NE(first.out().find("again to resume"), std::string::npos) << first.out();
  int64_t mid = Uploads() - before;
  EXPECT_GE(mid, 4);
  EXPECT_LT(mid, kFiles) << "the interrupt came too late to test resuming";

  ClientRun second(Submit(space, {root, "--jobs", "3"}), false);
  EXPECT_EQ(second.Wait(), 0) << second.out();
  // Every file's bytes went over the wire exactly once across both runs.
  EXPECT_EQ(Uploads() - before, kFiles);
  EXPECT_EQ(Count(second.out(), "\nuploaded "), kFiles - mid) << second.out();
  auto images = api_->All(server_->url() + "/customers/1/spaces/" + std::to_string(space) +
                          "/images");
  EXPECT_EQ(images.size(), static_cast<size_t>(kFiles));
  for (auto& img : images) EXPECT_GT(img["width"].get<int>(), 0) << img.dump();

  // A third run finds everything done and sends nothing.
  ClientRun third(Submit(space, {root}), false);
  EXPECT_EQ(third.Wait(), 0) << third.out();
  EXPECT_EQ(Count(third.out(), "\nskipped "), kFiles) << third.out();
  EXPECT_EQ(Uploads() - before, kFiles);
}

TEST_F(ClientTest, OnATerminalTheBarIsRedrawnInPlaceAndTheSummaryFollows) {
  int64_t space = api_->CreateSpace(kCustomer, "tty");
  std::string root = Dir("tty");
  for (int i = 0; i < 6; ++i)
    WriteFile(root + "/t" + std::to_string(i) + ".jpg", MakeJpeg(300, 200, 40 + i, 98));
  ClientRun run(Submit(space, {root, "--jobs", "2", "--limit-rate", "200000"}), true);
  int rc = run.Wait();
  const std::string& out = run.out();
  EXPECT_EQ(rc, 0) << out;
  // Redrawn: the cursor goes back up over the block many times, and bars are drawn.
  EXPECT_GE(Count(out, "\x1b[") - Count(out, "\x1b[K"), 5) << out;
  EXPECT_NE(out.find("A\x1b[J"), std::string::npos) << out;
  EXPECT_NE(out.find("Uploading ["), std::string::npos) << out;
  EXPECT_NE(out.find("Batch "), std::string::npos) << out;
  size_t summary = out.rfind("Summary");
  ASSERT_NE(summary, std::string::npos) << out;
  EXPECT_NE(out.find("completed         6", summary), std::string::npos) << out;
  // A terminal gets no plain per-file lines: the block says it all.
  EXPECT_EQ(out.find("uploaded " + root), std::string::npos);
}

TEST_F(ClientTest, JsonLinesParseOneByOneAndWatchAndRetryWork) {
  int64_t space = api_->CreateSpace(kCustomer, "json");
  std::string root = Dir("json");
  for (int i = 0; i < 3; ++i)
    WriteFile(root + "/j" + std::to_string(i) + ".png", MakePng(50 + i, 40, 60 + i));
  // Passes the client's content sniffing (a JPEG signature) but cannot be decoded.
  WriteFile(root + "/broken.jpg", std::string("\xFF\xD8\xFF\xE0", 4) + std::string(500, 'x'));
  WriteFile(root + "/empty.png", "");
  ClientRun run(Submit(space, {root, "--json"}), false);
  int rc = run.Wait();
  EXPECT_EQ(rc, 1) << run.out();
  std::istringstream lines(run.out());
  std::vector<json> events;
  for (std::string line; std::getline(lines, line);) {
    json j = json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("event")) << "not a JSON line: " << line;
    events.push_back(j);
  }
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.front()["event"], "start");
  json summary = events.back();
  EXPECT_EQ(summary["event"], "summary");
  EXPECT_EQ(summary["completed"], 3);
  EXPECT_EQ(summary["failed"], 2);
  std::map<std::string, std::string> failures;
  for (auto& f : summary["failures"]) failures[f["id"]] = f["error"];
  EXPECT_NE(failures["broken.jpg"].find("decodable"), std::string::npos) << summary.dump();
  EXPECT_NE(failures["empty.png"].find("empty file"), std::string::npos) << summary.dump();
  EXPECT_EQ(std::count_if(events.begin(), events.end(),
                          [](const json& e) { return e["event"] == "uploaded"; }),
            4);
  ASSERT_EQ(summary["batches"].size(), 1u);
  std::string batch = summary["batches"][0];

  std::vector<std::string> watch_args = {"watch"};
  for (auto& c : Common()) watch_args.push_back(c);
  watch_args.push_back(batch);
  ClientRun watch(watch_args, false);
  EXPECT_EQ(watch.Wait(), 1) << watch.out();
  EXPECT_NE(watch.out().find("3 completed, 1 failed of 4"), std::string::npos) << watch.out();
  EXPECT_NE(watch.out().find("broken.jpg"), std::string::npos) << watch.out();

  std::vector<std::string> retry_args = watch_args;
  retry_args[0] = "retry";
  retry_args.push_back("--json");
  ClientRun retry(retry_args, false);
  EXPECT_EQ(retry.Wait(), 1) << retry.out();  // still undecodable, and said so
  EXPECT_NE(retry.out().find("\"event\":\"retried\""), std::string::npos) << retry.out();
  std::vector<std::string> missing = watch_args;
  missing.back() = server_->url() + "/customers/1/queue/batches/999999";
  ClientRun nobatch(missing, false);
  EXPECT_EQ(nobatch.Wait(), 2);
}

TEST_F(ClientTest, UsageAndConnectionErrorsExit2WithAMessage) {
  int64_t space = api_->CreateSpace(kCustomer, "usage");
  std::string root = Dir("usage");
  WriteFile(root + "/u.png", MakePng(10, 10, 1));
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  std::string s = std::to_string(space);
  std::vector<Case> cases = {
      {{"submit", "--url", server_->url(), "--key", "admin", "--secret", "wrong", "--space", s,
        root},
       "did not accept the key"},
      {{"submit", "--url", server_->url(), "--key", "admin", "--secret", "admin-secret",
        "--space", "98765", root},
       "space 98765 not found"},
      {{"submit", "--url", "http://127.0.0.1:1", "--key", "admin", "--secret", "admin-secret",
        "--space", s, root},
       "cannot reach http://127.0.0.1:1"},
      {{"submit", "--url", server_->url(), "--key", "admin", "--secret", "admin-secret",
        "--space", s, root + "/missing"},
       "no such file or folder"},
      {{"submit", "--url", server_->url(), "--key", "admin", "--secret", "admin-secret", root},
       "--space is required"},
      {{"submit", "--no-such-flag"}, "--no-such-flag"},
  };
  int64_t before = Uploads();
  for (auto& c : cases) {
    ClientRun run(c.args, false);
    EXPECT_EQ(run.Wait(), 2) << run.out();
    EXPECT_NE(run.out().find(c.says), std::string::npos) << run.out();
  }
  EXPECT_EQ(Uploads(), before);
}

}  // namespace
}  // namespace quire::test
