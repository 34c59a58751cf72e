// ThingsBoard gateway MQTT API (protocols.md §5): one session with the gateway device's access
// token carries every device of the cloud; devices are announced with v1/gateway/connect,
// telemetry for many devices and samples goes in one v1/gateway/telemetry message, RPCs are
// answered on v1/gateway/rpc.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <tuple>

#include "config/writes.hpp"
#include "platforms/json.hpp"
#include "platforms/platform.hpp"

namespace fieldlink::platforms {
namespace {

// The gateway device's own attributes: shared ones arrive here, client ones go here.
constexpr const char* kOwnAttributes = "v1/devices/me/attributes";
// Asked for on request/{id}, answered on response/{id} with {"shared":{..}}.
constexpr const char* kOwnAttributeRequest = "v1/devices/me/attributes/request/";
constexpr const char* kOwnAttributeResponse = "v1/devices/me/attributes/response/";
// The gateway device's own RPC: requests on request/{id}, answers on response/{id}.
constexpr const char* kOwnRpc = "v1/devices/me/rpc/";

class ThingsBoard : public north::Profile {
  public:
    using north::Profile::Profile;
    // ThingsBoard has no login rule of its own; 3 in 5 s keeps a crash loop from hammering it.
    north::LoginLimit login_limit() const override { return {3, std::chrono::milliseconds(5000)}; }
    const char* credentials_hint() const override { return "the access token, or the user name and password"; }

    // One session for the whole cloud: the gateway device's token carries every device.
    std::vector<north::SessionInfo> sessions(const config::Config& cfg, std::size_t cloud_index) const override {
        return one_session(cfg, cloud_index);
    }

    std::optional<north::Credentials> credentials(const north::SessionInfo&, std::int64_t,
                                                  std::string*) const override {
        return cloud_credentials();
    }

    std::vector<std::string> subscriptions(const north::SessionInfo& s) const override {
        std::vector<std::string> out{"v1/gateway/attributes", "v1/gateway/attributes/response", "v1/gateway/rpc"};
        if (s.channel && cloud_.remote_config) {  // the gateway's shared attributes, and the answer to asking
            out.emplace_back(kOwnAttributes);
            out.emplace_back(std::string(kOwnAttributeResponse) + "+");
        }
        if (s.channel && cloud_.diagnostics) out.emplace_back(std::string(kOwnRpc) + "request/+");
        return out;
    }

    // The gateway device's own RPC response: {"ok":..,"result"|"error":..}.
    north::Message diagnostics_reply(const north::SessionInfo&, const north::DiagRequest& q, bool ok,
                                     const std::string& result) const override {
        return {q.reply_topic, dump(diag_answer_json(ok, result)), 0};
    }

    // The report of a pushed configuration: client attributes of the gateway device
    // (fieldlink_config_version, _result, _error, ...).
    std::vector<north::Message> config_report(const north::SessionInfo&, const north::ConfigReport& r,
                                              std::uint32_t&) const override {
        return {north::Message(kOwnAttributes, dump(config_report_json(r, "fieldlink_config_")), 0)};
    }

    // Every device is announced; a device with client attributes asks for the values the platform
    // holds, and those that differ from the latest readings are sent again (attributes go only
    // when they change, so a platform that lost or changed them would otherwise keep them wrong).
    // With remote_config, the gateway asks for its shared attribute fieldlink_config: one set
    // while it was offline is applied now (the one already applied, refused or rolled back is
    // known by its version and not applied again).
    std::vector<north::Message> on_connect(const north::SessionInfo& s, const north::LatestValues&,
                                           std::uint32_t& next_id) const override {
        std::vector<north::Message> out;
        if (s.channel && cloud_.remote_config) {
            out.emplace_back(std::string(kOwnAttributeRequest) + std::to_string(north::take_message_id(next_id)),
                             R"({"sharedKeys":"fieldlink_config"})", 0);
        }
        for (auto index : s.devices) out.push_back(connect(s, index, true));
        for (auto index : s.devices) {
            const auto& d = s.device(index);
            std::vector<std::string> keys;
            for (const auto& p : d.points) {
                if (p.report == config::Report::attribute) keys.push_back(p.name);
            }
            if (keys.empty()) continue;
            const auto id = north::take_message_id(next_id);
            Json r = {{"id", id}, {"device", d.name}, {"client", keys}};
            out.emplace_back("v1/gateway/attributes/request", dump(r), 0, std::to_string(id));
        }
        return out;
    }

