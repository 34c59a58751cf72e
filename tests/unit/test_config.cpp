#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "config/diff.hpp"
#include "config/parser.hpp"
#include "core/suggest.hpp"
#include "helpers.hpp"

using namespace fieldlink;
using namespace fieldlink::config;

namespace {

// A valid base configuration; each case edits one thing.
const char* kBase = R"(gateway:
  data_dir: /tmp/fl
clouds:
  onenet:
    platform: onenet
    protocol: datapoints
    host: 127.0.0.1
    product_id: "469948"
buses:
  line1:
    driver: modbus-rtu
    device: /dev/ttyUSB0
    baud: 9600
devices:
  - name: Chic_D
    cloud: onenet
    bus: line1
    unit: 1
    key: rs2FaE5BuygJZkWKDA5okKt1RFpwOx53hbu6hwyCS4U=
    interval: 5s
    points:
      - name: temperature
        area: holding
        address: 10
        type: float32
      - name: relay
        area: coil
        address: 3
        type: bool
        writable: true
)";

std::string replace(std::string s, const std::string& from, const std::string& to) {
    auto pos = s.find(from);
    REQUIRE_MESSAGE(pos != std::string::npos, from);
    s.replace(pos, from.size(), to);
    return s;
}

std::vector<std::string> errors_of(const std::string& text) {
    auto r = load_config_text(text, "gw.yaml", &test::drivers());
    std::vector<std::string> out;
    for (const auto& e : r.errors) out.push_back(format_error("gw.yaml", e));
    return out;
}

std::string only_error(const std::string& text) {
    auto e = errors_of(text);
    REQUIRE(e.size() == 1);
    return e[0];
}

}  // namespace

TEST_CASE("the base configuration is valid") {
    auto r = load_config_text(kBase, "gw.yaml", &test::drivers());
    REQUIRE(r.ok());
    CHECK(r.config.devices.size() == 1);
    const auto& d = r.config.devices[0];
    CHECK(d.interval.count() == 5000);
    CHECK(d.points[0].type == DataType::float32);
    CHECK(d.points[0].count() == 2);
    CHECK(d.points[1].writable);
    CHECK(r.config.clouds[0].port == 1883);
    CHECK(r.config.clouds[0].max_rate == 1.0);  // OneNET default: 1 message/s per device
}

TEST_CASE("unknown key") {
    CHECK(only_error(replace(kBase, "    interval: 5s", "    intervall: 5s")) ==
          "gw.yaml:20:5: devices[0]: unknown key 'intervall' (did you mean 'interval'?); expected one of: name, cloud, "
          "bus, unit, units, "
          "template, key, key_file, "
          "product_id, product_key, device_id, gateway, via, link_event, interval, publish, max_gap, points, "
          "points_file");
}

TEST_CASE("an unknown key or value names the nearest valid one") {
    CHECK(core::nearest("intervall", {"name", "interval", "points"}) == "interval");
    CHECK(core::nearest("Interval", {"name", "interval"}) == "interval");  // only the case differs
    CHECK(core::nearest("adress", {"area", "address", "type"}) == "address");
    CHECK(core::nearest("tpye", {"area", "address", "type"}) == "type");                  // a swap is one edit
    CHECK(core::nearest("holding_register", {"holding", "input", "coil"}) == "holding");  // prefix
    CHECK(core::nearest("uint", {"int8", "uint16", "uint32"}) == "uint16");               // no 1-edit match: a prefix
    CHECK(core::nearest("xyz", {"name", "interval"}).empty());
    CHECK(core::nearest("", {"name"}).empty());
    CHECK(core::words("a, b|c  d") == std::vector<std::string>{"a", "b", "c", "d"});
    CHECK(only_error(replace(kBase, "type: float32", "type: flaot32")) ==
          "gw.yaml:25:15: devices[0].points[0].type: unknown value 'flaot32' (did you mean 'float32'?); expected one "
          "of: bool, int16, uint16, int32, uint32, int64, uint64, float32, float64, string, bcd");
    CHECK(only_error(replace(kBase, "bus: line1", "bus: Line1")) ==
          "gw.yaml:15:5: devices[0].bus: bus 'Line1' is not defined (did you mean 'line1'?); defined buses: line1");
    CHECK(only_error(replace(kBase, "platform: onenet", "platform: onenett")) ==
          "gw.yaml:5:5: clouds.onenet.platform: unknown value 'onenett' (did you mean 'onenet'?); expected one of: "
          "onenet, onenet-legacy, aiot, thingsboard, mqtt, sparkplug");
    CHECK(only_error(replace(kBase, "    baud: 9600", "    baud: 9600\n    parity: evn")) ==
          "gw.yaml:14:5: buses.line1.parity: unknown value 'evn' (did you mean 'even'?); expected one of: "
          "none,even,odd");
}

