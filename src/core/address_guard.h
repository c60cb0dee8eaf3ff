// The address guard of outgoing requests the server makes on a customer's behalf (origins,
// webhooks; spec/api.md §9, spec/platform.md §3): no loopback, private, link-local or
// otherwise internal targets unless the operator allows private origins. Below both ingest/
// and events/, so neither includes the other.
#pragma once

#include <sys/socket.h>

#include <string>

#include "core/status.h"

namespace quire {

// True when `ip` (numeric IPv4 or IPv6) is loopback, private, link-local (cloud metadata
// included), unspecified, CGNAT, multicast or reserved - directly or embedded in IPv6
// (v4-mapped, v4-compatible, NAT64, 6to4). Unparseable text counts as forbidden.
bool IsForbiddenAddress(const std::string& ip);

// The numeric address of an AF_INET/AF_INET6 socket address; "" for other families.
std::string SockaddrIp(const struct sockaddr* sa);

// Resolves `host` (a name, an IPv4 literal or a bracketed IPv6 literal) and checks every
// address: Forbidden naming the address when one is forbidden, Invalid when it does not
// resolve. A check at creation time only; connections must be checked again (DNS changes).
Status CheckUrlHost(const std::string& host);

}  // namespace quire
