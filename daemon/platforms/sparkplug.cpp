// Sparkplug B 3.0 (the specification: eclipse-sparkplug/sparkplug). The gateway is one Edge Node
// (group_id, edge_node_id) in one session; each device of the cloud is a Sparkplug device, each
// point a metric with its datatype, name and alias. The session's births carry the bdSeq of the
// CONNECT whose will is the NDEATH; every message after NBIRTH is numbered 0-255 (seq); data goes
// by alias, at QoS 0 as the specification requires, and is confirmed by a barrier after it so
// that nothing stored is deleted before the broker has it. With a primary host, nothing is born
// and no data goes until the host's STATE says it is online; when it goes offline the node says
// NDEATH and connects again, keeping its data in the outbox, sent as historical after the births.
#include <fmt/format.h>

#include <algorithm>

#include "config/writes.hpp"
#include "core/log.hpp"
#include "platforms/json.hpp"
#include "platforms/platform.hpp"
#include "platforms/sparkplug_payload.hpp"

namespace fieldlink::platforms {
namespace {

namespace sp = sparkplug;

constexpr const char* kRebirth = "Node Control/Rebirth";
constexpr std::uint64_t kRebirthAlias = 1;  // device metrics' aliases follow

// What the node keeps from one message and one connection to the next.
struct NodeState final : north::PlatformState {
    // Of the current CONNECT's will and births. A new process starts from the clock's seconds, so
    // that its births do not take the number of the previous process's last will (a host
    // matches NDEATH to NBIRTH by it); the number is not kept on disk.
    std::uint64_t bd_seq = static_cast<std::uint64_t>(core::unix_ms_now() / 1000) % 256;
    bool bd_seq_used = false;  // a connection was made with it: the next CONNECT takes the next one
    std::uint64_t seq = 0;     // of the next message
    bool host_online = false;
    std::optional<std::int64_t> host_timestamp;  // of the latest STATE taken
    bool birthed = false;                        // births sent on this connection
    std::int64_t birth_ms = 0;                   // data acquired before the births is historical
};

NodeState& state_of(const north::SessionInfo& s) {
    return dynamic_cast<NodeState&>(*s.state);  // made by Sparkplug::make_state for every session
}

// A point's metric datatype: what its decoded value is (a scaled number is a Double, a scaled
// float32 a Float).
sp::DataType datatype_of(const config::PointConfig& p) {
    using T = config::DataType;
    if (p.type == T::string) return sp::DataType::string;
    if (p.type == T::boolean) return sp::DataType::boolean;
    if (p.type == T::float32) return sp::DataType::float32;
    if (p.type == T::float64 || p.scale != 1.0 || p.offset != 0.0) return sp::DataType::float64;
    switch (p.type) {
        case T::int16:
            return sp::DataType::int16;
        case T::int32:
            return sp::DataType::int32;
        case T::uint32:
            return sp::DataType::uint32;
        case T::int64:
            return sp::DataType::int64;
        case T::uint64:
            return sp::DataType::uint64;
        default:  // uint16, bcd
            return sp::DataType::uint16;
    }
}

// The bytes of `p`; a metric whose value does not fit its datatype goes as null (and is logged
// once): the rest of the message is not held back by it.
std::string encode(sp::Payload& p) {
    std::string error;
    if (auto bytes = sp::encode(p, &error)) return std::move(*bytes);
    for (auto& m : p.metrics) {
        sp::Payload one{std::nullopt, std::nullopt, {m}};
        if (sp::encode(one, nullptr)) continue;
        m.value.reset();
        m.is_null = true;
    }
    static bool logged = false;
    if (!std::exchange(logged, true)) {
        core::logger("north")->warn("Sparkplug: {}; sent as null (further ones are not logged)", error);
    }
    return sp::encode(p, nullptr).value_or(std::string());
}

class Sparkplug : public north::Profile {
  public:
    explicit Sparkplug(const config::CloudConfig& c)
        : north::Profile(c),
          group_(c.option_or("group_id", "")),
          node_(c.option_or("edge_node_id", "")),
          host_(c.option_or("primary_host", "")) {}

    // Sparkplug sends everything but the will at QoS 0; stored data is confirmed by a barrier.
    int qos() const override { return 0; }
    int downlink_qos() const override { return 1; }
    bool confirms_qos0() const override { return true; }
    north::LoginLimit login_limit() const override { return {3, std::chrono::milliseconds(5000)}; }
    std::shared_ptr<north::PlatformState> make_state() const override { return std::make_shared<NodeState>(); }

