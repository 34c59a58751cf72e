#include "cli/import.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "cli/text.hpp"
#include "config/parser.hpp"
#include "config/points_file.hpp"

namespace fieldlink::cli {
namespace {

using nlohmann::json;

struct Point {
    std::string name, area, type = "uint16", order;
    int address = 0;
    int length = 0;
    int bit = -1;
    double scale = 1, offset = 0;
    bool writable = false;
    bool attribute = false;
};

struct Device {
    std::string name, bus;
    int unit = 1;
    long interval_ms = 0;
    std::vector<Point> points;
};

struct Bus {
    std::string name;
    std::vector<std::pair<std::string, std::string>> options;  // driver first
    std::string note;                                          // a comment for what the source did not say
};

struct Draft {
    std::string source;
    std::vector<Bus> buses;
    std::vector<Device> devices;
    std::vector<std::string> errors;
};

// A field of a connector object that is there with the wrong type or out of range: reported with
// its entry's path, the entry left out.
struct BadField : std::runtime_error {
    using std::runtime_error::runtime_error;
};

std::string str(const json& o, const char* key, const std::string& fallback) {
    if (!o.is_object() || !o.contains(key)) return fallback;
    const json& v = o[key];
    if (!v.is_string()) throw BadField(std::string(key) + " is not text");
    return v.get<std::string>();
}

long whole(const json& o, const char* key, long fallback, long lo, long hi) {
    if (!o.is_object() || !o.contains(key)) return fallback;
    const json& v = o[key];
    const bool fits =
        v.is_number_integer() && (v.is_number_unsigned() ? v.get<std::uint64_t>() <= static_cast<std::uint64_t>(hi)
                                                         : v.get<std::int64_t>() >= lo && v.get<std::int64_t>() <= hi);
    if (!fits) throw BadField(std::string(key) + " is not " + std::to_string(lo) + ".." + std::to_string(hi));
    return static_cast<long>(v.get<std::int64_t>());
}

double real(const json& o, const char* key, double fallback) {
    if (!o.is_object() || !o.contains(key)) return fallback;
    const json& v = o[key];
    if (!v.is_number() || !std::isfinite(v.get<double>())) throw BadField(std::string(key) + " is not a number");
    return v.get<double>();
}

// A name fieldlink takes everywhere (topics, client ids): letters, digits, '_', '-', '.'.
std::string safe_name(const std::string& s, const char* fallback) {
    std::string out;
    for (const char c : s) {
        const bool ok = std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-' || c == '.';
        out += ok ? c : '_';
    }
    return out.empty() ? fallback : out;
}

// The bus named `name` with these options, added once.
std::string add_bus(Draft& d, const std::string& name, std::vector<std::pair<std::string, std::string>> options,
                    const std::string& note = {}) {
    for (const auto& b : d.buses) {
        if (b.options == options) return b.name;
    }
    d.buses.push_back({safe_name(name, "bus"), std::move(options), note});
    return d.buses.back().name;
}

std::string area_of_function(int fc) {
    switch (fc) {
        case 1:
        case 5:
        case 15:
            return "coil";
        case 2:
            return "discrete";
        case 3:
        case 6:
        case 16:
            return "holding";
        case 4:
            return "input";
        default:
            return {};
    }
}

// byteOrder / wordOrder (pymodbus vocabulary) as a fieldlink word order.
std::string order_of(const std::string& byte_order, const std::string& word_order) {
    const bool bytes_little = byte_order == "LITTLE";
    const bool words_little = word_order == "LITTLE";
    if (bytes_little && words_little) return "dcba";
    if (bytes_little) return "badc";
    if (words_little) return "cdab";
    return "abcd";
}

// A ThingsBoard value type with its register count as a fieldlink type; empty when there is none.
std::string tb_type(std::string type, int count, std::string& why) {
    std::transform(type.begin(), type.end(), type.begin(), [](char c) { return static_cast<char>(std::tolower(c)); });
    static const std::map<std::string, std::string> kFixed = {
        {"16int", "int16"},     {"16uint", "uint16"}, {"32int", "int32"},   {"32uint", "uint32"},
        {"32float", "float32"}, {"64int", "int64"},   {"64uint", "uint64"}, {"64float", "float64"},
        {"string", "string"},   {"bits", "bool"},     {"bit", "bool"},      {"bool", "bool"}};
    if (auto it = kFixed.find(type); it != kFixed.end()) return it->second;
    if (type == "long" || type == "int" || type == "integer")
        return count >= 4 ? "int64" : count == 2 ? "int32" : "int16";
    if (type == "double" || type == "float") return count >= 4 ? "float64" : "float32";
    why = "type '" + type + "' has no fieldlink equivalent (8-bit and 16-bit float values, byte arrays)";
    return {};
}

// One timeseries or attribute entry of a ThingsBoard slave.
std::optional<Point> tb_fields(const json& e, const std::string& byte_order, const std::string& word_order,
                               std::string& why) {
    if (!e.is_object() || !e.contains("tag") || !e.contains("address") || !e.contains("functionCode")) {
        why = "expected an object with tag, type, functionCode and address";
        return std::nullopt;
    }
    Point p;
    p.name = safe_name(str(e, "tag", ""), "point");
    const int fc = static_cast<int>(whole(e, "functionCode", 0, 0, 255));
    p.area = area_of_function(fc);
    if (p.area.empty() || fc > 4) {
        why = "functionCode " + std::to_string(fc) + " is not a read (1, 2, 3 or 4)";
        return std::nullopt;
    }
    p.address = static_cast<int>(whole(e, "address", 0, 0, 65535));
    const int count = static_cast<int>(whole(e, "objectsCount", whole(e, "registerCount", 1, 1, 2000), 1, 2000));
    p.type = tb_type(str(e, "type", "16uint"), count, why);
    if (p.type.empty()) return std::nullopt;
    if (p.type == "string") p.length = std::max(1, count);
    if (p.type == "bool" && (p.area == "holding" || p.area == "input"))
        p.bit = static_cast<int>(whole(e, "bit", 0, 0, 15));
    const bool one_register = p.type == "int16" || p.type == "uint16";  // only the byte order applies
    if (p.type != "bool" && p.type != "string")
        p.order = order_of(str(e, "byteOrder", byte_order), one_register ? "BIG" : str(e, "wordOrder", word_order));
    const double mul = real(e, "multiplier", 1.0);
    const double div = real(e, "divider", 1.0);
    if (div == 0) {
        why = "divider is 0";
        return std::nullopt;
    }
    p.scale = mul / div;
    return p;
}

std::optional<Point> tb_point(const json& e, const std::string& byte_order, const std::string& word_order,
                              std::string& why) {
    try {
        return tb_fields(e, byte_order, word_order, why);
    } catch (const BadField& bad) {
        why = bad.what();
        return std::nullopt;
    }
}

// Writes the ThingsBoard slave allows (rpc, attributeUpdates): the matching point becomes
// writable, or a writable point is added.
void tb_writes(const json& slave, Device& dev, const std::string& path, Draft& d) {
    for (const char* key : {"attributeUpdates", "rpc"}) {
        if (!slave.contains(key) || !slave[key].is_array()) continue;
        for (std::size_t i = 0; i < slave[key].size(); ++i) {
            const json& w = slave[key][i];
            int fc = 0;
            long address = -1;
            try {
                fc = static_cast<int>(whole(w, "functionCode", 0, 0, 255));
                address = whole(w, "address", -1, 0, 65535);
            } catch (const BadField& bad) {
                d.errors.push_back(fmt::format("{}.{}[{}]: {}", path, key, i, bad.what()));
                continue;
            }
            if (fc != 5 && fc != 6 && fc != 15 && fc != 16) continue;  // reads by RPC: polled anyway
            const std::string area = area_of_function(fc);
            auto it = std::find_if(dev.points.begin(), dev.points.end(),
                                   [&](const Point& p) { return p.area == area && p.address == address; });
            if (it != dev.points.end()) {
                it->writable = true;
                continue;
            }
            std::string why;
            json as_read = w;
            as_read["functionCode"] = area == "coil" ? 1 : 3;
            auto p = tb_point(as_read, "BIG", "BIG", why);
            if (!p) {
                d.errors.push_back(fmt::format("{}.{}[{}]: {}", path, key, i, why));
                continue;
            }
            p->writable = true;
            dev.points.push_back(*p);
        }
    }
}

// The bus a ThingsBoard slave (or v2 server) connects through.
std::optional<std::string> tb_bus(const json& c, Draft& d, std::string& why) {
    const std::string type = str(c, "type", "tcp");
    const std::string method = str(c, "method", "socket");
    if (type == "tcp") {
        const std::string host = str(c, "host", "127.0.0.1");
        const std::string port = std::to_string(whole(c, "port", 502, 1, 65535));
        const std::string driver = method == "rtu" ? "modbus-rtu-over-tcp" : "modbus-tcp";
        return add_bus(d, "tcp-" + host + "-" + port, {{"driver", driver}, {"host", host}, {"port", port}});
    }
    if (type == "serial") {
        const std::string port = str(c, "port", "");
        if (port.empty() || method == "ascii") {
            why = port.empty() ? "a serial slave without its port" : "Modbus ASCII is not supported";
            return std::nullopt;
        }
        const std::string parity = str(c, "parity", "N");
        std::vector<std::pair<std::string, std::string>> o = {
            {"driver", "modbus-rtu"},
            {"device", port},
            {"baud", std::to_string(whole(c, "baudrate", 9600, 1, 4000000))},
            {"parity", parity == "E"   ? "even"
                       : parity == "O" ? "odd"
                                       : "none"}};
        return add_bus(d, port.substr(port.rfind('/') + 1), o);
    }
    why = "connection type '" + type + "' is not supported (tcp or serial)";
    return std::nullopt;
}

void tb_device(const json& slave, const json& conn, const std::string& path, Draft& d) {
    std::string why;
    const auto bus = tb_bus(conn, d, why);
    if (!bus) {
        d.errors.push_back(path + ": " + why);
        return;
    }
    Device dev;
    dev.bus = *bus;
    dev.name = safe_name(str(slave, "deviceName", ""), "device");
    dev.unit = static_cast<int>(whole(slave, "unitId", 1, 0, 255));
    dev.interval_ms =
        whole(slave, "pollPeriod", whole(slave, "timeseriesPollPeriod", 5000, 10, 86'400'000), 10, 86'400'000);
    const std::string bo = str(slave, "byteOrder", str(conn, "byteOrder", "BIG"));
    const std::string wo = str(slave, "wordOrder", str(conn, "wordOrder", "BIG"));
    for (const char* key : {"timeseries", "attributes"}) {
        if (!slave.contains(key) || !slave[key].is_array()) continue;
        for (std::size_t i = 0; i < slave[key].size(); ++i) {
            auto p = tb_point(slave[key][i], bo, wo, why);
            if (!p) {
                d.errors.push_back(fmt::format("{}.{}[{}]: {}", path, key, i, why));
                continue;
            }
            p->attribute = std::string(key) == "attributes";
            dev.points.push_back(*p);
        }
    }
    tb_writes(slave, dev, path, d);
    if (dev.points.empty()) {
        d.errors.push_back(path + ": device " + dev.name + " has no point that could be imported");
        return;
    }
    d.devices.push_back(std::move(dev));
}

void tb_slave(const json& slave, const json& conn, const std::string& path, Draft& d) {
    try {
        tb_device(slave, conn, path, d);
    } catch (const BadField& bad) {
        d.errors.push_back(path + ": " + bad.what());
    }
}

// "line:column" of a byte offset in `text`.
std::string position(const std::string& text, std::size_t offset) {
    int line = 1, column = 1;
    for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
        if (text[i] == '\n') {
            ++line;
            column = 1;
        } else {
            ++column;
        }
    }
    return std::to_string(line) + ":" + std::to_string(column);
}

// The draft as YAML: points one per line, in flow style.
std::string emit(const Draft& d, const std::string& cloud) {
    std::ostringstream o;
    o << "# Imported by `fieldlink import` from " << d.source << ".\n"
      << "# Check it with `fieldlinkd --check --plan --config FILE`; set the cloud below to your platform.\n"
      << "clouds:\n  " << cloud << ": { platform: mqtt, host: 127.0.0.1 }\nbuses:\n";
    for (const auto& b : d.buses) {
        if (!b.note.empty()) o << "  # " << b.note << "\n";
        o << "  " << b.name << ":";
        for (const auto& [k, v] : b.options) o << "\n    " << k << ": " << quoted(v);
        o << "\n";
    }
    o << "devices:\n";
    for (const auto& dev : d.devices) {
        o << "  - name: " << quoted(dev.name) << "\n    cloud: " << cloud << "\n    bus: " << dev.bus
          << "\n    unit: " << dev.unit << "\n";
        if (dev.interval_ms > 0) o << "    interval: " << dev.interval_ms << "ms\n";
        o << "    points:\n";
        for (const auto& p : dev.points) {
            o << "      - { name: " << quoted(p.name) << ", area: " << p.area << ", address: " << p.address
              << ", type: " << p.type;
            if (!p.order.empty() && p.order != "abcd") o << ", order: " << p.order;
            if (p.length > 0) o << ", length: " << p.length;
            if (p.bit >= 0) o << ", bit: " << p.bit;
            if (p.scale != 1) o << ", scale: " << p.scale;
            if (p.offset != 0) o << ", offset: " << p.offset;
            if (p.writable) o << ", writable: true";
            if (p.attribute) o << ", report: attribute";
            o << " }\n";
        }
    }
    return o.str();
}

ImportResult finish(Draft& d, const std::string& cloud) {
    ImportResult r;
    r.errors = std::move(d.errors);
    r.devices = static_cast<int>(d.devices.size());
    for (const auto& dev : d.devices) r.points += static_cast<int>(dev.points.size());
    r.yaml = emit(d, cloud);
    return r;
}

}  // namespace

