#include "http/router.h"

#include <set>

namespace quire::http {

std::vector<std::string> SplitPath(const std::string& path) {
  std::vector<std::string> out;
  size_t pos = path.empty() || path[0] != '/' ? 0 : 1;
  if (path.size() <= 1) return out;
  while (true) {
    size_t slash = path.find('/', pos);
    out.push_back(PercentDecode(path.substr(pos, slash - pos)));
    if (slash == std::string::npos) break;
    pos = slash + 1;
  }
  return out;
}

void Router::AddRoute(Route r) {
  r.param_names.assign(r.segments.size(), std::string());
  for (size_t i = 0; i < r.segments.size(); ++i) {
    const std::string& seg = r.segments[i];
    if (seg.size() > 2 && seg.front() == '{' && seg.back() == '}')
      r.param_names[i] = seg.substr(1, seg.size() - 2);
  }
  r.rest = !r.segments.empty() && r.segments.back().rfind("{*", 0) == 0;
  if (r.rest) r.param_names.back() = r.segments.back().substr(2, r.segments.back().size() - 3);
  routes_.push_back(std::move(r));
}

void Router::Add(const std::string& method, const std::string& pattern, Handler handler,
                 RouteOptions options) {
  AddRoute({method, SplitPath(pattern), std::move(handler), options, nullptr, {}, false});
}

void Router::AddStreaming(const std::string& method, const std::string& pattern,
                          StreamHandler handler, RouteOptions options) {
  AddRoute({method, SplitPath(pattern), nullptr, options, std::move(handler), {}, false});
}

bool Router::MatchPath(const Route& r, const std::vector<std::string>& segs) {
  const size_t n = r.segments.size();
  if (r.rest ? segs.size() < n : segs.size() != n) return false;
  const size_t fixed = r.rest ? n - 1 : n;
  for (size_t i = 0; i < fixed; ++i) {
    if (r.param_names[i].empty() ? r.segments[i] != segs[i] : segs[i].empty()) return false;
  }
  return true;
}

void Router::FillParams(const Route& r, const std::vector<std::string>& segs,
                        std::map<std::string, std::string>* params) {
  params->clear();
  const size_t fixed = r.rest ? r.segments.size() - 1 : r.segments.size();
  for (size_t i = 0; i < fixed; ++i)
    if (!r.param_names[i].empty()) (*params)[r.param_names[i]] = segs[i];
  if (r.rest) {
    std::string joined;
    for (size_t k = fixed; k < segs.size(); ++k) {
      if (k > fixed) joined += '/';
      joined += segs[k];
    }
    (*params)[r.param_names.back()] = std::move(joined);
  }
}

Match Router::Find(Request& req) const {
  const std::vector<std::string> segs = SplitPath(req.path);
  Match m;
  m.status = 404;
  bool any_cors = false, any_path = false;
  const std::string& method = req.method == "HEAD" ? std::string("GET") : req.method;
  // A path under a public delivery root (/iiif-img, /thumbs, /file) that matches no route is
  // still a delivery answer: it carries CORS like every other one.
  bool cors_root = false;
  for (const Route& r : routes_) {
    if (r.options.cors && !segs.empty() && !r.segments.empty() && r.param_names[0].empty() &&
        r.segments[0] == segs[0])
      cors_root = true;
    if (!MatchPath(r, segs)) continue;
    any_path = true;
    any_cors = any_cors || r.options.cors;
    if (r.method == method) {
      if (r.stream)
        m.stream = &r.stream;
      else
        m.handler = &r.handler;
      m.options = r.options;
      m.status = 200;
      FillParams(r, segs, &req.params);
      return m;  // the first route of the method wins; Allow is only for 405 and OPTIONS
    }
  }
  if (any_path) {
    // No route of this method: Allow lists the methods the path has.
    std::set<std::string> allowed;
    for (const Route& r : routes_)
      if (MatchPath(r, segs)) allowed.insert(r.method);
    if (allowed.count("GET")) allowed.insert("HEAD");
    allowed.insert("OPTIONS");
    for (auto& a : allowed) m.allow += (m.allow.empty() ? "" : ", ") + a;
    m.status = req.method == "OPTIONS" ? 204 : 405;
    m.options.cors = any_cors;
  } else {
    m.options.cors = cors_root;
  }
  return m;
}

}  // namespace quire::http