    // One session: the edge node carries every device of the cloud.
    std::vector<north::SessionInfo> sessions(const config::Config& cfg, std::size_t cloud_index) const override {
        return one_session(cfg, cloud_index);
    }

    std::optional<north::Credentials> credentials(const north::SessionInfo&, std::int64_t,
                                                  std::string*) const override {
        return cloud_credentials();
    }

    // Each CONNECT's will is an NDEATH with the next bdSeq (0-255), which the births then carry.
    // An attempt that never connected (no server listening, CONNACK refused) keeps the number.
    std::optional<north::Will> will(const north::SessionInfo& s) const override {
        auto& st = state_of(s);
        if (std::exchange(st.bd_seq_used, false)) st.bd_seq = (st.bd_seq + 1) % 256;
        return death(st.bd_seq);
    }
    // At QoS 0: the client would send a QoS 1 message again on the next connection.
    std::optional<north::Will> farewell(const north::SessionInfo& s) const override {
        auto& st = state_of(s);
        st.birthed = false;
        auto bye = death(st.bd_seq);
        bye.qos = 0;
        return bye;
    }
    bool holds_data(const north::SessionInfo& s) const override { return !state_of(s).birthed; }

    std::vector<std::string> subscriptions(const north::SessionInfo&) const override {
        std::vector<std::string> out{topic("NCMD"), topic("DCMD") + "/+"};
        if (!host_.empty()) out.push_back(state_topic());
        return out;
    }

    // Births at once, or when the primary host says it is online (its retained STATE comes
    // right after the subscription).
    std::vector<north::Message> on_connect(const north::SessionInfo& s, const north::LatestValues& latest,
                                           std::uint32_t&) const override {
        auto& st = state_of(s);
        st.bd_seq_used = true;
        st.seq = 0;
        st.birthed = false;
        st.host_online = false;
        if (!host_.empty()) return {};
        return births(s, latest);
    }

    // The message number 0-255 (protobuf field 3, seq), appended: NBIRTH starts at 0.
    bool stamp(const north::SessionInfo& s, const north::Message& m, std::string* payload) const override {
        auto& st = state_of(s);
        if (m.topic == topic("NBIRTH")) st.seq = 0;
        *payload = m.payload;
        payload->push_back(static_cast<char>(0x18));  // field 3, varint
        std::uint64_t v = st.seq;
        do {
            payload->push_back(static_cast<char>((v & 0x7f) | (v > 0x7f ? 0x80 : 0)));
            v >>= 7;
        } while (v != 0);
        st.seq = (st.seq + 1) % 256;
        return true;
    }

    // One DDATA per batch, by alias; what was acquired before the births is historical.
    std::vector<north::Packet> build(const north::SessionInfo& s, std::deque<core::SampleBatch>& pending,
                                     std::size_t max_packets, std::uint32_t&) const override {
        std::vector<north::Packet> out;
        const std::int64_t birth_ms = state_of(s).birth_ms;
        while (!pending.empty() && out.size() < max_packets) {
            north::Packet p;
            const core::SampleBatch b = north::take_front(pending, p);
            const auto render = [&](const core::SampleBatch& part) {
                return data(s, part.device_index, part.values, part.timestamp_ms, part.timestamp_ms < birth_ms);
            };
            const std::string t = topic("DDATA", s.device(b.device_index).name);
            if (std::string payload = render(b); payload.size() <= max_payload()) {
                p.messages.emplace_back(t, std::move(payload), b.values.size());
            } else {  // one sample set larger than a message: its values over several
                for (const auto& part : north::split_values(b, max_payload(), render)) {
                    p.messages.emplace_back(t, render(part), part.values.size());
                }
            }
            out.push_back(std::move(p));
        }
        return out;
    }

    // A unit that stops answering is a DDEATH; one that answers again is born again.
    std::vector<north::Message> presence(const north::SessionInfo& s, std::uint32_t device, bool online,
                                         const std::string& /*reason: the platform's shape has no room*/,
                                         const north::LatestValues& latest, std::uint32_t&) const override {
        if (!state_of(s).birthed) return {};  // the births to come say it
        if (online) {
            const auto it = latest.find(device);
            return {device_birth(s, device, it == latest.end() ? nullptr : &it->second, core::unix_ms_now())};
        }
        sp::Payload p{static_cast<std::uint64_t>(core::unix_ms_now()), std::nullopt, {}};
        return {north::Message(topic("DDEATH", s.device(device).name), encode(p), 0)};
    }

