#include "cli/scan_frames.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <set>
#include <sstream>

#include <fieldlink/crc16.hpp>

#include "cli/text.hpp"

namespace fieldlink::cli {

namespace {

constexpr std::uint8_t kFc = 0x2B;
constexpr std::uint8_t kMei = 0x0E;
constexpr std::size_t kMaxPdu = 253;  // the largest PDU on a serial line (and in the spec)

DeviceIdAnswer invalid(std::string what) {
    DeviceIdAnswer a;
    a.status = DeviceIdAnswer::Status::invalid;
    a.error = std::move(what);
    return a;
}

bool crc_ok(const std::uint8_t* p, std::size_t n) {
    const std::uint16_t crc = fieldlink::modbus_crc16(p, n - 2);
    return p[n - 2] == (crc & 0xFF) && p[n - 1] == (crc >> 8);
}

// Printable text of an object's bytes: control and non-ASCII bytes as '?', trailing NULs and
// blanks dropped (registers padded to a whole number of words).
std::string printable(const std::uint8_t* p, std::size_t n) {
    std::string s;
    for (std::size_t i = 0; i < n; ++i) s += (p[i] >= 0x20 && p[i] < 0x7F) ? static_cast<char>(p[i]) : '?';
    while (!s.empty() && (s.back() == ' ' || s.back() == '?')) s.pop_back();
    return s;
}

// The PDU (function code first), `n` bytes of it present, for the unit asked.
DeviceIdAnswer parse_pdu(const std::uint8_t* pdu, std::size_t n) {
    DeviceIdAnswer a;
    if (n < 1) return a;
    if (pdu[0] == (kFc | 0x80)) {
        if (n < 2) return a;
        a.status = DeviceIdAnswer::Status::exception;
        a.exception = pdu[1];
        a.length = 2;
        return a;
    }
    if (pdu[0] != kFc) return invalid("function code " + std::to_string(pdu[0]) + ", expected 43");
    if (n < 2) return a;
    if (pdu[1] != kMei) return invalid("MEI type " + std::to_string(pdu[1]) + ", expected 14");
    if (n < 7) return a;
    if (pdu[2] < 1 || pdu[2] > 4) return invalid("read device id code " + std::to_string(pdu[2]) + ", expected 1..4");
    if (pdu[4] != 0 && pdu[4] != 0xFF)
        return invalid("more-follows byte " + std::to_string(pdu[4]) + ", expected 0 or 255");
    a.conformity = pdu[3];
    a.more = pdu[4] == 0xFF;
    a.next_object = pdu[5];
    const int count = pdu[6];
    std::size_t at = 7;
    for (int i = 0; i < count; ++i) {
        if (at + 2 > n) return a;  // incomplete: the rest has not come yet
        const std::size_t len = pdu[at + 1];
        if (at + 2 + len > kMaxPdu)
            return invalid("object " + std::to_string(i) + " ends at byte " + std::to_string(at + 2 + len) +
                           ", past the largest PDU (253 bytes)");
        if (at + 2 + len > n) return a;
        a.objects.emplace_back(pdu[at], printable(pdu + at + 2, len));
        at += 2 + len;
    }
    a.status = DeviceIdAnswer::Status::complete;
    a.length = at;
    return a;
}

bool contains(const std::string& hay, const std::string& needle) {
    return !needle.empty() && lower(hay).find(lower(needle)) != std::string::npos;
}

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r");
    if (b == std::string::npos) return "";
    return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

std::string setting(const ScanReport& r) {
    return std::to_string(r.baud) + " 8" + r.parity + "1";
}

std::string identification(const FoundUnit& u) {
    std::string s = u.vendor;
    for (const auto* part : {&u.product, &u.model_name, &u.revision})
        if (!part->empty() && (part == &u.product || *part != u.product)) s += (s.empty() ? "" : " ") + *part;
    if (s.empty() && !u.sunspec_manufacturer.empty()) s = u.sunspec_manufacturer + " " + u.sunspec_model;
    return s.empty() ? "-" : s;
}

std::string sunspec_text(const FoundUnit& u) {
    if (u.sunspec_base < 0) return "-";
    std::string s = "@" + std::to_string(u.sunspec_base);
    for (std::size_t i = 0; i < u.sunspec_models.size(); ++i)
        s += (i ? "," : " ") + std::to_string(u.sunspec_models[i]);
    return s;
}

}  // namespace

DeviceIdAnswer parse_device_id(const std::uint8_t* adu, std::size_t n, bool rtu, int unit) {
    const std::size_t header = rtu ? 1 : 7;
    if (n < header) return {};
    if (!rtu) {
        if (adu[2] != 0 || adu[3] != 0) return invalid("protocol id not 0 in the MBAP header");
        const auto declared = static_cast<std::size_t>(adu[4] << 8 | adu[5]);
        if (declared < 2 || declared > kMaxPdu + 1)
            return invalid("MBAP length " + std::to_string(declared) + ", expected 2..254");
    }
    if (adu[header - 1] != unit)
        return invalid("answer from unit " + std::to_string(adu[header - 1]) + ", expected " + std::to_string(unit));
    DeviceIdAnswer a = parse_pdu(adu + header, n - header);
    if (a.status != DeviceIdAnswer::Status::complete && a.status != DeviceIdAnswer::Status::exception) return a;
    if (rtu) {
        const std::size_t total = header + a.length + 2;
        if (n < total) {
            a.status = DeviceIdAnswer::Status::incomplete;
            return a;
        }
        if (!crc_ok(adu, total)) return invalid("CRC error");
        a.length = total;
    } else {
        const auto declared = static_cast<std::size_t>(adu[4] << 8 | adu[5]);
        if (declared != a.length + 1)
            return invalid("MBAP length " + std::to_string(declared) + ", the PDU is " + std::to_string(a.length) +
                           " bytes");
        a.length += header;
    }
    return a;
}

std::vector<std::uint8_t> device_id_request(int unit, int read_code, int object_id) {
    return {static_cast<std::uint8_t>(unit), kFc, kMei, static_cast<std::uint8_t>(read_code),
            static_cast<std::uint8_t>(object_id)};
}

std::vector<int> late_answer_units(const std::vector<std::uint8_t>& bytes) {
    std::vector<int> units;
    std::size_t at = 0;
    while (at + 5 <= bytes.size()) {
        const std::uint8_t* p = bytes.data() + at;
        std::size_t len = 0;
        if (p[1] == 0x83)
            len = 5;
        else if (p[1] == 0x03)
            len = 5 + static_cast<std::size_t>(p[2]);
        if (len > 0 && at + len <= bytes.size() && p[0] >= 1 && p[0] <= 247 && crc_ok(p, len)) {
            units.push_back(p[0]);
            at += len;
        } else {
            ++at;  // not a frame starting here
        }
    }
    return units;
}

std::optional<std::vector<int>> parse_unit_list(const std::string& text, std::string& error) {
    std::set<int> ids;
    std::istringstream in(text);
    std::string part;
    while (std::getline(in, part, ',')) {
        part = trim(part);
        const auto dash = part.find('-', 1);
        int first = 0, last = 0;
        char extra = 0;
        const bool ok = dash == std::string::npos ? std::sscanf(part.c_str(), "%d%c", &first, &extra) == 1
                                                  : std::sscanf(part.c_str(), "%d-%d%c", &first, &last, &extra) == 2;
        if (dash == std::string::npos) last = first;
        if (!ok || first < 1 || last > 247 || first > last) {
            error = "'" + part + "' is not a unit id or range in 1..247 (e.g. 1-247 or 3,17,20-30)";
            return std::nullopt;
        }
        for (int u = first; u <= last; ++u) ids.insert(u);
    }
    if (ids.empty()) {
        error = "no unit ids given; expected e.g. 1-247 or 3,17,20-30";
        return std::nullopt;
    }
    return std::vector<int>(ids.begin(), ids.end());
}

Profile read_profile_rules(const std::string& name, const std::string& text, std::vector<std::string>& errors) {
    Profile p;
    p.name = name;
    std::istringstream in(text);
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
        ++number;
        const auto t = trim(line);
        if (t.rfind("# match:", 0) != 0) continue;
        ProfileRule rule;
        std::istringstream fields(t.substr(8));
        std::string field;
        std::string bad;
        while (std::getline(fields, field, ';')) {
            const auto eq = field.find('=');
            const std::string key = trim(field.substr(0, eq));
            const std::string value = eq == std::string::npos ? "" : trim(field.substr(eq + 1));
            if (key == "vendor" && !value.empty()) {
                rule.vendor = value;
            } else if (key == "product" && !value.empty()) {
                rule.product = value;
            } else if (key == "base") {
                char extra = 0;
                if (std::sscanf(value.c_str(), "%d%c", &rule.sunspec_base, &extra) != 1 || rule.sunspec_base < 0 ||
                    rule.sunspec_base > 65535)
                    bad = "base '" + value + "' is not a register address in 0..65535";
            } else if (key == "sunspec" && !value.empty()) {
                std::istringstream ids(value);
                std::string id;
                while (std::getline(ids, id, ',')) {
                    int m = 0;
                    char extra = 0;
                    if (std::sscanf(trim(id).c_str(), "%d%c", &m, &extra) != 1 || m < 1 || m > 65534) {
                        bad = "sunspec model '" + trim(id) + "' is not a model id in 1..65534";
                        break;
                    }
                    rule.sunspec_models.push_back(m);
                }
            } else if (bad.empty()) {
                bad = "'" + trim(field) + "': expected vendor=TEXT; product=TEXT or sunspec=ID,ID; base=ADDRESS";
            }
        }
        if (bad.empty() && rule.vendor.empty() && rule.sunspec_models.empty())
            bad = "a rule needs vendor= (with product=) or sunspec=";
        if (!bad.empty()) {
            std::string where = name;
            where += ":" + std::to_string(number) + ": ";
            errors.push_back(where + bad);
            continue;
        }
        p.rules.push_back(std::move(rule));
    }
    return p;
}

