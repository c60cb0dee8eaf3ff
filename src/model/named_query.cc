#include "model/named_query.h"

#include <algorithm>
#include <charconv>

#include "model/role.h"

namespace quire {

namespace {

std::optional<int64_t> ParseInteger(const std::string& s) {
  int64_t v = 0;
  const char* end = s.data() + s.size();
  auto r = std::from_chars(s.data(), end, v);
  if (s.empty() || r.ec != std::errc() || r.ptr != end) return std::nullopt;
  return v;
}

TemplateValue ParseValue(const std::string& v) {
  TemplateValue out;
  if (v.size() >= 2 && v.size() <= 4 && v[0] == 'p' && v[1] != '0' &&
      std::all_of(v.begin() + 1, v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    out.param = std::stoi(v.substr(1));
    return out;
  }
  out.literal = v;
  return out;
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t at = s.find(sep, start);
    out.push_back(s.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return out;
    start = at + 1;
  }
}

std::string Trim(const std::string& s) {
  size_t a = s.find_first_not_of(' '), b = s.find_last_not_of(' ');
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// A comma list of integers (batch ids). Empty optional when one is not an integer.
std::optional<std::vector<int64_t>> ParseIdList(const std::string& s) {
  std::vector<int64_t> ids;
  for (const std::string& part : Split(s, ',')) {
    auto v = ParseInteger(Trim(part));
    if (!v) return std::nullopt;
    ids.push_back(*v);
  }
  return ids;
}

Status ParseOrder(const std::string& value, std::vector<OrderField>* out) {
  std::string spaced = value;
  std::replace(spaced.begin(), spaced.end(), '+', ' ');
  for (const std::string& raw : Split(spaced, ';')) {
    std::string term = Trim(raw);
    std::string field = term, direction;
    if (size_t sp = term.find(' '); sp != std::string::npos) {
      field = term.substr(0, sp);
      direction = Trim(term.substr(sp + 1));
    }
    static const char* kFields[] = {"s1", "s2", "s3", "n1", "n2", "n3"};
    auto it = std::find(std::begin(kFields), std::end(kFields), field);
    if (it == std::end(kFields))
      return Status::Invalid("assetOrder: unknown field '" + field +
                             "' (one of s1, s2, s3, n1, n2, n3)");
    if (!direction.empty() && direction != "asc" && direction != "desc")
      return Status::Invalid("assetOrder: '" + term +
                             "' must be 'field', 'field asc' or "
                             "'field desc'");
    out->push_back({static_cast<int>(it - std::begin(kFields)), direction == "desc"});
  }
  return Status::Ok();
}

// Literals that must be integers are checked when the template is written.
Status CheckIntegerLiteral(const std::string& key, const TemplateValue& v, bool list) {
  if (v.param > 0) return Status::Ok();
  bool ok = list ? ParseIdList(v.literal).has_value() : ParseInteger(v.literal).has_value();
  if (!ok)
    return Status::Invalid("'" + key + "=" + v.literal + "': the value must be " +
                           (list ? "a comma list of integers" : "an integer") +
                           " or a parameter p1, p2, …");
  return Status::Ok();
}

// A blob-key segment: [A-Za-z0-9._-] kept, every other byte as ~XX.
std::string KeySegment(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
        c == '_' || c == '-') {
      out += static_cast<char>(c);
    } else {
      out += '~';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out.empty() ? "~" : out;
}

}  // namespace

std::string NamedQueryNameProblem(const std::string& name) {
  if (name.empty() || name.size() > 100 || !std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
      }))
    return "'name' must be 1-100 characters of A-Z, a-z, 0-9, '.', '_' and '-'";
  return "";
}

std::string RoleNameProblem(const std::string& name) {
  if (name.empty() || name.size() > 64 || name == "token" ||
      !std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
      }))
    return "a role name is 1-64 characters of a-z, 0-9, '.', '_' and '-', and not 'token'";
  return "";
}

bool NamedQueryTemplate::UsesParameters() const {
  auto uses = [](const std::optional<TemplateValue>& v) { return v && v->param > 0; };
  if (uses(space) || uses(space_name) || uses(batches)) return true;
  for (int i = 0; i < 3; ++i)
    if (uses(strings[i]) || uses(numbers[i])) return true;
  return false;
}