    // attributes/response: {"id","device","value"} (one key) or {"id","device","values":{..}};
    // the attributes whose value there differs from the latest reading follow the answer.
    static north::Inbound attribute_values(const north::SessionInfo& s, const Json& j, const std::string& id,
                                           const north::LatestValues& latest, north::Inbound in) {
        const std::string device = text_of(j, "device");
        const auto index =
            std::find_if(s.devices.begin(), s.devices.end(), [&](auto i) { return s.device(i).name == device; });
        north::Answer a;
        a.id = id;
        if (index == s.devices.end()) {
            in.answer = std::move(a);
            return in;
        }
        const auto& d = s.device(*index);
        std::vector<std::size_t> keys;
        for (std::size_t p = 0; p < d.points.size(); ++p) {
            if (d.points[p].report == config::Report::attribute) keys.push_back(p);
        }
        const Json* values = j.contains("values") && j["values"].is_object() ? &j["values"] : nullptr;
        const auto known = latest.find(*index);
        std::string update;
        for (auto p : keys) {
            if (known == latest.end() || p >= known->second.size() || !known->second[p]) continue;  // not read yet
            const Json* held = nullptr;
            if (values && values->contains(d.points[p].name)) {
                held = &(*values)[d.points[p].name];
            } else if (!values && keys.size() == 1 && j.contains("value")) {
                held = &j["value"];
            }
            std::string mine;
            append_json_value(mine, *known->second[p]);
            if (held && Json::parse(mine, nullptr, false) == *held) continue;
            update += update.empty() ? "{" : ",";
            append_json_string(update, d.points[p].name);
            update += ':' + mine;
        }
        if (!update.empty()) {
            std::string payload = "{";
            append_json_string(payload, d.name);
            payload += ':' + update + "}}";
            a.follow_ups.emplace_back("v1/gateway/attributes", std::move(payload), 0);
        }
        in.answer = std::move(a);
        return in;
    }

    // A device whose unit stops answering is disconnected on the platform, connected again when
    // it answers (ThingsBoard then shows its real activity).
    // Why, as the device's client attribute `offline_reason` (sent before the disconnect, cleared
    // after the connect).
    std::vector<north::Message> presence(const north::SessionInfo& s, std::uint32_t device, bool online,
                                         const std::string& reason, const north::LatestValues&,
                                         std::uint32_t&) const override {
        Json attributes = Json::object();
        attributes[s.device(device).name]["offline_reason"] = online ? std::string() : reason;
        north::Message why("v1/gateway/attributes", dump(attributes), 0);
        if (online) return {connect(s, device, true), why};
        return {why, connect(s, device, false)};
    }

    static north::Message connect(const north::SessionInfo& s, std::uint32_t index, bool online) {
        std::string p = R"({"device":)";
        append_json_string(p, s.device(index).name);
        p += '}';
        north::Message m(online ? "v1/gateway/connect" : "v1/gateway/disconnect", std::move(p), 0);
        if (online) m.logs_in = index;
        return m;
    }

