// The gateway configuration as plain structs: what the YAML says, plus what validation resolved.
// Parsing is in parser.cpp (declared tables), generic rules in validate.cpp; platform rules live
// with each platform (daemon/platforms/) and driver rules with each driver plugin. The YAML
// contract is documented in docs/CONFIG.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <map>
#include <memory>

#include "core/clock.hpp"
#include "core/duration.hpp"
#include "core/value.hpp"
#include "types.hpp"

namespace fieldlink::config {

using core::Duration;

inline constexpr std::size_t kUnresolved = static_cast<std::size_t>(-1);
// The parameter of a device's link event (the point validation adds for `link_event`).
inline constexpr const char* kLinkPoint = "online";

struct Mark {
    int line = 0;    // 1-based, 0 = unknown
    int column = 0;  // 1-based
    // The file, when the configuration is split (conf.d/*.yaml); null: the main file.
    std::shared_ptr<const std::string> file;
};

// One point served by the local Modbus TCP server (gateway.modbus_server.map): where a client
// reads it; its type, word order and scale are the point's own, reversed as for a write.
struct ServedPoint {
    Mark mark;
    std::string device;  // names, as written
    std::string point;
    std::uint32_t device_index = 0;  // resolved by validation
    std::uint32_t point_index = 0;
    int unit = 1;
    Area area = Area::holding;
    std::uint16_t address = 0;
};

// The local Modbus TCP server for a site's HMI or SCADA: the latest value of chosen points, from
// the same cache the cloud gets, even while the cloud is down.
struct ModbusServerConfig {
    Mark mark;
    std::string host = "127.0.0.1";
    int port = 0;  // 0: off
    int max_clients = 16;
    Duration idle_timeout{60'000};  // a client that sends nothing this long is closed
    Duration stale_after{0};        // 0: no age limit (served while the unit answers)
    int stale_exception = 11;       // 4 (server device failure) or 11 (gateway target failed to respond)
    std::vector<ServedPoint> map;
};

struct GatewayConfig {
    std::string data_dir = "/var/lib/fieldlink";
    // status.json and metrics.prom, rewritten every status period: empty means data_dir. A tmpfs
    // (/run/fieldlink) spares an SD card those writes and keeps them going on a full data disk.
    std::string status_dir;
    const std::string& status_path() const { return status_dir.empty() ? data_dir : status_dir; }
    std::string log_level = "info";
    std::string plugin_dir;
    // When samples may be stamped with the wall clock (core/clock.hpp); before, they are held.
    core::ClockPolicy clock = core::ClockPolicy::automatic;  // empty: built-in default
    bool store_on_disk = true;                               // false: `store: memory` (no durability; for comparison)
    // Warnings that would make a deployment fail later (a serial line that cannot keep its
    // schedule) are errors: the configuration is refused.
    bool strict = false;
    std::uint64_t store_max_bytes = 256ULL << 20;  // disk budget of the outbox
    Duration store_max_age{0};                     // 0: no age limit
    Duration store_sync{1000};                     // 0: fsync every batch; else WAL checkpoint interval
    std::vector<std::string> dns_servers;          // "ip[:port]"; empty: the system's resolver configuration
    Duration dns_timeout{5000};                    // per query try
    // Metrics, health and the status page over HTTP (`http: 9910` or `http: HOST:PORT`); port 0: off.
    std::string http_host = "127.0.0.1";
    int http_port = 0;
    ModbusServerConfig modbus_server;
};

struct TlsConfig {
    std::string ca_file;
    std::string cert_file;
    std::string key_file;
};

// A key of a section that is not one of the section's own, kept as written for what owns it:
// a bus's driver options (checked against what the driver plugin declares) and a cloud's
// platform keys (Platform::own_keys in daemon/platforms/platform.hpp).
struct Option {
    std::string key;
    std::string value;  // the text as written (a driver option: canonical text, see fl_option_type)
    Mark mark;
};
using DriverOption = Option;
using CloudOption = Option;

struct CloudConfig {
    std::string name;
    Mark mark;
    std::string platform;  // a registered platform name (daemon/platforms/registry.cpp)
    std::string host;
    int port = 0;  // 0 = platform default
    std::optional<TlsConfig> tls;
    std::string product_id;
    Duration keepalive{60'000};
    std::string token_method;  // empty: the platform's default (onenet sha256, aiot sha1)
    Duration token_ttl{86'400'000LL * 365};
    std::int64_t token_expiry = 0;  // absolute Unix seconds; 0 = now + token_ttl
    std::string product_key;        // secret
    std::string username;
    std::string password;  // secret
    std::string client_id = "{device}";
    int qos = 1;
    double max_rate = 0;  // messages per second per session; 0 = unlimited
    int max_inflight = 20;
    std::uint64_t max_payload_size = 0;  // bytes per message; 0 until the platform sets its default
    Duration command_ttl{30'000};        // a write older than this when the bus reaches it is refused
    // Configuration pushed from the platform on this cloud's channel is applied (app.cpp,
    // config/pushed.hpp); rolled back when this cloud has not connected again within the deadline.
    bool remote_config = false;
    // Read-only requests of the platform are answered (raw registers, warning lines, bus
    // statistics); refused when off.
    bool diagnostics = false;
    Duration remote_config_deadline{60'000};
    std::map<std::string, Mark> given;  // keys written in the file, with their positions
    // The platform's own keys (protocol, topic, group_id...), in the order written.
    std::vector<CloudOption> options;

    bool has(const std::string& key) const { return given.count(key) != 0; }
    const CloudOption* option(const std::string& key) const {
        for (const auto& o : options) {
            if (o.key == key) return &o;
        }
        return nullptr;
    }
    std::string option_or(const std::string& key, const std::string& fallback) const {
        const auto* o = option(key);
        return o ? o->value : fallback;
    }
    Mark mark_of(const std::string& key) const {
        auto it = given.find(key);
        return it == given.end() ? mark : it->second;
    }
};

struct BusConfig {
    std::string name;
    Mark mark;
    std::string driver;
    std::vector<DriverOption> options;  // everything that is not a core bus key
    int retries = 1;
    Duration backoff_max{60'000};
    int max_gap = -1;        // registers a read may bridge; -1 = from the bus cost model
    Duration turnaround{5};  // device response latency used by the cost model
    // Stated by the driver for this bus (fl_bus_model_v2), filled in by driver validation.
    struct Timing {
        double request_overhead_us = 20.0;
        double register_us = 2.0;
        double bit_us = 0.25;
        int max_registers = 125;
        int max_bits = 2000;
        int unit_min = 0;
        int unit_max = 255;
        bool shared_line = false;
    } timing;
};

struct PointConfig {
    std::string name;
    Mark mark;
    Area area = Area::holding;
    std::uint16_t address = 0;
    DataType type = DataType::uint16;
    WordOrder order = WordOrder::abcd;
    double scale = 1.0;
    double offset = 0.0;
    int bit = -1;
    int length = 0;  // registers, for strings
    bool writable = false;
    std::string eng_unit;  // `unit:` the engineering unit ("kWh", "V"), shown with the value
    // Writes from the cloud are refused outside [min, max] (engineering units, after scale).
    std::optional<double> min;
    std::optional<double> max;
    // Named values a plain command may give instead of a value (`on: 1`, `off: 0`).
    struct Command {
        std::string name;
        std::string text;  // as written in the file
        Mark mark;
        core::Value value;  // converted by validation to what the point accepts
    };
    std::vector<Command> commands;
    // Report by exception (properties): sent only when the value moved more than `deadband` from
    // the value last sent (absolute, or percent of it), or on any change with `on_change`; and
    // anyway once `heartbeat` passed since it was last sent (0: never).
    double deadband = 0.0;
    bool deadband_percent = false;
    bool on_change = false;
    Duration heartbeat{0};
    // `poll:`: with the device's polls (default), every `poll_interval` (a duration), `once` when
    // the device first answers, or `on_write`: at start and after each write to the device.
    Duration poll_interval{0};
    bool by_exception() const { return on_change || deadband > 0.0; }
    Report report = Report::property;
    std::string event;  // report: event: the event identifier (default: the point name)
    Trigger trigger = Trigger::change;
    bool trigger_given = false;
    // Not read from the bus: the device's link state (true while its unit answers), made by
    // validation from the device's `link_event`.
    bool link = false;
    PollClass poll = PollClass::device;
    // `aggregate:` in a device's publish window: last (default), min, max, mean or count.
    Aggregate aggregate = Aggregate::last;
    bool aggregate_given = false;
    // Drivers with named fields (serial-line): the field this point reads; validation against the
    // bus's driver sets `address` (an input float64).
    std::string field;

    // Sent only when its trigger fires (events, attributes), not with every poll.
    bool on_trigger() const { return report != Report::property; }
    const std::string& event_name() const { return event.empty() ? name : event; }
    int count() const { return is_bit_area(area) ? 1 : register_count(type, length); }
};

struct DeviceConfig {
    std::string name;
    Mark mark;
    std::string cloud;
    std::string bus;
    int unit = 1;
    std::string key;            // secret: OneNET device key, legacy auth_info, DaShi deviceSecret
    std::string product_id;     // sub-device product (OneNET gateway mode); default: the cloud's
    std::string product_key;    // secret: the access key of that product (OneNET), when it differs
    std::string device_id;      // legacy OneNET numeric device id; DaShi deviceId (default: name)
    bool gateway = false;       // OneNET thing model: this device carries sub-devices
    std::string via;            // OneNET thing model: the gateway device that carries this one
    std::string link_event;     // event reported when the unit stops answering / answers again
    std::string template_name;  // `template:`: the points of this named template come first
    std::string units;          // `units: 1-32`: one device per unit id, named by `{unit}` in its name
    Mark units_mark;
    bool unit_given = false;
    bool interval_given = false;
    Duration interval{5'000};
    // `publish:` a window longer than the interval: the device's properties are sent once per
    // window, each as its `aggregate` of the polls in it (0: every poll is sent).
    Duration publish{0};
    int max_gap = -1;
    std::vector<PointConfig> points;
    // Resolved by validation:
    std::size_t cloud_index = kUnresolved;
    std::size_t bus_index = kUnresolved;
    std::optional<std::size_t> via_index;
    // Kept by a reload for the index of a device the new configuration no longer has
    // (config/diff.hpp): no cloud, no bus, no points.
    bool retired = false;
};

// A named block of points (and optionally an interval) that devices reference with `template:`.
struct TemplateConfig {
    std::string name;
    Mark mark;
    std::vector<PointConfig> points;
    std::optional<Duration> interval;
};

struct Config {
    std::string file;
    GatewayConfig gateway;
    std::vector<TemplateConfig> templates;
    std::vector<CloudConfig> clouds;
    std::vector<BusConfig> buses;
    std::vector<DeviceConfig> devices;
};

struct ConfigError {
    Mark mark;
    std::string path;     // e.g. devices[0].points[2].address
    std::string message;  // what is wrong and what was expected
};

std::string format_error(const std::string& file, const ConfigError& e);

// Collects validation errors (every stage reports all it finds, not just the first).
class Checker {
  public:
    explicit Checker(std::vector<ConfigError>& errors) : errors_(errors) {}
    void fail(const Mark& m, const std::string& path, const std::string& msg) {
        errors_.push_back(ConfigError{m, path, msg});
    }
    std::size_t count() const { return errors_.size(); }

  private:
    std::vector<ConfigError>& errors_;
};

// Path prefixes used in messages.
inline std::string device_path(std::size_t index) {
    return "devices[" + std::to_string(index) + "]";
}
inline std::string cloud_path(const CloudConfig& c) {
    return "clouds." + c.name;
}

}  // namespace fieldlink::config