TEST_CASE("missing required key") {
    CHECK(only_error(replace(kBase, "        address: 10\n", "")) ==
          "gw.yaml:22:9: devices[0].points[0]: missing required key 'address'");
}

TEST_CASE("wrong type") {
    CHECK(only_error(replace(kBase, "unit: 1", "unit: first")) ==
          "gw.yaml:18:11: devices[0].unit: 'first' is not an integer; expected a Modbus unit id 0..255 (1..247 on "
          "serial lines)");
    CHECK(only_error(replace(kBase, "        writable: true", "        writable: sometimes")) ==
          "gw.yaml:30:19: devices[0].points[1].writable: expected true or false");
}

TEST_CASE("bad duration") {
    CHECK(only_error(replace(kBase, "interval: 5s", "interval: 5 seconds")) ==
          "gw.yaml:20:15: devices[0].interval: '5 seconds' is not a duration; expected a number with a unit: ms, s, m, "
          "h (e.g. 300ms, 5s, 1m)");
}

TEST_CASE("gateway.clock: auto, wait or off; the clock watch follows the policy and the floor") {
    const auto with = [](const std::string& v) {
        return replace(kBase, "  data_dir: /tmp/fl", "  data_dir: /tmp/fl\n  clock: " + v);
    };
    auto r = load_config_text(with("wait"), "gw.yaml", &test::drivers());
    REQUIRE(r.ok());
    CHECK(r.config.gateway.clock == core::ClockPolicy::wait);
    CHECK(load_config_text(kBase, "gw.yaml", &test::drivers()).config.gateway.clock == core::ClockPolicy::automatic);
    const auto e = only_error(with("ntp"));
    CHECK(e.find("clock") != std::string::npos);
    CHECK(e.find("auto, wait, off") != std::string::npos);
    // off: trusted whatever the clock says; auto: a floor in the past is passed, one far in the
    // future is not (unless the kernel says the clock is synchronised); no step without one.
    CHECK(core::ClockWatch(core::ClockPolicy::off, INT64_MAX).trusted());
    CHECK(core::ClockWatch(core::ClockPolicy::automatic, 0).trusted());
    core::ClockWatch future(core::ClockPolicy::automatic, INT64_MAX);
    CHECK(future.trusted() == core::kernel_clock_synced());
    CHECK(future.check() == 0);
    CHECK(future.unix_ms_at(core::boot_ms()) ==
          doctest::Approx(static_cast<double>(core::unix_ms_now())).epsilon(1e-9));
}

TEST_CASE("resolver addresses are literal addresses with an optional port") {
    const auto with = [](const std::string& list) {
        return replace(kBase, "  data_dir: /tmp/fl", "  data_dir: /tmp/fl\n  dns_servers: " + list);
    };
    auto ok = load_config_text(with("[ 192.168.1.1, \"10.0.0.2:5353\", \"2001:db8::1\", \"[2001:db8::2]:53\" ]"),
                               "gw.yaml", &test::drivers());
    REQUIRE(ok.ok());
    CHECK(ok.config.gateway.dns_servers ==
          std::vector<std::string>{"192.168.1.1", "10.0.0.2:5353", "2001:db8::1", "[2001:db8::2]:53"});
    CHECK(errors_of(with("127.0.0.53")).empty());
    const std::string expected =
        "is not a resolver address; expected an IPv4 or IPv6 address with an optional port, e.g. 192.168.1.1, "
        "192.168.1.1:5353, [2001:db8::1]:53";
    CHECK(only_error(with("[ dns.example ]")) == "gw.yaml:3:18: gateway.dns_servers[0]: 'dns.example' " + expected);
    CHECK(only_error(with("[ 127.0.0.1, \"10.0.0.1:99999\" ]")) ==
          "gw.yaml:3:29: gateway.dns_servers[1]: '10.0.0.1:99999' " + expected);
    CHECK(only_error(with("\"[2001:db8::1]53\"")) ==
          "gw.yaml:3:16: gateway.dns_servers: '[2001:db8::1]53' " + expected);
    CHECK(only_error(with("{ a: 1 }")).find("expected a list of resolver addresses") != std::string::npos);
}

TEST_CASE("duration out of range") {
    CHECK(only_error(replace(kBase, "interval: 5s", "interval: 1ms")) ==
          "gw.yaml:20:15: devices[0].interval: duration 1ms is out of range; expected 10ms to 24h");
}

TEST_CASE("address out of range") {
    CHECK(only_error(replace(kBase, "address: 10", "address: 70000")) ==
          "gw.yaml:24:18: devices[0].points[0].address: 70000 is out of range; expected a 0-based protocol address "
          "0..65535 (register 40001 is holding address 0)");
    CHECK(only_error(replace(kBase, "address: 10", "address: 65535")) ==
          "gw.yaml:22:9: devices[0].points.temperature: address 65535 plus 2 registers ends at 65536, past the last "
          "0-based protocol address 65535");
}

