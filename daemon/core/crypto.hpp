// Thin wrappers over OpenSSL: HMAC, Base64, hex.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace fieldlink::core {

// method: "md5", "sha1" or "sha256". Returns the raw digest, nullopt for an unknown method.
std::optional<std::string> hmac(std::string_view method, std::string_view key, std::string_view msg);
std::string base64_encode(std::string_view raw);
// Strict standard Base64 with padding; nullopt when the text is not valid Base64.
std::optional<std::string> base64_decode(std::string_view text);
std::string hex_lower(std::string_view raw);
// The SHA-256 digest of `data` in lower-case hex (64 characters).
std::string sha256_hex(std::string_view data);

}  // namespace fieldlink::core