ImportResult import_thingsboard(const std::string& text, const std::string& file, const std::string& cloud) {
    Draft d;
    d.source = file + " (ThingsBoard IoT Gateway, Modbus connector)";
    json j;
    try {
        j = json::parse(text);
    } catch (const json::parse_error& e) {
        d.errors.push_back(file + ":" + position(text, e.byte > 0 ? e.byte - 1 : 0) + ": not valid JSON: " + e.what());
        return finish(d, cloud);
    }
    if (j.is_object() && j.contains("master") && j["master"].is_object() && j["master"].contains("slaves") &&
        j["master"]["slaves"].is_array()) {
        const json& slaves = j["master"]["slaves"];
        for (std::size_t i = 0; i < slaves.size(); ++i) {
            const std::string path = file + ": master.slaves[" + std::to_string(i) + "]";
            if (!slaves[i].is_object()) {
                d.errors.push_back(path + ": expected an object");
                continue;
            }
            tb_slave(slaves[i], slaves[i], path, d);
        }
    } else if (j.is_object() && j.contains("server") && j["server"].is_object() && j["server"].contains("devices") &&
               j["server"]["devices"].is_array()) {
        const json& devices = j["server"]["devices"];
        for (std::size_t i = 0; i < devices.size(); ++i) {
            const std::string path = file + ": server.devices[" + std::to_string(i) + "]";
            if (!devices[i].is_object()) {
                d.errors.push_back(path + ": expected an object");
                continue;
            }
            tb_slave(devices[i], j["server"], path, d);
        }
    } else {
        d.errors.push_back(file + ": expected a Modbus connector configuration (master.slaves, or server.devices)");
    }
    return finish(d, cloud);
}

