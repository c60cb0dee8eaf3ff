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

void Router::Add(const std::string& method, const std::string& pattern, Handler handler,
                 RouteOptions options) {
  routes_.push_back({method, SplitPath(pattern), std::move(handler), options, nullptr});
}

void Router::AddStreaming(const std::string& method, const std::string& pattern,
                          StreamHandler handler, RouteOptions options) {
  routes_.push_back({method, SplitPath(pattern), nullptr, options, std::move(handler)});
}

bool Router::MatchPath(const Route& r, const std::vector<std::string>& segs,
                       std::map<std::string, std::string>* params) {
  size_t n = r.segments.size();
  bool rest = n > 0 && r.segments.back().rfind("{*", 0) == 0;
  if (rest ? segs.size() < n : segs.size() != n) return false;
  // Literals first: most routes fail here, before any parameter is copied.
  size_t fixed = rest ? n - 1 : n;
  for (size_t i = 0; i < fixed; ++i) {
    const std::string& p = r.segments[i];
    bool param = p.size() > 2 && p.front() == '{' && p.back() == '}';
    if (param ? segs[i].empty() : p != segs[i]) return false;
  }
  params->clear();
  for (size_t i = 0; i < fixed; ++i) {
    const std::string& p = r.segments[i];
    if (p.size() > 2 && p.front() == '{' && p.back() == '}')
      (*params)[p.substr(1, p.size() - 2)] = segs[i];
  }
  if (rest) {
    std::string joined;
    for (size_t k = fixed; k < segs.size(); ++k) joined += (k > fixed ? "/" : "") + segs[k];
    (*params)[r.segments.back().substr(2, r.segments.back().size() - 3)] = joined;
  }
  return true;
}

Match Router::Find(Request& req) const {
  std::vector<std::string> segs = SplitPath(req.path);
  std::map<std::string, std::string> params;
  std::set<std::string> allowed;
  Match m;
  m.status = 404;
  bool any_cors = false;
  const std::string& method = req.method == "HEAD" ? std::string("GET") : req.method;
  // A path under a public delivery root (/iiif-img, /thumbs, /file) that matches no route is
  // still a delivery answer: it carries CORS like every other one.
  bool cors_root = false;
  for (const Route& r : routes_) {
    if (r.options.cors && !segs.empty() && !r.segments.empty() && r.segments[0] == segs[0] &&
        r.segments[0].front() != '{')
      cors_root = true;
    if (!MatchPath(r, segs, &params)) continue;
    allowed.insert(r.method);
    any_cors = any_cors || r.options.cors;
    if (r.method == method && m.handler == nullptr && m.stream == nullptr) {
      if (r.stream)
        m.stream = &r.stream;
      else
        m.handler = &r.handler;
      m.options = r.options;
      m.status = 200;
      req.params = params;
    }
  }
  if (!allowed.empty()) {
    if (allowed.count("GET")) allowed.insert("HEAD");
    allowed.insert("OPTIONS");
    for (auto& a : allowed) m.allow += (m.allow.empty() ? "" : ", ") + a;
    if (m.handler == nullptr && m.stream == nullptr) {
      m.status = req.method == "OPTIONS" ? 204 : 405;
      m.options.cors = any_cors;
    }
  } else {
    m.options.cors = cors_root;
  }
  return m;
}

}  // namespace quire::http
