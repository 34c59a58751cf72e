// What a reload compares and how it keeps device indexes (config/diff.hpp).
#include <doctest/doctest.h>

#include <string>

#include "config/diff.hpp"
#include "config/parser.hpp"
#include "helpers.hpp"

using namespace fieldlink;
using namespace fieldlink::config;

namespace {

std::string gateway(const std::string& devices, const std::string& bus_timeout = "1s") {
    return R"(gateway:
  data_dir: /tmp/fl
clouds:
  c: { platform: mqtt, host: 127.0.0.1 }
buses:
  a: { driver: modbus-tcp, host: 127.0.0.1, port: 1502, timeout: )" +
           bus_timeout + R"( }
devices:
)" + devices;
}

std::string device(const std::string& name, int unit, const std::string& extra = "") {
    return "  - { name: " + name + ", cloud: c, bus: a, unit: " + std::to_string(unit) + extra +
           ", points: [{ name: v, area: holding, address: 0 }] }\n";
}

Config load(const std::string& text) {
    auto r = load_config_text(text, "gw.yaml", &test::drivers());
    REQUIRE_MESSAGE(r.ok(), (r.errors.empty() ? std::string() : r.errors[0].message));
    return std::move(r.config);
}

}  // namespace

TEST_CASE("settings are compared by value, not by where they are written") {
    const auto a = load(gateway(device("d1", 1) + device("d2", 2)));
    // The same devices two lines further down, written in block style.
    const auto b = load(gateway("\n\n" + device("d1", 1) +
                                "  - name: d2\n    cloud: c\n    bus: a\n    unit: 2\n    points:\n"
                                "      - { name: v, area: holding, address: 0 }\n"));
    REQUIRE(a.devices[1].mark.line != b.devices[1].mark.line);
    CHECK(same_device(a.devices[0], b.devices[0]));
    CHECK(same_device(a.devices[1], b.devices[1]));
    CHECK(same_bus(a.buses[0], b.buses[0]));
    CHECK(same_cloud(a.clouds[0], b.clouds[0]));
    CHECK(same_gateway(a.gateway, b.gateway));
}

TEST_CASE("a changed setting of a device, a point, a bus or a cloud is seen") {
    const auto a = load(gateway(device("d1", 1)));
    CHECK_FALSE(same_device(a.devices[0], load(gateway(device("d1", 2))).devices[0]));
    CHECK_FALSE(same_device(a.devices[0], load(gateway(device("d1", 1, ", interval: 2s"))).devices[0]));
    auto scaled = gateway(device("d1", 1));
    scaled.replace(scaled.find("address: 0 }"), 12, "address: 0, scale: 0.1 }");
    CHECK_FALSE(same_device(a.devices[0], load(scaled).devices[0]));
    CHECK_FALSE(same_bus(a.buses[0], load(gateway(device("d1", 1), "2s")).buses[0]));
    auto other_host = gateway(device("d1", 1));
    other_host.replace(other_host.find("host: 127.0.0.1 }"), 17, "host: 127.0.0.2 }");
    CHECK_FALSE(same_cloud(a.clouds[0], load(other_host).clouds[0]));
    auto other_dir = gateway(device("d1", 1));
    other_dir.replace(other_dir.find("/tmp/fl"), 7, "/tmp/f2");
    CHECK_FALSE(same_gateway(a.gateway, load(other_dir).gateway));
}

TEST_CASE("the Modbus server's map changes in place; only its listen address restarts everything") {
    const auto served = [](const std::string& listen, int address) {
        std::string text = gateway(device("d1", 1));
        text.replace(text.find("  data_dir: /tmp/fl\n"), 19,
                     "  data_dir: /tmp/fl\n  modbus_server:\n    listen: " + listen +
                         "\n    map: [{ device: d1, point: v, area: holding, address: " + std::to_string(address) +
                         " }]\n");
        return load(text);
    };
    const auto a = served("5020", 0);
    CHECK(a.gateway.modbus_server.map.size() == 1);
    CHECK(same_gateway(a.gateway, served("5020", 10).gateway));
    CHECK_FALSE(same_gateway(a.gateway, served("5021", 0).gateway));
    CHECK_FALSE(same_gateway(a.gateway, load(gateway(device("d1", 1))).gateway));  // no server
}

TEST_CASE("aligning keeps every remaining device's index, retires removed ones and appends new ones") {
    const auto prev = load(gateway(device("d1", 1) + device("d2", 2) + device("d3", 3)));
    // d2 removed, d4 new, d3 and d1 written in another order.
    auto next = load(gateway(device("d4", 4) + device("d3", 3) + device("d1", 1)));
    align_devices(prev, next);
    REQUIRE(next.devices.size() == 4);
    CHECK(next.devices[0].name == "d1");
    CHECK(next.devices[1].retired);
    CHECK(next.devices[1].name.empty());
    CHECK(next.devices[1].points.empty());
    CHECK(next.devices[1].bus_index == kUnresolved);
    CHECK(next.devices[1].cloud_index == kUnresolved);
    CHECK(next.devices[2].name == "d3");
    CHECK(next.devices[3].name == "d4");
    CHECK(same_device(prev.devices[0], next.devices[0]));
    CHECK(same_device(prev.devices[2], next.devices[2]));

    // A retired index is never given to another device, not even to d2 coming back.
    auto again = load(gateway(device("d1", 1) + device("d2", 2) + device("d3", 3) + device("d4", 4)));
    align_devices(next, again);
    REQUIRE(again.devices.size() == 5);
    CHECK(again.devices[1].retired);
    CHECK(again.devices[4].name == "d2");
}

TEST_CASE("aligning updates the gateway index of sub-devices") {
    const char* head = R"(gateway:
  data_dir: /tmp/fl
clouds:
  one: { platform: onenet, protocol: thing-model, host: 127.0.0.1, product_id: p1 }
buses:
  a: { driver: modbus-tcp, host: 127.0.0.1, port: 1502 }
devices:
)";
    const std::string gw =
        "  - { name: gw, cloud: one, bus: a, unit: 1, gateway: true, key: a2V5, points: "
        "[{ name: v, area: holding, address: 0 }] }\n";
    const std::string sub =
        "  - { name: s1, cloud: one, bus: a, unit: 2, via: gw, key: a2V5, points: "
        "[{ name: v, area: holding, address: 0 }] }\n";
    const auto prev = load(std::string(head) + sub + gw);
    auto next = load(std::string(head) + gw + sub);
    REQUIRE(next.devices[1].via_index == std::optional<std::size_t>(0));
    align_devices(prev, next);
    CHECK(next.devices[0].name == "s1");
    CHECK(next.devices[1].name == "gw");
    CHECK(next.devices[0].via_index == std::optional<std::size_t>(1));
}
