// The gateway configuration as plain structs. Parsing and validation live in config_parser.cpp;
// the YAML contract is documented in docs/CONFIG.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "duration.hpp"
#include "types.hpp"

namespace fieldlink::core {

struct Mark {
    int line = 0;    // 1-based, 0 = unknown
    int column = 0;  // 1-based
};

struct GatewayConfig {
    std::string data_dir = "/var/lib/fieldlink";
    std::string log_level = "info";
    std::string plugin_dir;  // empty: built-in default
    bool store_on_disk = true;                     // false: `store: memory` (no durability; for comparison)
    std::uint64_t store_max_bytes = 256ULL << 20;  // disk budget of the outbox
    Duration store_max_age{0};                     // 0: no age limit
    Duration store_sync{1000};                     // 0: fsync every batch; else WAL checkpoint interval
};

enum class Platform { onenet, onenet_legacy, aiot, thingsboard, mqtt };
enum class OnenetProtocol { datapoints, thing_model };

struct TlsConfig {
    std::string ca_file;
    std::string cert_file;
    std::string key_file;
};

struct CloudConfig {
    std::string name;
    Mark mark;
    Platform platform = Platform::mqtt;
    OnenetProtocol protocol = OnenetProtocol::datapoints;
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
    std::string password;           // secret
    std::string client_id = "{device}";
    std::string topic = "fieldlink/{device}";
    std::string payload = R"({"ts":{ts_ms},"values":{values}})";
    int qos = 1;
    double max_rate = 0;  // messages per second per session; 0 = unlimited
    int max_inflight = 20;
};

struct DriverOption {
    std::string key;
    std::string value;  // canonical text (see fl_option_type)
    Mark mark;
};

struct BusConfig {
    std::string name;
    Mark mark;
    std::string driver;
    std::vector<DriverOption> options;  // everything that is not a core bus key
    int retries = 1;
    Duration backoff_max{60'000};
    int max_gap = -1;       // registers a read may bridge; -1 = from the bus cost model
    Duration turnaround{5}; // device response latency used by the cost model
    int baud = 9600;        // copied from options for the cost model (serial drivers)
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

    int count() const { return is_bit_area(area) ? 1 : register_count(type, length); }
};

struct DeviceConfig {
    std::string name;
    Mark mark;
    std::string cloud;
    std::string bus;
    int unit = 1;
    std::string key;  // secret: OneNET device key, legacy auth_info, DaShi deviceSecret
    std::string product_id;  // sub-device product (OneNET gateway mode); default: the cloud's
    std::string device_id;   // legacy OneNET numeric device id; DaShi deviceId (default: name)
    bool gateway = false;    // OneNET thing model: this device carries sub-devices
    std::string via;         // OneNET thing model: the gateway device that carries this one
    Duration interval{5'000};
    int max_gap = -1;
    std::vector<PointConfig> points;
    // Resolved by validation:
    std::size_t cloud_index = 0;
    std::size_t bus_index = 0;
    std::optional<std::size_t> via_index;
};

struct Config {
    std::string file;
    GatewayConfig gateway;
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
const char* to_string(Platform p);

}  // namespace fieldlink::core
