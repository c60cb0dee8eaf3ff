// A role (vocab:Role, spec/presentation-auth.md §5.2): what an image's `roles` entry names
// (`API/customers/{c}/roles/{name}`) and how a session obtains it. The texts shown by the
// IIIF Authorization services are language maps kept as JSON text.
#pragma once

#include <cstdint>
#include <string>

namespace quire {

struct Role {
  int64_t customer = 0;
  std::string name;  // [a-z0-9._-]{1,64}, not "token"
  // Language maps ({"en":["…"]}) as JSON text; empty when not set (label is required).
  std::string label, heading, note, confirm_label, logout_label;
  std::string provider = "clickthrough";  // clickthrough | grant
  int64_t session_ttl_s = 3600;           // 60..86400
  int64_t created_ms = 0;
};

// Empty when `name` may name a role, else the message.
std::string RoleNameProblem(const std::string& name);

}  // namespace quire
