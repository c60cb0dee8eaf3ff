// BlobCache over a real file store: hits after misses, version pinning, the bound held under
// concurrency, and the cache surviving a restart (served with the source gone).
#include "blob/cache/blob_cache.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>
#include <vector>

#include "blob/file_blob_store.h"
#include "support/quire_process.h"

namespace quire {
namespace {
namespace fs = std::filesystem;

class BlobCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "quire-cache-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    auto store = FileBlobStore::Open(dir_ + "/blobs");
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
    content_.resize(1 << 20);
    std::mt19937 rng(7);
    for (char& c : content_) c = char(rng());
    ASSERT_TRUE(store_->PutBytes("1/1/a/image.tif", content_).ok());
    version_ = store_->Stat("1/1/a/image.tif")->version;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string dir_, content_, version_;
  std::unique_ptr<FileBlobStore> store_;
};

TEST_F(BlobCacheTest, MissThenHitWithTheSameBytes) {
  auto cache = BlobCache::Open(*store_, dir_ + "/cache", 1 << 20);
  ASSERT_TRUE(cache.ok());
  auto a = (*cache)->GetRange("1/1/a/image.tif", version_, 1000, 5000);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, content_.substr(1000, 5000));
  EXPECT_EQ((*cache)->misses(), 1);
  auto b = (*cache)->GetRange("1/1/a/image.tif", version_, 1000, 5000);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, *a);
  EXPECT_EQ((*cache)->hits(), 1);
  EXPECT_EQ((*cache)->used_bytes(), 5000);
  // A stale version is refused by the source, never answered from the cache.
  EXPECT_EQ((*cache)->GetRange("1/1/a/image.tif", "other", 0, 10).status().code(),
            Code::kConflict);
}

TEST_F(BlobCacheTest, SurvivesARestartAndTrimsToANewBound) {
  {
    auto cache = BlobCache::Open(*store_, dir_ + "/cache", 1 << 20);
    ASSERT_TRUE(cache.ok());
    for (int i = 0; i < 10; ++i)
      ASSERT_TRUE((*cache)->GetRange("1/1/a/image.tif", version_, i * 10000, 10000).ok());
    ASSERT_TRUE((*cache)->GetBytes("1/1/a/image.tif", "tag").ok());  // too large: not kept
  }
  // Stray temp file of a writer that died.
  fs::create_directories(dir_ + "/cache/ab");
  std::ofstream(dir_ + "/cache/ab/abcdef.tmp3") << "partial";
  ASSERT_TRUE(store_->DeletePrefix("1/1/a").ok());  // the source is gone
  {
    auto cache = BlobCache::Open(*store_, dir_ + "/cache", 1 << 20);
    ASSERT_TRUE(cache.ok());
    EXPECT_EQ((*cache)->used_bytes(), 100000);
    EXPECT_FALSE(fs::exists(dir_ + "/cache/ab/abcdef.tmp3"));
    auto again = (*cache)->GetRange("1/1/a/image.tif", version_, 30000, 10000);
    ASSERT_TRUE(again.ok()) << again.status().message();
    EXPECT_EQ(*again, content_.substr(30000, 10000));
    EXPECT_EQ((*cache)->hits(), 1);
  }
  auto small = BlobCache::Open(*store_, dir_ + "/cache", 35000);
  ASSERT_TRUE(small.ok());
  EXPECT_LE((*small)->used_bytes(), 35000);
  EXPECT_LE(test::TreeBytes(dir_ + "/cache"), 35000);
}

TEST_F(BlobCacheTest, ConcurrentReadersNeverPassTheBound) {
  const int64_t capacity = 200000;
  auto cache = BlobCache::Open(*store_, dir_ + "/cache", capacity);
  ASSERT_TRUE(cache.ok());
  std::vector<std::thread> readers;
  for (int t = 0; t < 6; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 300; ++i) {
        int64_t slot = int64_t(rng() % 60), off = slot * 10000, len = 1000 + slot % 9 * 1000;
        auto got = (*cache)->GetRange("1/1/a/image.tif", version_, off, len);
        ASSERT_TRUE(got.ok());
        ASSERT_EQ(*got, content_.substr(size_t(off), size_t(len)));
        ASSERT_LE((*cache)->used_bytes(), capacity);
      }
    });
  }
  for (auto& r : readers) r.join();
  EXPECT_LE(test::TreeBytes(dir_ + "/cache"), capacity);
  EXPECT_GT((*cache)->hits(), 0);
  EXPECT_GT((*cache)->used_bytes(), capacity / 2);
}

