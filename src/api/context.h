// What every API handler needs: the store, the blobs, the configuration and the URL builder.
#pragma once

#include <functional>
#include <memory>

#include "api/batch_cache.h"
#include "api/key_cache.h"
#include "blob/blob_store.h"
#include "core/config.h"
#include "core/secret_box.h"
#include "events/event_hub.h"
#include "hydra/hydra.h"
#include "ops/metrics.h"
#include "http/router.h"
#include "store/store.h"

namespace quire::api {

struct Context {
  Store& store;
  BlobStore& blobs;
  const Config& config;
  hydra::Urls urls;
  // Called after work is queued, so idle ingest workers look for it at once.
  std::function<void()> work_queued = [] {};
  // Called after an image's metadata or derivatives changed through the API, so delivery
  // drops what it cached about it.
  std::function<void(int64_t customer, int64_t space, const std::string& id)> image_changed =
      [](int64_t, int64_t, const std::string&) {};
  std::shared_ptr<KeyCache> keys = std::make_shared<KeyCache>();
  // Batches as last read (GET …/queue/batches/{b}), dropped by store events; null (every
  // GET reads the store) unless the store's events come from every process.
  std::shared_ptr<BatchCache> batches = nullptr;
  // The JSON of each batch as last served, reused while the batch reads the same.
  std::shared_ptr<BatchBodies> batch_bodies = std::make_shared<BatchBodies>();
  // The process's metrics, served at /metrics (to administrators).
  ops::Metrics* metrics = nullptr;
  // Serves the live event streams; null: streams answer 503.
  events::EventHub* events = nullptr;
  // Seals origin-strategy credentials (--secrets-key-file); null: none can be stored.
  std::shared_ptr<const SecretBox> secrets = nullptr;
};

// Registers every API route (everything but IIIF delivery) on the router.
void RegisterApi(http::Router& router, Context& ctx);

}  // namespace quire::api