TEST_CASE("a type wider than the area allows") {
    CHECK(only_error(replace(kBase, "        type: bool\n", "        type: float32\n")) ==
          "gw.yaml:26:9: devices[0].points.relay: type float32 does not fit area coil, which holds single bits; "
          "expected type bool (or area holding/input for a float32)");
}

TEST_CASE("duplicate device and point names") {
    CHECK(only_error(replace(kBase, "name: relay", "name: temperature")) ==
          "gw.yaml:26:9: devices[0].points: duplicate point name 'temperature' (first defined at line 22)");
    std::string twice = std::string(kBase) + std::string(kBase).substr(std::string(kBase).find("  - name: Chic_D"));
    CHECK(only_error(twice) ==
          "gw.yaml:31:5: devices[1].name: duplicate device name 'Chic_D' (first defined at line 15)");
}

TEST_CASE("a bus or cloud referenced but not defined") {
    CHECK(only_error(replace(kBase, "bus: line1", "bus: line2")) ==
          "gw.yaml:15:5: devices[0].bus: bus 'line2' is not defined (did you mean 'line1'?); defined buses: line1");
    CHECK(only_error(replace(kBase, "cloud: onenet", "cloud: aliyun")) ==
          "gw.yaml:15:5: devices[0].cloud: cloud 'aliyun' is not defined; defined clouds: onenet");
}

TEST_CASE("more rules: unit on a serial line, writable input, missing key, keepalive, names") {
    CHECK(only_error(replace(kBase, "unit: 1", "unit: 0")) ==
          "gw.yaml:15:5: devices[0].unit: unit 0 is out of range for bus line1 (driver modbus-rtu); expected 1..247");
    CHECK(only_error(replace(kBase, "area: coil", "area: discrete")) ==
          "gw.yaml:26:9: devices[0].points.relay: area discrete is read-only; only coil and holding points can be "
          "writable");
    CHECK(only_error(replace(kBase, "    key: rs2FaE5BuygJZkWKDA5okKt1RFpwOx53hbu6hwyCS4U=\n", "")) ==
          "gw.yaml:15:5: devices[0]: device 'Chic_D' needs 'key' (or key_file), or cloud 'onenet' needs 'product_key', "
          "to compute its OneNET token");
    CHECK(only_error(replace(kBase, "product_id: \"469948\"", "product_id: \"469948\"\n    keepalive: 1h")) ==
          "gw.yaml:9:5: clouds.onenet.keepalive: OneNET accepts a keepalive of 10s..1800s");
    CHECK(only_error(replace(kBase, "name: Chic_D", "name: Chic D")) ==
          "gw.yaml:15:5: devices[0].name: OneNET device names may use only A-Z a-z 0-9 _ -; got 'Chic D'");
    CHECK(only_error(replace(kBase, "type: float32", "type: double")) ==
          "gw.yaml:25:15: devices[0].points[0].type: unknown value 'double'; expected one of: bool, int16, uint16, "
          "int32, uint32, int64, uint64, float32, float64, string, bcd");
}

