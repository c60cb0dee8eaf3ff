#include "client/inputs.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "model/asset.h"
#include "model/media_sniff.h"

namespace quire::client {

namespace fs = std::filesystem;

namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string ReadHead(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string head(kSniffBytes, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(std::max<std::streamsize>(0, in.gcount())));
  return head;
}

Item FileItem(const fs::path& file, const std::string& id, int64_t space) {
  Item it;
  it.label = file.string();
  it.path = file.string();
  it.id = id;
  it.space = space;
  std::error_code ec;
  it.size = static_cast<int64_t>(fs::file_size(file, ec));
  if (ec) {
    it.error = "cannot read the file: " + ec.message();
  } else if (it.size == 0) {
    it.error = "empty file (0 bytes)";
  } else {
    it.media_type = SniffMediaType(ReadHead(it.path));
    // A PDF is a book: registered as an image (family I), the server splits it into pages.
    if (it.media_type == "application/pdf")
      it.extra["family"] = "I";
    else if (it.media_type.empty() || it.media_type.rfind("image/", 0) != 0)
      it.error = "not an image (its first bytes match no image format Quire reads)";
  }
  if (it.error.empty())
    if (std::string why = ImageIdProblem(id); !why.empty()) it.error = "cannot be an image id: " + why;
  return it;
}

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ';')) {
    while (!part.empty() && part.front() == ' ') part.erase(0, 1);
    while (!part.empty() && part.back() == ' ') part.pop_back();
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

std::string MediaTypeFromName(const std::string& origin) {
  std::string path = origin.substr(0, origin.find_first_of("?#"));
  size_t dot = path.rfind('.');
  if (dot == std::string::npos || path.find('/', dot) != std::string::npos) return "";
  static const std::map<std::string, std::string> kTypes = {
      {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"}, {"png", "image/png"},
      {"tif", "image/tiff"}, {"tiff", "image/tiff"}, {"webp", "image/webp"},
      {"jp2", "image/jp2"},  {"gif", "image/gif"},   {"pdf", "application/pdf"}};
  auto it = kTypes.find(Lower(path.substr(dot + 1)));
  return it == kTypes.end() ? "" : it->second;
}

}  // namespace

Result<std::vector<Item>> ScanFiles(const std::vector<std::string>& paths, int64_t space) {
  std::vector<Item> out;
  for (const std::string& p : paths) {
    fs::path root(p);
    std::error_code ec;
    if (!fs::exists(root, ec)) return Status::Invalid("no such file or folder: " + p);
    if (fs::is_regular_file(root, ec)) {
      out.push_back(FileItem(root, root.filename().string(), space));
      continue;
    }
    if (!fs::is_directory(root, ec)) return Status::Invalid("not a file or folder: " + p);
    std::vector<fs::path> files;
    for (auto it = fs::recursive_directory_iterator(root, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      std::string name = it->path().filename().string();
      if (!name.empty() && name[0] == '.') {
        if (it->is_directory()) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file()) files.push_back(it->path());
    }
    if (ec) return Status::Invalid("cannot read folder " + p + ": " + ec.message());
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) {
      std::string id = fs::relative(f, root).generic_string();
      std::replace(id.begin(), id.end(), '/', '_');
      out.push_back(FileItem(f, id, space));
    }
  }
  std::map<std::string, std::string> seen;  // id → first label
  for (Item& it : out) {
    auto [pos, fresh] = seen.emplace(it.id, it.label);
    if (!fresh && it.error.empty())
      it.error = "duplicate image id '" + it.id + "' (also " + pos->second + ")";
  }
  return out;
}

std::vector<std::vector<std::string>> ParseCsvText(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        field += c;
      }
      continue;
    }
    if (c == '"') {
      quoted = true;
      any = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
      any = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      if (any || !field.empty()) row.push_back(std::move(field));
      rows.push_back(std::move(row));
      row.clear();
      field.clear();
      any = false;
    } else {
      field += c;
      any = true;
    }
  }
  if (any || !field.empty()) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
  }
  return rows;
}

