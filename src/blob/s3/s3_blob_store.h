// S3BlobStore: blobs as objects of one bucket under a key prefix, on AWS S3 or any S3-
// compatible service (tests: Ceph radosgw). Writes are whole-object: a single PUT, or for
// files over the threshold a multipart upload completed only after every part is in (and
// aborted on failure), so no reader ever sees part of a blob under its key. Multipart
// uploads left by a crashed writer are aborted once older than upload_cleanup_s (at open
// and then periodically). Thread-safe.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "blob/blob_store.h"
#include "blob/s3/s3_client.h"
#include "blob/scratch_space.h"

namespace quire {

class S3BlobStore : public BlobStore {
 public:
  // Checks the bucket and the credentials with one signed request: a wrong secret, a missing
  // bucket or an unreachable endpoint is an error naming it. Local scratch files go to this
  // process's own directory under `scratch_dir` (blob/scratch_space.h).
  static Result<std::unique_ptr<S3BlobStore>> Open(s3::S3Config config,
                                                   const std::string& scratch_dir);
  ~S3BlobStore() override;

  Status PutFile(const std::string& key, const std::string& local_path) override;
  Status PutBytes(const std::string& key, const std::string& bytes) override;
  Result<std::string> GetBytes(const std::string& key) const override;
  bool Exists(const std::string& key) const override;
  Result<BlobStat> Stat(const std::string& key) const override;
  Result<std::string> GetRange(const std::string& key, int64_t offset, int64_t length,
                               const std::string& version = "") const override;
  Status GetToFile(const std::string& key, const std::string& local_path) const override;
  Result<std::vector<BlobListing>> List(const std::string& prefix) const override;
  // Lists `prefix` + "/" and removes those objects in DeleteObjects batches of 1000.
  Status DeletePrefix(const std::string& prefix) override;
  bool IsRemote() const override { return true; }
  // kUnsupported: there is no local file (read through GetRange or blob/cache/).
  Result<std::string> LocalPath(const std::string& key) const override;
  std::string ScratchDir() const override { return scratch_->dir(); }

  // Aborts this prefix's multipart uploads initiated more than `older_than_s` ago; returns
  // how many.
  Result<int> AbortStaleUploads(int64_t older_than_s);
  const s3::S3Client& client() const { return client_; }

 private:
  S3BlobStore(s3::S3Config config, std::unique_ptr<ScratchSpace> scratch);
  Status PutMultipart(const std::string& full_key, int fd, int64_t size);
  Result<std::vector<BlobListing>> ListFull(const std::string& full_prefix) const;

  s3::S3Client client_;
  std::unique_ptr<ScratchSpace> scratch_;
  std::mutex cleanup_mu_;
  std::condition_variable cleanup_cv_;
  bool stopping_ = false;
  std::thread cleanup_;
};

// OpenBlobStore's s3:// branch: parses the URL (blob/s3/s3_client.h) and opens the store.
Result<std::unique_ptr<BlobStore>> OpenS3BlobStore(const std::string& url,
                                                   const std::string& scratch_dir);

}  // namespace quire