    std::vector<north::Packet> build(const north::SessionInfo& s, std::deque<core::SampleBatch>& pending,
                                     std::size_t max_packets, std::uint32_t&) const override {
        std::vector<north::Packet> out;
        const auto limit = max_payload();
        while (!pending.empty() && out.size() < max_packets) {
            const std::size_t most = pending.size();  // bytes are the limit, not a count
            std::string payload;
            // Sized by the larger of the two messages a packet may hold (telemetry, attributes);
            // both are kept for each count tried, so the one chosen is not rendered again.
            std::vector<std::tuple<std::size_t, std::string, std::string>> tried;
            const std::size_t n = north::fit_batches(
                most, limit,
                [&](std::size_t k) {
                    auto& [count, t, a] = tried.emplace_back(k, telemetry(s, pending, k), attributes(s, pending, k));
                    return t.size() >= a.size() ? t : a;
                },
                payload);
            north::Packet p;
            if (payload.size() <= limit) {
                auto chosen =
                    std::find_if(tried.begin(), tried.end(), [&](const auto& x) { return std::get<0>(x) == n; });
                std::string t = std::move(std::get<1>(*chosen)), a = std::move(std::get<2>(*chosen));
                for (std::size_t i = 0; i < n; ++i) north::take_front(pending, p);
                if (t.size() > 2) p.messages.emplace_back("v1/gateway/telemetry", std::move(t), p.samples);
                if (a.size() > 2) p.messages.emplace_back("v1/gateway/attributes", std::move(a), 0);
            } else {  // one sample set larger than a message: its values over several
                std::deque<core::SampleBatch> one(1);
                for (const auto& part : north::split_values(pending.front(), limit, [&](const core::SampleBatch& x) {
                         one.front() = x;
                         std::string t = telemetry(s, one, 1), a = attributes(s, one, 1);
                         return t.size() >= a.size() ? t : a;
                     })) {
                    one.front() = part;
                    if (std::string t = telemetry(s, one, 1); t.size() > 2)
                        p.messages.emplace_back("v1/gateway/telemetry", std::move(t), part.values.size());
                    if (std::string a = attributes(s, one, 1); a.size() > 2)
                        p.messages.emplace_back("v1/gateway/attributes", std::move(a), 0);
                }
                north::take_front(pending, p);
            }
            out.push_back(std::move(p));
        }
        return out;
    }

    // {"Device A":[{"ts":..,"values":{..}},..],"Device B":[..]} for the first n batches: their
    // telemetry (properties, and events: ThingsBoard has no events of its own).
    static std::string telemetry(const north::SessionInfo& s, const std::deque<core::SampleBatch>& pending,
                                 std::size_t n) {
        std::vector<std::pair<std::uint32_t, std::string>> per_device;  // device -> "[{ts,values},..."
        for (std::size_t i = 0; i < n; ++i) {
            const auto& b = pending[i];
            const auto& d = s.device(b.device_index);
            if (std::all_of(b.values.begin(), b.values.end(), [&](const auto& pv) { return is_attribute(d, pv); }))
                continue;
            auto it = std::find_if(per_device.begin(), per_device.end(),
                                   [&](const auto& x) { return x.first == b.device_index; });
            if (it == per_device.end()) {
                per_device.emplace_back(b.device_index, "[");
                it = per_device.end() - 1;
            } else {
                it->second += ',';
            }
            it->second += fmt::format(R"({{"ts":{},"values":{{)", b.timestamp_ms);
            bool first = true;
            for (const auto& pv : b.values) {
                if (is_attribute(d, pv)) continue;
                if (!first) it->second += ',';
                first = false;
                append_json_string(it->second, d.points[pv.point_index].name);
                it->second += ':';
                append_json_value(it->second, pv.value);
            }
            it->second += "}}";
        }
        std::string payload = "{";
        for (std::size_t k = 0; k < per_device.size(); ++k) {
            if (k) payload += ',';
            append_json_string(payload, s.device(per_device[k].first).name);
            payload += ':' + per_device[k].second + ']';
        }
        return payload + '}';
    }

