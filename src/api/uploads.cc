// Uploads: POST /customers/{c}/uploads streams the body through UploadSink into a scratch file
// (hashing it on the way), then into blob storage; GET lists and shows; DELETE removes an
// unused one.
#include "api/uploads.h"

#include <algorithm>
#include <cctype>

#include "api/common.h"
#include "api/routes.h"
#include "blob/asset_keys.h"
#include "core/content_digest.h"
#include "core/secrets.h"
#include "core/time_util.h"
#include "model/media_sniff.h"

namespace quire::api {

namespace {

// "image/jpeg; charset=x" → "image/jpeg"; "" when absent, generic or malformed.
std::string DeclaredMediaType(const std::string& header) {
  std::string m = header.substr(0, header.find(';'));
  while (!m.empty() && std::isspace(static_cast<unsigned char>(m.back()))) m.pop_back();
  while (!m.empty() && std::isspace(static_cast<unsigned char>(m.front()))) m.erase(0, 1);
  std::transform(m.begin(), m.end(), m.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  size_t slash = m.find('/');
  if (m.empty() || m.size() > 200 || slash == std::string::npos || slash == 0 ||
      slash + 1 == m.size())
    return "";
  for (char c : m)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '.' || c == '+' ||
          c == '-' || c == '_'))
      return "";
  if (m == "application/octet-stream" || m == "application/x-www-form-urlencoded") return "";
  return m;
}

std::string MaxText(int64_t bytes) {
  return std::to_string(bytes) + " bytes (--max-upload-bytes)";
}

class UploadSink : public http::BodySink {
 public:
  UploadSink(Context& ctx, http::Request req, int64_t customer, ExpectedDigests expected,
             std::unique_ptr<SpoolFile> spool)
      : ctx_(ctx),
        req_(std::move(req)),
        customer_(customer),
        expected_(std::move(expected)),
        hasher_(expected_.sha512.has_value(), expected_.md5.has_value()),
        spool_(std::move(spool)) {}

  std::optional<http::Response> Write(std::string_view piece) override {
    if (spool_->size() + static_cast<int64_t>(piece.size()) > ctx_.config.max_upload_bytes)
      return Error(ctx_, req_, 413,
                   "upload larger than " + MaxText(ctx_.config.max_upload_bytes));
    if (head_.size() < kSniffBytes)
      head_.append(piece.substr(0, kSniffBytes - head_.size()));
    hasher_.Update(piece);
    if (Status st = spool_->Append(piece); !st.ok()) {
      // A full volume is the server's trouble and passes: come back later.
      return Error(ctx_, req_, 503, st.message());
    }
    return std::nullopt;
  }

  http::Response Finish() override {
    if (spool_->size() == 0)
      return Error(ctx_, req_, 400, "the upload is empty (0 bytes); nothing was kept");
    hasher_.Finish();
    if (Status st = VerifyDigests(expected_, hasher_); !st.ok())
      return FromStatus(ctx_, req_, st);
    auto kept = KeepUpload(ctx_, customer_, std::move(spool_), HexEncode(hasher_.sha256()),
                           DeclaredMediaType(req_.Header("content-type")), head_);
    if (!kept.ok()) return FromStatus(ctx_, req_, kept.status());
    http::Response res = Json(201, hydra::UploadJson(ctx_.urls, *kept));
    res.Set("Location", ctx_.urls.Upload(customer_, kept->id));
    return res;
  }

 private:
  Context& ctx_;
  http::Request req_;  // headers only: for error bodies and the media type
  int64_t customer_;
  ExpectedDigests expected_;
  StreamHasher hasher_;
  std::unique_ptr<SpoolFile> spool_;  // removed with the sink unless kept
  std::string head_;                  // the first bytes, for sniffing
};

http::BodyStart StartUpload(Context& ctx, http::Request& req) {
  http::BodyStart out;
  Access a = AuthorizeCustomer(ctx, req);
  if (a.denied) {
    out.reject = *a.denied;
    return out;
  }
  const std::string& length = req.Header("content-length");
  if (!length.empty()) {
    // The framing check already refused malformed lengths; a huge one is refused before any
    // byte of the body is read.
    uint64_t n = std::strtoull(length.c_str(), nullptr, 10);
    if (n > static_cast<uint64_t>(ctx.config.max_upload_bytes)) {
      out.reject = Error(ctx, req, 413,
                         "upload of " + length + " bytes is larger than " +
                             MaxText(ctx.config.max_upload_bytes));
      return out;
    }
    if (n == 0) {
      out.reject = Error(ctx, req, 400, "the upload is empty (0 bytes); nothing was kept");
      return out;
    }
  }
  auto expected = ParseDigestHeaders(req.Header("content-digest"), req.Header("content-md5"));
  if (!expected.ok()) {
    out.reject = FromStatus(ctx, req, expected.status());
    return out;
  }
  int64_t announced = length.empty() ? 0 : std::strtoll(length.c_str(), nullptr, 10);
  // Room for the whole announced body plus the reserve ingest keeps for the database.
  auto spool = SpoolFile::Create(ctx.blobs.ScratchDir(), ctx.config.min_free_bytes, announced);
  if (!spool.ok()) {
    out.reject = Error(ctx, req, 503, spool.status().message());
    return out;
  }
  http::Request headers_only = req;
  out.sink = std::make_unique<UploadSink>(ctx, std::move(headers_only), a.customer,
                                          std::move(*expected), std::move(*spool));
  return out;
}

}  // namespace

