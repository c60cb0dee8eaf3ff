#include "api/image_input.h"

#include <cctype>
#include <limits>

#include "model/upload.h"

namespace quire::api {

using json = nlohmann::json;

namespace {

constexpr const char* kReadOnly[] = {"width",    "height",       "batch",
                                     "finished", "created",      "ingesting",
                                     "error",    "imageService", "thumbnailImageService",
                                     "duration"};

bool ReadString(const json& j, const char* name, std::string* out, std::vector<std::string>* p,
                size_t max_len = 4000) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return false;
  if (!it->is_string()) {
    p->push_back(std::string("'") + name + "' must be a string");
    return false;
  }
  std::string v = it->get<std::string>();
  if (v.size() > max_len) {
    p->push_back(std::string("'") + name + "' must be at most " + std::to_string(max_len) +
                 " characters");
    return false;
  }
  *out = std::move(v);
  return true;
}

void ReadInt(const json& j, const char* name, int64_t* out, std::vector<std::string>* p,
             int64_t lo = std::numeric_limits<int64_t>::min() / 2,
             int64_t hi = std::numeric_limits<int64_t>::max() / 2) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return;
  if (!it->is_number_integer()) {
    p->push_back(std::string("'") + name + "' must be an integer");
    return;
  }
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(hi)) {
    p->push_back(std::string("'") + name + "' is out of range");
    return;
  }
  int64_t v = it->get<int64_t>();
  if (v < lo || v > hi) {
    p->push_back(std::string("'") + name + "' is out of range");
    return;
  }
  *out = v;
}

void ReadStrings(const json& j, const char* name, std::vector<std::string>* out,
                 std::vector<std::string>* p) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return;
  if (!it->is_array()) {
    p->push_back(std::string("'") + name + "' must be an array of strings");
    return;
  }
  std::vector<std::string> v;
  for (auto& e : *it) {
    if (!e.is_string() || e.get<std::string>().size() > 1000) {
      p->push_back(std::string("'") + name + "' must be an array of strings");
      return;
    }
    v.push_back(e.get<std::string>());
  }
  if (v.size() > 100) {
    p->push_back(std::string("'") + name + "' may hold at most 100 entries");
    return;
  }
  *out = std::move(v);
}

bool IsMediaType(const std::string& m) {
  size_t slash = m.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 >= m.size() || m.size() > 200)
    return false;
  for (char c : m)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '.' || c == '+' ||
          c == '-' || c == '_'))
      return false;
  return m.find('/', slash + 1) == std::string::npos;
}

}  // namespace

std::string OriginProblem(const std::string& origin, const Config& config) {
  if (origin.empty()) return "'origin' must not be empty";
  for (unsigned char c : origin)
    if (c <= 0x20 || c == 0x7f) return "'origin' must not contain spaces or control characters";
  auto starts = [&](const char* p) { return origin.rfind(p, 0) == 0; };
  if (starts("http://") || starts("https://")) {
    size_t host_start = origin.find("://") + 3;
    if (host_start >= origin.size() || origin[host_start] == '/')
      return "'origin' has no host: " + origin;
    return "";
  }
  if (starts("s3://")) return "";
  if (starts("file://")) {
    if (config.origin_file_root.empty())
      return "file:// origins are not allowed on this server (no --origin-file-root)";
    return "";
  }
  return "'origin' must be an http, https, s3 or file URL: " + origin;
}

std::optional<std::string> UploadOfOrigin(const std::string& origin, const Config& config,
                                          int64_t* customer) {
  std::string base = config.PublicUrl() + "/customers/";
  if (origin.size() <= base.size() || origin.compare(0, base.size(), base) != 0)
    return std::nullopt;
  std::string rest = origin.substr(base.size());  // "{c}/uploads/{u}"
  size_t slash = rest.find('/');
  if (slash == std::string::npos || slash == 0 || slash > 18) return std::nullopt;
  for (size_t i = 0; i < slash; ++i)
    if (!std::isdigit(static_cast<unsigned char>(rest[i]))) return std::nullopt;
  const std::string kMid = "/uploads/";
  if (rest.compare(slash, kMid.size(), kMid) != 0) return std::nullopt;
  std::string id = rest.substr(slash + kMid.size());
  if (!IsUploadId(id)) return std::nullopt;
  *customer = std::stoll(rest.substr(0, slash));
  return id;
}