std::string match_profile(const std::vector<Profile>& profiles, const FoundUnit& u) {
    for (const auto& p : profiles) {
        for (const auto& r : p.rules) {
            if (!r.sunspec_models.empty()) {
                const bool any = std::any_of(r.sunspec_models.begin(), r.sunspec_models.end(), [&](int m) {
                    return std::find(u.sunspec_models.begin(), u.sunspec_models.end(), m) != u.sunspec_models.end();
                });
                if (any && u.sunspec_base >= 0 && (r.sunspec_base < 0 || r.sunspec_base == u.sunspec_base))
                    return p.name;
            } else if (contains(u.vendor, r.vendor) &&
                       (r.product.empty() || contains(u.product, r.product) || contains(u.model_name, r.product))) {
                return p.name;
            }
        }
    }
    return "";
}

std::string scan_table(const ScanReport& r) {
    std::ostringstream o;
    char line[512];
    std::snprintf(line, sizeof line, "%-5s %-10s %-40s %-22s %s\n", "UNIT", "SETTING", "IDENTIFICATION (FC 43)",
                  "SUNSPEC", "PROFILE");
    o << line;
    for (const auto& u : r.units) {
        std::string id = identification(u);
        if (u.late)
            id += " (answered late: raise --timeout)";
        else if (u.exception)
            id += " (register 0: exception " + std::to_string(u.exception) + ")";
        std::snprintf(line, sizeof line, "%-5d %-10s %-40s %-22s %s\n", u.unit, r.rtu ? setting(r).c_str() : "tcp",
                      id.c_str(), sunspec_text(u).c_str(), u.profile.empty() ? "-" : u.profile.c_str());
        o << line;
    }
    std::snprintf(line, sizeof line, "%zu unit%s found on %s%s in %.1f s (%ld probes, %ld garbled answers, %ld late)\n",
                  r.units.size(), r.units.size() == 1 ? "" : "s",
                  r.rtu ? r.device.c_str() : (r.device + ":" + std::to_string(r.port)).c_str(),
                  r.rtu && !r.units.empty() ? (" at " + setting(r)).c_str() : "", r.seconds, r.probes, r.garbled,
                  r.late);
    o << line;
    return o.str();
}