// Warm reads keep recently read entries' files open: never more than kOpenFiles at once, an
// evicted entry's file closed with it (its disk space really freed), the bytes always right.
// Mappings of this cache's entry files in this process (/proc/self/maps), and descriptors.
size_t CacheMappings(const std::string& dir) {
  std::ifstream maps("/proc/self/maps");
  size_t n = 0;
  for (std::string line; std::getline(maps, line);)
    if (line.find(dir) != std::string::npos) ++n;
  return n;
}
size_t OpenFds() {
  size_t n = 0;
  for (auto it = fs::directory_iterator("/proc/self/fd"); it != fs::directory_iterator(); ++it)
    ++n;
  return n;
}

TEST_F(BlobCacheTest, HeldEntriesStayBoundedAndGoWithTheirEntries) {
  const std::string cache_dir = dir_ + "/cache";
  const size_t fds_before = OpenFds();
  auto cache = BlobCache::Open(*store_, cache_dir, 1 << 20, /*max_held=*/256);
  ASSERT_TRUE(cache.ok());
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 400; ++i) {  // 400 entries of 1000 bytes: all cached, read twice
      auto got = (*cache)->GetRange("1/1/a/image.tif", version_, i * 1000, 1000);
      ASSERT_TRUE(got.ok());
      ASSERT_EQ(*got, content_.substr(size_t(i) * 1000, 1000));
    }
  }
  EXPECT_EQ((*cache)->hits(), 400);
  const size_t peak = CacheMappings(cache_dir);
  EXPECT_LE(peak, 256u);
  EXPECT_GE(peak, 200u) << "warm reads hold their entries mapped";
  EXPECT_LE(OpenFds(), fds_before + 4) << "a mapped entry holds no descriptor";
  // Entries of 100,000 bytes push the small ones out: their mappings go.
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE((*cache)->GetRange("1/1/a/image.tif", version_, i * 100000, 100000).ok());
  EXPECT_LE(test::TreeBytes(cache_dir), 1 << 20);
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE((*cache)->GetRange("1/1/a/image.tif", version_, i * 100000, 100000).ok());
  // 10 large entries and the <= 48 small ones that still fit beside them.
  EXPECT_LE(CacheMappings(cache_dir), 10u + 48u);
  EXPECT_LE(CacheMappings(cache_dir) + 190, peak);
  cache->reset();
  EXPECT_EQ(CacheMappings(cache_dir), 0u);
  EXPECT_EQ(OpenFds(), fds_before);
}

