#include "http/message.h"

#include <strings.h>

namespace quire::http {

static const std::string kEmpty;

const std::string& Request::Header(const std::string& name) const {
  for (auto& [k, v] : headers)
    if (k == name) return v;
  return kEmpty;
}

std::string Request::Cookie(std::string_view name) const {
  for (const auto& [header, value] : headers) {
    if (header != "cookie") continue;
    size_t pos = 0;
    while (pos < value.size()) {
      size_t end = value.find(';', pos);
      if (end == std::string::npos) end = value.size();
      std::string_view part(value.data() + pos, end - pos);
      while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
      if (part.size() > name.size() && part.substr(0, name.size()) == name &&
          part[name.size()] == '=')
        return std::string(part.substr(name.size() + 1));
      pos = end + 1;
    }
  }
  return "";
}

static bool FindQuery(const std::string& query, const std::string& name, std::string* value) {
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    if (amp == std::string::npos) amp = query.size();
    std::string part = query.substr(pos, amp - pos);
    size_t eq = part.find('=');
    std::string key = PercentDecode(part.substr(0, eq), true);
    if (key == name) {
      if (value) *value = eq == std::string::npos ? "" : PercentDecode(part.substr(eq + 1), true);
      return true;
    }
    pos = amp + 1;
  }
  return false;
}

std::string Request::Query(const std::string& name) const {
  std::string v;
  FindQuery(query, name, &v);
  return v;
}

bool Request::HasQuery(const std::string& name) const { return FindQuery(query, name, nullptr); }

const std::string& Request::Param(const std::string& name) const {
  auto it = params.find(name);
  return it == params.end() ? kEmpty : it->second;
}

void Response::Set(const std::string& name, std::string value) {
  for (auto& [k, v] : headers)
    if (strcasecmp(k.c_str(), name.c_str()) == 0) {
      v = std::move(value);
      return;
    }
  headers.emplace_back(name, std::move(value));
}

const std::string* Response::Get(const std::string& name) const {
  for (auto& [k, v] : headers)
    if (strcasecmp(k.c_str(), name.c_str()) == 0) return &v;
  return nullptr;
}

static int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(const std::string& s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      int hi = HexValue(s[i + 1]), lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

namespace {

bool IsUnreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// Sub-delimiters and ':' '@' may stand in a path segment (RFC 3986 §3.3) but not in a query
// value, where '+' means a space and '&' '=' separate parameters.
bool IsSegmentChar(unsigned char c) {
  return IsUnreserved(c) || c == ':' || c == '@' || c == '!' || c == '$' || c == '\'' ||
         c == '(' || c == ')' || c == '*' || c == '+' || c == ',' || c == ';' || c == '=';
}

std::string PercentEncode(const std::string& s, bool (*keep)(unsigned char)) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (keep(c)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace

std::string PercentEncodeQueryValue(const std::string& s) { return PercentEncode(s, IsUnreserved); }

std::string PercentEncodeSegment(const std::string& s) { return PercentEncode(s, IsSegmentChar); }

}  // namespace quire::http