TEST_CASE("platform rules: gateways, legacy device ids, DaShi secrets, ThingsBoard tokens") {
    const std::string tm = replace(kBase, "    protocol: datapoints", "    protocol: thing-model");
    CHECK(only_error(replace(kBase, "    interval: 5s", "    interval: 5s\n    via: nowhere")) ==
          "gw.yaml:15:5: devices[0].via: 'nowhere' is not a device with 'gateway: true'");
    CHECK(
        only_error(replace(kBase, "    interval: 5s", "    interval: 5s\n    gateway: true")) ==
        "gw.yaml:15:5: devices[0].gateway: gateway devices need a cloud with platform onenet and protocol thing-model");
    CHECK(errors_of(replace(tm, "    interval: 5s", "    interval: 5s\n    gateway: true")).empty());
    const std::string legacy = replace(replace(kBase, "platform: onenet", "platform: onenet-legacy"),
                                       "    protocol: datapoints\n", "    keepalive: 120s\n");
    CHECK(only_error(legacy) ==
          "gw.yaml:15:5: devices[0].device_id: OneNET legacy needs 'device_id': the numeric device id the platform "
          "assigned (the MQTT client id)");
    CHECK(errors_of(replace(legacy, "    unit: 1", "    unit: 1\n    device_id: \"5678\"")).empty());
    const std::string aiot =
        replace(replace(kBase, "platform: onenet", "platform: aiot"), "    protocol: datapoints\n", "");
    CHECK(errors_of(aiot).empty());
    CHECK(only_error(replace(aiot, "    key: rs2FaE5BuygJZkWKDA5okKt1RFpwOx53hbu6hwyCS4U=\n", "")) ==
          "gw.yaml:14:5: devices[0]: device 'Chic_D' needs 'key' (its deviceSecret) to sign the DaShi login");
    std::string many;
    for (int i = 0; i < 101; ++i)
        many +=
            "      - { name: p" + std::to_string(i) + ", area: holding, address: " + std::to_string(100 + i) + " }\n";
    CHECK(only_error(replace(tm, "      - name: relay\n", many + "      - name: relay\n")) ==
          "gw.yaml:15:5: devices[0].points: OneNET's thing model takes at most 100 properties per device in one "
          "message; got 103 (split the device)");
    const std::string tb =
        replace(replace(kBase, "platform: onenet", "platform: thingsboard"), "    protocol: datapoints\n", "");
    CHECK(only_error(tb) == "gw.yaml:4:3: clouds.onenet: missing required key 'username' for platform thingsboard");
    CHECK(only_error(replace(kBase, "platform: onenet", "platform: aliyun")) ==
          "gw.yaml:5:5: clouds.onenet.platform: unknown value 'aliyun'; expected one of: onenet, onenet-legacy, aiot, "
          "thingsboard, mqtt, sparkplug");
    CHECK(only_error(replace(kBase, "protocol: datapoints", "protocol: onejson")) ==
          "gw.yaml:6:5: clouds.onenet.protocol: unknown value 'onejson'; expected one of: datapoints, thing-model");
    CHECK(only_error(
              replace(tb, "    host: 127.0.0.1", "    host: 127.0.0.1\n    username: T\n    protocol: thing-model")) ==
          "gw.yaml:8:5: clouds.onenet.protocol: 'protocol' applies to platform onenet only (datapoints | thing-model)");
    // Keys no platform owns: unknown, with the keys this cloud's platform takes (shared, then its own).
    const std::string typo = only_error(replace(kBase, "protocol: datapoints", "protocl: datapoints"));
    CHECK(
        typo.rfind("gw.yaml:6:5: clouds.onenet: unknown key 'protocl' (did you mean 'protocol'?) for platform onenet; "
                   "expected one of: platform, "
                   "host, ",
                   0) == 0);
    CHECK(typo.find(", max_inflight, command_ttl, remote_config, diagnostics, remote_config_deadline, protocol") !=
          std::string::npos);
    CHECK(only_error(replace(kBase, "protocol: datapoints", "protocol: datapoints\n    topic: a/b")) ==
          "gw.yaml:7:5: clouds.onenet.topic: 'topic' applies to platform mqtt only (the generic MQTT data topic; other "
          "platforms have their own)");
    CHECK(only_error(replace(kBase, "protocol: datapoints", "protocol: [datapoints]")) ==
          "gw.yaml:6:15: clouds.onenet.protocol: expected a single value for a platform's key");
}

TEST_CASE("a platform's own key changed is a change of that cloud on reload") {
    const std::string mqtt =
        "clouds:\n  c: { platform: mqtt, host: h, topic: 'a/{device}' }\nbuses:\n  s: { driver: sim }\n"
        "devices:\n  - { name: d, cloud: c, bus: s, points: [ { name: a, area: holding, address: 0 } ] }\n";
    auto a = config::parse_text(mqtt, "gw.yaml");
    auto b = config::parse_text(replace(mqtt, "a/{device}", "b/{device}"), "gw.yaml");
    auto c = config::parse_text(mqtt, "gw.yaml");
    REQUIRE(a.errors.empty());
    REQUIRE(b.errors.empty());
    REQUIRE(a.config.clouds[0].option("topic") != nullptr);
    CHECK(a.config.clouds[0].option_or("topic", "") == "a/{device}");
    CHECK_FALSE(config::same_cloud(a.config.clouds[0], b.config.clouds[0]));
    CHECK(config::same_cloud(a.config.clouds[0], c.config.clouds[0]));
}

TEST_CASE("qos 0 cannot carry stored data") {
    const std::string mqtt =
        "clouds:\n  c: { platform: mqtt, host: h, qos: 0 }\nbuses:\n  s: { driver: sim }\n"
        "devices:\n  - { name: d, cloud: c, bus: s, points: [ { name: a, area: holding, address: 0 } ] }\n";
    CHECK(only_error(mqtt) ==
          "gw.yaml:2:3: clouds.c.qos: qos 0 gets no acknowledgement, so stored data would be deleted "
          "unconfirmed; use qos 1, or gateway.store: memory");
    CHECK(errors_of("gateway: { store: memory }\n" + mqtt).empty());
}

TEST_CASE("every error is reported, not just the first") {
    auto errs = errors_of(replace(replace(kBase, "unit: 1", "unit: x"), "interval: 5s", "interval: soon"));
    CHECK(errs.size() == 2);
}

TEST_CASE("invalid YAML names its position") {
    CHECK(only_error("clouds: [a\n").rfind("gw.yaml:2:1: invalid YAML", 0) == 0);
}