    // {"Device A":{"attribute":value,..},..}: the client attributes of the first n batches, the
    // newest value of each.
    static std::string attributes(const north::SessionInfo& s, const std::deque<core::SampleBatch>& pending,
                                  std::size_t n) {
        std::vector<std::pair<std::uint32_t, std::vector<const core::PointValue*>>> per_device;
        for (std::size_t i = 0; i < n; ++i) {
            const auto& b = pending[i];
            const auto& d = s.device(b.device_index);
            for (const auto& pv : b.values) {
                if (!is_attribute(d, pv)) continue;
                auto it = std::find_if(per_device.begin(), per_device.end(),
                                       [&](const auto& x) { return x.first == b.device_index; });
                if (it == per_device.end()) {
                    per_device.emplace_back(b.device_index, std::vector<const core::PointValue*>{});
                    it = per_device.end() - 1;
                }
                auto same = std::find_if(it->second.begin(), it->second.end(),
                                         [&](const auto* x) { return x->point_index == pv.point_index; });
                if (same != it->second.end()) {
                    *same = &pv;  // a newer value of the same attribute
                } else {
                    it->second.push_back(&pv);
                }
            }
        }
        std::string payload = "{";
        for (std::size_t k = 0; k < per_device.size(); ++k) {
            const auto& d = s.device(per_device[k].first);
            if (k) payload += ',';
            append_json_string(payload, d.name);
            payload += ":{";
            for (std::size_t v = 0; v < per_device[k].second.size(); ++v) {
                if (v) payload += ',';
                append_json_string(payload, d.points[per_device[k].second[v]->point_index].name);
                payload += ':';
                append_json_value(payload, per_device[k].second[v]->value);
            }
            payload += '}';
        }
        return payload + '}';
    }

    north::Inbound on_message(const north::SessionInfo& s, const std::string& topic, const std::string& payload,
                              const north::LatestValues& latest, std::uint32_t&) const override {
        north::Inbound in;
        in.kind = topic;
        auto j = parse_object(payload);
        if (!j) {
            in.malformed = true;
            in.problem = "malformed message (expected a JSON object): " + payload.substr(0, 120);
            return in;
        }
        if (topic == "v1/gateway/attributes/response") {
            auto id = id_of(*j);
            if (!id) {
                in.malformed = true;
                in.problem = "attribute response without an id: " + payload.substr(0, 120);
                return in;
            }
            return attribute_values(s, *j, *id, latest, std::move(in));
        }
        if (topic == "v1/gateway/attributes") return shared_attributes(s, *j, std::move(in));
        if (s.channel && (topic == kOwnAttributes || topic.rfind(kOwnAttributeResponse, 0) == 0 ||
                          topic.rfind(std::string(kOwnRpc) + "request/", 0) == 0)) {
            return own_topic(topic, *j, std::move(in));
        }
        if (topic != "v1/gateway/rpc") {
            in.kind = "unexpected";
            in.problem = "message on a topic this platform does not use";
            return in;
        }
        const std::string device = text_of(*j, "device");
        const Json* data = j->contains("data") && (*j)["data"].is_object() ? &(*j)["data"] : nullptr;
        auto id = data ? id_of(*data) : std::nullopt;
        if (!id || device.empty()) {
            in.malformed = true;
            in.problem =
                R"(malformed RPC (expected {"device":..,"data":{"id":..,"method":..}}): )" + payload.substr(0, 120);
            return in;
        }
        in.kind = "rpc";
        in.command = true;
        north::Command c;
        c.kind = "rpc " + text_of(*data, "method").substr(0, 64);
        c.id = *id;
        c.reply_topic = "v1/gateway/rpc";
        c.detail = device;
        std::string why;
        bool ok = false;
        const config::DeviceConfig* d = device_named(s, device);
        if (!d) {
            why = "unknown device " + device.substr(0, 64);
        } else if (text_of(*data, "method") == "get") {
            return rpc_get(s, *d, *data, c, latest, std::move(in));
        } else {
            ok = rpc_writes(*d, *data, c.values, &why);
        }
        return write_or_refuse(s, std::move(in), std::move(c), d, ok, "RPC", why);
    }

