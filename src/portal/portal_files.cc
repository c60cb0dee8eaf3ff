#include "portal/portal_files.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace quire::portal {

namespace fs = std::filesystem;

namespace {

std::string ContentType(const std::string& path) {
  static const std::map<std::string, std::string> kTypes = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".ico", "image/x-icon"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".woff2", "font/woff2"}};
  auto it = kTypes.find(fs::path(path).extension().string());
  return it == kTypes.end() ? "application/octet-stream" : it->second;
}

// What every portal answer carries: the page may talk only to this origin, may not be framed
// by another site, and its files are not to be sniffed as another type.
void Harden(http::Response& res) {
  res.Set("Content-Security-Policy",
          "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
          "frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
  res.Set("X-Content-Type-Options", "nosniff");
  res.Set("X-Frame-Options", "DENY");
  res.Set("Referrer-Policy", "same-origin");
}

}  // namespace

std::string PortalFiles::DefaultDir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "portal";
  return (exe.parent_path() / "portal").string();
}

Status PortalFiles::Load(const std::string& dir) {
  dir_ = dir;
  std::error_code ec;
  if (!fs::is_regular_file(fs::path(dir) / "index.html", ec))
    return Status::NotFound("no portal at " + dir + " (index.html missing)");
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    std::string rel = fs::relative(it->path(), dir, ec).generic_string();
    std::ifstream in(it->path(), std::ios::binary);
    std::ostringstream body;
    body << in.rdbuf();
    files_[rel] = File{ContentType(rel), body.str()};
  }
  if (ec) return Status::IOError("reading the portal at " + dir + ": " + ec.message());
  return Status::Ok();
}

http::Response PortalFiles::Serve(const std::string& path) const {
  if (files_.empty()) {
    http::Response res(503, "text/plain; charset=utf-8",
                       "The portal's files are not installed (looked in " + dir_ +
                           "); build Quire with `make build`, or pass --portal-dir.\n");
    return res;
  }
  std::string name = path.empty() ? "index.html" : path;
  auto it = files_.find(name);
  bool page = false;
  if (it == files_.end()) {
    // A page URL (/portal/batches/12) reloads the application; a missing asset is a 404.
    // Page URLs live below customers/ (an image id may hold a dot); elsewhere a name with an
    // extension is a file.
    std::string last = name.substr(name.rfind('/') + 1);
    if (name.rfind("customers/", 0) != 0 && last.find('.') != std::string::npos)
      return http::Response(404, "text/plain; charset=utf-8", "not found\n");
    it = files_.find("index.html");
    page = true;
  }
  http::Response res(200, it->second.content_type, it->second.body);
  // Pages and modules change with the build; revalidating them is cheap on loopback and
  // keeps a browser from mixing old and new modules.
  res.Set("Cache-Control", page || name == "index.html" || name.rfind("vendor/", 0) != 0
                               ? "no-cache"
                               : "public, max-age=86400");
  Harden(res);
  return res;
}

void PortalFiles::Register(http::Router& router) const {
  router.Add("GET", "/portal", [](http::Request&) {
    http::Response res(301, "text/plain; charset=utf-8", "");
    res.Set("Location", "/portal/");
    return res;
  });
  router.Add("GET", "/portal/{*path}",
             [this](http::Request& req) { return Serve(req.Param("path")); });
}

}  // namespace quire::portal
