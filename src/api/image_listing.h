// Reading the paging, ordering and filter parameters of image collections (spec §3).
#pragma once

#include <string>

#include "http/message.h"
#include "store/store.h"

namespace quire::api {

// Fills q.page, q.order_by/descending and the filters from `req`. Returns a problem message
// (400) or "". `*keep_query` receives the parameters to carry into paging links.
std::string ReadAssetQuery(const http::Request& req, AssetQuery* q, std::string* keep_query);

// Reads orderBy/orderByDescending for batch collections, with `default_field`.
std::string ReadBatchOrder(const http::Request& req, BatchQuery* q, std::string* keep_query);

}  // namespace quire::api
