#include "blob/file_blob_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "support/s3_server.h"

namespace quire {
namespace {
namespace fs = std::filesystem;

class FileBlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "quire-blob-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    auto store = FileBlobStore::Open(dir_ + "/blobs");
    ASSERT_TRUE(store.ok()) << store.status().message();
    store_ = std::move(*store);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string WriteLocal(const std::string& name, const std::string& content) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  std::string dir_;
  std::unique_ptr<FileBlobStore> store_;
};


// ---------------------------------------------------------------- the contract
// Every BlobStore keeps these promises; the suite runs against the file store and against the
// S3 store on the real radosgw of the `s3` fixture.
class BlobStoreContract : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "quire-blob-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    std::string url;
    if (GetParam() == "file") {
      url = "file:" + dir_ + "/blobs";
    } else {
      test::UseS3Credentials();
      // Small multipart settings so that the large-file test goes multipart.
      url = test::S3StorageUrl(test::UniqueS3Prefix("contract"),
                               "&multipart_threshold=5242880&part_size=5242880");
    }
    auto store = OpenBlobStore(url, dir_ + "/scratch");
    ASSERT_TRUE(store.ok()) << store.status().message();
    store_ = std::move(*store);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string WriteScratch(const std::string& name, const std::string& content) {
    std::string path = store_->ScratchDir() + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  std::string dir_;
  std::unique_ptr<BlobStore> store_;
};

INSTANTIATE_TEST_SUITE_P(Stores, BlobStoreContract, ::testing::Values("file", "s3"),
                         [](const auto& info) { return info.param; });

TEST_P(BlobStoreContract, PutBytesThenGetBytes) {
  ASSERT_TRUE(store_->PutBytes("1/2/abc/thumb-100x50.jpg", std::string("hello\0world", 11)).ok());
  EXPECT_TRUE(store_->Exists("1/2/abc/thumb-100x50.jpg"));
  auto got = store_->GetBytes("1/2/abc/thumb-100x50.jpg");
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(*got, std::string("hello\0world", 11));
  auto before = store_->Stat("1/2/abc/thumb-100x50.jpg");
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->size, 11);
  // Overwrite replaces the content, and the version says so.
  ASSERT_TRUE(store_->PutBytes("1/2/abc/thumb-100x50.jpg", "second").ok());
  EXPECT_EQ(*store_->GetBytes("1/2/abc/thumb-100x50.jpg"), "second");
  auto after = store_->Stat("1/2/abc/thumb-100x50.jpg");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->size, 6);
  EXPECT_NE(after->version, before->version);
  // Nothing left behind in scratch.
  EXPECT_TRUE(fs::is_empty(store_->ScratchDir()));
}

TEST_P(BlobStoreContract, MissingBlobIsNotFound) {
  EXPECT_FALSE(store_->Exists("1/2/nope/image.tif"));
  EXPECT_EQ(store_->GetBytes("1/2/nope/image.tif").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->Stat("1/2/nope/image.tif").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->GetRange("1/2/nope/image.tif", 0, 10).status().code(), Code::kNotFound);
  EXPECT_EQ(store_->GetToFile("1/2/nope/image.tif", dir_ + "/out").code(), Code::kNotFound);
}

TEST_P(BlobStoreContract, PutFileConsumesTheSource) {
  std::string src = WriteScratch("upload", "tiff bytes");
  ASSERT_TRUE(store_->PutFile("1/2/abc/image.tif", src).ok());
  EXPECT_FALSE(fs::exists(src));
  EXPECT_EQ(*store_->GetBytes("1/2/abc/image.tif"), "tiff bytes");
}

TEST_P(BlobStoreContract, PutFileOfMissingSourceFails) {
  Status st = store_->PutFile("1/2/x/original", dir_ + "/does-not-exist");
  EXPECT_FALSE(st.ok());
  EXPECT_FALSE(store_->Exists("1/2/x/original"));
}

TEST_P(BlobStoreContract, LargeFileRoundTrips) {
  // 12 MiB + 3: three parts of a multipart upload on S3 (threshold and parts 5 MiB).
  std::string content(12 * 1024 * 1024 + 3, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = char((i * 2654435761u) >> 13);
  std::string src = WriteScratch("big", content);
  ASSERT_TRUE(store_->PutFile("1/2/big/image.tif", src).ok());
  EXPECT_FALSE(fs::exists(src));
  auto st = store_->Stat("1/2/big/image.tif");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->size, int64_t(content.size()));
  ASSERT_TRUE(store_->GetToFile("1/2/big/image.tif", dir_ + "/back").ok());
  std::ifstream in(dir_ + "/back", std::ios::binary);
  std::string back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(back == content);
  // A range across the part boundary.
  auto mid = store_->GetRange("1/2/big/image.tif", 5 * 1024 * 1024 - 7, 20);
  ASSERT_TRUE(mid.ok());
  EXPECT_EQ(*mid, content.substr(5 * 1024 * 1024 - 7, 20));
}

