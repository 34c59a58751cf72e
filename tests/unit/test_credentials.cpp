// Every test vector of ../shared/docs/protocols.md §6.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <map>

#include "core/crypto.hpp"
#include "helpers.hpp"
#include "north/north.hpp"
#include "platforms/aiot.hpp"
#include "platforms/onenet.hpp"
#include "platforms/onenet_legacy.hpp"
#include "platforms/platform.hpp"

using namespace fieldlink::core;
using namespace fieldlink::platforms;

namespace {

std::string token(const std::string& res, const std::string& key, const std::string& method) {
    TokenRequest t;
    t.res = res;
    t.expiry = 1673053248;
    t.method = method;
    t.key_base64 = key;
    std::string err;
    auto v = onenet_token(t, &err);
    REQUIRE_MESSAGE(v.has_value(), err);
    return *v;
}

const char* kDeviceKey = "rs2FaE5BuygJZkWKDA5okKt1RFpwOx53hbu6hwyCS4U=";
const char* kProductKey = "kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI=";

}  // namespace

TEST_CASE("6.1 device key decodes to the documented bytes") {
    CHECK(hex_lower(*base64_decode(kDeviceKey)) == "aecd85684e41bb280966458a0c0e6890ab75445a703b1e7785bbba870c824b85");
}

TEST_CASE("6.1 raw HMACs and signs for Chic_D") {
    const auto key = *base64_decode(kDeviceKey);
    auto msg = [](const char* m) {
        return std::string("1673053248\n") + m + "\nproducts/469948/devices/Chic_D\n2018-10-31";
    };
    CHECK(hex_lower(*hmac("sha1", key, msg("sha1"))) == "a6b20c0d0db758523a3cc8f6216a5a44924be1e1");
    CHECK(hex_lower(*hmac("md5", key, msg("md5"))) == "c8fc397f2d993027d6d9523dc1ce6493");
    CHECK(hex_lower(*hmac("sha256", key, msg("sha256"))) ==
          "0c516a87fbfd249e7a2ac157d71af791d3a67329d688fc86215052ffe7e837ae");
    CHECK(base64_encode(*hmac("sha1", key, msg("sha1"))) == "prIMDQ23WFI6PMj2IWpaRJJL4eE=");
    CHECK(base64_encode(*hmac("md5", key, msg("md5"))) == "yPw5fy2ZMCfW2VI9wc5kkw==");
    CHECK(base64_encode(*hmac("sha256", key, msg("sha256"))) == "DFFqh/v9JJ56KsFX1xr3kdOmcynWiPyGIVBS/+foN64=");
}

TEST_CASE("6.1 full device-level tokens") {
    const auto res = onenet_device_res("469948", "Chic_D");
    CHECK(token(res, kDeviceKey, "sha1") ==
          "version=2018-10-31&res=products%2F469948%2Fdevices%2FChic_D&et=1673053248&method=sha1&sign="
          "prIMDQ23WFI6PMj2IWpaRJJL4eE%3D");
    CHECK(token(res, kDeviceKey, "md5") ==
          "version=2018-10-31&res=products%2F469948%2Fdevices%2FChic_D&et=1673053248&method=md5&sign="
          "yPw5fy2ZMCfW2VI9wc5kkw%3D%3D");
    CHECK(token(res, kDeviceKey, "sha256") ==
          "version=2018-10-31&res=products%2F469948%2Fdevices%2FChic_D&et=1673053248&method=sha256&sign=DFFqh%"
          "2Fv9JJ56KsFX1xr3kdOmcynWiPyGIVBS%2F%2BfoN64%3D");
}