std::vector<std::string> ReadImageInput(const json& j, ImageInputMode mode, const Config& config,
                                        Asset* a, bool* id_given) {
  std::vector<std::string> p;
  *id_given = false;
  if (!j.is_object()) return {"each member must be a JSON object"};
  for (const char* ro : kReadOnly)
    if (j.contains(ro)) p.push_back(std::string("'") + ro + "' is read-only and cannot be set");

  // id (or the old clients' modelId)
  const char* id_field = j.contains("id") ? "id" : (j.contains("modelId") ? "modelId" : nullptr);
  if (id_field != nullptr && !j[id_field].is_null()) {
    const json& v = j[id_field];
    if (!v.is_string()) {
      p.push_back(std::string("'") + id_field + "' must be a string");
    } else if (!v.get<std::string>().empty()) {
      std::string id = v.get<std::string>();
      if (mode == ImageInputMode::kQueueMember) {
        if (std::string why = ImageIdProblem(id); !why.empty())
          p.push_back("invalid id '" + (id.size() > 80 ? id.substr(0, 80) + "…" : id) +
                      "': " + why);
        else
          a->id = id;
        *id_given = true;
      } else if (id != a->id) {
        p.push_back("'id' in the body (" + id.substr(0, 80) + ") differs from the URL");
      }
    }
  }

  if (mode == ImageInputMode::kQueueMember) {
    auto it = j.find("space");
    if (it == j.end() || it->is_null()) {
      p.push_back("'space' is required");
    } else if (!it->is_number_integer() || it->get<int64_t>() < 0 ||
               (it->is_number_unsigned() && it->get<uint64_t>() > (1ULL << 53))) {
      p.push_back("'space' must be a non-negative integer");
    } else {
      a->space = it->get<int64_t>();
    }
  } else if (auto it = j.find("space"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() != a->space)
      p.push_back("'space' in the body differs from the URL");
  }

  bool required = mode != ImageInputMode::kPatch;
  if (auto it = j.find("origin"); it == j.end() || it->is_null()) {
    if (required) p.push_back("'origin' is required");
  } else if (ReadString(j, "origin", &a->origin, &p)) {
    if (std::string why = OriginProblem(a->origin, config); !why.empty()) p.push_back(why);
    a->upload.clear();
    int64_t owner = 0;
    if (auto upload = UploadOfOrigin(a->origin, config, &owner)) {
      if (owner != a->customer)
        p.push_back("'origin' names an upload of another customer: " + a->origin);
      else
        a->upload = *upload;
    }
  }

  bool media_given = ReadString(j, "mediaType", &a->media_type, &p, 200);
  if (!media_given && required && (!j.contains("mediaType") || j["mediaType"].is_null()))
    p.push_back("'mediaType' is required");
  if (media_given && !IsMediaType(a->media_type))
    p.push_back("'mediaType' must look like type/subtype, got '" + a->media_type.substr(0, 80) +
                "'");

  std::string fam;
  if (auto it = j.find("family"); it != j.end() && !it->is_null()) {
    if (it->is_string())
      fam = it->get<std::string>();
    else if (it->is_number_integer() && it->get<int64_t>() > 0 && it->get<int64_t>() < 128)
      fam = std::string(1, static_cast<char>(it->get<int64_t>()));
    if (fam != "I" && fam != "T" && fam != "F")
      p.push_back("'family' must be \"I\", \"T\" or \"F\" (or 73, 84, 70)");
  }
  const std::string previous_family = a->family;
  a->family = FamilyForMediaType(a->media_type);
  // A PDF sent as an image ("family": "I") is split into its pages, each an image; a PATCH
  // that names no family keeps it so.
  if (a->media_type == "application/pdf" &&
      (fam == "I" || (fam.empty() && mode == ImageInputMode::kPatch && previous_family == "I")))
    a->family = "I";

  if (auto it = j.find("deliveryChannels"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) {
      p.push_back("'deliveryChannels' must be an array");
    } else {
      std::vector<DeliveryChannel> channels;
      bool ok = true;
      for (auto& c : *it) {
        if (c.is_string()) {
          channels.push_back({c.get<std::string>(), ""});
        } else if (c.is_object() && c.contains("channel") && c["channel"].is_string() &&
                   (!c.contains("policy") || c["policy"].is_string() || c["policy"].is_null())) {
          std::string policy =
              c.contains("policy") && c["policy"].is_string() ? c["policy"].get<std::string>() : "";
          channels.push_back({c["channel"].get<std::string>(), policy});
        } else {
          ok = false;
        }
      }
      if (!ok)
        p.push_back("'deliveryChannels' entries must be {\"channel\": string, \"policy\": string}");
      else
        a->delivery_channels = std::move(channels);
    }
  } else if (a->delivery_channels.empty() && !a->media_type.empty()) {
    a->delivery_channels = DefaultDeliveryChannels(ChannelMediaType(*a));
  }
  if (!a->media_type.empty())
    if (std::string why = DeliveryChannelsProblem(a->delivery_channels, ChannelMediaType(*a));
        !why.empty())
      p.push_back(why);

  ReadStrings(j, "tags", &a->tags, &p);
  ReadStrings(j, "roles", &a->roles, &p);
  ReadString(j, "string1", &a->string1, &p);
  ReadString(j, "string2", &a->string2, &p);
  ReadString(j, "string3", &a->string3, &p);
  ReadInt(j, "number1", &a->number1, &p);
  ReadInt(j, "number2", &a->number2, &p);
  ReadInt(j, "number3", &a->number3, &p);
  ReadInt(j, "maxUnauthorised", &a->max_unauthorised, &p, -1, 1000000000);
  return p;
}

}  // namespace quire::api