// A reader holding an entry keeps its bytes while the entry is evicted and its file unlinked;
// a file that is not the entry's size (changed behind the cache's back) is never read.
TEST_F(BlobCacheTest, AnEvictedEntryStaysWholeForItsReaderAndAWrongSizedFileIsNotRead) {
  const std::string cache_dir = dir_ + "/cache";
  auto cache = BlobCache::Open(*store_, cache_dir, 40000, /*max_held=*/4);
  ASSERT_TRUE(cache.ok());
  ASSERT_TRUE((*cache)->GetRange("1/1/a/image.tif", version_, 0, 10000).ok());
  std::string buf(10000, '\0');
  ASSERT_TRUE((*cache)->PeekRangeInto("1/1/a/image.tif", version_, 0, 10000, buf.data()));
  // Readers on other threads while new entries evict it, again and again.
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t)
    readers.emplace_back([&] {
      std::string b(10000, '\0');
      while (!stop.load())
        for (int i = 0; i < 8; ++i)
          if ((*cache)->PeekRangeInto("1/1/a/image.tif", version_, i * 10000, 10000, b.data()) &&
              b != content_.substr(size_t(i) * 10000, 10000))
            ++bad;
    });
  for (int round = 0; round < 20; ++round)
    for (int i = 0; i < 8; ++i)
      ASSERT_TRUE((*cache)->GetRange("1/1/a/image.tif", version_, i * 10000, 10000).ok());
  stop = true;
  for (auto& r : readers) r.join();
  EXPECT_EQ(bad.load(), 0) << "a reader saw bytes of another entry or a torn one";
  EXPECT_LE(test::TreeBytes(cache_dir), 40000);
  // Truncate one entry's file behind the cache's back (after its mapping went: a fresh cache).
  cache->reset();
  auto again = BlobCache::Open(*store_, cache_dir, 40000);
  ASSERT_TRUE(again.ok());
  int truncated = 0;
  for (auto it = fs::recursive_directory_iterator(cache_dir); it != fs::recursive_directory_iterator();
       ++it)
    if (it->is_regular_file() && truncated == 0) {
      fs::resize_file(it->path(), 100);
      ++truncated;
    }
  ASSERT_EQ(truncated, 1);
  for (int i = 0; i < 8; ++i) {
    std::string b(10000, '\0');
    if ((*again)->PeekRangeInto("1/1/a/image.tif", version_, i * 10000, 10000, b.data())) {
      EXPECT_EQ(b, content_.substr(size_t(i) * 10000, 10000));
    }
  }
}

// By default a quarter of vm.max_map_count, within [1024, 32768], are held; reads into the
// caller's buffer answer exactly what GetRange does, and only for the entry's size.
TEST_F(BlobCacheTest, HeldEntriesFollowTheMappingLimitAndReadsIntoBuffersMatch) {
  const size_t held = BlobCache::HeldEntries();
  EXPECT_GE(held, 1024u);
  EXPECT_LE(held, 32768u);
  long long maps = 0;
  std::ifstream("/proc/sys/vm/max_map_count") >> maps;
  if (maps >= 4096) {
    EXPECT_LE(held, size_t(maps) / 4);
  }
  auto cache = BlobCache::Open(*store_, dir_ + "/cache", 1 << 20);
  ASSERT_TRUE(cache.ok());
  std::string buf(1000, '\0');
  EXPECT_FALSE((*cache)->PeekRangeInto("1/1/a/image.tif", version_, 5000, 1000, buf.data()));
  ASSERT_TRUE((*cache)->GetRangeInto("1/1/a/image.tif", version_, 5000, 1000, buf.data()).ok());
  EXPECT_EQ(buf, content_.substr(5000, 1000));
  std::string warm(1000, '\0');
  ASSERT_TRUE((*cache)->PeekRangeInto("1/1/a/image.tif", version_, 5000, 1000, warm.data()));
  EXPECT_EQ(warm, buf);
  EXPECT_EQ((*cache)->hits(), 1);
  EXPECT_EQ((*cache)->misses(), 1);
  // Another version is another entry: a miss, and a GET that fails for a stale version.
  EXPECT_FALSE((*cache)->PeekRangeInto("1/1/a/image.tif", "other", 5000, 1000, warm.data()));
}

TEST_F(BlobCacheTest, LocalFileHoldsTheWholeBlob) {
  auto cache = BlobCache::Open(*store_, dir_ + "/cache", 4 << 20);
  ASSERT_TRUE(cache.ok());
  auto path = (*cache)->LocalFile("1/1/a/image.tif", version_, int64_t(content_.size()));
  ASSERT_TRUE(path.ok()) << path.status().message();
  std::ifstream in(*path, std::ios::binary);
  std::string back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(back == content_);
  auto too_big = BlobCache::Open(*store_, dir_ + "/cache2", 1 << 20);
  EXPECT_EQ(
      (*too_big)->LocalFile("1/1/a/image.tif", version_, int64_t(content_.size())).status().code(),
      Code::kUnsupported);
}

}  // namespace
}  // namespace quire
