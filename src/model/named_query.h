// Named queries (vocab:NamedQuery, spec/presentation-auth.md §3): a stored template that
// selects and orders a customer's images from the parameters of a /iiif-resource URL.
// The template language is parsed (and so validated) here; resolving it against the
// parameters gives an AssetSelection the store runs. Pure, thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace quire {

struct NamedQuery {
  int64_t customer = 0;  // the owner
  std::string id;        // a UUID
  std::string name;
  bool global = false;  // usable by every customer (on that customer's own images)
  std::string template_text;
  int64_t created_ms = 0;
};

// `name`: [A-Za-z0-9._-]{1,100}. Empty when valid, else the message.
std::string NamedQueryNameProblem(const std::string& name);

// A criterion of a template: the N-th parameter (`p<N>`, N ≥ 1), or a literal.
struct TemplateValue {
  int param = 0;  // 0: literal
  std::string literal;
};

// An ordering field: 0..2 string1..3, 3..5 number1..3.
struct OrderField {
  int field = 0;
  bool descending = false;
};

struct NamedQueryTemplate {
  std::optional<TemplateValue> space, space_name;
  std::array<std::optional<TemplateValue>, 3> strings, numbers;
  std::optional<TemplateValue> batches;
  std::vector<OrderField> order;
  std::vector<std::string> literals;  // `#=v`, appended to the URL parameters in order
  std::optional<TemplateValue> object_name, redacted_message;  // PDF only
  // Whether any criterion names a parameter.
  bool UsesParameters() const;
};

// Parses `key=value&…`; Invalid naming the fault (unknown key, unknown order field, a pair
// without exactly one '=', a repeated key, a literal that must be an integer and is not).
Result<NamedQueryTemplate> ParseNamedQueryTemplate(const std::string& text);

// What a resolved query selects: the requesting customer's manifest-eligible images that
// meet every criterion set, in `order` then (space, id).
struct AssetSelection {
  int64_t customer = 0;
  std::optional<int64_t> space;
  std::optional<std::string> space_name;  // used only when `space` is unset
  std::array<std::optional<std::string>, 3> strings;
  std::array<std::optional<int64_t>, 3> numbers;
  std::optional<std::vector<int64_t>> batches;  // member of any of these
  std::vector<OrderField> order;
};

// Applies `url_params` (then the template's literals) to the template. Invalid when the
// template names parameters and there are none, or a space/number/batch value is not an
// integer. A parameter beyond the count drops its criterion.
Result<AssetSelection> ResolveNamedQuery(const NamedQueryTemplate& t, int64_t customer,
                                         const std::vector<std::string>& url_params);

// Where the PDF of a query run is stored (spec §4: `{c}/pdf/{name}/{args}`, each segment
// with bytes other than [A-Za-z0-9._-] written ~XX): the document and its control record
// (JSON: fingerprint, created, itemCount, sizeBytes) are the two blobs below it.
std::string NamedQueryPdfKey(int64_t customer, const std::string& name,
                             const std::vector<std::string>& params);
inline std::string NamedQueryPdfDocumentKey(const std::string& key) {
  return key + "/document.pdf";
}
inline std::string NamedQueryPdfControlKey(const std::string& key) { return key + "/control.json"; }

}  // namespace quire