Result<Upload> KeepUpload(Context& ctx, int64_t customer, std::unique_ptr<SpoolFile> spool,
                          const std::string& sha256_hex, std::string media_type,
                          const std::string& head) {
  if (media_type.empty()) media_type = SniffMediaType(head);
  if (media_type.empty()) media_type = "application/octet-stream";
  QUIRE_RETURN_IF_ERROR(spool->Sync());
  Upload u;
  u.customer = customer;
  u.id = RandomHex(16);
  u.media_type = media_type;
  u.size = spool->size();
  u.sha256 = sha256_hex;
  u.created_ms = NowMs();
  u.expires_ms = u.created_ms + static_cast<int64_t>(ctx.config.upload_ttl_hours * 3600e3);
  QUIRE_RETURN_IF_ERROR(ctx.blobs.PutFile(UploadKey(customer, u.id), spool->path()));
  spool->Release();  // PutFile consumed it
  if (Status st = ctx.store.CreateUpload(u); !st.ok()) {
    (void)ctx.blobs.DeletePrefix(UploadBlobPrefix(customer, u.id));
    return st;
  }
  return u;
}

Result<Upload> KeepUploadBytes(Context& ctx, int64_t customer, const std::string& bytes,
                               const std::string& media_type) {
  auto spool = SpoolFile::Create(ctx.blobs.ScratchDir(), ctx.config.min_free_bytes,
                                 static_cast<int64_t>(bytes.size()));
  if (!spool.ok()) return Status::Unavailable(spool.status().message());
  QUIRE_RETURN_IF_ERROR((*spool)->Append(bytes));
  StreamHasher hasher;
  hasher.Update(bytes);
  hasher.Finish();
  return KeepUpload(ctx, customer, std::move(*spool), HexEncode(hasher.sha256()), media_type,
                    bytes.substr(0, kSniffBytes));
}

void DiscardUpload(Context& ctx, int64_t customer, const std::string& id) {
  if (ctx.store.DeleteUpload(customer, id).ok())
    (void)ctx.blobs.DeletePrefix(UploadBlobPrefix(customer, id));
}

void RegisterUploads(http::Router& r, Context& ctx) {
  r.AddStreaming("POST", "/customers/{c}/uploads",
                 [&ctx](http::Request& req) { return StartUpload(ctx, req); });

  r.Add("GET", "/customers/{c}/uploads", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    PageRequest page = ParsePageRequest(req.Query("page"), req.Query("pageSize"));
    auto list = ctx.store.ListUploads(a.customer, page);
    return CollectionResponse(ctx, req, page, list, hydra::UploadJson);
  });

  r.Add("GET", "/customers/{c}/uploads/{u}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    if (!IsUploadId(req.Param("u"))) return Error(ctx, req, 404, "upload not found");
    auto up = ctx.store.GetUpload(a.customer, req.Param("u"));
    if (!up.ok()) return FromStatus(ctx, req, up.status());
    return Json(200, hydra::UploadJson(ctx.urls, *up));
  });

  r.Add("DELETE", "/customers/{c}/uploads/{u}", [&ctx](http::Request& req) {
    Access a = AuthorizeCustomer(ctx, req);
    if (a.denied) return *a.denied;
    const std::string& id = req.Param("u");
    if (!IsUploadId(id)) return Error(ctx, req, 404, "upload not found");
    if (Status st = ctx.store.DeleteUpload(a.customer, id); !st.ok())
      return FromStatus(ctx, req, st);
    if (Status st = ctx.blobs.DeletePrefix(UploadBlobPrefix(a.customer, id)); !st.ok())
      return FromStatus(ctx, req, st);
    return http::Response(204, "application/json", "");
  });
}

}  // namespace quire::api
