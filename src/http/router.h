// Routes a request to its handler by method and path pattern. Patterns are '/'-separated
// literals and {name} parameters; a last segment {*name} takes the rest of the path.
// A path that matches some route but not the method gets 405 with Allow; OPTIONS on any
// matching path is answered with Allow (and CORS for delivery routes) automatically.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "http/message.h"
#include "ops/route_family.h"

namespace quire::http {

using Handler = std::function<Response(Request&)>;
// A route whose body is streamed (uploads): called once the headers are in; see BodySink.
using StreamHandler = std::function<BodyStart(Request&)>;

struct RouteOptions {
  // Runs on the CPU pool rather than an I/O thread (libvips work).
  bool offload = false;
  // Public delivery route: CORS headers on every answer, including errors and OPTIONS.
  bool cors = false;
  // How metrics and logs count it (a handler may narrow it per response).
  ops::Family family = ops::Family::kApi;
};

struct Match {
  const Handler* handler = nullptr;
  const StreamHandler* stream = nullptr;  // set instead of handler for a streaming route
  RouteOptions options;
  int status = 200;        // 404 or 405 when no handler
  std::string allow;       // for 405 and OPTIONS
};

class Router {
 public:
  void Add(const std::string& method, const std::string& pattern, Handler handler,
           RouteOptions options = {});
  // The body is not read into Request::body: `handler` sees the headers and hands back a sink
  // that receives the body as it arrives (no body size limit but the sink's own).
  void AddStreaming(const std::string& method, const std::string& pattern,
                    StreamHandler handler, RouteOptions options = {});
  // Fills req.params on success.
  Match Find(Request& req) const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;
    Handler handler;
    RouteOptions options;
    StreamHandler stream;
    // From the pattern, once: which segments are {name} parameters (and their names), and
    // whether the last is a {*rest}.
    std::vector<std::string> param_names;  // "" for a literal segment
    bool rest = false;
  };
  void AddRoute(Route r);
  // Whether `segs` fit the route's pattern; nothing is copied.
  static bool MatchPath(const Route& r, const std::vector<std::string>& segs);
  // The parameters of a route `segs` fit.
  static void FillParams(const Route& r, const std::vector<std::string>& segs,
                         std::map<std::string, std::string>* params);
  std::vector<Route> routes_;
};

// Splits "/a/b%2Fc/" into {"a", "b/c", ""}: segments percent-decoded.
std::vector<std::string> SplitPath(const std::string& path);

}  // namespace quire::http
