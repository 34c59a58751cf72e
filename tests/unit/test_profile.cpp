#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "core/config.hpp"
#include "north/profile.hpp"

using namespace fieldlink;

namespace {

core::DeviceConfig device() {
    core::DeviceConfig d;
    d.name = "Chic_D";
    for (const char* n : {"temperature", "relay", "label"}) {
        core::PointConfig p;
        p.name = n;
        d.points.push_back(p);
    }
    return d;
}

core::SampleBatch batch(std::int64_t ts, double t, bool relay) {
    core::SampleBatch b;
    b.timestamp_ms = ts;
    b.values.push_back({0, t});
    b.values.push_back({1, relay});
    return b;
}

}  // namespace

TEST_CASE("OneNET datapoints payload groups samples per stream in time order") {
    auto d = device();
    std::deque<core::SampleBatch> q{batch(1552289676000, 30.5, true), batch(1552289677000, 31, false)};
    auto json = nlohmann::json::parse(north::onenet_dp_payload(d, q, 2, 123));
    CHECK(json["id"] == 123);
    CHECK(json["dp"]["temperature"] == nlohmann::json::parse(R"([{"v":30.5,"t":1552289676},{"v":31,"t":1552289677}])"));
    CHECK(json["dp"]["relay"] == nlohmann::json::parse(R"([{"v":true,"t":1552289676},{"v":false,"t":1552289677}])"));
    CHECK_FALSE(json["dp"].contains("label"));
}

TEST_CASE("OneNET profile: topic, credentials and message ids") {
    core::CloudConfig c;
    c.platform = core::Platform::onenet;
    c.product_id = "469948";
    c.token_expiry = 1673053248;
    c.token_method = "sha1";
    auto p = north::make_profile(c);
    auto d = device();
    d.key = "rs2FaE5BuygJZkWKDA5okKt1RFpwOx53hbu6hwyCS4U=";
    std::string err;
    auto creds = p->credentials(d, 0, &err);
    REQUIRE(creds);
    CHECK(creds->client_id == "Chic_D");
    CHECK(creds->username == "469948");
    CHECK(creds->password ==
          "version=2018-10-31&res=products%2F469948%2Fdevices%2FChic_D&et=1673053248&method=sha1&sign=prIMDQ23WFI6PMj2IWpaRJJL4eE%3D");
    std::deque<core::SampleBatch> q{batch(1000, 1, true)};
    std::uint32_t id = 7;
    auto msgs = p->build(d, q, 5, id);
    REQUIRE(msgs.size() == 1);
    CHECK(msgs[0].topic == "$sys/469948/Chic_D/dp/post/json");
    CHECK(msgs[0].samples == 2);
    CHECK(id == 8);
    CHECK(q.empty());
}

TEST_CASE("templates expand device, point, value, times and values") {
    auto d = device();
    auto b = batch(1700000000123, 21.5, true);
    b.values.push_back({2, std::string("he said \"hi\"")});
    CHECK(north::expand_template("plant/{device}/{point}", d, b, &b.values[0]) == "plant/Chic_D/temperature");
    CHECK(north::expand_template("{value}", d, b, &b.values[2]) == R"("he said \"hi\"")");
    CHECK(north::expand_template(R"({"ts":{ts_ms},"s":{ts},"values":{values}})", d, b, nullptr) ==
          R"({"ts":1700000000123,"s":1700000000,"values":{"temperature":21.5,"relay":true,"label":"he said \"hi\""}})");
    CHECK(north::expand_template("{unknown} {", d, b, nullptr) == "{unknown} {");
}

TEST_CASE("JSON values: no NaN, scaled values without binary noise") {
    std::string s;
    north::append_json_value(s, std::numeric_limits<double>::quiet_NaN());
    s += ' ';
    north::append_json_value(s, 101 * 0.1);
    s += ' ';
    north::append_json_value(s, std::uint64_t{18446744073709551615ULL});
    s += ' ';
    north::append_json_value(s, std::int64_t{-5});
    CHECK(s == "null 10.1 18446744073709551615 -5");
}

TEST_CASE("a device's invalid UTF-8 string is published with replacement characters, not a crash") {
    std::string s;
    north::append_json_value(s, std::string("ok\xff\xfe"));
    CHECK(s == "\"ok\xef\xbf\xbd\xef\xbf\xbd\"");
}
