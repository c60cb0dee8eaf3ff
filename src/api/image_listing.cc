#include "api/image_listing.h"

#include <charconv>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

namespace quire::api {

namespace {

const std::set<std::string> kImageOrderFields = {"id",      "created", "width",   "height",
                                                 "string1", "string2", "string3", "number1",
                                                 "number2", "number3"};

bool ParseInt(const std::string& s, int64_t* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

// An integer that fits int64 (an unsigned above INT64_MAX would wrap to a negative filter).
bool IsInt64(const nlohmann::json& v) {
  return v.is_number_integer() &&
         !(v.is_number_unsigned() &&
           v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
}

void Keep(std::string* keep, const std::string& name, const std::string& raw_value) {
  *keep += (keep->empty() ? "" : "&") + name + "=" + http::PercentEncodeQueryValue(raw_value);
}

// orderBy / orderByDescending, shared by images and batches.
std::string ReadOrder(const http::Request& req, const std::set<std::string>& allowed,
                      std::string* field, bool* descending, std::string* keep) {
  bool asc = req.HasQuery("orderBy"), desc = req.HasQuery("orderByDescending");
  if (asc && desc) return "use either orderBy or orderByDescending, not both";
  if (!asc && !desc) return "";
  std::string name = req.Query(asc ? "orderBy" : "orderByDescending");
  if (!allowed.count(name)) {
    std::string list;
    for (auto& f : allowed) list += (list.empty() ? "" : ", ") + f;
    return "cannot order by '" + name + "'; use one of " + list;
  }
  *field = name;
  *descending = desc;
  Keep(keep, asc ? "orderBy" : "orderByDescending", name);
  return "";
}

}  // namespace

std::string ReadAssetQuery(const http::Request& req, AssetQuery* q, std::string* keep) {
  q->page = ParsePageRequest(req.Query("page"), req.Query("pageSize"));
  if (std::string p = ReadOrder(req, kImageOrderFields, &q->order_by, &q->descending, keep);
      !p.empty())
    return p;
  std::optional<std::string>* strings[] = {&q->string1, &q->string2, &q->string3};
  std::optional<int64_t>* numbers[] = {&q->number1, &q->number2, &q->number3};
  for (int i = 0; i < 3; ++i) {
    std::string s = "string" + std::to_string(i + 1), n = "number" + std::to_string(i + 1);
    if (req.HasQuery(s)) {
      *strings[i] = req.Query(s);
      Keep(keep, s, req.Query(s));
    }
    if (req.HasQuery(n)) {
      int64_t v;
      if (!ParseInt(req.Query(n), &v)) return "'" + n + "' must be an integer";
      *numbers[i] = v;
      Keep(keep, n, req.Query(n));
    }
  }
  if (req.HasQuery("q")) {
    std::string raw = req.Query("q");
    auto j = nlohmann::json::parse(raw, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return "'q' must be a JSON object";
    for (auto& [key, value] : j.items()) {
      bool matched = false;
      for (int i = 0; i < 3; ++i) {
        if (key == "string" + std::to_string(i + 1)) {
          if (!value.is_string()) return "'q." + key + "' must be a string";
          *strings[i] = value.get<std::string>();
          matched = true;
        } else if (key == "number" + std::to_string(i + 1)) {
          if (!IsInt64(value)) return "'q." + key + "' must be an integer";
          *numbers[i] = value.get<int64_t>();
          matched = true;
        }
      }
      if (key == "space") {
        if (!IsInt64(value)) return "'q.space' must be an integer";
        q->space = value.get<int64_t>();
        matched = true;
      }
      if (!matched) return "'q' cannot filter on '" + key + "'";
    }
    Keep(keep, "q", raw);
  }
  if (req.HasQuery("space")) {
    int64_t v;
    if (!ParseInt(req.Query("space"), &v)) return "'space' must be an integer";
    q->space = v;
    Keep(keep, "space", req.Query("space"));
  }
  return "";
}

std::string ReadBatchOrder(const http::Request& req, BatchQuery* q, std::string* keep) {
  static const std::set<std::string> kFields = {"id", "submitted", "finished"};
  q->page = ParsePageRequest(req.Query("page"), req.Query("pageSize"));
  return ReadOrder(req, kFields, &q->order_by, &q->descending, keep);
}

}  // namespace quire::api
