#include "support/ingest_fixtures.h"

#include <regex>
#include <stdexcept>
#include <thread>
#include <vips/vips8>

#include "core/vips_init.h"

namespace quire::test {

using vips::VImage;
using json = nlohmann::json;

namespace {

void Init() {
  if (!quire::InitVips("quire-test")) throw std::runtime_error("libvips failed to start");
}

// 8-bit sRGB, w x h: a diagonal gradient, concentric rings, libvips' "eye" test pattern and a
// little noise, mixed differently per band and per seed.
VImage Synthetic(int w, int h, int seed) {
  Init();
  VImage xy = VImage::xyz(w, h);
  VImage x = xy[0], y = xy[1];
  double s = 1.0 + 0.37 * (seed % 7);
  VImage gradient = (x * (255.0 / w) + y * (255.0 / h)) * 0.5;
  VImage rings = (VImage::zone(w, h) + 1.0) * 127.5;
  VImage eye = (VImage::eye(w, h, VImage::option()->set("factor", 0.5)) + 1.0) * 127.5;
  VImage noise = VImage::gaussnoise(
      w, h, VImage::option()->set("sigma", 18.0)->set("mean", 0.0)->set("seed", seed));
  VImage wave = ((x * (0.05 * s)).sin() * (y * (0.03 * s)).cos() + 1.0) * 127.5;
  VImage r = gradient * 0.6 + rings * 0.4 + noise;
  VImage g = eye * 0.5 + wave * 0.5 + noise * 0.5;
  VImage b = wave * 0.4 + (255.0 - gradient) * 0.6 - noise * 0.5;
  VImage rgb = r.bandjoin(g).bandjoin(b);
  rgb = rgb.cast(VIPS_FORMAT_UCHAR)
            .copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_sRGB));
  // cast clips to 0..255. Materialise once so the encoders do not recompute the expression per
  // band/pass.
  return rgb.copy_memory();
}

std::string ToBuffer(const VImage& image, const char* suffix, vips::VOption* options = nullptr) {
  void* buf = nullptr;
  size_t len = 0;
  image.write_to_buffer(suffix, &buf, &len, options);
  std::string out(static_cast<const char*>(buf), len);
  g_free(buf);
  return out;
}

uint32_t Crc32(const unsigned char* data, size_t n, uint32_t crc = 0) {
  static uint32_t table[256];
  static bool ready = [] {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    return true;
  }();
  (void)ready;
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ data[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

void PutU32(std::string& s, uint32_t v) {
  s.push_back(static_cast<char>(v >> 24));
  s.push_back(static_cast<char>(v >> 16));
  s.push_back(static_cast<char>(v >> 8));
  s.push_back(static_cast<char>(v));
}

void PngChunk(std::string& out, const char* type, const std::string& data) {
  PutU32(out, static_cast<uint32_t>(data.size()));
  std::string td = std::string(type, 4) + data;
  out += td;
  PutU32(out, Crc32(reinterpret_cast<const unsigned char*>(td.data()), td.size()));
}

std::string Join(const std::string& base, const std::string& path_or_url) {
  if (path_or_url.rfind("http://", 0) == 0 || path_or_url.rfind("https://", 0) == 0)
    return path_or_url;
  return base + path_or_url;
}

}  // namespace

std::string MakeJpeg(int w, int h, int seed, int quality) {
  return ToBuffer(Synthetic(w, h, seed), ".jpg", VImage::option()->set("Q", quality));
}

std::string MakePng(int w, int h, int seed, bool alpha) {
  VImage img = Synthetic(w, h, seed);
  if (alpha) {
    VImage a = (VImage::xyz(w, h)[0] * (255.0 / w)).cast(VIPS_FORMAT_UCHAR);
    img = img.bandjoin(a).copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_sRGB));
  }
  return ToBuffer(img, ".png", VImage::option()->set("compression", 3));
}

std::string MakePng16(int w, int h, int seed) {
  VImage img = (Synthetic(w, h, seed).cast(VIPS_FORMAT_USHORT) * 257)
                   .cast(VIPS_FORMAT_USHORT)
                   .copy(VImage::option()->set("interpretation", VIPS_INTERPRETATION_RGB16));
  return ToBuffer(img, ".png", VImage::option()->set("bitdepth", 16)->set("compression", 3));
}

std::string MakeTiff(int w, int h, int seed) {
  return ToBuffer(Synthetic(w, h, seed), ".tif",
                  VImage::option()->set("compression", VIPS_FOREIGN_TIFF_COMPRESSION_LZW));
}

std::string MakeWebp(int w, int h, int seed) {
  return ToBuffer(Synthetic(w, h, seed), ".webp", VImage::option()->set("Q", 80));
}

std::string MakeGreyJpeg(int w, int h, int seed) {
  return ToBuffer(Synthetic(w, h, seed).colourspace(VIPS_INTERPRETATION_B_W), ".jpg",
                  VImage::option()->set("Q", 85));
}

