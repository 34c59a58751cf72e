// Cross-field and cross-section rules that the per-key tables cannot express and that hold for
// every platform and driver. Platform rules are checked by each platform (daemon/platforms/),
// driver rules (options, unit ranges) against each driver's declarations (bus/plugin_host.cpp).
#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "config/writes.hpp"
#include "core/suggest.hpp"
#include "parser.hpp"

namespace fieldlink::config {
namespace {

// " (did you mean 'x'?)" for a name that is close to one of `v`'s names.
template <typename T>
std::string near_name(const std::string& given, const std::vector<T>& v) {
    std::vector<std::string> names;
    names.reserve(v.size());
    for (const auto& x : v) names.push_back(x.name);
    return core::did_you_mean(given, names);
}

template <typename T>
std::string names_of(const std::vector<T>& v) {
    std::string out;
    for (const auto& x : v) out += (out.empty() ? "" : ", ") + x.name;
    return out.empty() ? "(none)" : out;
}

template <typename T>
std::optional<std::size_t> find_named(const std::vector<T>& v, const std::string& name) {
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (v[i].name == name) return i;
    }
    return std::nullopt;
}

// min, max and commands only mean something for a point the cloud may write.
void check_write_rules(Checker& c, const std::string& at, PointConfig& p) {
    if (!p.writable && (p.min || p.max || !p.commands.empty())) {
        c.fail(p.mark, at,
               "'min', 'max' and 'commands' limit writes from the cloud; this point is not writable "
               "(add 'writable: true')");
        return;
    }
    if (p.writable && p.bit >= 0) {
        c.fail(p.mark, at,
               "a bit field cannot be written without changing the other bits of its register; map the register "
               "itself (without 'bit') as a writable point");
    }
    if ((p.min || p.max) && (p.type == DataType::boolean || p.type == DataType::string)) {
        c.fail(p.mark, at, std::string("'min'/'max' apply to numeric types, not ") + to_string(p.type));
    }
    if (p.min && p.max && *p.min > *p.max) {
        c.fail(p.mark, at, "'min' is greater than 'max'");
    }
    for (auto& cmd : p.commands) {
        std::string why;
        auto v = accept_write(p, value_from_text(cmd.text), &why);
        if (v) {
            cmd.value = *v;
        } else {
            c.fail(cmd.mark, at + ".commands." + cmd.name, "command value '" + cmd.text + "': " + why);
        }
    }
}

void check_point(Checker& c, const std::string& path, PointConfig& p) {
    const std::string at = path + ".points." + p.name;
    if (is_bit_area(p.area) && p.type != DataType::boolean) {
        c.fail(p.mark, at,
               std::string("type ") + to_string(p.type) + " does not fit area " + to_string(p.area) +
                   ", which holds single bits; expected type bool (or area holding/input for a " + to_string(p.type) +
                   ")");
        return;
    }
    if (p.type == DataType::string && p.length == 0) {
        c.fail(p.mark, at, "type string needs 'length' (registers, 1..125, two characters each)");
        return;
    }
    if (p.type != DataType::string && p.length != 0) c.fail(p.mark, at, "'length' applies to type string only");
    if (p.bit >= 0 && (is_bit_area(p.area) || p.type != DataType::boolean)) {
        c.fail(p.mark, at, "'bit' selects one bit of a register; expected type bool on area holding or input");
    }
    if (p.writable && (p.area == Area::discrete || p.area == Area::input)) {
        c.fail(
            p.mark, at,
            std::string("area ") + to_string(p.area) + " is read-only; only coil and holding points can be writable");
    }
    if ((p.scale != 1.0 || p.offset != 0.0) && (p.type == DataType::boolean || p.type == DataType::string)) {
        c.fail(p.mark, at, std::string("scale/offset apply to numeric types, not ") + to_string(p.type));
    }
    if (!p.event.empty() && p.report != Report::event) {
        c.fail(p.mark, at,
               "'event' names the event of a point with 'report: event'; this point has report " +
                   std::string(to_string(p.report)));
    }
    if (p.trigger_given && p.report == Report::property) {
        c.fail(p.mark, at,
               "'trigger' applies to 'report: event' or 'report: attribute'; a property is sent with every poll");
    }
    if (p.trigger == Trigger::rising && p.type == DataType::string) {
        c.fail(p.mark, at, "'trigger: rising' fires when a value becomes true or non-zero; a string has neither");
    }
    if (p.trigger == Trigger::none && p.report == Report::attribute) {
        c.fail(p.mark, at,
               "'trigger: none' carries a point along with its event; an attribute with it would never be sent");
    }
    check_write_rules(c, at, p);
    if ((p.by_exception() || p.heartbeat.count() > 0) && p.report != Report::property) {
        c.fail(p.mark, at,
               "'deadband', 'on_change' and 'heartbeat' apply to properties; an event or attribute has 'trigger'");
    } else if (p.deadband > 0 && (p.type == DataType::boolean || p.type == DataType::string)) {
        c.fail(p.mark, at,
               std::string("'deadband' applies to numeric types; a ") + to_string(p.type) + " takes 'on_change: true'");
    } else if (p.heartbeat.count() > 0 && !p.by_exception()) {
        c.fail(p.mark, at,
               "'heartbeat' applies with 'deadband' or 'on_change' (a property is otherwise sent every poll)");
    }
    const long end = static_cast<long>(p.address) + p.count() - 1;
    if (end > 65535) {
        c.fail(p.mark, at,
               "address " + std::to_string(p.address) + " plus " + std::to_string(p.count()) + " registers ends at " +
                   std::to_string(end) + ", past the last 0-based protocol address 65535");
    }
}

// The device's cloud, bus and gateway by name.
void resolve_names(Checker& c, Config& cfg, std::size_t index, const std::string& path) {
    DeviceConfig& d = cfg.devices[index];
    if (auto ci = find_named(cfg.clouds, d.cloud)) {
        d.cloud_index = *ci;
    } else {
        c.fail(d.mark, path + ".cloud",
               "cloud '" + d.cloud + "' is not defined" + near_name(d.cloud, cfg.clouds) +
                   "; defined clouds: " + names_of(cfg.clouds));
    }
    if (auto bi = find_named(cfg.buses, d.bus)) {
        d.bus_index = *bi;
    } else {
        c.fail(d.mark, path + ".bus",
               "bus '" + d.bus + "' is not defined" + near_name(d.bus, cfg.buses) +
                   "; defined buses: " + names_of(cfg.buses));
    }
    if (!d.via.empty()) {
        if (auto gi = find_named(cfg.devices, d.via); gi && *gi != index) {
            d.via_index = *gi;
        } else {
            c.fail(d.mark, path + ".via", "'" + d.via + "' is not a device with 'gateway: true'");
        }
    }
}

// Point names unique, plain command names unique within the device, each point checked.
// Returns the points by name.
std::map<std::string, const PointConfig*> check_points(Checker& c, DeviceConfig& d, const std::string& path) {
    std::map<std::string, const PointConfig*> seen;
    std::map<std::string, const PointConfig::Command*> commands;
    for (auto& p : d.points) {
        for (const auto& cmd : p.commands) {
            // A plain payload ("on") names a command without its point: one per device.
            if (auto [it, fresh] = commands.emplace(cmd.name, &cmd); !fresh) {
                c.fail(cmd.mark, path + ".points." + p.name + ".commands",
                       "command '" + cmd.name + "' is already defined at line " +
                           std::to_string(it->second->mark.line) +
                           "; a plain command names no point, so its name must be unique within the device");
            }
        }
        if (auto it = seen.find(p.name); it != seen.end()) {
            c.fail(p.mark, path + ".points",
                   "duplicate point name '" + p.name + "' (first defined at line " +
                       std::to_string(it->second->mark.line) + ")");
        } else {
            seen.emplace(p.name, &p);
        }
        check_point(c, path, p);
    }
    return seen;
}

// Heartbeats no shorter than the interval; an event made only of points that never fire would
// never be sent.
void check_reporting(Checker& c, const DeviceConfig& d, const std::string& path) {
    for (const auto& p : d.points) {
        const bool own = p.poll == PollClass::interval;
        const auto interval = own ? p.poll_interval : d.interval;
        if (p.heartbeat.count() > 0 && (p.poll == PollClass::once || p.poll == PollClass::on_write)) {
            c.fail(p.mark, path + ".points." + p.name + ".heartbeat",
                   std::string("'heartbeat' repeats a value read periodically; this point is read ") +
                       (p.poll == PollClass::once ? "once" : "only after writes"));
        } else if (p.heartbeat.count() > 0 && p.heartbeat < interval) {
            c.fail(p.mark, path + ".points." + p.name + ".heartbeat",
                   "heartbeat " + core::format_duration(p.heartbeat) + " is shorter than the " +
                       (own ? "point's poll interval " : "device's interval ") + core::format_duration(interval) +
                       "; the value is read only once per interval");
        }
    }
    std::map<std::string, bool> fires;
    for (const auto& p : d.points) {
        if (p.report == Report::event) fires[p.event_name()] |= p.trigger != Trigger::none;
    }
    for (const auto& [name, fired] : fires) {
        if (!fired) {
            c.fail(d.mark, path + ".points",
                   "event '" + name + "' has only points with 'trigger: none'; at least one must trigger it");
        }
    }
}

// The link state is a point of its own (never read from the bus), reported as an event with one
// parameter, online: false when the unit stops answering, true when it answers.
void add_link_point(Checker& c, DeviceConfig& d, const std::string& path, bool name_taken) {
    if (name_taken) {
        c.fail(d.mark, path + ".link_event",
               std::string("the link event's parameter is named '") + kLinkPoint +
                   "', and the device already has a point of that name; rename the point");
        return;
    }
    PointConfig link;
    link.name = kLinkPoint;
    link.mark = d.mark;
    link.area = Area::coil;
    link.type = DataType::boolean;
    link.report = Report::event;
    link.event = d.link_event;
    link.link = true;
    d.points.push_back(std::move(link));
}

// A publish window holds at least one poll; `aggregate` is a window's, of numbers where it
// computes (min, max, mean), and of properties (events and attributes go when they fire).
void check_window(Checker& c, const DeviceConfig& d, const std::string& path) {
    if (d.publish.count() > 0 && d.publish < d.interval) {
        c.fail(d.mark, path + ".publish",
               "publish window " + core::format_duration(d.publish) + " is shorter than the device's interval " +
                   core::format_duration(d.interval) + "; a window holds at least one poll");
    }
    for (const auto& p : d.points) {
        if (!p.aggregate_given) continue;
        const std::string at = path + ".points." + p.name + ".aggregate";
        const bool computed =
            p.aggregate == Aggregate::min || p.aggregate == Aggregate::max || p.aggregate == Aggregate::mean;
        if (d.publish.count() == 0) {
            c.fail(p.mark, at,
                   "'aggregate' applies in a publish window; the device has no 'publish:' (e.g. publish: 1s), so "
                   "every poll is sent");
        } else if (p.report != Report::property) {
            c.fail(p.mark, at,
                   "'aggregate' applies to properties; an event or attribute is sent when its trigger fires");
        } else if (computed && (p.type == DataType::boolean || p.type == DataType::string)) {
            c.fail(p.mark, at,
                   std::string("'aggregate: ") + to_string(p.aggregate) + "' applies to numeric points; a " +
                       to_string(p.type) + " takes last or count");
        }
    }
}

void check_device(Checker& c, Config& cfg, std::size_t index) {
    DeviceConfig& d = cfg.devices[index];
    const std::string path = device_path(index);
    resolve_names(c, cfg, index, path);
    if (d.points.empty()) {
        c.fail(d.mark, path + ".points", "expected at least one point ('points:', or a 'template:' with points)");
    }
    const bool link_name_taken = check_points(c, d, path).count(kLinkPoint) != 0;
    check_reporting(c, d, path);
    check_window(c, d, path);
    if (!d.link_event.empty()) add_link_point(c, d, path, link_name_taken);
}

void check_cloud(Checker& c, const Config& cfg, const CloudConfig& cl) {
    if (cl.tls && cl.tls->cert_file.empty() != cl.tls->key_file.empty()) {
        c.fail(cl.mark_of("tls"), cloud_path(cl) + ".tls", "cert_file and key_file go together (client certificate)");
    }
    if (cl.qos == 0 && cfg.gateway.store_on_disk) {
        c.fail(cl.mark, cloud_path(cl) + ".qos",
               "qos 0 gets no acknowledgement, so stored data would be deleted "
               "unconfirmed; use qos 1, or gateway.store: memory");
    }
}

// One served point: its device and point exist, and the area suits the value (bits in coils and
// discrete inputs, registers in holding and input registers). Returns the registers (or bits) it
// takes, 0 when it is refused.
int check_served(Checker& c, const Config& cfg, ServedPoint& sp, const std::string& path) {
    const auto d = std::find_if(cfg.devices.begin(), cfg.devices.end(),
                                [&sp](const DeviceConfig& x) { return x.name == sp.device; });
    if (d == cfg.devices.end()) {
        c.fail(sp.mark, path + ".device",
               "no device named '" + sp.device + "'" + near_name(sp.device, cfg.devices) +
                   "; expected one of the devices: section");
        return 0;
    }
    const auto p =
        std::find_if(d->points.begin(), d->points.end(), [&sp](const PointConfig& x) { return x.name == sp.point; });
    if (p == d->points.end()) {
        c.fail(sp.mark, path + ".point",
               "device " + d->name + " has no point named '" + sp.point + "'" + near_name(sp.point, d->points));
        return 0;
    }
    sp.device_index = static_cast<std::uint32_t>(d - cfg.devices.begin());
    sp.point_index = static_cast<std::uint32_t>(p - d->points.begin());
    const bool bit = p->type == DataType::boolean && p->bit < 0;
    if (is_bit_area(sp.area) != bit) {
        c.fail(sp.mark, path + ".area",
               bit ? "point " + sp.point + " is a boolean: serve it in coil or discrete"
                   : "point " + sp.point + " is not a plain boolean: serve it in holding or input registers");
        return 0;
    }
    const int n = bit ? 1 : register_count(p->type, p->length);
    if (sp.address + n - 1 > 65535) {
        c.fail(sp.mark, path + ".address", "the point's " + std::to_string(n) + " registers run past address 65535");
        return 0;
    }
    return n;
}

// gateway.modbus_server: every served point checked, and no two overlap at the same unit and area.
void check_modbus_server(Checker& c, Config& cfg) {
    auto& m = cfg.gateway.modbus_server;
    if (m.port == 0) return;
    if (m.map.empty()) c.fail(m.mark, "gateway.modbus_server.map", "no point to serve; expected at least one");
    std::map<std::tuple<int, Area, int>, std::size_t> taken;  // (unit, area, address) -> entry
    for (std::size_t i = 0; i < m.map.size(); ++i) {
        auto& sp = m.map[i];
        const std::string path = "gateway.modbus_server.map[" + std::to_string(i) + "]";
        const int n = check_served(c, cfg, sp, path);
        for (int a = 0; a < n; ++a) {
            const auto [it, fresh] = taken.emplace(std::make_tuple(sp.unit, sp.area, sp.address + a), i);
            if (fresh) continue;
            c.fail(sp.mark, path + ".address",
                   "address " + std::to_string(sp.address + a) + " of unit " + std::to_string(sp.unit) +
                       " is taken by map[" + std::to_string(it->second) + "] (" + m.map[it->second].device + "." +
                       m.map[it->second].point + ")");
            break;
        }
    }
}

}  // namespace

void validate(Config& cfg, std::vector<ConfigError>& errors) {
    Checker c(errors);
    for (const auto& cl : cfg.clouds) check_cloud(c, cfg, cl);
    check_modbus_server(c, cfg);
    std::map<std::string, std::size_t> names;
    for (std::size_t i = 0; i < cfg.devices.size(); ++i) {
        const auto& d = cfg.devices[i];
        if (auto it = names.find(d.name); it != names.end()) {
            c.fail(d.mark, device_path(i) + ".name",
                   "duplicate device name '" + d.name + "' (first defined at line " +
                       std::to_string(cfg.devices[it->second].mark.line) + ")");
        } else {
            names.emplace(d.name, i);
        }
        check_device(c, cfg, i);
    }
}

}  // namespace fieldlink::config
