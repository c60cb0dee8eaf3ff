// Helpers for ingest tests: realistic test images made with libvips at run time, and small
// wrappers over the queue API (create a space, submit a batch, poll it until finished).
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/http_client.h"

namespace quire::test {

// ---- images (all encoders start libvips through quire::InitVips) ----

// w x h 8-bit sRGB with structure at several scales: gradients, rings, an eye pattern and
// noise (not a flat colour, so JPEG/PNG sizes and decode times are realistic). `seed` varies
// the content.
std::string MakeJpeg(int w, int h, int seed = 0, int quality = 85);
std::string MakePng(int w, int h, int seed = 0, bool alpha = false);
std::string MakePng16(int w, int h, int seed = 0);  // 16-bit RGB
std::string MakeTiff(int w, int h, int seed = 0);
std::string MakeWebp(int w, int h, int seed = 0);
std::string MakeGreyJpeg(int w, int h, int seed = 0);
std::string MakeCmykJpeg(int w, int h, int seed = 0);
// A JPEG whose pixels are stored w x h with EXIF Orientation `orientation`.
std::string MakeOrientedJpeg(int w, int h, int orientation, int seed = 0);
// A valid-looking PNG whose IHDR claims w x h (correct CRCs) with a token IDAT.
std::string MakePngHeaderOnly(uint32_t w, uint32_t h);

struct Decoded {
  bool ok = false;
  int width = 0, height = 0, bands = 0;
  std::string error;
};
// Decodes an encoded image fully (every pixel), reporting its size.
Decoded Decode(const std::string& bytes);
// The EXIF orientation libvips reads from an encoded image (1 when none).
int OrientationOf(const std::string& bytes);

// ---- API ----

struct Api {
  std::string base;  // server URL
  Credentials auth;

  HttpResult Get(const std::string& path_or_url) const;
  HttpResult Post(const std::string& path_or_url, const nlohmann::json& body) const;
  // POST /customers {name} -> id (admin).
  int64_t CreateCustomer(const std::string& name) const;
  // POST /customers/{c}/spaces {name} -> id.
  int64_t CreateSpace(int64_t customer, const std::string& name) const;
  // POST /customers/{c}/queue; returns the created batch (check "id").
  nlohmann::json SubmitBatch(int64_t customer, const nlohmann::json& members,
                             long* status = nullptr) const;
  nlohmann::json Batch(int64_t customer, int64_t batch) const;
  // Polls the batch until it has `finished` (or the timeout passes); returns the last state.
  nlohmann::json WaitForBatch(int64_t customer, int64_t batch,
                              std::chrono::milliseconds timeout) const;
  nlohmann::json Image(int64_t customer, int64_t space, const std::string& id) const;
  // Every member of a paged collection URL (pageSize 500).
  std::vector<nlohmann::json> All(const std::string& url) const;
};

// An Image member for a queue POST.
nlohmann::json Member(int64_t space, const std::string& id, const std::string& origin,
                      const std::string& media_type);

// Durations of successful ingests from a quire log ("... done in N ms ...").
std::vector<int> IngestDurationsMs(const std::string& log);

}  // namespace quire::test