Result<NamedQueryTemplate> ParseNamedQueryTemplate(const std::string& text) {
  NamedQueryTemplate t;
  if (text.empty()) return Status::Invalid("'template' must not be empty");
  std::vector<std::string> seen;
  for (const std::string& pair : Split(text, '&')) {
    size_t eq = pair.find('=');
    if (eq == std::string::npos || pair.find('=', eq + 1) != std::string::npos)
      return Status::Invalid("template: '" + pair + "' must be exactly one key=value pair");
    std::string key = pair.substr(0, eq), value = pair.substr(eq + 1);
    if (key == "canvas") key = "assetOrder";
    if (key != "#") {
      if (std::find(seen.begin(), seen.end(), key) != seen.end())
        return Status::Invalid("template: '" + key + "' appears more than once");
      seen.push_back(key);
    }
    TemplateValue v = ParseValue(value);
    if (key == "space") {
      QUIRE_RETURN_IF_ERROR(CheckIntegerLiteral(key, v, false));
      t.space = v;
    } else if (key == "spacename") {
      t.space_name = v;
    } else if (key.size() == 2 && (key[0] == 's' || key[0] == 'n') && key[1] >= '1' &&
               key[1] <= '3') {
      int i = key[1] - '1';
      if (key[0] == 's') {
        t.strings[i] = v;
      } else {
        QUIRE_RETURN_IF_ERROR(CheckIntegerLiteral(key, v, false));
        t.numbers[i] = v;
      }
    } else if (key == "batch") {
      QUIRE_RETURN_IF_ERROR(CheckIntegerLiteral(key, v, true));
      t.batches = v;
    } else if (key == "assetOrder") {
      QUIRE_RETURN_IF_ERROR(ParseOrder(value, &t.order));
    } else if (key == "#") {
      t.literals.push_back(value);
    } else if (key == "objectname") {
      t.object_name = v;
    } else if (key == "redactedmessage") {
      t.redacted_message = v;
    } else if (key == "manifest") {
      return Status::Invalid(
          "template: 'manifest' is not supported (Quire has no manifests "
          "field)");
    } else if (key == "coverpage" || key == "sequence" || key == "roles") {
      // accepted and ignored (spec §3)
    } else {
      return Status::Invalid("template: unknown key '" + key + "'");
    }
  }
  return t;
}

Result<AssetSelection> ResolveNamedQuery(const NamedQueryTemplate& t, int64_t customer,
                                         const std::vector<std::string>& url_params) {
  std::vector<std::string> params = url_params;
  params.insert(params.end(), t.literals.begin(), t.literals.end());
  if (params.empty() && t.UsesParameters())
    return Status::Invalid("this named query needs parameters: /{customer}/{name}/p1/p2/…");
  // The value of a criterion, or nullopt when it names a parameter beyond the count.
  auto value = [&](const std::optional<TemplateValue>& v) -> std::optional<std::string> {
    if (!v) return std::nullopt;
    if (v->param == 0) return v->literal;
    if (static_cast<size_t>(v->param) > params.size()) return std::nullopt;
    return params[v->param - 1];
  };
  AssetSelection sel;
  sel.customer = customer;
  sel.order = t.order;
  if (auto s = value(t.space)) {
    auto id = ParseInteger(*s);
    if (!id) return Status::Invalid("space '" + *s + "' is not an integer");
    sel.space = *id;
  }
  if (!sel.space) sel.space_name = value(t.space_name);
  for (int i = 0; i < 3; ++i) {
    sel.strings[i] = value(t.strings[i]);
    if (auto n = value(t.numbers[i])) {
      auto v = ParseInteger(*n);
      if (!v)
        return Status::Invalid("n" + std::to_string(i + 1) + " '" + *n + "' is not an integer");
      sel.numbers[i] = *v;
    }
  }
  if (auto b = value(t.batches)) {
    auto ids = ParseIdList(*b);
    if (!ids) return Status::Invalid("batch '" + *b + "' is not a comma list of integers");
    sel.batches = std::move(*ids);
  }
  return sel;
}

std::string NamedQueryPdfKey(int64_t customer, const std::string& name,
                             const std::vector<std::string>& params) {
  std::string key = std::to_string(customer) + "/pdf/" + KeySegment(name) + "/";
  for (size_t i = 0; i < params.size(); ++i) key += (i ? "/" : "") + KeySegment(params[i]);
  return params.empty() ? key + "~" : key;
}

}  // namespace quire