TEST_CASE("environment variables expand in any value") {
    setenv("FL_TEST_PORT", "2883", 1);
    auto r = load_config_text(replace(kBase, "    host: 127.0.0.1", "    host: 127.0.0.1\n    port: ${FL_TEST_PORT}"),
                              "gw.yaml", nullptr);
    REQUIRE(r.ok());
    CHECK(r.config.clouds[0].port == 2883);
    CHECK(only_error(replace(kBase, "    host: 127.0.0.1", "    host: ${FL_TEST_UNSET_VAR}")) ==
          "gw.yaml:7:11: clouds.onenet.host: environment variable FL_TEST_UNSET_VAR is not set; expected it to hold a "
          "text value");
}

TEST_CASE("driver options are checked against the plugin's declarations") {
    bus::PluginRegistry reg;
    std::vector<std::string> load_errors;
    reg.load_dir(TEST_PLUGIN_DIR, load_errors);
    CHECK(load_errors.empty());

    auto check = [&](const std::string& text) {
        auto r = load_config_text(text, "gw.yaml", &reg);
        std::vector<std::string> out;
        for (const auto& e : r.errors) out.push_back(format_error("gw.yaml", e));
        return std::make_pair(r.config, out);
    };
    auto [cfg, ok] = check(kBase);
    CHECK(ok.empty());
    bool has_timeout = false;
    for (const auto& o : cfg.buses[0].options) has_timeout = has_timeout || (o.key == "timeout" && o.value == "300");
    CHECK(has_timeout);  // defaults are filled in, durations canonical (ms)

    auto [c2, unknown] = check(replace(kBase, "    baud: 9600", "    baud: 9600\n    host: 10.0.0.1"));
    REQUIRE(unknown.size() == 1);
    CHECK(unknown[0] ==
          "gw.yaml:14:5: buses.line1: unknown key 'host' for driver modbus-rtu; expected one of: driver, retries, "
          "backoff_max, max_gap, turnaround, device, baud, parity, data_bits, stop_bits, unit_switch_delay, timeout");
    auto [c3, badparity] = check(replace(kBase, "    baud: 9600", "    parity: mark"));
    REQUIRE(badparity.size() == 1);
    CHECK(badparity[0] == "gw.yaml:13:5: buses.line1.parity: unknown value 'mark'; expected one of: none,even,odd");
    auto [c4, missing] = check(replace(kBase, "    device: /dev/ttyUSB0\n", ""));
    REQUIRE(missing.size() == 1);
    CHECK(missing[0] ==
          "gw.yaml:10:3: buses.line1: missing required key 'device' for driver modbus-rtu (serial device, e.g. "
          "/dev/ttyUSB0)");
    auto [c5, nodriver] = check(replace(kBase, "driver: modbus-rtu", "driver: profibus"));
    REQUIRE(nodriver.size() == 1);
    CHECK(nodriver[0] ==
          "gw.yaml:10:3: buses.line1.driver: driver 'profibus' is not available; installed drivers: modbus-rtu, "
          "modbus-tcp, modbus-rtu-over-tcp, serial-line, sim");
}

TEST_CASE("events and attributes: what they need, with the point and what was expected") {
    const std::string point = "        type: float32\n";
    CHECK(only_error(replace(kBase, point, point + "        event: hot\n")) ==
          "gw.yaml:22:9: devices[0].points.temperature: 'event' names the event of a point with 'report: event'; "
          "this point has report property");
    CHECK(only_error(replace(kBase, point, point + "        trigger: rising\n")) ==
          "gw.yaml:22:9: devices[0].points.temperature: 'trigger' applies to 'report: event' or 'report: "
          "attribute'; a property is sent with every poll");
    CHECK(only_error(replace(kBase, point, point + "        report: attribute\n        trigger: none\n")) ==
          "gw.yaml:22:9: devices[0].points.temperature: 'trigger: none' carries a point along with its event; an "
          "attribute with it would never be sent");
    CHECK(only_error(replace(kBase, point, point + "        report: event\n        trigger: none\n")) ==
          "gw.yaml:15:5: devices[0].points: event 'temperature' has only points with 'trigger: none'; at least one "
          "must trigger it");
    CHECK(only_error(replace(kBase, point, point + "        report: alarm\n")) ==
          "gw.yaml:26:17: devices[0].points[0].report: unknown value 'alarm'; expected one of: property, event, "
          "attribute");
    CHECK(only_error(replace(replace(kBase, "    interval: 5s", "    interval: 5s\n    link_event: link"),
                             "- name: relay", "- name: online")) ==
          "gw.yaml:15:5: devices[0].link_event: the link event's parameter is named 'online', and the device "
          "already has a point of that name; rename the point");

    auto ok =
        load_config_text(replace(replace(kBase, "    interval: 5s", "    interval: 5s\n    link_event: link"), point,
                                 point + "        report: event\n        event: hot\n        trigger: change\n"),
                         "gw.yaml", &test::drivers());
    for (const auto& e : ok.errors) FAIL(format_error("gw.yaml", e));
    const auto& d = ok.config.devices[0];
    REQUIRE(d.points.size() == 3);
    CHECK(d.points[0].report == Report::event);
    CHECK(d.points[0].event_name() == "hot");
    CHECK(d.points[1].report == Report::property);
    CHECK(d.points[2].link);
    CHECK(d.points[2].event_name() == "link");
}

