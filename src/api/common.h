// Shared by the resource files of api/: JSON responses, the error body, status mapping,
// authentication and the per-customer access rule (another customer's resource → 404).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "api/context.h"
#include "core/status.h"
#include "hydra/hydra.h"
#include "http/message.h"
#include "model/ids.h"

namespace quire::api {

using json = nlohmann::json;

http::Response Json(int status, const json& body);
http::Response Error(const Context& ctx, const http::Request& req, int status,
                     const std::string& detail);
int HttpStatusFor(Code code);
http::Response FromStatus(const Context& ctx, const http::Request& req, const Status& st);

// Parses the body as a JSON object. Invalid with a precise message otherwise.
Result<json> ParseJsonObject(const http::Request& req);

// Validation problems as one 400 message: "first. second".
std::string JoinProblems(const std::vector<std::string>& problems);


struct Caller {
  int64_t customer = 0;
  bool admin = false;
};

// Who is calling: from HTTP Basic `key:secret`, or else from the portal's session cookie
// (then a request other than GET/HEAD/OPTIONS must carry the session's X-CSRF-Token:
// Forbidden without it). Unauthorized when absent or wrong.
Result<Caller> Authenticate(Context& ctx, const http::Request& req);
// Checks one key and secret (cached, constant-time). Unauthorized when wrong.
Result<Caller> CheckKeySecret(Context& ctx, const std::string& key, const std::string& secret);
// The portal session cookie's token (`quire_session`), or "" when the request has none.
std::string SessionToken(const http::Request& req);
// What the store keeps of a session token.
std::string SessionTokenHash(const std::string& token);

// The outcome of checking access to `/customers/{c}/…`.
struct Access {
  std::optional<http::Response> denied;  // set when the request must stop here
  Caller caller;
  int64_t customer = 0;
};
// Authenticates, then checks that the caller may act for path customer {c}: its own, or any
// when admin. Unknown or foreign customers → 404 (existence is not revealed).
Access AuthorizeCustomer(Context& ctx, const http::Request& req);
// Authenticates and requires the administrator (403 otherwise).
Access AuthorizeAdmin(Context& ctx, const http::Request& req);

// The {s} of the request's URL when the customer has that space; otherwise nullopt with
// *denied set: 404 "space not found" for a space that is not there, the store's status (503
// while the database is away) for anything else.
std::optional<int64_t> ExistingSpace(Context& ctx, const http::Request& req, int64_t customer,
                                     std::optional<http::Response>* denied);

// The collection URL of a request (public base + path, no query).
std::string RequestUrl(const Context& ctx, const http::Request& req);

// A list the store gives whole (not paged), answered as a collection of one page holding
// every member.
http::Response WholeCollection(const Context& ctx, const http::Request& req, json members);

// Answers a page from the store as a Hydra collection, each item mapped by
// `to_json(ctx.urls, item)`; a store error becomes its status. `keep` carries query parameters
// into the paging links.
template <typename T, typename ToJson>
http::Response CollectionResponse(const Context& ctx, const http::Request& req,
                                  const PageRequest& page, const Result<Page<T>>& list,
                                  ToJson to_json, const std::string& keep = "") {
  if (!list.ok()) return FromStatus(ctx, req, list.status());
  json members = json::array();
  for (const T& item : list->items) members.push_back(to_json(ctx.urls, item));
  return Json(200, hydra::Collection(RequestUrl(ctx, req), page, list->total, std::move(members),
                                     keep));
}

}  // namespace quire::api
