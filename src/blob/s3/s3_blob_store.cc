#include "blob/s3/s3_blob_store.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <thread>

#include "blob/s3/sigv4.h"

namespace quire {
namespace fs = std::filesystem;
using s3::S3Request;
using s3::S3Response;

namespace {

std::string Unquote(std::string etag) {
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"')
    etag = etag.substr(1, etag.size() - 2);
  return etag;
}

std::string Base64Md5(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_md5(), nullptr);
  unsigned char out[64];
  int n = EVP_EncodeBlock(out, md, int(len));
  return std::string(reinterpret_cast<char*>(out), size_t(n));
}

// "2026-12-01T20:37:22.000Z" → Unix seconds; -1 when unreadable.
int64_t ParseIsoTime(const std::string& s) {
  std::tm tm{};
  if (!strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return -1;
  return int64_t(timegm(&tm));
}

int64_t ParseHttpTimeMs(const std::string& s) {
  std::tm tm{};
  if (!strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S", &tm)) return 0;
  return int64_t(timegm(&tm)) * 1000;
}

Status ReadFull(int fd, char* out, size_t n, int64_t offset, const std::string& path) {
  size_t done = 0;
  while (done < n) {
    ssize_t got = ::pread(fd, out + done, n - done, off_t(offset + int64_t(done)));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return Status::IOError("cannot read " + path);
    done += size_t(got);
  }
  return Status::Ok();
}

}  // namespace

S3BlobStore::S3BlobStore(s3::S3Config config, std::unique_ptr<ScratchSpace> scratch)
    : client_(std::move(config)), scratch_(std::move(scratch)) {}

S3BlobStore::~S3BlobStore() {
  {
    std::lock_guard<std::mutex> lock(cleanup_mu_);
    stopping_ = true;
  }
  cleanup_cv_.notify_all();
  if (cleanup_.joinable()) cleanup_.join();
}

Result<std::unique_ptr<S3BlobStore>> S3BlobStore::Open(s3::S3Config config,
                                                       const std::string& scratch_dir) {
  const std::string parent =
      scratch_dir.empty() ? (fs::temp_directory_path() / "quire-s3-scratch").string() : scratch_dir;
  Result<std::unique_ptr<ScratchSpace>> scratch = ScratchSpace::Open(parent);
  if (!scratch.ok()) return scratch.status();
  const std::string where = config.scheme + "://" + config.endpoint_host;
  const std::string bucket = config.bucket;
  std::unique_ptr<S3BlobStore> store(new S3BlobStore(std::move(config), std::move(*scratch)));

  // One listing of the prefix proves the bucket exists and the signature is accepted.
  S3Request req;
  req.query = {{"list-type", "2"}, {"max-keys", "1"}, {"prefix", store->client_.FullKey("")}};
  Result<S3Response> r = store->client_.Send(req);
  if (!r.ok()) {
    return Status::Unavailable("S3 storage at " + where + " is unreachable: " +
                               r.status().message());
  }
  if (r->status != 200) {
    const std::string code = s3::XmlFirst(r->body, "Code");
    if (code == "NoSuchBucket" || r->status == 404) {
      return Status::NotFound("S3 bucket \"" + bucket + "\" does not exist at " + where);
    }
    if (code == "SignatureDoesNotMatch" || code == "InvalidAccessKeyId" || r->status == 403) {
      return Status::Forbidden("S3 at " + where + " refused the credentials for bucket \"" +
                               bucket + "\" (" + (code.empty() ? "403" : code) +
                               "): check QUIRE_S3_ACCESS_KEY and QUIRE_S3_SECRET_KEY");
    }
    return s3::ErrorStatus(*r, "S3 bucket \"" + bucket + "\" at " + where);
  }
  const int64_t interval = store->client_.config().upload_cleanup_s;
  (void)store->AbortStaleUploads(interval);
  S3BlobStore* self = store.get();
  store->cleanup_ = std::thread([self, interval] {
    const auto period = std::chrono::seconds(std::max<int64_t>(1, std::min<int64_t>(interval, 600)));
    std::unique_lock<std::mutex> lock(self->cleanup_mu_);
    while (!self->cleanup_cv_.wait_for(lock, period, [self] { return self->stopping_; })) {
      lock.unlock();
      (void)self->AbortStaleUploads(interval);
      lock.lock();
    }
  });
  return store;
}

Result<int> S3BlobStore::AbortStaleUploads(int64_t older_than_s) {
  const int64_t now = int64_t(std::time(nullptr));
  int aborted = 0;
  std::string key_marker, id_marker;
  for (;;) {
    S3Request req;
    req.query = {{"uploads", ""}, {"prefix", client_.FullKey("")}};
    if (!key_marker.empty()) {
      req.query["key-marker"] = key_marker;
      req.query["upload-id-marker"] = id_marker;
    }
    Result<S3Response> r = client_.Send(req);
    if (!r.ok()) return r.status();
    if (r->status != 200) return s3::ErrorStatus(*r, "list multipart uploads");
    for (const std::string& upload : s3::XmlAll(r->body, "Upload")) {
      const std::string key = s3::XmlFirst(upload, "Key");
      const std::string id = s3::XmlFirst(upload, "UploadId");
      const int64_t initiated = ParseIsoTime(s3::XmlFirst(upload, "Initiated"));
      if (initiated < 0 || now - initiated < older_than_s) continue;
      S3Request abort;
      abort.method = "DELETE";
      abort.key = key;
      abort.query = {{"uploadId", id}};
      Result<S3Response> a = client_.Send(abort);
      if (a.ok() && (a->status == 204 || a->status == 200 || a->status == 404)) ++aborted;
    }
    if (s3::XmlFirst(r->body, "IsTruncated") != "true") break;
    key_marker = s3::XmlFirst(r->body, "NextKeyMarker");
    id_marker = s3::XmlFirst(r->body, "NextUploadIdMarker");
    if (key_marker.empty()) break;
  }
  return aborted;
}

Status S3BlobStore::PutBytes(const std::string& key, const std::string& bytes) {
  QUIRE_RETURN_IF_ERROR(ValidateBlobKey(key));
  S3Request req;
  req.method = "PUT";
  req.key = client_.FullKey(key);
  req.body = &bytes;
  Result<S3Response> r = client_.Send(req);
  if (!r.ok()) return r.status();
  if (r->status != 200) return s3::ErrorStatus(*r, "PUT " + key);
  return Status::Ok();
}

Status S3BlobStore::PutFile(const std::string& key, const std::string& local_path) {
  QUIRE_RETURN_IF_ERROR(ValidateBlobKey(key));
  int fd = ::open(local_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError("cannot read " + local_path + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::Invalid(local_path + " is not a regular file");
  }
  const int64_t size = int64_t(st.st_size);
  Status result;
  if (size > client_.config().multipart_threshold) {
    result = PutMultipart(client_.FullKey(key), fd, size);
  } else {
    std::string body(size_t(size), '\0');
    result = ReadFull(fd, body.data(), body.size(), 0, local_path);
    if (result.ok()) result = PutBytes(key, body);
  }
  ::close(fd);
  if (result.ok()) ::unlink(local_path.c_str());
  return result;
}

Status S3BlobStore::PutMultipart(const std::string& full_key, int fd, int64_t size) {
  S3Request create;
  create.method = "POST";
  create.key = full_key;
  create.query = {{"uploads", ""}};
  Result<S3Response> r = client_.Send(create);
  if (!r.ok()) return r.status();
  if (r->status != 200) return s3::ErrorStatus(*r, "create multipart upload of " + full_key);
  const std::string upload_id = s3::XmlFirst(r->body, "UploadId");
  if (upload_id.empty()) return Status::IOError("S3 gave no UploadId for " + full_key);

  auto abort = [&](Status why) {
    S3Request a;
    a.method = "DELETE";
    a.key = full_key;
    a.query = {{"uploadId", upload_id}};
    (void)client_.Send(a);  // what fails here the periodic cleanup aborts later
    return why;
  };
  // One part in memory at a time: RSS stays at part_size however large the file is.
  const int64_t part_size = client_.config().part_size;
  std::string part;
  std::string complete = "<CompleteMultipartUpload>";
  int number = 0;
  for (int64_t offset = 0; offset < size; offset += part_size) {
    ++number;
    const int64_t n = std::min(part_size, size - offset);
    part.resize(size_t(n));
    Status st = ReadFull(fd, part.data(), part.size(), offset, full_key);
    if (!st.ok()) return abort(st);
    S3Request put;
    put.method = "PUT";
    put.key = full_key;
    put.query = {{"partNumber", std::to_string(number)}, {"uploadId", upload_id}};
    put.body = &part;
    Result<S3Response> pr = client_.Send(put);
    if (!pr.ok()) return abort(pr.status());
    if (pr->status != 200) return abort(s3::ErrorStatus(*pr, "upload part of " + full_key));
    complete += "<Part><PartNumber>" + std::to_string(number) + "</PartNumber><ETag>" +
                s3::XmlEscape(pr->headers["etag"]) + "</ETag></Part>";
  }
  complete += "</CompleteMultipartUpload>";
  S3Request done;
  done.method = "POST";
  done.key = full_key;
  done.query = {{"uploadId", upload_id}};
  done.headers = {{"content-type", "application/xml"}};
  done.body = &complete;
  Result<S3Response> cr = client_.Send(done);
  if (!cr.ok()) return abort(cr.status());
  // S3 may answer 200 with an error in the body.
  if (cr->status != 200 || !s3::XmlFirst(cr->body, "Code").empty()) {
    return abort(s3::ErrorStatus(*cr, "complete multipart upload of " + full_key));
  }
  return Status::Ok();
}

Result<std::string> S3BlobStore::GetBytes(const std::string& key) const {
  QUIRE_RETURN_IF_ERROR(ValidateBlobKey(key));
  S3Request req;
  req.key = client_.FullKey(key);
  Result<S3Response> r = client_.Send(req);
  if (!r.ok()) return r.status();
  if (r->status != 200) {
    Status st = s3::ErrorStatus(*r, "GET " + key);
    return st.code() == Code::kNotFound ? Status::NotFound("no blob " + key) : st;
  }
  return std::move(r->body);
}

Result<BlobStat> S3BlobStore::Stat(const std::string& key) const {
  QUIRE_RETURN_IF_ERROR(ValidateBlobKey(key));
  S3Request req;
  req.method = "HEAD";
  req.key = client_.FullKey(key);
  Result<S3Response> r = client_.Send(req);
  if (!r.ok()) return r.status();
  if (r->status == 404) return Status::NotFound("no blob " + key);
  if (r->status != 200) return s3::ErrorStatus(*r, "HEAD " + key);
  BlobStat st;
  st.size = std::atoll(r->headers["content-length"].c_str());
  st.version = Unquote(r->headers["etag"]);
  st.modified_ms = ParseHttpTimeMs(r->headers["last-modified"]);
  return st;
}

bool S3BlobStore::Exists(const std::string& key) const { return Stat(key).ok(); }

Result<std::string> S3BlobStore::GetRange(const std::string& key, int64_t offset, int64_t length,
                                          const std::string& version) const {
  QUIRE_RETURN_IF_ERROR(ValidateBlobKey(key));
  if (offset < 0 || length < 0) return Status::Invalid("negative blob range");
  if (length == 0) return std::string();
  S3Request req;
  req.key = client_.FullKey(key);
  req.headers["range"] = "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1);
  if (!version.empty()) req.headers["if-match"] = "\"" + version + "\"";
  Result<S3Response> r = client_.Send(req);
  if (!r.ok()) return r.status();
  if (r->status == 416) return std::string();  // wholly past the end
  if (r->status == 412) return Status::Conflict("blob " + key + " changed");
  if (r->status == 404) return Status::NotFound("no blob " + key);
  if (r->status != 206 && r->status != 200) return s3::ErrorStatus(*r, "GET range of " + key);
  if (r->status == 200) {  // the whole object: a server that ignores Range
    if (offset >= int64_t(r->body.size())) return std::string();
    return r->body.substr(size_t(offset), size_t(length));
  }
  return std::move(r->body);
}

Status S3BlobStore::GetToFile(const std::string& key, const std::string& local_path) const {
  QUIRE_RETURN_IF_ERROR(ValidateBlobKey(key));
  int fd = ::open(local_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError("cannot create " + local_path + ": " + std::strerror(errno));
  S3Request req;
  req.key = client_.FullKey(key);
  req.out_fd = fd;
  Result<S3Response> r = client_.Send(req);
  ::close(fd);
  if (!r.ok()) return r.status();
  if (r->status == 404) return Status::NotFound("no blob " + key);
  if (r->status != 200) return s3::ErrorStatus(*r, "GET " + key);
  return Status::Ok();
}

Result<std::vector<BlobListing>> S3BlobStore::ListFull(const std::string& full_prefix) const {
  std::vector<BlobListing> out;
  std::string token;
  for (;;) {
    S3Request req;
    req.query = {{"list-type", "2"}, {"prefix", full_prefix}};
    if (!token.empty()) req.query["continuation-token"] = token;
    Result<S3Response> r = client_.Send(req);
    if (!r.ok()) return r.status();
    if (r->status != 200) return s3::ErrorStatus(*r, "list " + full_prefix);
    for (const std::string& c : s3::XmlAll(r->body, "Contents")) {
      out.push_back({s3::XmlFirst(c, "Key"), std::atoll(s3::XmlFirst(c, "Size").c_str()),
                     Unquote(s3::XmlFirst(c, "ETag"))});
    }
    if (s3::XmlFirst(r->body, "IsTruncated") != "true") break;
    token = s3::XmlFirst(r->body, "NextContinuationToken");
    if (token.empty()) break;
  }
  return out;
}

Result<std::vector<BlobListing>> S3BlobStore::List(const std::string& prefix) const {
  const std::string base = client_.FullKey("");
  Result<std::vector<BlobListing>> all = ListFull(base + prefix);
  if (!all.ok()) return all.status();
  for (BlobListing& b : *all) b.key = b.key.substr(base.size());
  return all;
}

Status S3BlobStore::DeletePrefix(const std::string& prefix) {
  QUIRE_RETURN_IF_ERROR(ValidateBlobKey(prefix));
  Result<std::vector<BlobListing>> objects = ListFull(client_.FullKey(prefix) + "/");
  if (!objects.ok()) return objects.status();
  std::vector<std::string> keys;
  for (const BlobListing& o : *objects) keys.push_back(o.key);
  // A key being written at the same moment (an ingest still running for the image being
  // deleted) can come back as a per-key error of the multi-object delete (radosgw:
  // "UnknownError"); those keys are tried again after a short pause.
  constexpr int kRounds = 6;
  for (int round = 0; !keys.empty(); ++round) {
    std::vector<std::string> failed;
    std::string error;
    for (size_t i = 0; i < keys.size(); i += 1000) {
      std::string body = "<Delete><Quiet>true</Quiet>";
      for (size_t j = i; j < std::min(keys.size(), i + 1000); ++j)
        body += "<Object><Key>" + s3::XmlEscape(keys[j]) + "</Key></Object>";
      body += "</Delete>";
      S3Request req;
      req.method = "POST";
      req.query = {{"delete", ""}};
      req.headers = {{"content-md5", Base64Md5(body)}, {"content-type", "application/xml"}};
      req.body = &body;
      Result<S3Response> r = client_.Send(req);
      if (!r.ok()) return r.status();
      if (r->status != 200) return s3::ErrorStatus(*r, "delete under " + prefix);
      for (const std::string& e : s3::XmlAll(r->body, "Error")) {
        failed.push_back(s3::XmlFirst(e, "Key"));
        error = s3::XmlFirst(e, "Code") + ": " + s3::XmlFirst(e, "Message");
      }
    }
    if (failed.empty()) break;
    if (round + 1 == kRounds)
      return Status::IOError("delete under " + prefix + ": " + std::to_string(failed.size()) +
                             " object(s) could not be deleted (" + error + ")");
    std::this_thread::sleep_for(std::chrono::milliseconds(20 << round));
    keys = std::move(failed);
  }
  return Status::Ok();
}

Result<std::string> S3BlobStore::LocalPath(const std::string& key) const {
  return Status::Unsupported("blob " + key + " is in S3; it has no local path");
}

Result<std::unique_ptr<BlobStore>> OpenS3BlobStore(const std::string& url,
                                                   const std::string& scratch_dir) {
  Result<s3::S3Config> config = s3::ParseS3Url(url);
  if (!config.ok()) return config.status();
  auto store = S3BlobStore::Open(std::move(*config), scratch_dir);
  if (!store.ok()) return store.status();
  return std::unique_ptr<BlobStore>(std::move(*store));
}

}  // namespace quire