TEST_CASE("a configuration split over conf.d fragments is merged; names defined twice give both positions") {
    using fieldlink::config::Fragment;
    const std::string main = R"(
clouds:
  c: { platform: mqtt, host: 127.0.0.1, port: 1883, topic: "t/{device}" }
buses:
  plc: { driver: sim }
)";
    const std::vector<Fragment> ok = {{"/etc/fieldlink/conf.d/10-line.yaml", R"(
buses:
  line1: { driver: sim }
devices:
  - { name: d1, cloud: c, bus: line1, points: [{ name: v, area: holding, address: 0 }] }
)"},
                                      {"/etc/fieldlink/conf.d/20-more.yaml", R"(
devices:
  - { name: d2, cloud: c, bus: plc, points: [{ name: v, area: holding, address: 0 }] }
)"}};
    auto r = fieldlink::config::parse_files(main, "/etc/fieldlink/fieldlink.yaml", ok);
    for (const auto& e : r.errors) FAIL(fieldlink::config::format_error("/etc/fieldlink/fieldlink.yaml", e));
    REQUIRE(r.config.devices.size() == 2);
    CHECK(r.config.devices[1].name == "d2");
    CHECK(r.config.buses.size() == 2);

    const std::vector<Fragment> bad = {ok[0],
                                       {"/etc/fieldlink/conf.d/30-dup.yaml", R"(
buses:
  plc: { driver: sim }
devices:
  - { name: d1, cloud: c, bus: plc, points: [{ name: v, area: holding, address: 0 }] }
)"},
                                       {"/etc/fieldlink/conf.d/40-gw.yaml", "gateway: { log_level: debug }\n"}};
    r = fieldlink::config::parse_files(main, "/etc/fieldlink/fieldlink.yaml", bad);
    std::vector<std::string> msgs;
    for (const auto& e : r.errors) msgs.push_back(fieldlink::config::format_error("/etc/fieldlink/fieldlink.yaml", e));
    REQUIRE(msgs.size() == 3);
    CHECK(msgs[0] ==
          "/etc/fieldlink/conf.d/30-dup.yaml:3:3: buses.plc: defined twice: here and at "
          "/etc/fieldlink/fieldlink.yaml:5:3");
    CHECK(msgs[1] ==
          "/etc/fieldlink/conf.d/30-dup.yaml:5:5: devices.d1: device defined twice: here and at "
          "/etc/fieldlink/conf.d/10-line.yaml:5:5");
    CHECK(msgs[2] == "/etc/fieldlink/conf.d/40-gw.yaml:1:10: the gateway section belongs in the main file only");

    // An error inside a fragment names the fragment.
    r = fieldlink::config::parse_files(main, "/etc/fieldlink/fieldlink.yaml",
                                       {{"/etc/fieldlink/conf.d/50-x.yaml", "devices:\n  - { name: d9 }\n"}});
    REQUIRE_FALSE(r.errors.empty());
    CHECK(fieldlink::config::format_error("/etc/fieldlink/fieldlink.yaml", r.errors[0])
              .rfind("/etc/fieldlink/conf.d/50-x.yaml:2:5: devices[0]: missing required key", 0) == 0);
}

TEST_CASE("a key given twice is an error with both positions, never 'the last one wins'") {
    const auto e = only_error(replace(kBase, "        address: 10\n", "        address: 10\n        address: 5\n"));
    CHECK(e.find("key 'address' given twice") != std::string::npos);
    CHECK(e.rfind("gw.yaml:25:9: devices[0].points[0]: key 'address' given twice: here and at line 24, column 9", 0) ==
          0);
    CHECK(only_error(replace(kBase, "    baud: 9600\n", "    baud: 9600\n    baud: 19200\n"))
              .find("'baud' given twice") != std::string::npos);
}

TEST_CASE("YAML nested too deep says so, and where") {
    const std::string deep = "x: " + std::string(5000, '[') + std::string(5000, ']') + "\n";
    const auto e = only_error(deep);
    CHECK(e.find("nested too deep") != std::string::npos);
    CHECK(e.rfind("gw.yaml:1:", 0) == 0);
}