    north::Inbound on_message(const north::SessionInfo& s, const std::string& t, const std::string& payload,
                              const north::LatestValues& latest, std::uint32_t&) const override {
        north::Inbound in;
        if (!host_.empty() && t == state_topic()) return host_state(s, payload, latest, std::move(in));
        if (t == topic("NCMD")) return node_command(s, payload, latest, std::move(in));
        const std::string dcmd = topic("DCMD") + "/";
        if (t.size() > dcmd.size() && t.compare(0, dcmd.size(), dcmd) == 0) {
            return device_command(s, t.substr(dcmd.size()), payload, std::move(in));
        }
        in.kind = "unexpected";
        in.problem = "message on a topic this edge node does not use";
        return in;
    }

    // The values read back, as DDATA (a failed write has no reply in Sparkplug: it is logged
    // and counted).
    north::Message command_reply(const north::SessionInfo& s, const north::Command& c,
                                 const north::CommandResult& r) const override {
        if (!r.ok || r.values.empty() || !state_of(s).birthed) return {};
        const std::string payload = data(s, c.device, r.values, core::unix_ms_now(), false);
        return {topic("DDATA", s.device(c.device).name), payload, r.values.size()};
    }

  private:
    std::string topic(const char* type, const std::string& device = {}) const {
        std::string t = "spBv1.0/" + group_ + "/" + type + "/" + node_;
        if (!device.empty()) t += "/" + device;
        return t;
    }
    std::string state_topic() const { return "spBv1.0/STATE/" + host_; }

    north::Will death(std::uint64_t bd_seq) const {
        sp::Payload p{static_cast<std::uint64_t>(core::unix_ms_now()), std::nullopt, {}};
        p.metrics.push_back(sp::Metric{"bdSeq", std::nullopt, p.timestamp, sp::DataType::int64, false, false,
                                       core::Value{static_cast<std::int64_t>(bd_seq)}});
        return north::Will{topic("NDEATH"), encode(p), 1, false};
    }

    // The first alias of a device's points: 1 is the rebirth control, then the session's devices
    // in order, one per point.
    static std::uint64_t alias_base(const north::SessionInfo& s, std::uint32_t device) {
        std::uint64_t base = kRebirthAlias + 1;
        for (const auto i : s.devices) {
            if (i == device) break;
            base += s.device(i).points.size();
        }
        return base;
    }

    // DDATA keeps each metric's datatype, which the specification says it SHOULD NOT: decoders
    // that read the value by it (Eclipse Tahu's JavaScript, which Node-RED's Sparkplug nodes
    // use) read null without it. 2 bytes a metric.
    static std::string data(const north::SessionInfo& s, std::uint32_t device,
                            const std::vector<core::PointValue>& values, std::int64_t at_ms, bool historical) {
        const auto& d = s.device(device);
        const std::uint64_t base = alias_base(s, device);
        sp::Payload p{static_cast<std::uint64_t>(core::unix_ms_now()), std::nullopt, {}};
        p.metrics.reserve(values.size());
        for (const auto& pv : values) {
            p.metrics.push_back(sp::Metric{{},
                                           base + pv.point_index,
                                           static_cast<std::uint64_t>(at_ms),
                                           datatype_of(d.points[pv.point_index]),
                                           historical,
                                           false,
                                           pv.value});
        }
        return encode(p);
    }

    // NBIRTH (bdSeq, the rebirth control) and one DBIRTH per device with its latest values (null
    // where none was read). Data waits until they are sent (gate).
    std::vector<north::Message> births(const north::SessionInfo& s, const north::LatestValues& latest) const {
        auto& st = state_of(s);
        st.birthed = true;
        const std::int64_t now = core::unix_ms_now();
        st.birth_ms = now;
        const auto ts = static_cast<std::uint64_t>(now);
        sp::Payload p{ts, std::nullopt, {}};
        p.metrics.push_back(sp::Metric{"bdSeq", std::nullopt, ts, sp::DataType::int64, false, false,
                                       core::Value{static_cast<std::int64_t>(st.bd_seq)}});
        p.metrics.push_back(
            sp::Metric{kRebirth, kRebirthAlias, ts, sp::DataType::boolean, false, false, core::Value{false}});
        std::vector<north::Message> out;
        out.emplace_back(topic("NBIRTH"), encode(p), 0);
        out.back().gate = true;
        for (const auto device : s.devices) {
            const auto it = latest.find(device);
            out.push_back(device_birth(s, device, it == latest.end() ? nullptr : &it->second, now));
        }
        return out;
    }