    // {"device":..,"id":..,"data":{"success":true,"values":{read back}}} or
    // {"success":false,"error":..}; attribute updates get none.
    north::Message command_reply(const north::SessionInfo& s, const north::Command& c,
                                 const north::CommandResult& r) const override {
        if (c.reply_topic.empty()) return {};
        Json out = {{"device", c.detail}};
        out["id"] = id_json(c.id);
        if (r.ok) {
            out["data"] = {{"success", true},
                           {"values", Json::parse(point_values_json(s.device(c.device), r.values), nullptr, false)}};
        } else {
            out["data"] = {{"success", false}, {"error", r.reason}};
        }
        return {c.reply_topic, dump(out), 0};
    }

    // ThingsBoard's RPC times out after 10 s unless the caller says otherwise.
    std::chrono::milliseconds command_deadline() const override { return std::chrono::milliseconds(10'000); }

  private:
    // The id as it came: a number stays a number (ThingsBoard matches it).
    static Json id_json(const std::string& id) {
        const bool digits = !id.empty() && id.size() < 16 && std::all_of(id.begin(), id.end(), ::isdigit);
        return digits ? Json(std::stoll(id)) : Json(id);
    }

    // method "set" with {"point": value, ...}; a command name ("on"); or a point name with its
    // value as params (a switch or knob widget: {"method":"setpoint","params":21.5}, or
    // {"value": 21.5}).
    static bool rpc_writes(const config::DeviceConfig& d, const Json& data, std::vector<core::PointValue>& out,
                           std::string* why) {
        const std::string method = text_of(data, "method");
        const Json params = data.contains("params") ? data["params"] : Json();
        if (method == "set") return writes_of(d, params, out, why);
        if (const auto* p = config::point_with_command(d, method)) {
            auto v = config::accept_write(*p, method, why);
            if (v) out.push_back({static_cast<std::uint32_t>(p - d.points.data()), std::move(*v)});
            return v.has_value();
        }
        Json one = Json::object();
        one[method] = params.is_object() && params.contains("value") ? params["value"] : params;
        return writes_of(d, one, out, why);
    }

    // The device of this session named `name` (ThingsBoard addresses devices by name), or nullptr.
    static const config::DeviceConfig* device_named(const north::SessionInfo& s, const std::string& name) {
        for (auto i : s.devices) {
            if (s.device(i).name == name) return &s.device(i);
        }
        return nullptr;
    }

    // method "get": the latest values of the points named in params (a name or a list; none: all).
    north::Inbound rpc_get(const north::SessionInfo& s, const config::DeviceConfig& d, const Json& data,
                           const north::Command& c, const north::LatestValues& latest, north::Inbound in) const {
        const auto index = static_cast<std::uint32_t>(&d - s.cfg->devices.data());
        const Json params = data.contains("params") ? data["params"] : Json();
        auto it = latest.find(index);
        north::CommandResult r{true, {}, {}};
        for (std::size_t p = 0; p < d.points.size(); ++p) {
            const auto& name = d.points[p].name;
            const bool wanted = params.is_null() || (params.is_string() && params == name) ||
                                (params.is_array() && std::find(params.begin(), params.end(), name) != params.end());
            if (wanted && it != latest.end() && p < it->second.size() && it->second[p]) {
                r.values.push_back({static_cast<std::uint32_t>(p), *it->second[p]});
            }
        }
        north::Command reply = c;
        reply.device = index;
        if (r.values.empty()) {
            r = {false, "no value read yet for the points asked", {}};
            in.refused = true;
            in.problem = "RPC get: " + r.reason;
        }
        in.replies.push_back(command_reply(s, reply, r));
        return in;
    }

    // {"device":..,"data":{"key":value,...}}: keys naming writable points of the device are
    // written (no reply: ThingsBoard expects none); other keys are the platform's own.
    north::Inbound shared_attributes(const north::SessionInfo& s, const Json& j, north::Inbound in) const {
        const std::string device = text_of(j, "device");
        const Json* data = j.contains("data") && j["data"].is_object() ? &j["data"] : nullptr;
        const config::DeviceConfig* d = device_named(s, device);
        if (!d || !data) {
            in.malformed = !data;
            in.problem = d ? "attribute update without data" : "attribute update for unknown device " + device;
            return in;
        }
        Json writable = Json::object();
        for (const auto& item : data->items()) {
            const std::string& key = item.key();
            const bool point = std::any_of(d->points.begin(), d->points.end(),
                                           [&](const auto& p) { return p.name == key && p.writable; });
            if (point) writable[key] = item.value();
        }
        if (writable.empty()) return in;  // attributes of the platform's own, not a write
        in.kind = "attributes";
        in.command = true;
        north::Command c;
        c.kind = "shared attributes";
        c.detail = device;
        c.sets_state = true;  // attributes are states: a newer update of the same ones replaces a queued one
        std::string why;
        const bool ok = writes_of(*d, writable, c.values, &why);
        return write_or_refuse(s, std::move(in), std::move(c), d, ok, "shared attribute update", why);
    }

    // The gateway device's own topics: the shared attribute fieldlink_config (a configuration
    // pushed), RPC fieldlink_diagnostics.
    static north::Inbound own_topic(const std::string& topic, const Json& j, north::Inbound in) {
        if (topic == kOwnAttributes || topic.rfind(kOwnAttributeResponse, 0) == 0) {
            in.kind = "gateway attributes";
            // An answer to asking holds them under "shared"; an update is the attributes themselves.
            const auto shared = j.find("shared");
            const Json& attrs = topic == kOwnAttributes || shared == j.end() || !shared->is_object() ? j : *shared;
            if (const auto it = attrs.find("fieldlink_config"); it != attrs.end()) in.config_push = config_push_of(*it);
            return in;
        }
        in.kind = "gateway rpc";
        const std::string id = topic.substr(std::strlen(kOwnRpc) + 8);  // request/{id}
        const std::string method = text_of(j, "method");
        const auto params = j.find("params");
        in.diagnostics =
            method == "fieldlink_diagnostics" && params != j.end() ? diag_request_of(*params) : north::DiagRequest{};
        if (method != "fieldlink_diagnostics") {
            in.diagnostics->problem =
                "unknown method '" + method.substr(0, 64) + "' of the gateway device; expected fieldlink_diagnostics";
        } else if (params == j.end()) {
            in.diagnostics->problem = "fieldlink_diagnostics without params";
        }
        in.diagnostics->id = id;
        in.diagnostics->reply_topic = std::string(kOwnRpc) + "response/" + id;
        return in;
    }
};

class ThingsBoardPlatform : public Platform {
  public:
    const char* name() const override { return "thingsboard"; }

    void check_cloud(config::CloudConfig& c, config::Checker& check) const override {
        require(check, c, c.username, "username");  // the gateway device's access token
        if (c.client_id == "{device}") c.client_id = "fieldlink-gateway";
        // ThingsBoard's MQTT transport refuses payloads over its max_payload_size (64 KB unless
        // the server was configured otherwise: then set the same here).
        payload_limit(check, c, 65536, std::uint64_t{256} << 20, "the MQTT maximum");
    }

    std::unique_ptr<north::Profile> make_profile(const config::CloudConfig& c) const override {
        return std::make_unique<ThingsBoard>(c);
    }
    bool takes_remote_config(const config::CloudConfig&) const override { return true; }
    const char* remote_config_where() const override { return "thingsboard (the attribute fieldlink_config)"; }
};

}  // namespace

const Platform& thingsboard_platform() {
    static const ThingsBoardPlatform p;
    return p;
}

}  // namespace fieldlink::platforms