TEST_CASE("a long scalar is read in linear time; a file over the size limit is refused with its size") {
    // (a quadratic search in the reader took minutes on one 50 MB scalar)
    const auto e = only_error(replace(kBase, "    baud: 9600\n", "    baud: \"" + std::string(2 << 20, '9') + "\"\n"));
    CHECK(e.find("baud") != std::string::npos);
    const auto dir = test::temp_dir("fl-config-size");
    {
        std::ofstream f(dir + "/big.yaml");
        f << kBase << "# " << std::string(fieldlink::config::kMaxConfigBytes, 'x') << "\n";
    }
    std::string text, why;
    CHECK_FALSE(fieldlink::config::read_file(dir + "/big.yaml", text, &why));
    CHECK(why.find("bytes; a configuration is read up to 4 MiB") != std::string::npos);
}

TEST_CASE("names that cannot be an MQTT topic level or client id are refused, per platform") {
    const std::string mqtt =
        replace(replace(kBase, "    platform: onenet\n    protocol: datapoints\n", "    platform: mqtt\n"),
                "    key: rs2FaE5BuygJZkWKDA5okKt1RFpwOx53hbu6hwyCS4U=\n", "");
    CHECK(errors_of(mqtt).empty());
    CHECK(only_error(replace(mqtt, "name: Chic_D", "name: \"+\"")).find("MQTT wildcards") != std::string::npos);
    CHECK(only_error(replace(mqtt, "name: Chic_D", "name: \"a#\"")).find("MQTT wildcards") != std::string::npos);
    CHECK(only_error(replace(mqtt, "name: Chic_D", "name: \"a\\x01b\"")).find("not UTF-8") != std::string::npos);
    CHECK(only_error(replace(mqtt, "name: temperature", "name: \"t\\x7f\"")).find("point name") != std::string::npos);
    CHECK(errors_of(replace(mqtt, "name: Chic_D", "name: \"site/boiler 1\"")).empty());  // a topic path is fine
    CHECK(only_error(replace(kBase, "name: Chic_D", "name: \"Chic.D\"")).find("OneNET device names") !=
          std::string::npos);
}

TEST_CASE("gateway.modbus_server: points served by name, checked for area, range and overlap") {
    const std::string served = replace(kBase, "gateway:\n  data_dir: /tmp/fl\n", R"(gateway:
  data_dir: /tmp/fl
  modbus_server:
    listen: 0.0.0.0:5020
    max_clients: 50
    stale_exception: 4
    map:
      - { device: Chic_D, point: temperature, area: input, address: 0 }
      - { device: Chic_D, point: relay, unit: 2, area: coil, address: 7 }
)");
    auto r = load_config_text(served, "gw.yaml", &test::drivers());
    REQUIRE(r.ok());
    const auto& m = r.config.gateway.modbus_server;
    CHECK(m.host == "0.0.0.0");
    CHECK(m.port == 5020);
    CHECK(m.max_clients == 50);
    CHECK(m.stale_exception == 4);
    REQUIRE(m.map.size() == 2);
    CHECK(m.map[0].device_index == 0);
    CHECK(m.map[0].point_index == 0);
    CHECK(m.map[1].point_index == 1);
    CHECK(m.map[1].unit == 2);
    CHECK(m.map[1].area == config::Area::coil);

    CHECK(only_error(replace(served, "point: temperature", "point: temprature")) ==
          "gw.yaml:8:9: gateway.modbus_server.map[0].point: device Chic_D has no point named 'temprature' (did you "
          "mean 'temperature'?)");
    CHECK(only_error(replace(served, "device: Chic_D, point: relay", "device: Chic, point: relay")) ==
          "gw.yaml:9:9: gateway.modbus_server.map[1].device: no device named 'Chic' (did you mean 'Chic_D'?); expected "
          "one of the devices: "
          "section");
    CHECK(only_error(replace(served, "area: input, address: 0", "area: coil, address: 0")) ==
          "gw.yaml:8:9: gateway.modbus_server.map[0].area: point temperature is not a plain boolean: serve it in "
          "holding or input registers");
    CHECK(only_error(replace(served, "unit: 2, area: coil", "unit: 2, area: holding")) ==
          "gw.yaml:9:9: gateway.modbus_server.map[1].area: point relay is a boolean: serve it in coil or discrete");
    // A float32 takes two registers: another point at its second one overlaps.
    CHECK(only_error(replace(served, "point: relay, unit: 2, area: coil, address: 7",
                             "point: temperature, area: input, address: 1")) ==
          "gw.yaml:9:9: gateway.modbus_server.map[1].address: address 1 of unit 1 is taken by map[0] "
          "(Chic_D.temperature)");
    CHECK(only_error(replace(served, "address: 0 }", "address: 65535 }")) ==
          "gw.yaml:8:9: gateway.modbus_server.map[0].address: the point's 2 registers run past address 65535");
    CHECK(only_error(replace(served, "stale_exception: 4", "stale_exception: 5")) ==
          "gw.yaml:6:22: gateway.modbus_server.stale_exception: 5 is not an exception for a stale value; expected 4 "
          "or 11");
    CHECK(only_error(replace(served, "listen: 0.0.0.0:5020", "listen: 0.0.0.0:99999")) ==
          "gw.yaml:4:13: gateway.modbus_server.listen: '0.0.0.0:99999' is not a listen address; expected a port "
          "1..65535 (on 127.0.0.1) or HOST:PORT, like 0.0.0.0:502");
}

