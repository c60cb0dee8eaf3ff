// The route families of the API, one file each; RegisterApi (api.cc) calls them all.
#pragma once

#include "api/context.h"

namespace quire::api {

void RegisterEntry(http::Router& r, Context& ctx);
void RegisterCustomers(http::Router& r, Context& ctx);
void RegisterSpaces(http::Router& r, Context& ctx);
void RegisterImages(http::Router& r, Context& ctx);
void RegisterQueue(http::Router& r, Context& ctx);
void RegisterUploads(http::Router& r, Context& ctx);
void RegisterStreams(http::Router& r, Context& ctx);
void RegisterWebhooks(http::Router& r, Context& ctx);
// DLCS resources of issue 15: storage policies and usage, origin strategies, bulk images.
void RegisterStorage(http::Router& r, Context& ctx);
void RegisterOriginStrategies(http::Router& r, Context& ctx);
void RegisterBulkImages(http::Router& r, Context& ctx);
void RegisterChannelPolicies(http::Router& r, Context& ctx);
void RegisterDefaultChannels(http::Router& r, Context& ctx);
void RegisterCustomHeaders(http::Router& r, Context& ctx);
void RegisterSessions(http::Router& r, Context& ctx);
void RegisterNamedQueries(http::Router& r, Context& ctx);
void RegisterRoles(http::Router& r, Context& ctx);
void RegisterGrants(http::Router& r, Context& ctx);

}  // namespace quire::api
