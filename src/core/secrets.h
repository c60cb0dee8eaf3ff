// Key secrets: generated with 128+ bits from the OS, stored only as a salted SHA-256 hash and
// compared in constant time. Secrets are random (not chosen by people), so a fast hash is
// enough: there is no dictionary to defend against, and auth stays cheap on every request.
#pragma once

#include <string>

namespace quire {

// Lower-case hex of `n` random bytes from the OS CSPRNG.
std::string RandomHex(size_t n);
// A random version-4 UUID, lower case.
std::string NewUuid();
// hex(SHA-256(salt || secret)).
std::string HashSecret(const std::string& salt, const std::string& secret);
// Constant-time equality of two strings of any length.
bool ConstantTimeEquals(const std::string& a, const std::string& b);

}  // namespace quire
