// What every API handler needs: the store, the blobs, the configuration and the URL builder.
#pragma once

#include <functional>

#include "blob/blob_store.h"
#include "core/config.h"
#include "hydra/hydra.h"
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
};

// Registers every API route (everything but IIIF delivery) on the router.
void RegisterApi(http::Router& router, Context& ctx);

}  // namespace quire::api