Result<std::vector<Item>> ReadCsv(const std::string& csv_path, int64_t default_space) {
  std::ifstream in(csv_path, std::ios::binary);
  if (!in) return Status::Invalid("cannot read the CSV file " + csv_path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto rows = ParseCsvText(ss.str());
  if (rows.empty()) return Status::Invalid(csv_path + " is empty: it needs a header row");
  std::map<std::string, size_t> col;
  for (size_t i = 0; i < rows[0].size(); ++i) {
    std::string name = Lower(rows[0][i]);
    while (!name.empty() && name.back() == ' ') name.pop_back();
    while (!name.empty() && name.front() == ' ') name.erase(0, 1);
    if (name == "modelid") name = "id";
    if (name == "mediatype") name = "mediatype";
    col[name] = i;
  }
  if (!col.count("origin"))
    return Status::Invalid(csv_path + ": the header row has no 'origin' column (found: " +
                           [&] {
                             std::string s;
                             for (auto& h : rows[0]) s += (s.empty() ? "" : ", ") + h;
                             return s;
                           }() +
                           ")");
  if (!col.count("space") && default_space <= 0)
    return Status::Invalid(csv_path + ": no 'space' column and no --space");
  std::vector<Item> out;
  std::map<std::pair<int64_t, std::string>, size_t> seen;
  for (size_t r = 1; r < rows.size(); ++r) {
    const auto& row = rows[r];
    if (row.empty() || (row.size() == 1 && row[0].empty())) continue;  // blank line
    auto get = [&](const std::string& name) -> std::string {
      auto it = col.find(name);
      return it == col.end() || it->second >= row.size() ? "" : row[it->second];
    };
    Item it;
    it.label = fs::path(csv_path).filename().string() + " line " + std::to_string(r + 1);
    it.origin = get("origin");
    it.id = get("id");
    it.space = default_space;
    std::string space = get("space");
    if (!space.empty()) {
      try {
        size_t used = 0;
        it.space = std::stoll(space, &used);
        if (used != space.size() || it.space < 0) throw std::invalid_argument("");
      } catch (...) {
        it.error = "space '" + space + "' is not a number";
      }
    }
    it.media_type = get("mediatype");
    if (it.media_type.empty()) it.media_type = MediaTypeFromName(it.origin);
    if (it.error.empty() && it.origin.empty()) it.error = "origin is empty";
    if (it.error.empty() && it.media_type.empty())
      it.error = "mediaType is empty and cannot be told from the origin's name";
    if (it.error.empty() && !it.id.empty())
      if (std::string why = ImageIdProblem(it.id); !why.empty()) it.error = "invalid id: " + why;
    if (it.id.empty()) {
      // Ids must be stable so a re-run finds what the first run made: the origin's last
      // segment, as DLCS users usually name images.
      std::string o = it.origin.substr(0, it.origin.find_first_of("?#"));
      it.id = o.substr(o.rfind('/') + 1);
      if (it.error.empty() && !ImageIdProblem(it.id).empty())
        it.error = "no id column value and the origin's name cannot be an id";
    }
    for (const char* s : {"string1", "string2", "string3"})
      if (std::string v = get(s); !v.empty()) it.extra[s] = v;
    for (const char* n : {"number1", "number2", "number3", "maxunauthorised"}) {
      std::string v = get(n);
      if (v.empty()) continue;
      std::string key = std::string(n) == "maxunauthorised" ? "maxUnauthorised" : n;
      try {
        size_t used = 0;
        long long x = std::stoll(v, &used);
        if (used != v.size()) throw std::invalid_argument("");
        it.extra[key] = x;
      } catch (...) {
        if (it.error.empty()) it.error = key + " '" + v + "' is not a whole number";
      }
    }
    if (std::string v = get("tags"); !v.empty()) it.extra["tags"] = SplitList(v);
    if (std::string v = get("roles"); !v.empty()) it.extra["roles"] = SplitList(v);
    if (std::string v = get("deliverychannels"); !v.empty())
      it.extra["deliveryChannels"] = SplitList(v);
    auto key = std::make_pair(it.space, it.id);
    if (auto [pos, fresh] = seen.emplace(key, r + 1); !fresh && it.error.empty())
      it.error = "duplicate id '" + it.id + "' in space " + std::to_string(it.space) +
                 " (also line " + std::to_string(pos->second) + ")";
    out.push_back(std::move(it));
  }
  return out;
}

}  // namespace quire::client