namespace {

std::string write_csv(const std::string& name, const std::string& text) {
    const std::string path = "/tmp/fl-test-" + std::to_string(::getpid()) + "-" + name;
    std::ofstream(path) << text;
    return path;
}

std::string with_points_file(const std::string& path) {
    return replace(kBase, "    points:\n", "    points_file: " + path + "\n    points:\n");
}

}  // namespace

TEST_CASE("points_file: a CSV register map, each row a point, with the YAML's rules and positions") {
    const auto good = write_csv("good.csv",
                                "# Eastron-style meter, input registers\n"
                                "name,area,address,type,order,scale,unit,writable,min,max\n"
                                "voltage,input,0,float32,abcd,,V,,,\n"
                                "\n"
                                "current,input,6,float32,cdab,1,A,false,,\n"
                                "\"limit\",holding,20,uint16,,0.1,\"kW, total\",true,0,100\n");
    auto r = load_config_text(with_points_file(good), "gw.yaml", &test::drivers());
    for (const auto& e : r.errors) INFO(format_error("gw.yaml", e));
    REQUIRE(r.ok());
    const auto& pts = r.config.devices[0].points;
    REQUIRE(pts.size() == 5);  // the file's three, then the YAML's two
    CHECK(pts[0].name == "voltage");
    CHECK(pts[0].area == Area::input);
    CHECK(pts[0].type == DataType::float32);
    CHECK(pts[0].eng_unit == "V");
    CHECK(pts[1].order == WordOrder::cdab);
    CHECK(pts[2].name == "limit");
    CHECK(pts[2].writable);
    CHECK(pts[2].scale == doctest::Approx(0.1));
    CHECK(pts[2].eng_unit == "kW, total");
    CHECK(*pts[2].max == 100);
    CHECK(pts[3].name == "temperature");
    CHECK(pts[0].mark.line == 3);  // the row's line in the CSV file, for validation's messages
    CHECK(*pts[0].mark.file == good);

    // Errors name the CSV file, its line and the cell's column.
    const auto bad = write_csv("bad.csv",
                               "name,area,adress\n"
                               "a,holding,1\n");
    CHECK(only_error(with_points_file(bad)) ==
          bad +
              ":1:11: devices[0].points_file: unknown column 'adress' (did you mean 'address'?) in the header; "
              "expected columns among: name, area, address, type, order, scale, offset, unit, writable, min, max, "
              "length, bit, deadband, on_change, heartbeat, report, event, trigger, poll, aggregate");
    const auto badtype = write_csv("badtype.csv", "name,area,address,type\nok,holding,1,uint16\nx,holding,2,flot32\n");
    CHECK(only_error(with_points_file(badtype)) ==
          badtype +
              ":3:13: devices[0].points_file[line 3].type: unknown value 'flot32' (did you mean 'float32'?); "
              "expected one of: bool, int16, uint16, int32, uint32, int64, uint64, float32, float64, string, bcd");
    const auto wide = write_csv("wide.csv", "name,area,address\na,holding,1,7\n");
    CHECK(only_error(with_points_file(wide)) ==
          wide + ":2:13: devices[0].points_file: this row has 4 cells; the header names 3 columns");
    const auto quote = write_csv("quote.csv", "name,area,address\n\"a,holding,1\n");
    CHECK(only_error(with_points_file(quote)).rfind(quote + ":3:1: devices[0].points_file: not a valid CSV file", 0) ==
          0);
    const auto noaddr = write_csv("noaddr.csv", "name,area\na,holding\n");
    CHECK(only_error(with_points_file(noaddr)) ==
          noaddr + ":2:1: devices[0].points_file[line 2]: missing required key 'address'");
    const auto overlap = write_csv("dup.csv", "name,area,address\ntemperature,holding,40\n");
    CHECK(only_error(with_points_file(overlap)).find("duplicate") != std::string::npos);
    CHECK(only_error(with_points_file("/nonexistent/m.csv")) ==
          "gw.yaml:21:18: devices[0].points_file: points file /nonexistent/m.csv: cannot open it");
    const auto empty = write_csv("empty.csv", "# nothing\n");
    CHECK(only_error(with_points_file(empty)) ==
          empty +
              ":1:1: devices[0].points_file: the points file is empty; expected a header row (name,area,address,...)");
    for (const auto* f : {&good, &bad, &badtype, &wide, &quote, &noaddr, &overlap, &empty}) std::remove(f->c_str());
}