    north::Message device_birth(const north::SessionInfo& s, std::uint32_t device,
                                const std::vector<std::optional<core::Value>>* latest, std::int64_t now) const {
        const auto& d = s.device(device);
        const std::uint64_t base = alias_base(s, device);
        const auto ts = static_cast<std::uint64_t>(now);
        sp::Payload p{ts, std::nullopt, {}};
        for (std::size_t i = 0; i < d.points.size(); ++i) {
            const bool known = latest && i < latest->size() && (*latest)[i];
            p.metrics.push_back(sp::Metric{d.points[i].name, base + i, ts, datatype_of(d.points[i]), false, !known,
                                           known ? (*latest)[i] : std::nullopt});
        }
        north::Message m(topic("DBIRTH", d.name), encode(p), 0);
        m.gate = true;
        m.logs_in = device;  // not while its unit does not answer: born when it does
        return m;
    }

    // spBv1.0/STATE/<host>: {"online":bool,"timestamp":ms}. An older STATE than the last one
    // taken is stale (a death delivered after the host's new session) and ignored.
    north::Inbound host_state(const north::SessionInfo& s, const std::string& payload,
                              const north::LatestValues& latest, north::Inbound in) const {
        in.kind = "STATE";
        const auto j = parse_object(payload);
        if (!j || !j->contains("online") || !(*j)["online"].is_boolean() || !j->contains("timestamp") ||
            !(*j)["timestamp"].is_number_integer()) {
            in.malformed = true;
            in.problem =
                R"(malformed STATE (expected {"online":true|false,"timestamp":ms}): )" + core::printable(payload, 120);
            return in;
        }
        auto& st = state_of(s);
        const auto ts = (*j)["timestamp"].get<std::int64_t>();
        if (st.host_timestamp && ts < *st.host_timestamp) return in;
        st.host_timestamp = ts;
        st.host_online = (*j)["online"].get<bool>();
        if (st.host_online && !st.birthed) {
            in.replies = births(s, latest);
        } else if (!st.host_online && st.birthed) {
            in.restart = true;  // NDEATH, a new connection, and births when the host is back
        }
        return in;
    }

    // NCMD: Node Control/Rebirth = true births again; any other metric is refused.
    north::Inbound node_command(const north::SessionInfo& s, const std::string& payload,
                                const north::LatestValues& latest, north::Inbound in) const {
        in.kind = "NCMD";
        std::string error;
        const auto p = sp::decode(payload, &error);
        if (!p) {
            in.malformed = true;
            in.problem = "NCMD: " + error;
            return in;
        }
        in.command = true;
        for (const auto& m : p->metrics) {
            const bool rebirth = m.name == kRebirth || (m.name.empty() && m.alias == kRebirthAlias);
            const auto v = sp::typed_value(m, sp::DataType::boolean);
            if (!rebirth || !v || !std::get<bool>(*v)) {
                in.refused = true;
                in.problem = "NCMD refused: metric '" + core::printable(m.name, 64) +
                             "' is not a node control this edge node has (expected Node Control/Rebirth = true)";
                return in;
            }
        }
        if (state_of(s).birthed) in.replies = births(s, latest);
        return in;
    }

    // DCMD: each metric (by name or alias) a writable point of the device, its value of the
    // point's datatype; written by the bus worker and read back, then published as DDATA.
    north::Inbound device_command(const north::SessionInfo& s, const std::string& name, const std::string& payload,
                                  north::Inbound in) const {
        in.kind = "DCMD";
        std::string error;
        const auto p = sp::decode(payload, &error);
        if (!p) {
            in.malformed = true;
            in.problem = "DCMD: " + error;
            return in;
        }
        in.command = true;
        north::Command c;
        c.kind = "DCMD";
        c.detail = name;
        c.reply_topic = topic("DDATA", name);
        c.sets_state = true;  // metrics are states: a newer DCMD of the same metrics replaces a queued one
        if (p->timestamp && *p->timestamp <= static_cast<std::uint64_t>(INT64_MAX)) {
            c.requested_ms = static_cast<std::int64_t>(*p->timestamp);  // the host's send time
        }
        const auto index =
            std::find_if(s.devices.begin(), s.devices.end(), [&](std::uint32_t i) { return s.device(i).name == name; });
        if (index == s.devices.end()) {
            return write_or_refuse(s, std::move(in), std::move(c), nullptr, false, "DCMD",
                                   "no device " + core::printable(name, 64) + " on this edge node");
        }
        std::string why;
        const bool ok = std::all_of(p->metrics.begin(), p->metrics.end(),
                                    [&](const sp::Metric& m) { return accept(s, *index, m, c.values, &why); });
        return write_or_refuse(s, std::move(in), std::move(c), &s.device(*index), ok, "DCMD", why);
    }

