// Every API route, family by family; each family lives in its own file.
#include "api/context.h"
#include "api/routes.h"

namespace quire::api {

void RegisterApi(http::Router& router, Context& ctx) {
  RegisterEntry(router, ctx);
  RegisterCustomers(router, ctx);
  RegisterSpaces(router, ctx);
  RegisterImages(router, ctx);
  RegisterQueue(router, ctx);
  RegisterUploads(router, ctx);
  RegisterStreams(router, ctx);
  RegisterWebhooks(router, ctx);
  RegisterStorage(router, ctx);
  RegisterOriginStrategies(router, ctx);
  RegisterBulkImages(router, ctx);
  RegisterChannelPolicies(router, ctx);
  RegisterDefaultChannels(router, ctx);
  RegisterCustomHeaders(router, ctx);
  RegisterSessions(router, ctx);
  RegisterNamedQueries(router, ctx);
  RegisterRoles(router, ctx);
  RegisterGrants(router, ctx);
}

}  // namespace quire::api