namespace {

// Neuron's value types; empty when there is no equivalent.
std::string neuron_type(const std::string& t) {
    static const std::map<std::string, std::string> kTypes = {
        {"bit", "bool"},     {"bool", "bool"},     {"int16", "int16"},    {"uint16", "uint16"}, {"word", "uint16"},
        {"int32", "int32"},  {"uint32", "uint32"}, {"dword", "uint32"},   {"int64", "int64"},   {"uint64", "uint64"},
        {"lword", "uint64"}, {"float", "float32"}, {"double", "float64"}, {"string", "string"}};
    auto it = kTypes.find(lower(t));
    return it == kTypes.end() ? std::string() : it->second;
}

// Neuron's #ENDIAN suffixes as word orders: 16 bits #B (default) or #L; 32 and 64 bits #BB
// (1234, default), #BL (2143), #LB (3412), #LL (4321).
std::optional<std::string> neuron_order(const std::string& e) {
    static const std::map<std::string, std::string> kOrders = {
        {"", "abcd"}, {"B", "abcd"}, {"L", "badc"}, {"BB", "abcd"}, {"BL", "badc"}, {"LB", "cdab"}, {"LL", "dcba"}};
    auto it = kOrders.find(e);
    if (it == kOrders.end()) return std::nullopt;
    return it->second;
}

// "SLAVE!ADDRESS[.BIT|.LEN[H|L]][#ENDIAN]": the unit and the point's area, address, bit or
// length and order. Registers are numbered from 1 in each area (400001 is holding address 0).
bool neuron_address(const std::string& text, Point& p, int& unit, std::string& why) {
    const auto bang = text.find('!');
    const auto hash = text.find('#');
    const std::string endian = hash == std::string::npos ? "" : text.substr(hash + 1);
    const std::string body = text.substr(bang == std::string::npos ? 0 : bang + 1,
                                         hash == std::string::npos ? std::string::npos : hash - bang - 1);
    const auto dot = body.find('.');
    const std::string reg = body.substr(0, dot);
    const std::string suffix = dot == std::string::npos ? "" : body.substr(dot + 1);
    try {
        unit = std::stoi(text.substr(0, bang));
        const long n = std::stol(reg);
        if (bang == std::string::npos || reg.size() < 2 || n < 1) throw std::invalid_argument("address");
        static const char* kAreas[] = {"coil", "discrete", "", "input", "holding"};
        const int digit = reg[0] - '0';
        const long number = std::stol(reg.substr(1));
        if (digit < 0 || digit > 4 || !*kAreas[digit] || number < 1 || number > 65536)
            throw std::invalid_argument("area");
        p.area = kAreas[digit];
        p.address = static_cast<int>(number - 1);
        if (p.type == "string") {
            const int chars = suffix.empty() ? 2 : std::stoi(suffix);
            if (!suffix.empty() && (suffix.back() == 'D' || suffix.back() == 'E'))
                throw std::invalid_argument("one character per register (D, E) is not supported");
            p.length = (chars + 1) / 2;
            p.order = !suffix.empty() && suffix.back() == 'L' ? "badc" : "";
        } else if (!suffix.empty()) {
            p.bit = std::stoi(suffix);
        }
    } catch (const std::exception& e) {
        why = "address '" + text + "' is not SLAVE!AREA+NUMBER[.BIT|.LEN][#ENDIAN] (e.g. 1!400001#BB)" +
              (std::string(e.what()).find(' ') != std::string::npos ? std::string(": ") + e.what() : "");
        return false;
    }
    const auto order = neuron_order(endian);
    if (!order) {
        why = "endianness '#" + endian + "' is not #B, #L, #BB, #BL, #LB or #LL";
        return false;
    }
    if (p.type != "bool" && p.type != "string") p.order = *order;
    return true;
}

// One tag row; its device is (driver, unit).
bool neuron_row(const std::map<std::string, std::string>& cell, Draft& d, std::map<std::string, std::size_t>& by_key,
                std::string& why) {
    auto get = [&cell](const char* k) {
        auto it = cell.find(k);
        return it == cell.end() ? std::string() : it->second;
    };
    Point p;
    p.name = safe_name(get("name"), "point");
    p.type = neuron_type(get("type"));
    if (p.type.empty()) {
        why = "type '" + get("type") + "' is not a Neuron Modbus type (INT16 ... DOUBLE, BIT, STRING)";
        return false;
    }
    int unit = 1;
    if (!neuron_address(get("address"), p, unit, why)) return false;
    if ((p.area == "coil" || p.area == "discrete") && p.type != "bool") {
        why = "a bit area holds BIT tags only";
        return false;
    }
    if (p.type == "bool" && p.area != "coil" && p.area != "discrete" && p.bit < 0) p.bit = 0;
    p.writable = lower(get("attribute")).find("write") != std::string::npos;
    if (p.writable && p.area != "coil" && p.area != "holding") {
        why = "a writable tag in a read-only area (" + p.area + ")";
        return false;
    }
    if (p.writable && p.bit >= 0) p.writable = false;  // fieldlink writes whole registers only
    const std::string dec = get("decimal"), bias = get("bias");
    if (!dec.empty() && std::atof(dec.c_str()) != 0) p.scale = std::atof(dec.c_str());
    if (!bias.empty()) p.offset = std::atof(bias.c_str());
    const std::string driver = safe_name(get("driver").empty() ? get("node") : get("driver"), "neuron");
    const std::string key = driver + "-" + std::to_string(unit);
    auto it = by_key.find(key);
    if (it == by_key.end()) {
        Device dev;
        dev.name = key;
        dev.unit = unit;
        dev.bus =
            add_bus(d, driver, {{"driver", "modbus-tcp"}, {"host", "127.0.0.1"}, {"port", "502"}, {"name", driver}},
                    "Neuron's tag export names no connection: set this bus's driver and address");
        it = by_key.emplace(key, d.devices.size()).first;
        d.devices.push_back(std::move(dev));
    }
    auto& pts = d.devices[it->second].points;
    if (std::any_of(pts.begin(), pts.end(), [&p](const Point& x) { return x.name == p.name; })) {
        why = "tag '" + p.name + "' is named twice for this device";
        return false;
    }
    pts.push_back(p);
    return true;
}

}  // namespace

