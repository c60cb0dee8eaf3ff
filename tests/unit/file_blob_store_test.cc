#include "blob/file_blob_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

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

TEST_F(FileBlobStoreTest, OpenCreatesRootAndScratch) {
  EXPECT_TRUE(fs::is_directory(dir_ + "/blobs"));
  EXPECT_EQ(fs::path(store_->ScratchDir()).parent_path().string(), dir_ + "/blobs/.tmp");
  EXPECT_TRUE(fs::is_directory(store_->ScratchDir()));
}

TEST_F(FileBlobStoreTest, PutBytesThenGetBytes) {
  ASSERT_TRUE(store_->PutBytes("1/2/abc/thumb-100x50.jpg", std::string("hello\0world", 11)).ok());
  EXPECT_TRUE(store_->Exists("1/2/abc/thumb-100x50.jpg"));
  auto got = store_->GetBytes("1/2/abc/thumb-100x50.jpg");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, std::string("hello\0world", 11));
  // Overwrite replaces the content.
  ASSERT_TRUE(store_->PutBytes("1/2/abc/thumb-100x50.jpg", "second").ok());
  EXPECT_EQ(*store_->GetBytes("1/2/abc/thumb-100x50.jpg"), "second");
  // Nothing left behind in scratch.
  EXPECT_TRUE(fs::is_empty(store_->ScratchDir()));
}

TEST_F(FileBlobStoreTest, MissingBlobIsNotFound) {
  EXPECT_FALSE(store_->Exists("1/2/nope/image.tif"));
  EXPECT_EQ(store_->GetBytes("1/2/nope/image.tif").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->LocalPath("1/2/nope/image.tif").status().code(), Code::kNotFound);
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

TEST_F(FileBlobStoreTest, PutFileOfMissingSourceFails) {
  Status st = store_->PutFile("1/2/x/original", dir_ + "/does-not-exist");
  EXPECT_FALSE(st.ok());
  EXPECT_FALSE(store_->Exists("1/2/x/original"));
}

TEST_F(FileBlobStoreTest, RejectsUnsafeKeys) {
  for (std::string key : {"", "/abs", "a/../b", "../x", "a//b", ".tmp/x", "a/b c", "a\\b", "a/"}) {
    EXPECT_EQ(store_->PutBytes(key, "x").code(), Code::kInvalid) << key;
    EXPECT_FALSE(store_->Exists(key)) << key;
  }
  EXPECT_FALSE(fs::exists(dir_ + "/x"));
}

TEST_F(FileBlobStoreTest, DeletePrefixRemovesOnlyThatAsset) {
  ASSERT_TRUE(store_->PutBytes("1/2/a/image.tif", "1").ok());
  ASSERT_TRUE(store_->PutBytes("1/2/a/thumb-1x1.jpg", "2").ok());
  ASSERT_TRUE(store_->PutBytes("1/2/ab/image.tif", "3").ok());
  ASSERT_TRUE(store_->DeletePrefix("1/2/a").ok());
  EXPECT_FALSE(store_->Exists("1/2/a/image.tif"));
  EXPECT_FALSE(store_->Exists("1/2/a/thumb-1x1.jpg"));
  EXPECT_TRUE(store_->Exists("1/2/ab/image.tif"));
  EXPECT_TRUE(store_->DeletePrefix("1/2/never").ok());
}

TEST_F(FileBlobStoreTest, ConcurrentWritersSeeWholeBlobs) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      std::string content(10000 + t, static_cast<char>('a' + t));
      for (int i = 0; i < 20; ++i) ASSERT_TRUE(store_->PutBytes("1/1/same/blob", content).ok());
    });
  }
  for (auto& th : threads) th.join();
  std::string got = *store_->GetBytes("1/1/same/blob");
  ASSERT_GE(got.size(), 10000u);
  EXPECT_EQ(got, std::string(got.size(), got[0]));
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

TEST(OpenBlobStoreTest, AcceptsFileUrlOnly) {
  std::string tmpl = (fs::temp_directory_path() / "quire-blob-XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  auto store = OpenBlobStore("file:" + tmpl + "/b");
  ASSERT_TRUE(store.ok()) << store.status().message();
  EXPECT_TRUE((*store)->PutBytes("1/1/x/y", "z").ok());
  EXPECT_TRUE(fs::exists(tmpl + "/b/1/1/x/y"));
  fs::remove_all(tmpl);

  auto bad = OpenBlobStore("s3://bucket");
  EXPECT_EQ(bad.status().code(), Code::kInvalid);
  EXPECT_NE(bad.status().message().find("s3://bucket"), std::string::npos);
  EXPECT_EQ(OpenBlobStore("file:").status().code(), Code::kInvalid);
}

}  // namespace
}  // namespace quire
