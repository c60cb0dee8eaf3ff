// FileBlobStore: the embedded BlobStore, one file per key under a root directory.
// Writes go to ROOT/.tmp first, are fsynced, then renamed into place, so a reader sees either
// the old blob or the whole new one, never a torn file. Thread-safe (no shared mutable state
// beyond the filesystem).
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "blob/blob_store.h"

namespace quire {

class FileBlobStore : public BlobStore {
 public:
  // Creates `root` and `root/.tmp` if missing; removes scratch files over an hour old.
  static Result<std::unique_ptr<FileBlobStore>> Open(const std::string& root);

  Status PutFile(const std::string& key, const std::string& local_path) override;
  Status PutBytes(const std::string& key, const std::string& bytes) override;
  Result<std::string> GetBytes(const std::string& key) const override;
  bool Exists(const std::string& key) const override;
  Status DeletePrefix(const std::string& prefix) override;
  Result<std::string> LocalPath(const std::string& key) const override;
  std::string ScratchDir() const override;

  const std::string& root() const { return root_; }

 private:
  explicit FileBlobStore(std::string root) : root_(std::move(root)) {}

  static void RemoveStaleScratch(const std::filesystem::path& scratch);
  // Renames the fsynced temp file `tmp` (under ScratchDir) into place as `key`.
  Status Publish(const std::string& key, const std::string& tmp);

  std::string root_;
};

}  // namespace quire