TEST_CASE("6.2 product-level tokens") {
    CHECK(hex_lower(*base64_decode(kProductKey)) == "90ab2e6da1bb173320cd1e8ddde503e77df5f50bbe2b8302bf0e8acce61ce5e2");
    const auto key = *base64_decode(kProductKey);
    const std::string base = "1673053248\n";
    CHECK(hex_lower(*hmac("sha1", key, base + "sha1\nproducts/469948\n2018-10-31")) ==
          "f3f522591d3498fc4503b0def2710b7b2c88f1c7");
    CHECK(hex_lower(*hmac("md5", key, base + "md5\nproducts/469948\n2018-10-31")) ==
          "2a6074482dcb19235aae23d5298c4e96");
    CHECK(hex_lower(*hmac("sha256", key, base + "sha256\nproducts/469948\n2018-10-31")) ==
          "503321ee252a35d36a5238365aed70088e2293ed0c04b94a4d0fbfa33df01942");
    const auto res = onenet_product_res("469948");
    CHECK(token(res, kProductKey, "sha1") ==
          "version=2018-10-31&res=products%2F469948&et=1673053248&method=sha1&sign=8%2FUiWR00mPxFA7De8nELeyyI8cc%3D");
    CHECK(token(res, kProductKey, "md5") ==
          "version=2018-10-31&res=products%2F469948&et=1673053248&method=md5&sign=KmB0SC3LGSNariPVKYxOlg%3D%3D");
    CHECK(token(res, kProductKey, "sha256") ==
          "version=2018-10-31&res=products%2F469948&et=1673053248&method=sha256&sign=UDMh7iUqNdNqUjg2Wu1wCI4ik%"
          "2B0MBLlKTQ%2B%2Foz3wGUI%3D");
}

TEST_CASE("6.3 DaShi / Aliyun signatures") {
    CHECK(*aiot_sign("12345", "device", "pk", "789", "secret", "sha1") == "dc8f8498a1a115b58f6a3afd526bc62a1665bf48");
    CHECK(*aiot_sign("12345", "device", "pk", "789", "secret", "md5") == "5dad123ad9b620069d9a2a20f4d0be2f");
    CHECK(*aiot_sign("12345", "device", "pk", "789", "secret", "sha256") ==
          "02a97ff432b4d90f6c516d431e9e92fa2f7938880546aae836697476fe46960c");
    CHECK(*aiot_sign("12345", "device", "pk", "1581417203000", "secret", "md5") == "de9b6c009c7dac6279c89fd998b6994f");
    // Aliyun uses deviceName/productKey: the most likely mistake is mixing the two namings.
    CHECK(hex_lower(*hmac("sha1", "secret", "clientId12345deviceNamedeviceproductKeypktimestamp789")) ==
          "fafd82a3d602b37fb0fa8b7892f24a477f851a14");
    CHECK(hex_lower(*hmac("sha1", "oLyaKqVxtRvjH284LdhqVgVUx1UPy6zq",
                          "clientIdSN1928339deviceNamelight1983432productKeya14Xib5kdYdtimestamp1539421321846")) ==
          "b2488041f64f425016b467ee1c94959ebd592ad1");
}

TEST_CASE("6.4 legacy $dp type 3 framing") {
    const std::string payload = onenet_legacy_frame(3, R"({"temperature":22.5})");
    const unsigned char want[] = {0x03, 0x00, 0x14, 0x7b, 0x22, 0x74, 0x65, 0x6d, 0x70, 0x65, 0x72, 0x61,
                                  0x74, 0x75, 0x72, 0x65, 0x22, 0x3a, 0x32, 0x32, 0x2e, 0x35, 0x7d};
    CHECK(payload == std::string(reinterpret_cast<const char*>(want), sizeof want));
    const std::string header68 = onenet_legacy_frame(1, std::string(68, 'x')).substr(0, 3);
    CHECK(static_cast<unsigned char>(header68[1]) == 0x00);
    CHECK(static_cast<unsigned char>(header68[2]) == 0x44);
}

TEST_CASE("URL encoding uses exactly OneNET's table") {
    CHECK(onenet_url_encode("+ /?%#&=") == "%2B%20%2F%3F%25%23%26%3D");
    CHECK(onenet_url_encode("abc-_.~") == "abc-_.~");
}

TEST_CASE("bad keys and methods are refused with a reason") {
    TokenRequest t;
    t.res = "products/1/devices/d";
    t.expiry = 1;
    t.key_base64 = "not base64!";
    std::string err;
    CHECK_FALSE(onenet_token(t, &err).has_value());
    CHECK(err == "the key is not valid Base64; expected the access key as shown in the OneNET console");
    t.key_base64 = kDeviceKey;
    t.method = "sha512";
    CHECK_FALSE(onenet_token(t, &err).has_value());
    CHECK(err == "unknown signature method 'sha512'; expected md5, sha1 or sha256");
}