TEST_P(BlobStoreContract, RangesAreClippedAndVersioned) {
  ASSERT_TRUE(store_->PutBytes("1/2/r/blob", "0123456789").ok());
  auto st = store_->Stat("1/2/r/blob");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(*store_->GetRange("1/2/r/blob", 2, 3), "234");
  EXPECT_EQ(*store_->GetRange("1/2/r/blob", 2, 3, st->version), "234");
  EXPECT_EQ(*store_->GetRange("1/2/r/blob", 8, 10), "89");
  EXPECT_EQ(*store_->GetRange("1/2/r/blob", 10, 5), "");
  EXPECT_EQ(*store_->GetRange("1/2/r/blob", 0, 0), "");
  EXPECT_EQ(store_->GetRange("1/2/r/blob", -1, 2).status().code(), Code::kInvalid);
  ASSERT_TRUE(store_->PutBytes("1/2/r/blob", "abcdefghij!").ok());
  // A reader that indexed the old version is told, never handed the new bytes.
  EXPECT_EQ(store_->GetRange("1/2/r/blob", 2, 3, st->version).status().code(), Code::kConflict);
}

TEST_P(BlobStoreContract, ListsByPrefix) {
  ASSERT_TRUE(store_->PutBytes("1/2/a/image.tif", "1").ok());
  ASSERT_TRUE(store_->PutBytes("1/2/a/thumb-1x1.jpg", "22").ok());
  ASSERT_TRUE(store_->PutBytes("1/3/b/image.tif", "333").ok());
  auto all = store_->List("");
  ASSERT_TRUE(all.ok()) << all.status().message();
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].key, "1/2/a/image.tif");
  EXPECT_EQ((*all)[1].key, "1/2/a/thumb-1x1.jpg");
  EXPECT_EQ((*all)[1].size, 2);
  EXPECT_EQ((*all)[2].key, "1/3/b/image.tif");
  EXPECT_EQ((*all)[2].version, store_->Stat("1/3/b/image.tif")->version);
  auto some = store_->List("1/2/");
  ASSERT_TRUE(some.ok());
  EXPECT_EQ(some->size(), 2u);
}

TEST_P(BlobStoreContract, RejectsUnsafeKeys) {
  for (std::string key : {"", "/abs", "a/../b", "../x", "a//b", ".tmp/x", "a/b c", "a\\b", "a/"}) {
    EXPECT_EQ(store_->PutBytes(key, "x").code(), Code::kInvalid) << key;
    EXPECT_FALSE(store_->Exists(key)) << key;
  }
}

TEST_P(BlobStoreContract, EscapedIdsAreKeys) {
  // AssetBlobPrefix escapes with '%': such keys must round-trip (S3: %25 in the signed path).
  const std::string key = AssetBlobPrefix(7, 8, "a.b c/d%\xc3\xa9") + "/image.tif";
  ASSERT_TRUE(store_->PutBytes(key, "escaped").ok());
  EXPECT_EQ(*store_->GetBytes(key), "escaped");
  EXPECT_EQ(store_->List("7/8/")->at(0).key, key);
  ASSERT_TRUE(store_->DeletePrefix(AssetBlobPrefix(7, 8, "a.b c/d%\xc3\xa9")).ok());
  EXPECT_FALSE(store_->Exists(key));
}

TEST_P(BlobStoreContract, DeletePrefixRemovesOnlyThatAsset) {
  ASSERT_TRUE(store_->PutBytes("1/2/a/image.tif", "1").ok());
  ASSERT_TRUE(store_->PutBytes("1/2/a/thumb-1x1.jpg", "2").ok());
  ASSERT_TRUE(store_->PutBytes("1/2/ab/image.tif", "3").ok());
  ASSERT_TRUE(store_->DeletePrefix("1/2/a").ok());
  EXPECT_FALSE(store_->Exists("1/2/a/image.tif"));
  EXPECT_FALSE(store_->Exists("1/2/a/thumb-1x1.jpg"));
  EXPECT_TRUE(store_->Exists("1/2/ab/image.tif"));
  EXPECT_TRUE(store_->DeletePrefix("1/2/never").ok());
}

// An image deleted while its ingest still writes derivatives: the delete succeeds.
TEST_P(BlobStoreContract, DeletePrefixWhileAWriterAddsBlobs) {
  std::atomic<bool> done{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < 2; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; !done; ++i) {
        // Refused writes are fine here (the directory vanished under them); what is tested
        // is that the delete does not fail.
        (void)store_->PutBytes("1/3/busy/tiles/" + std::to_string(i % 8) + "/t" +
                                   std::to_string(w),
                               "tile bytes");
      }
    });
  }
  const int deletes = GetParam() == "s3" ? 30 : 300;
  for (int i = 0; i < deletes; ++i) {
    Status st = store_->DeletePrefix("1/3/busy");
    EXPECT_TRUE(st.ok()) << st.message();
  }
  done = true;
  for (auto& w : writers) w.join();
  EXPECT_TRUE(store_->DeletePrefix("1/3/busy").ok());
  EXPECT_FALSE(store_->Exists("1/3/busy/tiles/t0"));
}

