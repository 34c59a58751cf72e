#include "crypto.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <vector>

namespace fieldlink::core {

std::optional<std::string> hmac(std::string_view method, std::string_view key, std::string_view msg) {
    const EVP_MD* md = nullptr;
    if (method == "md5")
        md = EVP_md5();
    else if (method == "sha1")
        md = EVP_sha1();
    else if (method == "sha256")
        md = EVP_sha256();
    else
        return std::nullopt;
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!HMAC(md, key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(msg.data()),
              msg.size(), out, &len)) {
        return std::nullopt;
    }
    return std::string(reinterpret_cast<char*>(out), len);
}

std::string base64_encode(std::string_view raw) {
    std::vector<unsigned char> out(4 * ((raw.size() + 2) / 3) + 1);
    int n =
        EVP_EncodeBlock(out.data(), reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(raw.size()));
    return {reinterpret_cast<char*>(out.data()), static_cast<std::size_t>(n)};
}

std::optional<std::string> base64_decode(std::string_view text) {
    if (text.empty() || text.size() % 4 != 0) return std::nullopt;
    std::size_t pad = 0;
    if (text.back() == '=') ++pad;
    if (text.size() > 1 && text[text.size() - 2] == '=') ++pad;
    std::vector<unsigned char> out(text.size() / 4 * 3 + 1);
    int n =
        EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
    if (n < 0) return std::nullopt;
    return std::string(reinterpret_cast<char*>(out.data()), static_cast<std::size_t>(n) - pad);
}

std::string hex_lower(std::string_view raw) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    out.reserve(raw.size() * 2);
    for (unsigned char c : raw) {
        out += digits[c >> 4];
        out += digits[c & 0xF];
    }
    return out;
}

std::string sha256_hex(std::string_view data) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(data.data(), data.size(), digest, &n, EVP_sha256(), nullptr) != 1) return {};
    return hex_lower(std::string_view(reinterpret_cast<const char*>(digest), n));
}

}  // namespace fieldlink::core