namespace {

// The sasToken of every sub/topo/add a gateway session sends on connect, by device name.
std::map<std::string, std::string> sas_tokens(const std::string& text) {
    auto cfg = fieldlink::test::load_ok(text);
    auto profiles = fieldlink::platforms::make_profiles(cfg);
    auto sessions = fieldlink::north::plan_sessions(cfg, profiles);
    std::map<std::string, std::string> out;
    for (const auto& s : sessions) {
        std::uint32_t id = 1;
        // On connect a gateway asks for its topology; without an answer it adds every sub-device.
        const auto get = profiles[0]->on_connect(s, {}, id);
        for (const auto& m : get.empty() ? get : get.front().otherwise) {
            if (m.topic.find("sub/topo/add") == std::string::npos) continue;
            const auto j = nlohmann::json::parse(m.payload);
            out[j["params"]["deviceName"].get<std::string>()] = j["params"]["sasToken"].get<std::string>();
        }
    }
    return out;
}

std::string expected_token(const std::string& pid, const std::string& dev, const std::string& key) {
    fieldlink::platforms::TokenRequest t;
    t.res = "products/" + pid + "/devices/" + dev;
    t.expiry = 2524579200;
    t.method = "sha256";
    t.key_base64 = key;
    std::string err;
    return *fieldlink::platforms::onenet_token(t, &err);
}

const char* kGatewayClouds = R"(
clouds:
  tm: { platform: onenet, protocol: thing-model, host: h, product_id: GWP, token_expiry: 2524579200,
        product_key: kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI= }
buses:
  s: { driver: sim }
devices:
  - { name: gw, cloud: tm, bus: s, gateway: true, points: [ { name: a, area: holding, address: 0 } ] }
)";

}  // namespace

TEST_CASE("sub-device tokens: signed with its own key or its own product's key, never another product's") {
    const std::string own_key = "rs2FaE5BuygJZkWKDA5okKt1RFpwOx53hbu6hwyCS4U=";
    const std::string other_product_key = "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=";
    const std::string gw_key = "kKsubaG7FzMgzR6N3eUD53319Qu+K4MCvw6KzOYc5eI=";
    const auto tokens = sas_tokens(std::string(kGatewayClouds) + R"(
  - { name: same, cloud: tm, bus: s, via: gw, points: [ { name: a, area: holding, address: 0 } ] }
  - { name: own, cloud: tm, bus: s, via: gw, product_id: P2, key: )" +
                                   own_key + R"(, points: [ { name: a, area: holding, address: 0 } ] }
  - { name: other, cloud: tm, bus: s, via: gw, product_id: P2, product_key: )" +
                                   other_product_key + R"(, points: [ { name: a, area: holding, address: 0 } ] }
)");
    CHECK(tokens.at("same") == expected_token("GWP", "same", gw_key));  // the cloud's product
    CHECK(tokens.at("own") == expected_token("P2", "own", own_key));
    CHECK(tokens.at("other") == expected_token("P2", "other", other_product_key));
    CHECK(tokens.at("other") != expected_token("P2", "other", gw_key));
}

TEST_CASE("sub-device of another product without its key or its product's key is a configuration error") {
    auto r = fieldlink::load_config_text(std::string(kGatewayClouds) + R"(
  - { name: stray, cloud: tm, bus: s, via: gw, product_id: P2, points: [ { name: a, area: holding, address: 0 } ] }
)",
                                         "t.yaml", &fieldlink::test::drivers());
    REQUIRE(r.errors.size() == 1);
    const std::string msg = fieldlink::config::format_error("t.yaml", r.errors[0]);
    CHECK(msg.find("device 'stray' of product 'P2' needs its own 'key' (or key_file), or 'product_key' of product "
                   "'P2'") != std::string::npos);
    CHECK(msg.find("belongs to product 'GWP'") != std::string::npos);
}
