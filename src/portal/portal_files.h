// The portal's static files (spec/platform.md §5), served at /portal/ by the same process on
// every node. The files are the built portal directory (CMake copies web/portal and the npm
// packages it uses beside the binary); they are read once at start and served from memory.
// A path that names no file and has no extension is a page of the portal (its router runs in
// the browser): it gets index.html, so every page URL reloads to the same view.
// Thread-safe after Load.
#pragma once

#include <map>
#include <string>

#include "core/status.h"
#include "http/router.h"

namespace quire::portal {

class PortalFiles {
 public:
  // Reads every file below `dir`. NotFound when `dir` has no index.html.
  Status Load(const std::string& dir);
  // GET /portal → /portal/, GET /portal/{*path}. Without loaded files those answer 503.
  void Register(http::Router& router) const;
  // The default directory: portal/ beside the running binary.
  static std::string DefaultDir();

 private:
  struct File {
    std::string content_type;
    std::string body;
  };
  http::Response Serve(const std::string& path) const;
  std::string dir_;
  std::map<std::string, File> files_;
};

}  // namespace quire::portal