std::string MakeCmykJpeg(int w, int h, int seed) {
  VImage cmyk = Synthetic(w, h, seed).icc_transform("cmyk", VImage::option()->set("depth", 8));
  return ToBuffer(cmyk, ".jpg", VImage::option()->set("Q", 85));
}

std::string MakeOrientedJpeg(int w, int h, int orientation, int seed) {
  VImage img = Synthetic(w, h, seed).copy();
  img.set(VIPS_META_ORIENTATION, orientation);
  return ToBuffer(img, ".jpg", VImage::option()->set("Q", 85));
}

std::string MakePngHeaderOnly(uint32_t w, uint32_t h) {
  std::string png = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  PutU32(ihdr, w);
  PutU32(ihdr, h);
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8-bit RGB, deflate, adaptive, no interlace
  PngChunk(png, "IHDR", ihdr);
  // A zlib stream of a few zero bytes: a token IDAT, far too short for the claimed size.
  PngChunk(png, "IDAT", std::string("\x78\x9c\x63\x60\x60\x60\x00\x00\x00\x04\x00\x01", 12));
  PngChunk(png, "IEND", "");
  return png;
}

Decoded Decode(const std::string& bytes) {
  Init();
  Decoded d;
  try {
    VImage img = VImage::new_from_buffer(bytes.data(), bytes.size(), "",
                                         VImage::option()->set("fail_on", VIPS_FAIL_ON_TRUNCATED));
    img.avg();  // decodes every pixel
    d.ok = true;
    d.width = img.width();
    d.height = img.height();
    d.bands = img.bands();
  } catch (const vips::VError& e) {
    d.error = e.what();
    vips_error_clear();
  }
  return d;
}

int OrientationOf(const std::string& bytes) {
  Init();
  VImage img = VImage::new_from_buffer(bytes.data(), bytes.size(), "");
  if (img.get_typeof(VIPS_META_ORIENTATION) == 0) return 1;
  return img.get_int(VIPS_META_ORIENTATION);
}

HttpResult Api::Get(const std::string& path_or_url) const {
  return Http("GET", Join(base, path_or_url), "", auth);
}

HttpResult Api::Post(const std::string& path_or_url, const json& body) const {
  return Http("POST", Join(base, path_or_url), body.is_null() ? "" : body.dump(), auth);
}

int64_t Api::CreateCustomer(const std::string& name) const {
  auto r = Post("/customers", {{"name", name}, {"displayName", name}});
  if (r.status != 201) throw std::runtime_error("create customer: " + r.body);
  return r.Json().at("id").get<int64_t>();
}

int64_t Api::CreateSpace(int64_t customer, const std::string& name) const {
  auto r = Post("/customers/" + std::to_string(customer) + "/spaces", {{"name", name}});
  if (r.status != 201) throw std::runtime_error("create space: " + r.body);
  return r.Json().at("id").get<int64_t>();
}

json Api::SubmitBatch(int64_t customer, const json& members, long* status) const {
  json body = {{"@type", "Collection"}, {"member", members}};
  auto r = Post("/customers/" + std::to_string(customer) + "/queue", body);
  if (status) *status = r.status;
  return r.Json();
}

json Api::Batch(int64_t customer, int64_t batch) const {
  return Get("/customers/" + std::to_string(customer) + "/queue/batches/" + std::to_string(batch))
      .Json();
}

json Api::WaitForBatch(int64_t customer, int64_t batch, std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  json b;
  for (;;) {
    b = Batch(customer, batch);
    if (b.contains("finished")) return b;
    if (std::chrono::steady_clock::now() > deadline) return b;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

json Api::Image(int64_t customer, int64_t space, const std::string& id) const {
  return Get("/customers/" + std::to_string(customer) + "/spaces/" + std::to_string(space) +
             "/images/" + id)
      .Json();
}

std::vector<json> Api::All(const std::string& url) const {
  std::vector<json> out;
  for (int page = 1;; ++page) {
    std::string u = Join(base, url);
    u += (u.find('?') == std::string::npos ? "?" : "&");
    u += "pageSize=500&page=" + std::to_string(page);
    json j = Get(u).Json();
    if (!j.is_object() || !j.contains("member")) break;
    for (auto& m : j["member"]) out.push_back(m);
    int64_t total = j.value("totalItems", int64_t{0});
    if (static_cast<int64_t>(out.size()) >= total || j["member"].empty()) break;
  }
  return out;
}

json Member(int64_t space, const std::string& id, const std::string& origin,
            const std::string& media_type) {
  return {{"id", id}, {"space", space}, {"origin", origin}, {"mediaType", media_type}};
}

std::vector<int> IngestDurationsMs(const std::string& log) {
  std::vector<int> out;
  static const std::regex re(" done in ([0-9]+) ms");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), re); it != std::sregex_iterator();
       ++it)
    out.push_back(std::stoi((*it)[1].str()));
  return out;
}

}  // namespace quire::test