    static bool accept(const north::SessionInfo& s, std::uint32_t device, const sp::Metric& m,
                       std::vector<core::PointValue>& out, std::string* why) {
        const auto& d = s.device(device);
        const std::uint64_t base = alias_base(s, device);
        std::size_t i = 0;
        while (i < d.points.size() && !(m.name.empty() ? m.alias == base + i : m.name == d.points[i].name)) ++i;
        const std::string who =
            m.name.empty() ? "alias " + std::to_string(m.alias.value_or(0)) : "'" + core::printable(m.name, 64) + "'";
        if (i == d.points.size()) {
            *why = "metric " + who + " is not a metric of device " + d.name;
            return false;
        }
        const auto type = datatype_of(d.points[i]);
        const auto v = sp::typed_value(m, type);
        if (!v) {
            *why = fmt::format("metric {}: the value is not a {}", who, sp::datatype_name(type));
            return false;
        }
        auto accepted = config::accept_write(d.points[i], *v, why);
        if (!accepted) return false;
        out.push_back({static_cast<std::uint32_t>(i), std::move(*accepted)});
        return true;
    }

    std::string group_, node_, host_;
};

class SparkplugPlatform : public Platform {
  public:
    const char* name() const override { return "sparkplug"; }

    std::vector<OwnKey> own_keys() const override {
        return {{"group_id", "the Sparkplug B group of the edge node"},
                {"edge_node_id", "the Sparkplug B edge node id of the gateway"},
                {"primary_host", "the Sparkplug B primary host application whose STATE the node follows"}};
    }

    void check_cloud(config::CloudConfig& c, config::Checker& check) const override {
        for (const char* key : {"group_id", "edge_node_id", "primary_host"}) {
            const std::string value = c.option_or(key, "");
            if (value.empty()) {
                if (std::string(key) != "primary_host") {
                    check.fail(c.mark, config::cloud_path(c),
                               std::string("missing required key '") + key + "' for platform sparkplug");
                }
                continue;
            }
            if (auto why = id_problem(value); !why.empty()) {
                check.fail(c.mark_of(key), config::cloud_path(c) + "." + key,
                           "'" + core::printable(value, 64) + "' " + why + "; expected a Sparkplug id");
            }
        }
        if (c.given.count("qos") != 0) {
            check.fail(c.mark_of("qos"), config::cloud_path(c) + ".qos",
                       "Sparkplug B fixes the QoS (0 for data, confirmed by the gateway; 1 for the will); remove "
                       "the key");
        }
        if (c.client_id == "{device}") {
            c.client_id = "fieldlink-" + c.option_or("group_id", "") + "-" + c.option_or("edge_node_id", "");
        }
        payload_limit(check, c, std::uint64_t{256} * 1024, std::uint64_t{256} << 20, "the MQTT maximum");
    }

    // Device names are topic levels of DBIRTH, DDATA, DCMD: no '/'.
    void check_device(const config::Config& cfg, std::size_t index, config::Checker& check) const override {
        Platform::check_device(cfg, index, check);
        const auto& d = cfg.devices[index];
        if (d.name.find('/') != std::string::npos) {
            check.fail(d.mark, config::device_path(index) + ".name",
                       "device name '" + core::printable(d.name, 64) +
                           "' holds '/'; a Sparkplug device id is one topic level");
        }
    }

    std::unique_ptr<north::Profile> make_profile(const config::CloudConfig& c) const override {
        return std::make_unique<Sparkplug>(c);
    }

  private:
    static std::string id_problem(const std::string& id) {
        if (auto why = mqtt_name_problem(id); !why.empty()) return why;
        if (id.find('/') != std::string::npos) return "holds '/' (an id is one topic level)";
        return {};
    }
};

}  // namespace

const Platform& sparkplug_platform() {
    static const SparkplugPlatform p;
    return p;
}

}  // namespace fieldlink::platforms