TEST_P(BlobStoreContract, ConcurrentWritersSeeWholeBlobs) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      std::string content(10000 + t, static_cast<char>('a' + t));
      for (int i = 0; i < 20; ++i) ASSERT_TRUE(store_->PutBytes("1/1/same/blob", content).ok());
    });
  }
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done) {
      auto got = store_->GetBytes("1/1/same/blob");
      if (got.ok() && !got->empty()) {
        ASSERT_EQ(*got, std::string(got->size(), (*got)[0]));
        ASSERT_EQ(got->size(), 10000u + size_t((*got)[0] - 'a'));
      }
    }
  });
  for (auto& th : threads) th.join();
  done = true;
  reader.join();
  std::string got = *store_->GetBytes("1/1/same/blob");
  ASSERT_GE(got.size(), 10000u);
  EXPECT_EQ(got, std::string(got.size(), got[0]));
}

// ---------------------------------------------------------------- the file store itself

TEST_F(FileBlobStoreTest, OpenCreatesRootAndScratch) {
  EXPECT_TRUE(fs::is_directory(dir_ + "/blobs"));
  EXPECT_EQ(fs::path(store_->ScratchDir()).parent_path().string(), dir_ + "/blobs/.tmp");
  EXPECT_TRUE(fs::is_directory(store_->ScratchDir()));
}

TEST_F(FileBlobStoreTest, PutFileMovesWithinFilesystem) {
  std::string src = store_->ScratchDir() + "/upload";
  std::ofstream(src) << "tiff bytes";
  ASSERT_TRUE(store_->PutFile("1/2/abc/image.tif", src).ok());
  EXPECT_FALSE(fs::exists(src));  // consumed
  auto path = store_->LocalPath("1/2/abc/image.tif");
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(*path, dir_ + "/blobs/1/2/abc/image.tif");
  EXPECT_EQ(*store_->GetBytes("1/2/abc/image.tif"), "tiff bytes");
}

TEST_F(FileBlobStoreTest, PutFileCopiesAcrossFilesystems) {
  // /dev/shm is a tmpfs on Linux; skip where it is absent or shares the device.
  if (!fs::is_directory("/dev/shm")) GTEST_SKIP() << "no /dev/shm";
  std::string src = "/dev/shm/quire-blob-test-" + std::to_string(::getpid());
  std::ofstream(src) << "from another filesystem";
  ASSERT_TRUE(store_->PutFile("1/2/x/original", src).ok());
  EXPECT_FALSE(fs::exists(src));
  EXPECT_EQ(*store_->GetBytes("1/2/x/original"), "from another filesystem");
  EXPECT_TRUE(fs::is_empty(store_->ScratchDir()));
}

TEST(AssetBlobPrefixTest, EscapesUnsafeBytes) {
  EXPECT_EQ(AssetBlobPrefix(1, 2, "abc-DEF_09"), "1/2/abc-DEF_09");
  EXPECT_EQ(AssetBlobPrefix(7, 8, "a.b c/d%"), "7/8/a%2Eb%20c%2Fd%25");
  EXPECT_EQ(AssetBlobPrefix(1, 1, ".."), "1/1/%2E%2E");
  EXPECT_EQ(AssetBlobPrefix(1, 1, "\xc3\xa9"), "1/1/%C3%A9");
}

TEST(AssetBlobPrefixTest, HashesLongIds) {
  std::string id(201, 'x');
  EXPECT_EQ(AssetBlobPrefix(1, 1, std::string(200, 'x')), "1/1/" + std::string(200, 'x'));
  std::string prefix = AssetBlobPrefix(1, 1, id);
  ASSERT_EQ(prefix.size(), 4u + 2 + 64);
  EXPECT_EQ(prefix.substr(0, 6), "1/1/h-");
  EXPECT_NE(AssetBlobPrefix(1, 1, id + "y"), prefix);
  // 67 bytes of '.' escape to 201 characters: hashed too.
  EXPECT_EQ(AssetBlobPrefix(1, 1, std::string(67, '.')).substr(0, 6), "1/1/h-");
  EXPECT_EQ(prefix, "1/1/h-84a0678c90937f5dcf9994d5866668da6b995109c8ad845410559b48a4ecafed");
}

TEST(OpenBlobStoreTest, AcceptsFileAndS3Urls) {
  std::string tmpl = (fs::temp_directory_path() / "quire-blob-XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  auto store = OpenBlobStore("file:" + tmpl + "/b");
  ASSERT_TRUE(store.ok()) << store.status().message();
  EXPECT_TRUE((*store)->PutBytes("1/1/x/y", "z").ok());
  EXPECT_TRUE(fs::exists(tmpl + "/b/1/1/x/y"));
  fs::remove_all(tmpl);

  auto bad = OpenBlobStore("ftp://bucket");
  EXPECT_EQ(bad.status().code(), Code::kInvalid);
  EXPECT_NE(bad.status().message().find("ftp://bucket"), std::string::npos);
  EXPECT_EQ(OpenBlobStore("file:").status().code(), Code::kInvalid);
  EXPECT_EQ(OpenBlobStore("s3://").status().code(), Code::kInvalid);
}

}  // namespace
}  // namespace quire
