#include "presentation/manifest.h"

#include <algorithm>
#include <cstdlib>

#include "http/message.h"

namespace quire::presentation {

namespace {

using ojson = nlohmann::ordered_json;

constexpr const char* kImage2Context = "http://iiif.io/api/image/2/context.json";
constexpr const char* kImage3Context = "http://iiif.io/api/image/3/context.json";
constexpr const char* kPresentation2Context = "http://iiif.io/api/presentation/2/context.json";
constexpr const char* kPresentation3Context = "http://iiif.io/api/presentation/3/context.json";
constexpr const char* kAuth2Context = "http://iiif.io/api/auth/2/context.json";

// Everything a canvas needs about one image, worked out once for both versions.
struct CanvasParts {
  std::string canvas_id;            // C
  std::string asset_path;           // {c}/{s}/{id}, numeric customer, encoded
  std::vector<ThumbnailSize> open;  // OPEN, smallest first
  bool image_service = false;       // iiif-img: body from /iiif-img/, IS2 + IS3
  int body_w = 0, body_h = 0;       // b
  bool has_thumb = false;           // t
  int thumb_w = 0, thumb_h = 0;
};

// An array of the given values, moved in (an initializer list would copy each of them).
ojson Array(ojson first) {
  ojson a = ojson::array();
  a.push_back(std::move(first));
  return a;
}
ojson Array(ojson first, ojson second) {
  ojson a = Array(std::move(first));
  a.push_back(std::move(second));
  return a;
}

// w×h scaled to fit inside box×box (never upscaled), at least 1×1.
std::pair<int, int> Confine(int w, int h, int box) {
  if (w <= box && h <= box) return {w, h};
  double f = std::min(double(box) / w, double(box) / h);
  return {std::max(1, int(w * f + 0.5)), std::max(1, int(h * f + 0.5))};
}

CanvasParts Parts(const ManifestSpec& spec, const Asset& a, size_t n) {
  CanvasParts p;
  p.asset_path = std::to_string(a.customer) + "/" + std::to_string(a.space) + "/" +
                 http::PercentEncodeSegment(a.id);
  p.canvas_id = spec.base + "/iiif-img/" + p.asset_path + "/canvas/c/" + std::to_string(n);
  p.open = a.OpenThumbnails();
  std::sort(p.open.begin(), p.open.end(), [](const ThumbnailSize& x, const ThumbnailSize& y) {
    return std::max(x.width, x.height) < std::max(y.width, y.height);
  });
  p.image_service = a.HasChannel("iiif-img");
  if (!p.open.empty()) {
    p.body_w = p.open.back().width;
    p.body_h = p.open.back().height;
  } else {
    std::tie(p.body_w, p.body_h) = Confine(a.width, a.height, 200);
  }
  if (a.HasChannel("thumbs") && !p.open.empty()) {
    const ThumbnailSize* best = &p.open.front();
    for (const ThumbnailSize& t : p.open)
      if (std::abs(std::max(t.width, t.height) - 200) <
          std::abs(std::max(best->width, best->height) - 200))
        best = &t;
    p.has_thumb = true;
    p.thumb_w = best->width;
    p.thumb_h = best->height;
  }
  return p;
}

std::string SizePath(int w, int h) {
  return "/full/" + std::to_string(w) + "," + std::to_string(h) + "/0/default.jpg";
}

ojson Sizes(const std::vector<ThumbnailSize>& open) {
  ojson sizes = ojson::array();
  for (const ThumbnailSize& t : open) sizes.push_back({{"width", t.width}, {"height", t.height}});
  return sizes;
}

ojson ThumbService2(const ManifestSpec& spec, const CanvasParts& p, bool typed) {
  ojson s;
  s["@context"] = kImage2Context;
  s["@id"] = spec.base + "/thumbs/v2/" + p.asset_path;
  if (typed) s["@type"] = "ImageService2";
  s["profile"] = "http://iiif.io/api/image/2/level0.json";
  s["sizes"] = Sizes(p.open);
  return s;
}

ojson ThumbService3(const ManifestSpec& spec, const CanvasParts& p) {
  ojson s;
  s["@context"] = kImage3Context;
  s["id"] = spec.base + "/thumbs/" + p.asset_path;
  s["type"] = "ImageService3";
  s["profile"] = "level0";
  s["sizes"] = Sizes(p.open);
  return s;
}

ojson ImageService2(const ManifestSpec& spec, const CanvasParts& p, const Asset& a, bool typed) {
  ojson s;
  s["@context"] = kImage2Context;
  s["@id"] = spec.base + "/iiif-img/v2/" + p.asset_path;
  if (typed) s["@type"] = "ImageService2";
  s["profile"] = "http://iiif.io/api/image/2/level2.json";
  s["width"] = a.width;
  s["height"] = a.height;
  return s;
}

ojson ImageService3(const ManifestSpec& spec, const CanvasParts& p, const Asset& a) {
  ojson s;
  s["@context"] = kImage3Context;
  s["id"] = spec.base + "/iiif-img/" + p.asset_path;
  s["type"] = "ImageService3";
  s["profile"] = "level2";
  s["width"] = a.width;
  s["height"] = a.height;
  return s;
}

std::string Joined(const std::vector<std::string>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + v[i];
  return out;
}

// (label, value) of the canvas metadata, in order.
std::vector<std::pair<std::string, std::string>> MetadataPairs(const Asset& a) {
  return {{"String 1", a.string1},
          {"String 2", a.string2},
          {"String 3", a.string3},
          {"Number 1", std::to_string(a.number1)},
          {"Number 2", std::to_string(a.number2)},
          {"Number 3", std::to_string(a.number3)},
          {"Tags", Joined(a.tags)},
          {"Roles", Joined(a.roles)}};
}

std::string BodyId(const ManifestSpec& spec, const CanvasParts& p) {
  return spec.base + (p.image_service ? "/iiif-img/" : "/thumbs/") + p.asset_path +
         SizePath(p.body_w, p.body_h);
}

std::string ThumbId(const ManifestSpec& spec, const CanvasParts& p) {
  return spec.base + "/thumbs/" + p.asset_path + SizePath(p.thumb_w, p.thumb_h);
}

ojson Canvas3(const ManifestSpec& spec, const Asset& a, size_t n) {
  CanvasParts p = Parts(spec, a, n);
  ojson c;
  c["id"] = p.canvas_id;
  c["type"] = "Canvas";
  c["label"] = {{"en", {"Canvas " + std::to_string(n)}}};
  c["width"] = a.width;
  c["height"] = a.height;
  ojson metadata = ojson::array();
  for (auto& [label, value] : MetadataPairs(a))
    metadata.push_back({{"label", {{"none", {label}}}}, {"value", {{"none", {value}}}}});
  c["metadata"] = std::move(metadata);
  if (p.has_thumb) {
    ojson t;
    t["id"] = ThumbId(spec, p);
    t["type"] = "Image";
    t["format"] = "image/jpeg";
    t["width"] = p.thumb_w;
    t["height"] = p.thumb_h;
    t["service"] = Array(ThumbService2(spec, p, true), ThumbService3(spec, p));
    c["thumbnail"] = Array(std::move(t));
  }
  ojson body;
  body["id"] = BodyId(spec, p);
  body["type"] = "Image";
  body["format"] = "image/jpeg";
  body["width"] = p.body_w;
  body["height"] = p.body_h;
  if (p.image_service) {
    ojson is2 = ImageService2(spec, p, a, true), is3 = ImageService3(spec, p, a);
    ojson probe = spec.probe ? spec.probe(a) : ojson();
    if (!probe.is_null()) {
      // Viewers find the probe next to the image services, and inside each of them.
      is2["service"] = Array(probe);
      is3["service"] = Array(probe);
    }
    body["service"] = Array(std::move(is2), std::move(is3));
    if (!probe.is_null()) body["service"].push_back(std::move(probe));
  } else {
    body["service"] = Array(ThumbService2(spec, p, true), ThumbService3(spec, p));
  }
  ojson anno;
  anno["id"] = p.canvas_id + "/page/image";
  anno["type"] = "Annotation";
  anno["motivation"] = "painting";
  anno["target"] = p.canvas_id;
  anno["body"] = std::move(body);
  ojson page;
  page["id"] = p.canvas_id + "/page";
  page["type"] = "AnnotationPage";
  page["items"] = Array(std::move(anno));
  c["items"] = Array(std::move(page));
  if (a.HasChannel("file")) {
    ojson r;
    r["id"] = spec.base + "/file/" + p.asset_path;
    r["type"] = "Image";
    r["format"] = a.media_type;
    r["label"] = {{"none", {"File " + a.id}}};
    c["rendering"] = Array(std::move(r));
  }
  return c;
}

ojson Canvas2(const ManifestSpec& spec, const Asset& a, size_t n) {
  CanvasParts p = Parts(spec, a, n);
  ojson c;
  c["@id"] = p.canvas_id;
  c["@type"] = "sc:Canvas";
  c["label"] = "Canvas " + std::to_string(n);
  c["width"] = a.width;
  c["height"] = a.height;
  ojson metadata = ojson::array();
  for (auto& [label, value] : MetadataPairs(a))
    metadata.push_back({{"label", label}, {"value", value}});
  c["metadata"] = std::move(metadata);
  if (p.has_thumb) {
    ojson t;
    t["@id"] = ThumbId(spec, p);
    t["service"] = ThumbService2(spec, p, false);
    c["thumbnail"] = std::move(t);
  }
  ojson resource;
  resource["@id"] = BodyId(spec, p);
  resource["@type"] = "dctypes:Image";
  resource["format"] = "image/jpeg";
  resource["width"] = p.body_w;
  resource["height"] = p.body_h;
  resource["service"] =
      p.image_service ? ImageService2(spec, p, a, false) : ThumbService2(spec, p, false);
  ojson anno;
  anno["@id"] = p.canvas_id + "/imageanno/0";
  anno["@type"] = "oa:Annotation";
  anno["motivation"] = "sc:painting";
  anno["on"] = p.canvas_id;
  anno["resource"] = std::move(resource);
  c["images"] = Array(std::move(anno));
  if (a.HasChannel("file")) {
    ojson r;
    r["@id"] = spec.base + "/file/" + p.asset_path;
    r["format"] = a.media_type;
    r["label"] = "File " + a.id;
    c["rendering"] = std::move(r);
  }
  return c;
}

}  // namespace

void AppendManifestInputs(const Asset& a, std::string* out) {
  // Unit separators between fields and record separators between lists: no field's text can
  // make two different images read the same.
  auto field = [out](const std::string& v) {
    out->append(v);
    out->push_back('\x1f');
  };
  auto number = [&field](int64_t v) { field(std::to_string(v)); };
  number(a.customer);
  number(a.space);
  field(a.id);
  field(a.media_type);
  number(a.width);
  number(a.height);
  number(a.max_unauthorised);
  for (const DeliveryChannel& ch : a.delivery_channels) field(ch.channel + "/" + ch.policy);
  out->push_back('\x1e');
  for (const ThumbnailSize& t : a.thumbnails) number(int64_t(t.width) << 32 | t.height);
  out->push_back('\x1e');
  for (const std::string& t : a.tags) field(t);
  out->push_back('\x1e');
  for (const std::string& r : a.roles) field(r);
  out->push_back('\x1e');
  field(a.string1);
  field(a.string2);
  field(a.string3);
  number(a.number1);
  number(a.number2);
  number(a.number3);
  out->push_back('\x1d');
}

bool ManifestEligible(const Asset& a) {
  if (a.width <= 0 || a.height <= 0) return false;
  if (a.HasChannel("iiif-img")) return true;
  return a.HasChannel("thumbs") && !a.OpenThumbnails().empty();
}

nlohmann::ordered_json BuildManifest(PresentationVersion version, const ManifestSpec& spec,
                                     const std::vector<Asset>& assets) {
  ojson m;
  if (version == PresentationVersion::kV3) {
    ojson items = ojson::array();
    for (size_t i = 0; i < assets.size(); ++i) items.push_back(Canvas3(spec, assets[i], i + 1));
    bool probed = false;
    for (const ojson& c : items)
      for (const ojson& s : c["items"][0]["items"][0]["body"]["service"])
        probed = probed || s.value("type", "") == "AuthProbeService2";
    m["@context"] =
        probed ? Array(kAuth2Context, kPresentation3Context) : ojson(kPresentation3Context);
    m["id"] = spec.manifest_id;
    m["type"] = "Manifest";
    m["label"] = {{"en", {spec.label}}};
    if (!items.empty() && items[0].contains("thumbnail")) m["thumbnail"] = items[0]["thumbnail"];
    m["items"] = std::move(items);
    return m;
  }
  ojson canvases = ojson::array();
  for (size_t i = 0; i < assets.size(); ++i) canvases.push_back(Canvas2(spec, assets[i], i + 1));
  m["@context"] = kPresentation2Context;
  m["@id"] = spec.manifest_id;
  m["@type"] = "sc:Manifest";
  m["label"] = spec.label;
  if (!canvases.empty() && canvases[0].contains("thumbnail"))
    m["thumbnail"] = canvases[0]["thumbnail"];
  ojson sequence;
  sequence["@id"] = spec.manifest_id + "/sequence/0";
  sequence["@type"] = "sc:Sequence";
  sequence["label"] = "Sequence 0";
  sequence["canvases"] = std::move(canvases);
  m["sequences"] = Array(std::move(sequence));
  return m;
}

std::string ManifestContentType(PresentationVersion version) {
  return std::string("application/ld+json;profile=\"http://iiif.io/api/presentation/") +
         (version == PresentationVersion::kV3 ? "3" : "2") + "/context.json\"";
}

}  // namespace quire::presentation