std::string scan_yaml(const ScanReport& r, const std::string& cloud) {
    std::ostringstream o;
    o << "# Found by `fieldlink scan` on " << (r.rtu ? r.device : r.device + ":" + std::to_string(r.port));
    if (r.rtu) o << " at " << setting(r);
    o << ": " << r.units.size() << " unit(s).\n"
      << "# Check it with `fieldlink check FILE`; set the cloud below to your platform.\n"
      << "clouds:\n  " << cloud << ": { platform: mqtt, host: 127.0.0.1 }\nbuses:\n  line1:\n";
    if (r.rtu) {
        o << "    driver: modbus-rtu\n    device: " << quoted(r.device) << "\n    baud: " << r.baud << "\n    parity: "
          << (r.parity == 'E'   ? "even"
              : r.parity == 'O' ? "odd"
                                : "none")
          << "\n";
    } else {
        o << "    driver: modbus-tcp\n    host: " << quoted(r.device) << "\n    port: " << r.port << "\n";
    }
    std::set<std::string> used;
    for (const auto& u : r.units)
        if (!u.profile.empty()) used.insert(u.profile);
    if (!used.empty()) {
        o << "templates:\n";
        for (const auto& p : used) o << "  " << p << ": { points_file: " << p << ".csv }\n";
    }
    bool any = false;
    std::ostringstream devices;
    for (const auto& u : r.units) {
        const std::string id = identification(u);
        const bool usable = !u.profile.empty() || (!u.late && u.exception == 0);
        const std::string c = usable ? "" : "# ";
        if (!usable) devices << "  # unit " << u.unit << " answered, but register 0 did not read: add its points\n";
        devices << "  " << c << "- name: unit" << u.unit << (id == "-" ? "" : "  # " + id) << "\n";
        devices << "  " << c << "  cloud: " << cloud << "\n  " << c << "  bus: line1\n  " << c << "  unit: " << u.unit
                << "\n";
        if (!u.profile.empty()) {
            devices << "    template: " << u.profile << "\n";
        } else {
            devices << "  " << c << "  points:\n  " << c
                    << "    - { name: holding_0, area: holding, address: 0, type: uint16 }\n";
        }
        any = any || usable;
    }
    o << (any ? "devices:\n" : "devices: []\n") << devices.str();
    return o.str();
}

}  // namespace fieldlink::cli
