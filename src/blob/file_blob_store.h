// FileBlobStore: the embedded BlobStore, one file per key under a root directory.
// Writes go to this process's scratch directory under ROOT/.tmp first (see ScratchSpace),
// are fsynced, then renamed into place, so a reader sees either the old blob or the whole new
// one, never a torn file. Thread-safe (no shared mutable state
// beyond the filesystem).
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "blob/blob_store.h"
#include "blob/scratch_space.h"

namespace quire {

class FileBlobStore : public BlobStore {
 public:
  // Creates `root` and `root/.tmp` if missing, claims this process's scratch directory
  // there and removes the scratch of processes that are gone.
  static Result<std::unique_ptr<FileBlobStore>> Open(const std::string& root);

  Status PutFile(const std::string& key, const std::string& local_path) override;
  Status PutBytes(const std::string& key, const std::string& bytes) override;
  Result<std::string> GetBytes(const std::string& key) const override;
  bool Exists(const std::string& key) const override;
  Result<BlobStat> Stat(const std::string& key) const override;
  Result<std::string> GetRange(const std::string& key, int64_t offset, int64_t length,
                               const std::string& version = "") const override;
  Status GetToFile(const std::string& key, const std::string& local_path) const override;
  Result<std::vector<BlobListing>> List(const std::string& prefix) const override;
  Status DeletePrefix(const std::string& prefix) override;
  Result<std::string> LocalPath(const std::string& key) const override;
  std::string ScratchDir() const override;

  const std::string& root() const { return root_; }

 private:
  FileBlobStore(std::string root, std::unique_ptr<ScratchSpace> scratch)
      : root_(std::move(root)), scratch_(std::move(scratch)) {}

  // Renames the fsynced temp file `tmp` (under ScratchDir) into place as `key`.
  Status Publish(const std::string& key, const std::string& tmp);

  std::string root_;
  std::unique_ptr<ScratchSpace> scratch_;
};

}  // namespace quire