ImportResult import_neuron(const std::string& text, const std::string& file, const std::string& cloud) {
    Draft d;
    d.source = file + " (EMQX Neuron, tag export)";
    std::vector<config::CsvCells> rows;
    std::string error;
    config::Mark where;
    if (!config::read_csv(text, std::make_shared<const std::string>(file), rows, error, where)) {
        d.errors.push_back(file + ":" + std::to_string(where.line) + ":" + std::to_string(where.column) + ": " + error);
        return finish(d, cloud);
    }
    std::vector<std::string> header;
    std::map<std::string, std::size_t> by_key;
    for (const auto& row : rows) {
        const bool blank = std::all_of(row.begin(), row.end(), [](const auto& c) { return c.first.empty(); });
        if (blank) continue;
        if (header.empty()) {
            for (const auto& c : row) header.push_back(lower(c.first));
            for (const char* need : {"name", "address", "type"}) {
                if (std::find(header.begin(), header.end(), need) == header.end()) {
                    d.errors.push_back(file + ":" + std::to_string(row.front().second.line) +
                                       ":1: the header has no '" + need + "' column");
                }
            }
            if (!d.errors.empty()) return finish(d, cloud);
            continue;
        }
        std::map<std::string, std::string> cell;
        for (std::size_t i = 0; i < row.size() && i < header.size(); ++i) cell[header[i]] = row[i].first;
        std::string why;
        if (!neuron_row(cell, d, by_key, why)) {
            d.errors.push_back(
                fmt::format("{}:{}:{}: {}", file, row.front().second.line, row.front().second.column, why));
        }
    }
    // The placeholder option that kept the buses of two drivers apart.
    for (auto& b : d.buses) {
        b.options.erase(
            std::remove_if(b.options.begin(), b.options.end(), [](const auto& o) { return o.first == "name"; }),
            b.options.end());
    }
    return finish(d, cloud);
}

int run_import(const std::string& format, const std::string& file, const std::string& out, const std::string& cloud) {
    std::string text, why;
    if (!config::read_file(file, text, &why)) {
        std::cerr << "fieldlink import: " << file << ": " << why << '\n';
        return 2;
    }
    const ImportResult r =
        format == "thingsboard" ? import_thingsboard(text, file, cloud) : import_neuron(text, file, cloud);
    for (const auto& e : r.errors) std::cerr << e << '\n';
    if (out.empty()) {
        std::cout << r.yaml;
    } else {
        std::ofstream f(out);
        f << r.yaml;
        if (!f) {
            std::cerr << "fieldlink import: cannot write " << out << '\n';
            return 1;
        }
    }
    std::cerr << "fieldlink import: " << r.devices << " device(s), " << r.points << " point(s) imported; "
              << r.errors.size() << " refused\n";
    return r.errors.empty() ? 0 : 2;
}

}  // namespace fieldlink::cli
